"""MNIST and Fashion-MNIST as a LightningDataModule that owns splitting and augmentation."""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
import torchvision

from cnnlab.data.augment import BatchAugment
from cnnlab.data.batches import Batch, batch_loader, move_batch
from cnnlab.data.idx import IDX_FILES, check_pair, gunzip_missing
from cnnlab.errors import (
    ArgumentError,
    BadInput,
    Classes,
    Count,
    Fraction,
    NonNegative,
    Positive,
    checked,
)

# config name -> torchvision dataset class (the class name is also its folder under root)
DATASETS = {
    "mnist": torchvision.datasets.MNIST,
    "fashion_mnist": torchvision.datasets.FashionMNIST,
}
IMAGE_SIZE = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28)}  # channels, height, width


class MNISTDataModule(L.LightningDataModule):
    """Holds the whole dataset as uint8 tensors and feeds index batches.

    The validation split is drawn from the training set with ``split_seed``, not the run
    seed, so every seed of a study is validated on the same images. With
    ``validation=False`` there is no validation split: the model trains on the whole
    training set and the trainer runs no validation loop (``val_dataloader`` is empty).
    On a GPU the tensors are moved to the device once (``on_device``) and batches never
    cross the bus.
    Conversion to float, augmentation (training batches only) and normalization happen
    per batch in ``on_after_batch_transfer``, i.e. on the training device.
    """

    @checked
    def __init__(
        self,
        name: Literal["mnist", "fashion_mnist"] = "mnist",
        root: str = "data",
        validation: bool = True,
        val_fraction: Fraction = 0.2,
        split_seed: NonNegative = 0,
        batch_size: Count = 64,
        eval_batch_size: Count = 128,
        mean: float = 0.1307,
        std: Positive = 0.3081,
        num_classes: Classes = 10,
        augmentation: Optional[BatchAugment] = None,
        download: bool = True,
        on_device: bool = True,
        drop_last: bool = False,
        seed: NonNegative = 0,
    ) -> None:
        super().__init__()
        if not str(root).strip():
            raise ArgumentError(
                "root",
                root,
                "a folder holding MNIST/raw/ ('' would be the current directory; an empty "
                "CNNLAB_DATA_DIR gives it)",
            )
        self.name, self.root = name, Path(root)
        self.validation = validation
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.mean, self.std, self.num_classes = mean, std, num_classes
        self.augmentation = augmentation or BatchAugment()
        self.download, self.on_device, self.drop_last, self.seed = (
            download,
            on_device,
            drop_last,
            seed,
        )
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def image_size(self) -> tuple[int, int, int]:
        return IMAGE_SIZE[self.name]

    @property
    def raw_folder(self) -> Path:
        return self.root / DATASETS[self.name].__name__ / "raw"

    def data_files(self) -> list[Path]:
        return [self.raw_folder / f for f in IDX_FILES]

    def prepare_data(self) -> None:
        self.ensure_files()

    def ensure_files(self) -> None:
        """Find the four IDX files, unpack .gz copies, or download; else say what is missing."""
        if self.root.is_file():
            raise ArgumentError(
                "root", str(self.root), "a file; give the folder holding MNIST/raw/"
            )
        raw = self.raw_folder
        if raw.is_dir() and not all(p.exists() for p in self.data_files()):
            try:
                gunzip_missing(raw)
            except OSError:
                pass
        missing = [p.name for p in self.data_files() if not p.exists()]
        if not missing:
            return
        err: Exception | None = None
        if self.download:
            where = Path(os.path.abspath(raw))  # nx/../b: b, not a folder nx never made
            made = [d for d in (where, *where.parents) if not d.exists()]  # deepest first
            try:
                DATASETS[self.name](str(self.root), train=True, download=True)
            except Exception as e:  # offline, mirror down, read-only folder
                err = e
            missing = [p.name for p in self.data_files() if not p.exists()]
            if missing:  # a failed download leaves no empty folders behind
                for folder in made:
                    with contextlib.suppress(OSError):
                        folder.rmdir()
        if missing:
            # torchvision's message spans lines (file, URLs tried, error): one line here
            how = (
                f"the download failed ({' '.join(str(err).split())})"
                if err
                else "downloading is off (data.download=false)"
            )
            raise BadInput(
                f"{self.name} data not found: expected the four files {list(IDX_FILES)} in "
                f"{raw.resolve()} (missing: {missing}). Point data.root (or the environment "
                f"variable CNNLAB_DATA_DIR) at the folder that holds "
                f"{DATASETS[self.name].__name__}/raw/; {how}."
            )

    def check_files(self) -> None:
        """Present, whole and MNIST-shaped: names a missing, corrupt, truncated, mis-typed,
        mis-shaped or swapped file, or a label outside the classes, before any work.
        Reads the four headers and the labels (not the images): cheap enough for every start."""
        self.ensure_files()
        images, labels, test_images, test_labels = self.data_files()
        hw = self.image_size[1:]
        self.train_count = check_pair(images, labels, hw, self.num_classes)
        check_pair(test_images, test_labels, hw, self.num_classes)
        if self.validation and not 0 < self.held_out(self.train_count) < self.train_count:
            raise ArgumentError(
                "val_fraction",
                self.val_fraction,
                f"leaves an empty split of the {self.train_count} training images",
            )

    def held_out(self, n: int) -> int:
        """Images of ``n`` that the validation split takes (none without validation)."""
        return int(round(n * self.val_fraction)) if self.validation else 0

    def train_images(self) -> int | None:
        """Images that train each epoch, known once the files are checked; None before."""
        n = getattr(self, "train_count", None)
        return None if n is None else n - self.held_out(n)

    def train_batches(self) -> int | None:
        """Training batches per epoch (before the trainer's limit), known once the files
        are checked; None before."""
        n = self.train_images()
        if n is None:
            return None
        return max(n // self.batch_size if self.drop_last else -(-n // self.batch_size), 0)

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self._load()
        # set up before a trainer was attached (a benchmark, a notebook), the splits are
        # still on the host: move them now, once, not batch by batch
        device = self._device()
        if (
            self.on_device
            and device.type != "cpu"
            and any(t.device != device for pair in self.splits.values() for t in pair)
        ):
            self.splits = {k: (a.to(device), b.to(device)) for k, (a, b) in self.splits.items()}

    def _load(self) -> None:
        self.check_files()
        stamps = tuple(
            (str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in self.data_files()
        )
        x, y, test_split = _read(self.name, str(self.root), stamps)
        test_split = (test_split[0].clone(), test_split[1].clone())  # the cached read stays
        if not self.validation:  # the whole training set trains; nothing is held out
            self.splits = {"train": (x.clone(), y.clone()), "test": test_split}
            return
        n_val = self.held_out(len(y))  # check_files made sure neither split is empty
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
        self.splits = {
            "train": (x[train_idx], y[train_idx]),
            "val": (x[val_idx], y[val_idx]),
            "test": test_split,
        }

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _loader(self, split: str, train: bool):
        return loader_for(self, *self.splits[split], train=train)

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        # no loader at all: Lightning then skips the validation loop and its sanity check
        return self._loader("val", train=False) if self.validation else []

    def test_dataloader(self):
        return self._loader("test", train=False)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return (
            move_batch(batch, device)
            if isinstance(batch, Batch)
            else super().transfer_batch_to_device(batch, device, dataloader_idx)
        )

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if not isinstance(batch, Batch):
            return batch
        training = self.trainer is not None and self.trainer.training
        return self.prepare_batch(batch.images, batch.seed, training), batch.labels

    def prepare_batch(self, x: torch.Tensor, seed: int, training: bool) -> torch.Tensor:
        """uint8 → float in [0, 1] → augmented (training only) → normalized."""
        x = x.float().div_(255.0)
        if training and self.augmentation.active:
            gen = torch.Generator(device=x.device).manual_seed(int(seed))
            x = self.augmentation(x, gen)
        return x.sub_(self.mean).div_(self.std)

    def train_eval_batches(self, n: int, device: torch.device):
        """The first ``n`` images of the training split as the test sees its images (no
        augmentation, ``eval_batch_size`` at a time), with their count; None before setup."""
        if "train" not in self.splits:
            return None
        images, labels = (t[:n] for t in self.splits["train"])
        step = self.eval_batch_size
        batches = (
            (
                self.prepare_batch(images[i : i + step].to(device), 0, training=False),
                labels[i : i + step].to(device),
            )
            for i in range(0, len(labels), step)
        )
        return len(labels), batches


def loader_for(dm: L.LightningDataModule, images: torch.Tensor, labels: torch.Tensor, train: bool):
    """The batch loader of one split of a DataModule holding ``batch_size``, ``seed``, ...:
    shuffled and sharded by the trainer's rank, the epoch read from the trainer."""
    trainer = dm.trainer
    rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
    return batch_loader(
        images,
        labels,
        dm.batch_size if train else dm.eval_batch_size,
        shuffle=train,
        seed=dm.seed,
        drop_last=dm.drop_last and train,
        rank=rank,
        world_size=world,
        epoch_of=(lambda: trainer.current_epoch) if trainer else None,
    )


warnings.filterwarnings("ignore", message=".*does not have many workers.*")
# the empty validation "loader" of validation=False, which is meant
warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero")


# The jobs of an in-process sweep read the same files: once per process (keyed by each
# file's path, size and mtime, so a file changed in between is read again).
@functools.lru_cache(maxsize=2)
def _read(name: str, root: str, stamps: tuple) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    cls = DATASETS[name]
    train = cls(root, train=True, download=False)
    test = cls(root, train=False, download=False)
    return (
        train.data.unsqueeze(1).contiguous(),
        train.targets.long(),
        (test.data.unsqueeze(1).contiguous(), test.targets.long()),
    )

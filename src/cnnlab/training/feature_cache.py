"""Train a frozen backbone's head on features computed once, instead of every epoch.

With ``model.freeze=backbone`` and no augmentation, the backbone maps each image to the
same features in every epoch: computing them once and training the head on the cache
gives the same optimisation at the cost of a single forward pass over the data.

Everything about it lives here: ``fitting_on_features`` hands the trainer a DataModule of
features and runs the model's head alone for the length of the fit; the model, its
checkpoints and the image DataModule never know.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import lightning as L
import torch
from rich.console import Console
from torch import nn

from cnnlab.data.batches import Batch, move_batch
from cnnlab.data.datamodule import loader_for
from cnnlab.nets.transfer import head_name


@contextlib.contextmanager
def headless(net: nn.Module):
    """The net with its head swapped for Identity: its output is the head's input."""
    parent_name, _, child = head_name(net).rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    head = getattr(parent, child)
    setattr(parent, child, nn.Identity())
    try:
        yield net
    finally:
        setattr(parent, child, head)


def cacheable(pl_module, datamodule) -> str | None:
    """Why features cannot be cached, or None when they can."""
    if getattr(pl_module, "freeze_mode", "none") != "backbone":
        return "the backbone is not frozen"
    if datamodule.augmentation.active:
        return "augmentation changes the backbone's input every epoch"
    head = head_name(pl_module.net)
    for name, module in pl_module.net.named_modules():
        if isinstance(module, nn.Dropout) and module.p > 0 and not name.startswith(head):
            return f"dropout ({name}) in the backbone makes its output random"
    return None


class FeatureDataModule(L.LightningDataModule):
    """The train and validation splits of an image DataModule, as backbone features.

    Batches come in the same order and sizes as the image DataModule's (same sampler,
    same seed), so the head sees exactly what it would see behind the backbone.
    """

    def __init__(self, images: L.LightningDataModule, net: nn.Module, chunk: int = 1000) -> None:
        super().__init__()
        self.images, self.net, self.chunk = images, net, chunk
        self.batch_size, self.eval_batch_size = images.batch_size, images.eval_batch_size
        self.seed, self.drop_last = images.seed, images.drop_last
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.images.trainer = self.trainer
        self.images.setup("fit")
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        was_training = self.net.training
        self.net.eval()
        with torch.no_grad(), headless(self.net):
            for split in ("train", "val"):
                if split not in self.images.splits:  # data.validation=false: no val split
                    continue
                images, labels = self.images.splits[split]
                chunks = [
                    self.net(
                        self.images.prepare_batch(
                            images[i : i + self.chunk].to(device), 0, training=False
                        )
                    )
                    for i in range(0, len(labels), self.chunk)
                ]
                self.splits[split] = (torch.cat(chunks).to(images.device), labels)
        self.net.train(was_training)
        Console().print(
            f"[cyan]feature cache:[/] backbone features computed once "
            f"({self.splits['train'][0].shape[1]} per image); training the head only"
        )

    def train_dataloader(self):
        return loader_for(self, *self.splits["train"], train=True)

    def val_dataloader(self):
        return loader_for(self, *self.splits["val"], train=False) if "val" in self.splits else []

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return move_batch(batch, device)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx):
        return batch.images, batch.labels


@contextlib.contextmanager
def head_only(pl_module: L.LightningModule) -> Iterator[None]:
    """For the length of the block the module's forward is its net's head alone."""
    head = pl_module.net.get_submodule(head_name(pl_module.net))
    # in the instance's __dict__ it shadows the class's forward; nn.Module's __setattr__
    # would register it as a submodule instead (and put it in the checkpoints)
    pl_module.__dict__["forward"] = head
    try:
        yield
    finally:
        del pl_module.__dict__["forward"]


@contextlib.contextmanager
def fitting_on_features(pl_module, datamodule, enabled: bool) -> Iterator[L.LightningDataModule]:
    """The DataModule to fit on: features when they can be cached, else the images."""
    if not enabled or cacheable(pl_module, datamodule) is not None:
        yield datamodule
        return
    with head_only(pl_module):
        yield FeatureDataModule(datamodule, pl_module.net)

"""Index batches over in-memory tensors: no per-sample Python work, no PIL, no workers.

Each training batch also carries its own augmentation seed, a pure function of
(run seed, epoch, batch index), so a run resumed at an epoch boundary draws exactly the
same shuffles and augmentations as one that never stopped. The training loader also
remembers how many batches of the epoch it has served, so a run stopped mid-epoch
(SIGTERM, a SLURM time limit) continues with the next batch (Lightning saves and
restores that count with the checkpoint, as for any stateful loader).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cnnlab import seeding


class Batch(NamedTuple):
    """Raw uint8 images, labels, and the seed for this batch's augmentation."""

    images: torch.Tensor
    labels: torch.Tensor
    seed: int


def move_batch(batch: Batch, device: torch.device) -> Batch:
    return Batch(
        batch.images.to(device, non_blocking=True),
        batch.labels.to(device, non_blocking=True),
        batch.seed,
    )


class TensorBatches(Dataset):
    """``dataset[(seed, indices)]`` → ``Batch(images[indices], labels[indices], seed)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, torch.Tensor]):
        seed, idx = key
        if idx.device != self.images.device:
            idx = idx.to(self.images.device)
        # index_select, not images[idx]: the same rows, ~3x faster on a CPU (advanced
        # indexing's general path; ~60 µs of a step, experiments/benchmark/README.md §6)
        return Batch(self.images.index_select(0, idx), self.labels.index_select(0, idx), seed)


class EpochBatchSampler(Sampler):
    """Yields ``(batch_seed, index tensor)``; reshuffled each epoch from (seed, epoch).

    ``epoch_of`` reads the epoch from the trainer at iteration time. Lightning's own
    ``set_epoch`` call counts *processed* epochs, which after a resume from an epoch-end
    checkpoint lags by one, and would replay the previous epoch's order.

    Evaluation splits are sharded across DDP ranks without dropping a sample (rank r takes
    every world-size-th image), so metrics gathered over ranks cover the whole split;
    training shards are equal-sized, as gradient synchronisation needs.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        epoch_of: Callable[[], int] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch_of = epoch_of
        self.device = torch.device(device)
        self.epoch = 0
        self.served = (-1, 0)  # (epoch, batches of it handed out)
        self._skip = (-1, 0)  # (epoch, batches to pass over) after a mid-epoch resume

    def set_epoch(self, epoch: int) -> None:  # used when no trainer tells the epoch
        self.epoch = epoch

    def _indices(self, order: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return order
        if self.shuffle:  # training: equal shards
            m = self.n // self.world_size
            return order[self.rank * m : (self.rank + 1) * m]
        return order[self.rank :: self.world_size]

    def _per_rank(self) -> int:
        if self.world_size == 1:
            return self.n
        if self.shuffle:
            return self.n // self.world_size
        return len(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        m = self._per_rank()
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        epoch = self.epoch_of() if self.epoch_of is not None else self.epoch
        base = seeding.shuffle_seed(self.seed, epoch)
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(base))
        else:
            order = torch.arange(self.n)
        # drawn on the CPU (the same order on every device), then sent to the data's
        # device once per epoch: batches index there with no host-to-device copy
        order = self._indices(order).to(self.device)
        skip = self._skip[1] if self._skip[0] == epoch else 0
        self._skip = (-1, 0)
        for b, idx in enumerate(order.split(self.batch_size)):
            if self.drop_last and len(idx) < self.batch_size:
                return
            if b < skip:
                continue
            self.served = (epoch, b + 1)
            yield seeding.batch_seed(base, b), idx

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.served[0], "batches": self.served[1]}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = int(state.get("epoch", -1)), int(state.get("batches", 0))
        if 0 < batches < len(self):  # a finished epoch needs no skipping
            self._skip = (epoch, batches)


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning saves and restores mid-epoch (its sampler's position)."""

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def batch_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    seed: int,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    epoch_of: Callable[[], int] | None = None,
) -> DataLoader:
    """A DataLoader (so Lightning treats it as one) whose every item is a whole batch.

    The shuffled (training) loader is resumable mid-epoch; evaluation loaders always
    start at their first batch.
    """
    sampler = EpochBatchSampler(
        len(labels),
        batch_size,
        shuffle,
        seed,
        drop_last,
        rank,
        world_size,
        epoch_of,
        device=images.device,
    )
    cls = ResumableLoader if shuffle else DataLoader
    # Its own generator: otherwise creating each iterator draws from torch's global RNG
    # (DataLoader's base seed), and where Lightning creates iterators would shift dropout.
    return cls(
        TensorBatches(images, labels),
        sampler=sampler,
        batch_size=None,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )

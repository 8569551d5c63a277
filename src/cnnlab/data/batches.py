"""Index batches over in-memory tensors: no per-sample Python work, no PIL, no workers.

Each training batch also carries its own augmentation seed, a pure function of
(run seed, epoch, batch index), so a run resumed at an epoch boundary draws exactly the
same shuffles and augmentations as one that never stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class Batch(NamedTuple):
    """Raw uint8 images, labels, and the seed for this batch's augmentation."""

    images: torch.Tensor
    labels: torch.Tensor
    seed: int


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
        return Batch(self.images[idx], self.labels[idx], seed)


class EpochBatchSampler(Sampler):
    """Yields ``(batch_seed, index tensor)``; reshuffled each epoch from (seed, epoch).

    ``epoch_of`` reads the epoch from the trainer at iteration time. Lightning's own
    ``set_epoch`` call counts *processed* epochs, which after a resume from an epoch-end
    checkpoint lags by one, and would replay the previous epoch's order.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 epoch_of: Callable[[], int] | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch_of = epoch_of
        self.device = torch.device(device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # used when no trainer tells the epoch
        self.epoch = epoch

    def _per_rank(self) -> int:
        return self.n // self.world_size if self.world_size > 1 else self.n

    def __len__(self) -> int:
        m = self._per_rank()
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        epoch = self.epoch_of() if self.epoch_of is not None else self.epoch
        epoch_seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(epoch_seed))
        else:
            order = torch.arange(self.n)
        if self.world_size > 1:
            m = self._per_rank()
            order = order[self.rank * m:(self.rank + 1) * m]
        # drawn on the CPU (the same order on every device), then sent to the data's
        # device once per epoch: batches index there with no host-to-device copy
        order = order.to(self.device)
        for b, idx in enumerate(order.split(self.batch_size)):
            if self.drop_last and len(idx) < self.batch_size:
                return
            yield (epoch_seed * 100_003 + b) % (2**63 - 1), idx


def batch_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool,
                 seed: int, drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 epoch_of: Callable[[], int] | None = None) -> DataLoader:
    """A DataLoader (so Lightning treats it as one) whose every item is a whole batch."""
    sampler = EpochBatchSampler(len(labels), batch_size, shuffle, seed, drop_last, rank,
                                world_size, epoch_of, device=images.device)
    # Its own generator: otherwise creating each iterator draws from torch's global RNG
    # (DataLoader's base seed), and where Lightning creates iterators would shift dropout.
    return DataLoader(TensorBatches(images, labels), sampler=sampler, batch_size=None,
                      num_workers=0, generator=torch.Generator().manual_seed(seed))

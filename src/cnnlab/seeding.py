"""Every seed a run uses, derived from the run seed in one place.

All of a training epoch's randomness is a function of (seed, epoch): the shuffle order,
each batch's augmentation, and the global RNG that dropout draws from. A run resumed at
an epoch boundary therefore draws exactly what an uninterrupted run draws.
"""

from __future__ import annotations

import numpy as np

_BATCH_STRIDE = 100_003  # spreads batch seeds of neighbouring epochs apart
_DROPOUT_STREAM = 7  # a third word keeps the dropout stream apart from the shuffle stream


def derive(*words: int) -> int:
    """A 32-bit seed from integers, mixed by numpy's SeedSequence (no two inputs collide in practice)."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


def shuffle_seed(seed: int, epoch: int) -> int:
    """The epoch's shuffle order (and the base of its batch seeds)."""
    return derive(seed, epoch)


def batch_seed(epoch_shuffle_seed: int, batch: int) -> int:
    """The augmentation seed of one batch of an epoch."""
    return (epoch_shuffle_seed * _BATCH_STRIDE + batch) % (2**63 - 1)


def dropout_seed(seed: int, epoch: int) -> int:
    """What torch's global RNG (dropout) is seeded with at the start of an epoch."""
    return derive(seed, epoch, _DROPOUT_STREAM)

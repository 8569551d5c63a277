"""Third-party classes that accept arguments they never check, with the checks added.

Each is the library's own class, unchanged but for ``@checked`` argument types and ranges:
torch's ReduceLROnPlateau takes a negative patience or factor, CosineAnnealingLR a negative
period, Lightning's EarlyStopping a negative patience, and each does something odd (or
fails mid-training) instead of saying so when it is built.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from lightning.pytorch.callbacks import EarlyStopping as _EarlyStopping

from cnnlab.errors import Count, Fraction, NonNegative, NonNegativeFloat, Positive, checked


def _arguments(given: dict[str, Any]) -> dict[str, Any]:
    """A checked ``__init__``'s ``locals()`` as the library class's keyword arguments, each
    passed on unchanged (``**kwargs`` spread)."""
    out = {k: v for k, v in given.items() if k not in ("self", "__class__", "kwargs")}
    return {**out, **given.get("kwargs", {})}


class ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    @checked
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        mode: Literal["min", "max"] = "min",
        factor: Fraction = 0.1,
        patience: NonNegative = 10,
        threshold: NonNegativeFloat = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: NonNegative = 0,
        min_lr: NonNegativeFloat = 0.0,
        eps: NonNegativeFloat = 1e-8,
    ) -> None:
        super().__init__(**_arguments(locals()))


class CosineAnnealingLR(torch.optim.lr_scheduler.CosineAnnealingLR):
    @checked
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        T_max: Count,  # noqa: N803
        eta_min: NonNegativeFloat = 0.0,
        last_epoch: int = -1,
    ) -> None:
        super().__init__(**_arguments(locals()))


class EarlyStopping(_EarlyStopping):
    @checked
    def __init__(
        self,
        monitor: str,
        min_delta: NonNegativeFloat = 0.0,
        patience: NonNegative = 3,
        mode: Literal["min", "max"] = "min",
        stopping_threshold: Optional[float] = None,
        divergence_threshold: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_arguments(locals()))


class OneCycleLR(torch.optim.lr_scheduler.OneCycleLR):
    """torch's OneCycleLR takes a negative or zero ``max_lr`` and trains on it."""

    @checked
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_lr: Positive,
        total_steps: Optional[Count] = None,
        epochs: Optional[Count] = None,
        steps_per_epoch: Optional[Count] = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: Positive = 25.0,
        final_div_factor: Positive = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        super().__init__(**_arguments(locals()))

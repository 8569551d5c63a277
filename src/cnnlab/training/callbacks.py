"""Callbacks Lightning does not ship: per-epoch history, per-epoch seeding, finite-loss guard."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 7]).generate_state(1)[0])


class EpochSeed(Callback):
    """Reseed torch's global RNG (dropout) from (seed, epoch) at every epoch start.

    Shuffling and augmentation already draw from (seed, epoch, batch); with this, all of a
    training epoch's randomness is a function of the seed and the epoch number, so a run
    resumed from an epoch-end checkpoint continues exactly as if it had never stopped.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.manual_seed(epoch_seed(self.seed, trainer.current_epoch))


class NonFiniteLossError(RuntimeError):
    """Training loss became NaN or infinite."""


class FiniteLossGuard(Callback):
    """Stop at the first non-finite training loss, naming where it happened."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not bool(torch.isfinite(loss.detach())):
            raise NonFiniteLossError(
                f"training loss became {float(loss)} at epoch {trainer.current_epoch}, "
                f"global step {trainer.global_step} (batch {batch_idx}); lower the learning "
                "rate (model.optimizer.lr=...) or clip gradients (trainer.gradient_clip_val=1.0)")


class History(Callback):
    """One row per epoch (train/val loss and accuracy, lr, wall time), kept in checkpoints.

    Rows are written at ``on_validation_end``, before ModelCheckpoint saves, so the history
    inside ``last.ckpt`` always covers every epoch the checkpoint has trained.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.elapsed_before = 0.0  # wall seconds of earlier sessions of a resumed run
        self._t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._t0

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        if hasattr(pl_module, "train_metrics"):
            row.update({k: _num(v) for k, v in pl_module.train_metrics().items()})
        for key in ("val/loss", "val/acc", "val/acc_best"):
            if key in trainer.callback_metrics:
                row[key] = _num(trainer.callback_metrics[key])
        if trainer.optimizers:
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        row["time_s"] = round(self.elapsed, 3)
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "elapsed": self.elapsed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state.get("rows", []))
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self._t0 = time.perf_counter()


def _num(value: Any) -> float | None:
    value = float(value.item() if isinstance(value, torch.Tensor) else value)
    return value if math.isfinite(value) else None


class ConfigInCheckpoint(Callback):
    """Store the resolved run config in every checkpoint, so one file rebuilds the model."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        import cnnlab
        checkpoint["cnnlab"] = {"config": self.config, "version": cnnlab.__version__}

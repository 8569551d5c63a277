"""Callbacks a run's correctness depends on; the runner adds them in code, not from YAML.

- ``EpochSeed``: all of an epoch's randomness is a function of (seed, epoch);
- ``History``: one row per epoch and the best epoch, kept in checkpoints;
- ``FiniteLossGuard``: a NaN loss stops the run, naming where;
- ``ConfigInCheckpoint``: one checkpoint file rebuilds its model;
- ``CheckpointOnStop``: a run stopped by a signal saves where it stopped;
- ``EpochLog``: a line per epoch that a log file keeps.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

import cnnlab
from cnnlab import seeding
from cnnlab.compat.lightning import hold_stop, release_stop


class EpochSeed(Callback):
    """Reseed torch's global RNG (dropout) from (seed, epoch) at every epoch start.

    Shuffling and augmentation already draw from (seed, epoch, batch); with this, all of a
    training epoch's randomness is a function of the seed and the epoch number, so a run
    resumed from an epoch-end checkpoint continues exactly as if it had never stopped. A
    checkpoint written mid-epoch also carries the RNG state of that moment, and a run
    resumed from it picks up that state instead.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._restore: dict[str, Any] | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.manual_seed(seeding.dropout_seed(self.seed, trainer.current_epoch))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self._restore = self._restore, None
        if state and state["epoch"] == trainer.current_epoch and state["mid_epoch"]:
            torch.set_rng_state(state["cpu"])
            if torch.cuda.is_available() and state.get("cuda"):
                torch.cuda.set_rng_state_all(state["cuda"])

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        checkpoint["epoch_rng"] = {
            "epoch": trainer.current_epoch,
            "mid_epoch": 0 < progress.completed < trainer.num_training_batches,
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._restore = checkpoint.get("epoch_rng")


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
                "rate (model.optimizer.lr=...) or clip gradients (trainer.gradient_clip_val=1.0)"
            )


def best_epoch(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The first epoch reaching the best validation accuracy, and the loss record."""
    scored = [r for r in rows if r.get("val/acc") is not None]
    if not scored:
        return {}
    top = max(scored, key=lambda r: r["val/acc"])
    losses = [r["val/loss"] for r in rows if r.get("val/loss") is not None]
    return {
        "epoch": top["epoch"],
        "val/acc_best": top["val/acc"],
        "val/loss_at_best": top.get("val/loss"),
        "val/loss_min": min(losses) if losses else None,
        "train/acc_at_best": top.get("train/acc"),
    }


class History(Callback):
    """One row per epoch (train/val loss and accuracy, lr, wall time), kept in checkpoints.

    Rows are written at ``on_validation_end`` (or at the end of an epoch that validated
    nothing), before ModelCheckpoint saves, so the history inside ``last.ckpt`` always
    covers every epoch the checkpoint has trained. The best epoch is computed here and
    only here; ``val/acc_best`` goes to the loggers each epoch.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.elapsed_before = 0.0  # wall seconds of earlier sessions of a resumed run
        self._t0 = time.perf_counter()
        self._loaded: dict[str, Any] | None = None

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._t0

    @property
    def best(self) -> dict[str, Any]:
        return best_epoch(self.rows)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        # a checkpoint's rows count only when training resumes from it; testing the best
        # checkpoint also loads callback states, and must not roll the history back
        if self._loaded is not None:
            self.rows = list(self._loaded.get("rows", []))
            self.elapsed_before = float(self._loaded.get("elapsed", 0.0))
            self._loaded = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._add_row(trainer, pl_module, validated=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # an epoch that ran no validation loop (data.validation=false) gets its row here,
        # still before ModelCheckpoint saves last.ckpt (it runs after other callbacks)
        if not self.rows or self.rows[-1]["epoch"] != trainer.current_epoch:
            self._add_row(trainer, pl_module, validated=False)

    def _add_row(self, trainer, pl_module, validated: bool) -> None:
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row.update({k: _num(v) for k, v in pl_module.epoch_train_metrics().items()})
        for key in ("val/loss", "val/acc") if validated else ():
            if key in trainer.callback_metrics:
                row[key] = _num(trainer.callback_metrics[key])
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        best = self.best.get("val/acc_best")
        if best is not None:
            row["val/acc_best"] = best
            for logger in trainer.loggers:
                logger.log_metrics({"val/acc_best": best}, step=trainer.global_step)
        if trainer.optimizers:
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        row["time_s"] = round(self.elapsed, 3)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "elapsed": self.elapsed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._loaded = state


def _num(value: Any) -> float | None:
    value = float(value.item() if isinstance(value, torch.Tensor) else value)
    return value if math.isfinite(value) else None


class ConfigInCheckpoint(Callback):
    """Store the resolved run config in every checkpoint, so one file rebuilds the model."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["cnnlab"] = {"config": self.config, "version": cnnlab.__version__}


class CheckpointOnStop(Callback):
    """A run stopped by SIGTERM or Ctrl-C (Lightning's signal handling) saves ``last.ckpt``
    where it stopped: after the last finished training batch, with everything a resumed run
    needs to continue exactly.

    Stopped during a fit's validation, it lets the validation pass finish (it trains
    nothing; on MNIST it takes seconds) and stops right after it: Lightning would stop there
    at once and its resume skips the rest of that validation, so the checkpoint would either
    lose the epoch's training or its validation. A stop that lands between the last
    validation hook of a batch and Lightning's check of the flag (microseconds) still
    stops at once, keeping the checkpoint of the step before."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.saved: Path | None = None
        self._held = False  # a stop that came during validation, held until it ends

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and trainer.received_sigterm:
            hold_stop(trainer)  # Lightning reads its flag after this hook (compat.lightning)
            self._held = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._held:  # the fit loop stops after this epoch-end (or mid-epoch) validation
            release_stop(trainer)
            self._held = False

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit":
            return
        if not trainer.training or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.path)
        self.saved = self.path


PROGRESS = logging.getLogger("cnnlab.progress")


class EpochLog(Callback):
    """One line per epoch (train/val loss and accuracy, lr, seconds) to the log: train.log
    always, and stdout when it is not a terminal (nohup, SLURM's output file, CI), where a
    progress bar shows only its last frame. In a terminal the bar keeps a line per epoch
    instead (``callbacks.progress_bar.leave``); a log line there would tear its redraw, so
    it is kept off terminal handlers while a bar is shown."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._hidden: list[logging.Handler] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.progress_bar_callback is None:
            return
        for handler in logging.getLogger().handlers:
            stream = getattr(handler, "stream", None)
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)
                and stream is not None
                and stream.isatty()
            ):
                handler.addFilter(_not_progress)
                self._hidden.append(handler)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for handler in self._hidden:
            handler.removeFilter(_not_progress)
        self._hidden = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.history.rows:
            return
        PROGRESS.info(epoch_line(self.history.rows, trainer.max_epochs))


def epoch_line(rows: list[dict[str, Any]], max_epochs: int | None) -> str:
    """``epoch 3/10 · train loss 0.1234 acc 0.9612 · val loss 0.0912 acc 0.9712 · lr 1.0e-03
    · 12.3 s`` for the last row (what was not measured is left out)."""
    row = rows[-1]
    seconds = row.get("time_s", 0.0) - (rows[-2].get("time_s", 0.0) if len(rows) > 1 else 0.0)
    parts = [f"epoch {row['epoch'] + 1}/{max_epochs if max_epochs and max_epochs > 0 else '?'}"]
    for stage in ("train", "val"):
        loss, acc = row.get(f"{stage}/loss"), row.get(f"{stage}/acc")
        if loss is not None or acc is not None:
            parts.append(
                " ".join(
                    [stage]
                    + ([f"loss {loss:.4f}"] if loss is not None else [])
                    + ([f"acc {acc:.4f}"] if acc is not None else [])
                )
            )
    if row.get("lr") is not None:
        parts.append(f"lr {row['lr']:.2e}")
    parts.append(f"{seconds:.1f} s")
    return " · ".join(parts)


def _not_progress(record: logging.LogRecord) -> bool:
    return record.name != PROGRESS.name

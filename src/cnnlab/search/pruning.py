"""Pruning: a job reports its validation metric to its trial each epoch and stops early
when the study's pruner says so.

The sweeper tells each job which trial it runs with the override
``++search={storage: ..., study_name: ..., trial_number: N, monitor: val/acc, owner: ...}``
and keeps the pruner's config in the study (system attr ``cnnlab:pruner``), so a job on any
machine that can open the storage builds the same pruner.

With in-memory storage only a job in the sweeper's own process can reach the study (the
basic local launcher runs jobs in-process): :func:`callback_for` finds it there through
:func:`cnnlab.search.storage.in_process`. Under joblib or SLURM a job of an in-memory
search is not pruned, and says so once; give a journal or SQL storage to prune there.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from lightning.pytorch.callbacks import Callback

from cnnlab.compat import optuna as optuna_ids
from cnnlab.search.storage import PRUNER_ATTR, in_process, load_study, make_pruner

# Optuna is imported where used: Hydra imports the sweeper plugin on every run
# (search/__init__.py)

log = logging.getLogger(__name__)


class TrialPruning(Callback):
    """Report ``monitor`` to an Optuna trial after each validation; stop when it is pruned.

    Does not raise: it sets ``trainer.should_stop`` and its own ``pruned``, and the run
    records how it ended. A trial that can no longer be written (another process declared
    it stale) stops being reported to, with one warning; the run goes on.
    """

    def __init__(self, trial: Any, monitor: str = "val/acc") -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned = False
        self.pruned_at: int | None = None
        self._off = False

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self._off:
            return
        decision = False
        if trainer.is_global_zero:
            decision = self._report(trainer)
        if trainer.world_size > 1:  # every rank stops together
            decision = bool(trainer.strategy.broadcast(decision, src=0))
        if decision:
            self.pruned, self.pruned_at = True, trainer.current_epoch
            trainer.should_stop = True

    def _report(self, trainer: Any) -> bool:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            self._stop_reporting(
                f"no {self.monitor!r} among the logged metrics "
                f"({', '.join(sorted(trainer.callback_metrics)) or 'none'})"
            )
            return False
        value = float(value)
        if not math.isfinite(value):
            return False
        try:
            self.trial.report(value, step=trainer.current_epoch)
            return bool(self.trial.should_prune())
        except Exception as err:  # finished elsewhere, storage gone: never fail the run
            self._stop_reporting(f"{type(err).__name__}: {err}")
            return False

    def _stop_reporting(self, why: str) -> None:
        self._off = True
        log.warning(
            "pruning: no longer reporting to trial %s: %s", getattr(self.trial, "number", "?"), why
        )


def callback_for(cfg: Any) -> TrialPruning | None:
    """The pruning callback of a search job, or None (not a search job, or no study to reach)."""
    search = _get(cfg, "search")
    if not search:
        return None
    monitor = _get(search, "monitor") or "val/acc"
    number = _get(search, "trial_number")
    try:
        study = _study(search)
        if study is None:
            return None
        import optuna

        trial_id = optuna_ids.storage(study).get_trial_id_from_study_id_trial_number(
            optuna_ids.study_id(study), int(number)
        )
        return TrialPruning(optuna.trial.Trial(study, trial_id), monitor)
    except Exception as err:  # the run goes on, unpruned
        log.warning(
            "pruning: cannot reach trial %s of study %r: %s",
            number,
            _get(search, "study_name"),
            err,
        )
        return None


def _study(search: Any) -> Any:
    storage, name = _get(search, "storage"), _get(search, "study_name")
    if not storage:
        study = in_process(str(_get(search, "owner")))
        if study is None:
            log.warning(
                "pruning: off for this job: its in-memory study lives in another "
                "process (give hydra.sweeper.storage a journal file or an SQL URL)"
            )
        return study
    study = load_study(storage, name)
    attrs = optuna_ids.storage(study).get_study_system_attrs(optuna_ids.study_id(study))
    study.pruner = make_pruner(attrs.get(PRUNER_ATTR))
    return study


def _get(node: Any, key: str) -> Any:
    if node is None:
        return None
    if isinstance(node, dict):
        return node.get(key)
    return getattr(node, "get", lambda k, d=None: d)(key)

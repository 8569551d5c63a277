"""The search loop: ask a batch of trials, launch them as Hydra jobs, tell their outcomes.

One loop serves one process; any number of processes (on any machines that reach the
storage) can run it on the same study at once. They share the study's ``n_trials``:

- ``n_trials`` counts the trials that finished with a result, COMPLETE or PRUNED, in the
  whole study (earlier sessions and other processes included). A FAILED trial does not
  count: the sampler proposes another, so a crash or a broken node costs no budget. So
  that a config on which every job fails cannot loop for ever, a process stops after
  ``max_failures`` failed jobs of its own (default: ``n_trials``).
- A process asks no more trials than the budget has room for, counting the trials running
  elsewhere. Two processes asking at the same moment are settled by trial number: a
  trial with ``n_trials`` or more trials ahead of it (finished with a result, running or
  queued) is surplus, told FAIL at once without running (user attr ``surplus``) and
  ignored by the sampler and the report.
- A process ends when ``n_trials`` trials have a result; until then, if the budget is
  held by trials running elsewhere, it waits (``poll_s``) in case one of them fails.
- RUNNING trials whose sweeper is gone are failed and their parameters queued once
  (``enqueue_trial``, user attr ``retry_of``): see :mod:`cnnlab.search.liveness`. A
  relaunched command therefore keeps every finished trial as it was and re-runs only what
  was cut off. So are the parameters of a job that ended ``interrupted`` or ``cancelled``
  (stopped from outside, e.g. SLURM's scancel); those failures do not count toward
  ``max_failures``.

Jobs go through whatever launcher Hydra is configured with, ``n_jobs`` per batch. Each job
is told its trial by the override ``++search={...}`` (read by
:func:`cnnlab.search.pruning.callback_for`) and runs in ``<sweep dir>/trial_NNNN``, so
processes sharing a sweep dir never share a run dir.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cnnlab.compat import optuna as optuna_ids
from cnnlab.config.build import build
from cnnlab.errors import ConfigError
from cnnlab.launch.summary import SweepIncomplete, finish, one_line, outcome_of
from cnnlab.results import STUDY_FILE, SWEEP_CONFIG, write_json
from cnnlab.run.signals import received
from cnnlab.search import report
from cnnlab.search.liveness import OWNER_ATTR, Heartbeat, Owner, is_stale
from cnnlab.search.space import Space, format_value, parse, quote
from cnnlab.search.storage import (
    PRUNER_ATTR,
    Storage,
    make_pruner,
    open_storage,
    open_study,
    parse_storage,
    register_in_process,
    unregister_in_process,
)
from cnnlab.seeding import derive

# Optuna is imported where used: Hydra imports the sweeper plugin on every run
# (search/__init__.py)

log = logging.getLogger(__name__)

KEY = "hydra.sweeper"
# job statuses of runs stopped from outside: their parameters are queued to run again, once
CUT_OFF = ("interrupted", "cancelled")


@dataclass
class Settings:
    """``hydra.sweeper``, checked: each bad value is a ConfigError naming its key."""

    direction: str = "maximize"
    n_trials: int = 20
    n_jobs: int | None = None
    storage: str | None = None
    study_name: str = "cnnlab"
    sampler: dict[str, Any] | None = None
    pruner: dict[str, Any] | None = None
    monitor: str = "val/acc"
    params: dict[str, Any] = field(default_factory=dict)
    max_failures: int | None = None
    heartbeat_s: float = 30.0
    stale_after_s: float = 180.0
    poll_s: float = 5.0

    @classmethod
    def from_config(cls, raw: Any) -> Settings:
        values = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in dict(raw).items()
        }
        known = set(cls.__dataclass_fields__)
        for name in values:
            if name not in known and not name.startswith("_"):
                raise ConfigError(
                    f"{KEY}.{name}",
                    values[name],
                    f"not a setting; known: {', '.join(sorted(known))}",
                )
        settings = cls(**{k: v for k, v in values.items() if k in known})
        settings.params = dict(settings.params or {})
        settings.check()
        return settings

    def check(self) -> None:
        def need(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"{KEY}.{name}", getattr(self, name), allowed)

        def whole(v: Any, low: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= low

        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0

        need("direction", self.direction in ("maximize", "minimize"), "maximize or minimize")
        need("n_trials", whole(self.n_trials, 1), "a whole number >= 1")
        need(
            "n_jobs",
            self.n_jobs is None or whole(self.n_jobs, 1),
            "a whole number >= 1, or null for the launcher's n_jobs",
        )
        need(
            "study_name",
            isinstance(self.study_name, str) and bool(self.study_name.strip()),
            "a non-empty name",
        )
        need(
            "max_failures",
            self.max_failures is None or whole(self.max_failures, 0),
            "a whole number >= 0, or null for n_trials",
        )
        for name in ("sampler", "pruner"):
            spec = getattr(self, name)
            need(
                name,
                spec is None or (isinstance(spec, dict) and "_target_" in spec),
                "a config with a _target_ (e.g. optuna.samplers.TPESampler), or null",
            )
        from cnnlab.training.classifier import LOGGED  # what a job reports after validation

        need("monitor", self.monitor in LOGGED, f"one of the logged metrics {list(LOGGED)}")
        for name in ("heartbeat_s", "poll_s"):
            need(name, number(getattr(self, name)), "a number of seconds > 0")
        need(
            "stale_after_s",
            number(self.stale_after_s) and self.stale_after_s > self.heartbeat_s,
            "a number of seconds greater than heartbeat_s",
        )


class PerTrialSeed:
    """The configured sampler, built afresh for each trial with seed derive(seed, number).

    One seeded sampler per process would draw the same sequence in every process that
    shares a study, and again after a relaunch (its startup trials would repeat earlier
    ones); a seed per trial number keeps a search reproducible and its trials distinct.
    """

    def __init__(self, make: Callable[[int], Any], seed: int) -> None:
        self._make, self._seed = make, seed
        self._samplers: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _for(self, trial: Any) -> Any:
        with self._lock:
            sampler = self._samplers.get(trial.number)
            if sampler is None:
                sampler = self._make(derive(self._seed, trial.number))
                self._samplers[trial.number] = sampler
            return sampler

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self._for(trial).sample_independent(study, trial, name, dist)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        sampler = self._for(trial)
        with self._lock:
            self._samplers.pop(trial.number, None)
        sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        pass  # every trial is seeded from its number already


def make_sampler(spec: dict[str, Any] | None) -> Any:
    """The sampler a config names (default TPE); a seeded one is seeded per trial."""
    import optuna

    spec = dict(spec or {"_target_": "optuna.samplers.TPESampler"})
    seed = spec.pop("seed", None)
    for name, value in spec.items():  # Optuna's samplers take a negative count silently
        if name.startswith("n_") and isinstance(value, int) and value < 0:
            raise ConfigError(f"{KEY}.sampler.{name}", value, "an integer >= 0")
    try:
        sampler = instantiate(spec, **({} if seed is None else {"seed": int(seed)}))
        if not isinstance(sampler, optuna.samplers.BaseSampler):
            raise TypeError(f"{type(sampler).__name__} is not an Optuna sampler")
    except Exception as err:
        raise ConfigError(f"{KEY}.sampler", spec.get("_target_"), _one_line(err)) from None
    if seed is None:
        return sampler
    wrapper = type("PerTrialSeedSampler", (PerTrialSeed, optuna.samplers.BaseSampler), {})
    return wrapper(lambda s: instantiate(spec, seed=s), int(seed))


class Search:
    """One process's share of a search. ``host`` is the Hydra sweeper plugin (its
    launcher, config and composition check)."""

    def __init__(self, settings: Settings, host: Any) -> None:
        self.settings, self.host = settings, host
        self.config: DictConfig = host.config
        self.owner = Owner.me()
        self.returns: list[Any] = []
        self.failures = 0
        self._job_idx = 0

    # --- before any trial: everything the user can get wrong -----------------------------
    def prepare(self, arguments: Sequence[str]) -> None:
        import optuna

        s = self.settings
        self.space = parse(s.params, arguments)
        if not self.space.distributions:
            raise ConfigError(
                f"{KEY}.params",
                s.params,
                "no parameter to search: give at least one interval(), range() or choice()",
            )
        self._check_composition()
        self._check_bounds()
        cwd = OmegaConf.select(self.config, "hydra.runtime.cwd")
        self.storage: Storage = parse_storage(s.storage, cwd)
        sampler = make_sampler(s.sampler)
        try:
            pruner = make_pruner(s.pruner)
        except Exception as err:
            raise ConfigError(f"{KEY}.pruner", s.pruner.get("_target_"), _one_line(err)) from None
        self.storage_obj = open_storage(self.storage)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # cnnlab logs each trial itself
        self.study = open_study(
            self.storage_obj, self.storage, s.study_name, s.direction, sampler, pruner
        )
        self.sweep_dir = Path(str(self.config.hydra.sweep.dir))
        self._claim_sweep_dir()
        if self.storage.persistent:
            self.storage_obj.set_study_system_attr(
                optuna_ids.study_id(self.study), PRUNER_ATTR, s.pruner
            )
        n_launcher = OmegaConf.select(self.config, "hydra.launcher.n_jobs")
        self.n_jobs = s.n_jobs or (
            n_launcher if isinstance(n_launcher, int) and n_launcher > 0 else 1
        )
        self.max_failures = s.n_trials if s.max_failures is None else s.max_failures

    def _check_composition(self) -> None:
        """Compose a job with every choice once, so a bad key fails here, not in trial 7."""
        for probe in self.space.probes():
            try:
                self.host.validate_batch_is_legal([probe])
            except Exception as err:
                message = _one_line(err)
                groups = [o for o in probe[len(self.space.fixed) :] if "/" in o.split("=")[0]]
                if groups:  # a group choice changes which keys exist: say which one
                    message += f" (composing {' '.join(groups)})"
                named = [
                    k for k in self.space.sources if f"'{k}'" in message or f"'{k}/" in message
                ]
                where, text = (
                    self.space.sources[named[0]]
                    if named
                    else (f"{KEY}.params", " ".join(probe[len(self.space.fixed) :]))
                )
                raise ConfigError(where, text, message) from None

    def _check_bounds(self) -> None:
        """Build the object that takes each numeric range, at both ends: a range it refuses
        (``model.net.dropout=interval(0.5,1.5)``) is one line now, not failed trials later.
        Only objects built whole from their node (not partials: an optimizer, a scheduler),
        and not those that would fetch pretrained weights."""
        loader = getattr(getattr(self.host, "hydra_context", None), "config_loader", None)
        if loader is None:
            return
        for key, probe in self.space.bounds():
            cfg = loader.load_sweep_config(
                master_config=self.host.config, sweep_overrides=list(probe)
            )
            parts = key.split(".")
            owner = next(
                (
                    ".".join(parts[:i])
                    for i in range(len(parts) - 1, 0, -1)
                    if OmegaConf.select(cfg, ".".join(parts[:i]) + "._target_")
                ),
                None,
            )
            node = OmegaConf.select(cfg, owner) if owner else None
            if node is None or node.get("_partial_") or node.get("weights"):
                continue
            try:
                build(cfg, owner)
            except ConfigError as err:
                where, text = self.space.sources[key]
                end = err.key if err.value is ConfigError.NODE else f"{err.key}={err.value!r}"
                what = "value" if hasattr(self.space.distributions[key], "choices") else "end"
                raise ConfigError(
                    where, text, f"its {what} {end} is refused: {err.allowed}"
                ) from None
            except Exception:  # noqa: BLE001 - not a range problem: the trial will say
                continue

    def _claim_sweep_dir(self) -> None:
        """A sweep dir holds one study's trials: trial_0003 of another would be taken as ours."""
        me = {
            "storage": self.storage.setting(),
            "study_name": self.settings.study_name,
            "study_id": optuna_ids.study_id(self.study),
            "process": None if self.storage.persistent else self.owner.token,
        }
        path = self.sweep_dir / STUDY_FILE
        try:
            theirs = json.loads(path.read_text())
        except (OSError, ValueError):
            theirs = None
        if theirs is None and (self.sweep_dir / SWEEP_CONFIG).exists():
            raise ConfigError(
                "hydra.sweep.dir",
                str(self.sweep_dir),
                f"it holds the runs of a sweep ({SWEEP_CONFIG}, no {STUDY_FILE}); give a new "
                "sweep dir",
            )
        if (
            theirs is not None
            and theirs.get("study_name") == me["study_name"]
            and theirs.get("storage") is None
            and me["storage"] is None
            and theirs.get("process") != me["process"]
        ):
            raise ConfigError(
                "hydra.sweep.dir",
                str(self.sweep_dir),
                "it holds a search kept in memory, which ended with its process and cannot "
                "be continued; give a new sweep dir (and a storage, e.g. "
                "hydra.sweeper.storage=logs/optuna.journal, for a search you can continue)",
            )
        if theirs is not None and {k: theirs.get(k) for k in me} != me:
            raise ConfigError(
                "hydra.sweep.dir",
                str(self.sweep_dir),
                f"it holds the trials of another search (study "
                f"{theirs.get('study_name')!r} in "
                f"{theirs.get('storage') or 'memory'}); give a new sweep dir, "
                "or that storage and study_name to continue it",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(
            path,
            {**me, "storage_shown": self.storage.shown(), "direction": self.settings.direction},
        )
        OmegaConf.save(self.config, self.sweep_dir / SWEEP_CONFIG)

    # --- the loop ------------------------------------------------------------------------
    def run(self) -> str | None:
        """Work on the study until it has n_trials results; None, or why it stopped short."""
        from optuna.trial import TrialState

        s, study = self.settings, self.study
        register_in_process(self.owner.token, study)
        heartbeat = Heartbeat(self.storage_obj, s.heartbeat_s) if self.storage.persistent else None
        self._announce()
        waiting_said = False
        try:
            if heartbeat:
                heartbeat.__enter__()
            while True:
                if received():  # SIGTERM: no new trials; the running ones were told
                    return f"search stopped by {received()}"
                self._reap_stale()
                counts = self._counts()
                done = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
                if done >= s.n_trials:
                    break
                if self.failures >= self.max_failures and self.failures:
                    short = (
                        f"search stopped after {self.failures} failed jobs (hydra.sweeper."
                        f"max_failures={self.max_failures}); {done} of {s.n_trials} trials "
                        "have a result"
                    )
                    log.error("%s", short)
                    return short
                room = s.n_trials - done - counts[TrialState.RUNNING]
                batch = self._ask(min(self.n_jobs, room)) if room > 0 else []
                if not batch:
                    if not waiting_said:
                        log.info(
                            "search: %d of %d trials have a result; waiting for the %d "
                            "running elsewhere",
                            done,
                            s.n_trials,
                            counts[TrialState.RUNNING],
                        )
                        waiting_said = True
                    time.sleep(s.poll_s)
                    continue
                waiting_said = False
                self._launch(batch, heartbeat)
        finally:
            if heartbeat:
                heartbeat.__exit__(None, None, None)
            unregister_in_process(self.owner.token)
        return None

    def _announce(self) -> None:
        from optuna.trial import TrialState

        counts = self._counts()
        done = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        where = self.storage.shown()
        if done or counts[TrialState.RUNNING] or counts[TrialState.FAIL]:
            log.info(
                "search: continuing study %r in %s: %d of %d trials have a result, "
                "%d running, %d failed",
                self.settings.study_name,
                where,
                done,
                self.settings.n_trials,
                counts[TrialState.RUNNING],
                counts[TrialState.FAIL],
            )
        else:
            log.info(
                "search: study %r in %s, %d trials, %d per batch",
                self.settings.study_name,
                where,
                self.settings.n_trials,
                self.n_jobs,
            )

    def _counts(self) -> dict[Any, int]:
        from optuna.trial import TrialState

        counts = {state: 0 for state in TrialState}
        for t in self.study.get_trials(deepcopy=False):
            counts[t.state] += 1
        return counts

    def _reap_stale(self) -> None:
        """Fail RUNNING trials whose sweeper is gone; queue their parameters once more."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        if not self.storage.persistent:
            return  # nothing outlives the process
        now = time.time()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not is_stale(t, self.owner, now, self.settings.stale_after_s):
                continue
            owner = t.system_attrs.get(OWNER_ATTR) or {}
            tid = optuna_ids.trial_id(t)
            try:
                self.storage_obj.set_trial_user_attr(
                    tid,
                    "reason",
                    f"stale: its sweeper (pid {owner.get('pid', '?')} on "
                    f"{owner.get('host', '?')}) is gone",
                )
                if not self.storage_obj.set_trial_state_values(tid, TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:
                continue  # finished meanwhile, or another process failed it first
            except Exception as err:  # storage busy: look again next round
                log.warning("search: could not fail stale trial %d: %s", t.number, err)
                continue
            again = self._queue_again(t)
            log.warning(
                "search: trial %d was left running by a sweeper that is gone: failed%s",
                t.number,
                ", its parameters queued again" if again else "",
            )

    def _ask(self, n: int) -> list[Any]:
        from optuna.trial import TrialState

        batch = []
        for _ in range(n):
            trial = self.study.ask(self.space.distributions)
            self.storage_obj.set_trial_system_attr(
                optuna_ids.trial_id(trial), OWNER_ATTR, self.owner.attr()
            )
            ahead = sum(
                1
                for t in self.study.get_trials(deepcopy=False)
                if t.number < trial.number
                and t.state
                in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
            )
            if ahead >= self.settings.n_trials:
                trial.set_user_attr("surplus", True)
                trial.set_user_attr("reason", "surplus: the budget was taken by other processes")
                self.study.tell(trial, state=TrialState.FAIL)
                log.info("search: trial %d not run: %d trials are ahead of it", trial.number, ahead)
                break
            batch.append(trial)
        return batch

    def _launch(self, batch: list[Any], heartbeat: Heartbeat | None) -> None:
        jobs = [self._job_overrides(t) for t in batch]
        for t in batch:
            log.info("search: trial %d: %s", t.number, " ".join(self.space.overrides(t.params)))
            if heartbeat:
                heartbeat.add(optuna_ids.trial_id(t))
        try:
            results = self.host.launcher.launch(jobs, initial_job_idx=self._job_idx)
        except Exception as err:  # a worker killed under joblib, a submission refused...
            log.error(
                "search: the launcher failed on trials %s: %s",
                ", ".join(str(t.number) for t in batch),
                _one_line(err),
            )
            for t in batch:
                self._fail(t, f"launcher: {type(err).__name__}: {_one_line(err)}")
                self.failures += 1
            return
        except BaseException:  # Ctrl-C: these trials run again next time
            for t in batch:
                self._fail(t, "interrupted: the sweeper stopped")
                self._queue_again(t)
            raise
        finally:
            for t in batch:
                if heartbeat:
                    heartbeat.discard(optuna_ids.trial_id(t))
        for i, (trial, result) in enumerate(zip(batch, results)):
            self._tell(trial, result, self._job_idx + i)
        self._job_idx += len(batch)
        self.returns.extend(results)

    def _job_overrides(self, trial: Any) -> list[str]:
        search = {
            "storage": self.storage.setting(),
            "study_name": self.settings.study_name,
            "trial_number": trial.number,
            "monitor": self.settings.monitor,
            "owner": self.owner.token,
        }
        value = ",".join(
            f"{k}:{'null' if v is None else quote(v) if isinstance(v, str) else v}"
            for k, v in search.items()
        )
        return [
            *self.space.fixed,
            *self.space.overrides(trial.params),
            f"++search={{{value}}}",
            f"hydra.sweep.subdir=trial_{trial.number:04d}",
        ]

    def _queue_again(self, trial: Any) -> bool:
        """Enqueue a cut-off trial's parameters for another run, once (not a retry's)."""
        if "retry_of" in trial.user_attrs or not trial.params:
            return False
        self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        return True

    def _fail(self, trial: Any, reason: str) -> None:
        from optuna.trial import TrialState

        try:
            trial.set_user_attr("reason", reason)
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except Exception as err:  # left RUNNING: failed as stale by the next session
            log.warning("search: trial %d left running: %s", trial.number, err)

    def _tell(self, trial: Any, result: Any, num: int) -> None:
        from optuna.trial import TrialState

        outcome = outcome_of(num, result)
        attrs: dict[str, Any] = {
            "status": outcome.status,
            "reason": outcome.reason,
            "overrides": self.space.overrides(trial.params),
            "run_dir": str(outcome.run_dir) if outcome.run_dir else None,
        }
        attrs["metrics"], error = _run_record(outcome.run_dir)
        if outcome.status != "completed" and error:  # the run's own words are the most precise
            attrs["reason"] = error
        value, state = outcome.value, TrialState.FAIL
        if outcome.status == "completed":
            try:
                value = float(value)
                state = TrialState.COMPLETE if math.isfinite(value) else TrialState.FAIL
            except (TypeError, ValueError):
                state = TrialState.FAIL
            if state == TrialState.FAIL:
                attrs["reason"] = (
                    f"no finite {self.config.get('optimized_metric')} "
                    f"(optimized_metric) in the run: {value!r}"
                )
        elif outcome.status == "pruned":
            state = TrialState.PRUNED
        cut_off = outcome.status in CUT_OFF
        try:
            for key, val in attrs.items():
                trial.set_user_attr(key, val)
            self.study.tell(
                trial,
                value if state == TrialState.COMPLETE else None,
                state=state,
                skip_if_finished=True,
            )
        except Exception as err:  # the storage failed us: the next session will retry it
            log.warning("search: could not record trial %d: %s", trial.number, _one_line(err))
            return
        if cut_off:  # stopped from outside (SIGTERM, scancel): no fault of its parameters
            self._queue_again(trial)
        elif state == TrialState.FAIL:
            self.failures += 1
        shown = f"{value:.6g}" if state == TrialState.COMPLETE else outcome.status
        log.info(
            "search: trial %d %s%s",
            trial.number,
            shown,
            f" ({attrs['reason']})" if attrs["reason"] else "",
        )


def run_search(raw_settings: Any, host: Any, arguments: Sequence[str]) -> list[Any]:
    """The sweeper's whole job: check, search, report, then one table of this process's jobs.

    Raises ConfigError before any trial for bad input, and
    :class:`~cnnlab.launch.summary.SweepIncomplete` at the end when a job did not complete.
    """
    _require_optuna()
    search = Search(Settings.from_config(raw_settings), host)
    search.prepare(arguments)
    try:
        short = search.run()
    finally:
        out = search.sweep_dir / "search"
        try:
            info = report.write(search.study, out, search.storage.shown())
            log.info("%s", report.describe(info, out))
        except Exception as err:  # the trials are in the storage; the report can be redone
            log.warning("search report not written: %s", _one_line(err))
    finish(search.returns)
    if short:  # every job this process ran may have completed, and yet the budget was not met
        raise SweepIncomplete(short)
    return search.returns


def _require_optuna() -> None:
    """Optuna >= 4 (journal storage, ask/tell as used here), or one line saying how to get it."""
    try:
        import optuna
    except ImportError:
        found = "it is not installed"
    else:
        major = int(optuna.__version__.split(".")[0])
        if major >= 4:
            return
        found = f"found {optuna.__version__}"
    raise ConfigError(
        "hydra/sweeper",
        "cnnlab_optuna",
        f"needs optuna>=4 ({found}): "
        "pip install -e '.[sweep]' (and pip uninstall hydra-optuna-sweeper)",
    )


def _run_record(run_dir: Path | None) -> tuple[dict[str, Any], str | None]:
    """The metrics and error in a run's results.json, when the sweeper can read it."""
    try:
        record = json.loads((Path(run_dir) / "results.json").read_text())
        metrics = dict(record.get("metrics") or {})
    except (OSError, ValueError, TypeError, AttributeError):
        return {}, None
    metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, type(None)))}
    error = record.get("error")
    return metrics, error if isinstance(error, str) else None


def _one_line(err: BaseException) -> str:
    return one_line(str(err)) or type(err).__name__


__all__ = ["Search", "Settings", "Space", "format_value", "make_sampler", "run_search"]

"""One training run, from a composed config to a results.json, whatever happens on the way.

    build   every object the run needs, from its config; a bad value is one line, exit 2,
            before any data is read
    open    the run dir (resuming an earlier one if asked), locked, with its record,
            provenance and W&B run
    fit     train (on cached backbone features when that gives the same result faster)
    test    test the best (or last) checkpoint
    record  results.json: metrics, best epoch, history, timings

A failure at any step leaves a record saying so, but a single run refused before it opened
leaves no run dir; ``run`` returns the job's result or raises ``JobProblem`` with its
one-line reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cnnlab import checkpoints
from cnnlab.config import checks, schema
from cnnlab.config.arms import new_run_id
from cnnlab.config.build import blame, make_object
from cnnlab.config.build import build as build_from
from cnnlab.config.overrides import key_of
from cnnlab.console import Held, quiet
from cnnlab.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    UNWRITABLE,
    ArgumentError,
    BadInput,
    ConfigError,
    WeightsUnavailable,
    unwritable,
)
from cnnlab.launch.summary import JobProblem, JobResult
from cnnlab.results import RESULTS, RunRecord, read_results
from cnnlab.run import provenance, resources, rundir
from cnnlab.run.loggers import SafeWandbLogger, finish_wandb
from cnnlab.run.signals import Interrupted, StopSignals, exit_code, watching
from cnnlab.training import callbacks as cb
from cnnlab.training.classifier import LOGGED
from cnnlab.training.feature_cache import fitting_on_features

# matplotlib (cnnlab.plots) is imported only when a test writes the confusion matrix

# this process's global rank (Lightning's reading of RANK, LOCAL_RANK or SLURM_PROCID)
RANK = rank_zero_only.rank


@dataclass
class Run:
    """Everything built for a run, and its record as it goes."""

    cfg: DictConfig
    settings: schema.RunConfig
    run_dir: Path
    overrides: list[str]
    hydra_dir: Path = Path(".")
    datamodule: Any = None
    model: Any = None
    trainer: Any = None
    loggers: list = field(default_factory=list)
    history: cb.History = field(default_factory=cb.History)
    stop: cb.CheckpointOnStop | None = None
    pruning_for: Callable[[DictConfig], Any] | None = None  # from the caller (search is above run)
    pruning: Any = None  # the search trial's pruning callback, in a search
    record: RunRecord | None = None
    ckpt_path: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    threads: dict[str, Any] = field(default_factory=dict)  # torch's count and why
    test_results: dict[str, Any] = field(default_factory=dict)
    # a refusal before the run opened leaves a `failed` record: a sweep's job dir is the
    # sweep's record of that job; a single run refused before it started leaves no dir
    record_refused: bool = True


def run(
    cfg: DictConfig,
    hydra_dir: Path,
    overrides: list[str],
    jobs: int = 1,
    pruning_for: Callable[[DictConfig], Any] | None = None,
    sweep: bool = True,
) -> JobResult:
    """The job: build, open, fit, test, record; every outcome leaves a record, except a
    single run (``sweep=False``) refused before it opened: it leaves no run dir. Stop
    signals are watched for it (or for the command running it) and no longer after it.
    ``pruning_for(cfg)`` builds a search job's pruning callback (or None)."""
    with watching() as signals:
        return _run(signals, cfg, hydra_dir, overrides, jobs, pruning_for, sweep)


def _run(
    signals: StopSignals,
    cfg: DictConfig,
    hydra_dir: Path,
    overrides: list[str],
    jobs: int,
    pruning_for: Callable[[DictConfig], Any] | None = None,
    sweep: bool = True,
) -> JobResult:
    state = Run(cfg, None, Path(hydra_dir), overrides, Path(hydra_dir))  # type: ignore[arg-type]
    state.pruning_for, state.record_refused = pruning_for, sweep
    if signals.received:  # a sweep told to stop: its remaining jobs do not start
        raise JobProblem(
            "interrupted",
            f"not started: stopped by {signals.received}",
            exit_code(signals.received),
        )
    staging = rundir.staged()  # Hydra's files of this job, moved in once the run goes ahead
    try:
        state.settings = schema.settings(cfg)
        done = open_dir(state)
        if done is not None:
            return done
        configure(state, jobs)
        build_all(state)
        with rundir.RunDirLock(state.run_dir) if RANK == 0 else contextlib.nullcontext():
            if RANK == 0:
                rundir.adopt_staged(staging, state.hydra_dir)
                checkpoints.remove_stale_temps(
                    {Path(c.dirpath) for c in state.trainer.checkpoint_callbacks if c.dirpath}
                )
            open_run(state)
            fit(state)
            test(state)
            return record(state)
    except rundir.RunDirInUse as err:  # touch nothing: the dir is another process's
        raise JobProblem("in-use", str(err), EXIT_BAD_INPUT) from None
    except WeightsUnavailable as err:
        if not cfg.get("skip_unavailable_weights"):
            raise _fail(state, "failed", err, EXIT_BAD_INPUT) from None
        _fail(state, "skipped", err, EXIT_BAD_INPUT)
        return JobResult("skipped", None, _first_line(err))
    except (ConfigError, BadInput) as err:
        raise _fail(state, "failed", err, EXIT_BAD_INPUT) from None
    except cb.NonFiniteLossError as err:
        raise _fail(state, "failed", err, EXIT_FAILED) from None
    except OSError as err:
        if err.errno not in UNWRITABLE:
            _fail(state, "failed", f"{type(err).__name__}: {err}")
            raise
        raise _fail(state, "failed", unwritable(err), EXIT_BAD_INPUT) from None
    except (Interrupted, SystemExit, KeyboardInterrupt) as err:
        ctrl_c = "SIGINT" if isinstance(err, KeyboardInterrupt) else None
        problem = _fail(
            state,
            "interrupted",
            f"stopped by {signals.received or type(err).__name__}",
            exit_code(signals.received or ctrl_c),
            checkpoint=state.stop and state.stop.saved and str(state.stop.saved),
            signal=signals.received,
        )
        signals.hand_over()  # submitit's requeue after a time-limit warning, if any
        raise problem from None
    except Exception as err:
        _fail(state, "failed", f"{type(err).__name__}: {err}")
        raise
    finally:
        finish_wandb()
        rundir.discard_staged(staging)  # refused or skipped: the run dir keeps its own files
        if not state.record_refused and state.record is None and RANK == 0:
            with contextlib.suppress(OSError):  # only the empty dir Hydra made for it
                state.hydra_dir.rmdir()


def open_dir(state: Run) -> JobResult | None:
    """Pick the run dir; a completed one is never written again: skipped (a relaunched
    sweep: the same overrides), or refused before anything is written when this launch's
    overrides make another run, or with ``skip_completed=false``."""
    s, hydra_dir = state.settings, state.run_dir
    previous = read_results(hydra_dir)
    if previous is None:
        rundir.check_unrecorded(hydra_dir, state.overrides)
    if previous and previous.get("status") == "completed":
        if not s.skip_completed:
            raise BadInput(
                f"{hydra_dir} holds a completed run, and a completed run's files are never "
                "rewritten: run it again in a new dir (another hydra.run.dir, or none), or "
                f"train it further from its checkpoint in one "
                f"(ckpt_path={rundir.last_ckpt(hydra_dir)} hydra.run.dir=<new dir>)"
            )
        saved = previous.get("overrides")
        other = rundir.other_run(list(saved), state.overrides) if isinstance(saved, list) else None
        if other is not None:  # skipped, it would stand for a run that was never made
            raise BadInput(
                f"{hydra_dir} holds a completed run of other overrides ({other}); its files "
                "are never rewritten: give this run another hydra.run.dir (a sweep: another "
                "hydra.sweep.dir)"
            )
        value = (previous.get("metrics") or {}).get(s.optimized_metric)
        print(f"skipping {hydra_dir}: results.json says completed")
        return JobResult("completed", value, "already completed")
    resume = s.resume == "auto" or rundir.requeued()
    # DDP's other ranks: the dir rank 0 chose (Lightning's launcher passes its environment
    # on), or under SLURM, where each task is its own job step, the job's own dir
    state.run_dir = (
        Path(os.environ.get("CNNLAB_RUN_DIR") or hydra_dir)
        if RANK
        else rundir.choose(hydra_dir, state.overrides, resume, s.ckpt_path is not None)
    )
    if state.run_dir != hydra_dir:
        print(f"resume=auto: continuing the unfinished run {state.run_dir}")
    with open_dict(state.cfg):
        state.cfg.paths.output_dir = str(state.run_dir)
    state.ckpt_path = s.ckpt_path or (
        checkpoints.resume_checkpoint(state.run_dir) if resume else None
    )
    return None


def configure(state: Run, jobs: int) -> None:
    """Threads and malloc for this job's share of the machine; seeds."""
    s, trainer = state.settings, state.cfg.trainer
    ddp = "ddp" in str(trainer.get("strategy", "")) and isinstance(trainer.get("devices"), int)
    threads, why = resources.torch_threads(s.torch_threads, jobs, trainer.devices if ddp else 1)
    state.threads = {"torch": threads, "why": why}
    resources.apply(threads, dataclasses.asdict(s.cpu_malloc) if s.cpu_malloc else None)
    L.seed_everything(s.seed, workers=True, verbose=False)
    _one_log_stream()
    quiet()


# the model configs (net, optimizer, scheduler) whose optimization passed its rehearsal in
# this process: it depends on nothing else, so an identical config passes again
_REHEARSED: set[str] = set()


def build_all(state: Run) -> None:
    """Every object, built once from its config before any data is read."""
    cfg, run_dir = state.cfg, state.run_dir
    build = functools.partial(build_from, suspects=[key_of(o) for o in state.overrides])
    checks.check_finite(cfg)  # what no object can see alone: first, so nothing blames itself
    checks.check_scheduler_interval(cfg)
    checks.check_step_budget(cfg)
    checks.check_output_paths(cfg)
    state.datamodule = build(cfg, "data")
    state.model = build(cfg, "model")
    model_yaml = OmegaConf.to_yaml(cfg.model, resolve=True)
    if model_yaml not in _REHEARSED:  # the jobs of a sweep over seeds rehearse it once
        build(
            cfg,
            "model.optimizer",
            make=lambda n: state.model.rehearse_optimization(optimizer=make_object(n)),
        )
        if cfg.model.get("scheduler") is not None:
            build(
                cfg,
                "model.scheduler",
                make=lambda n: state.model.rehearse_optimization(scheduler=make_object(n)),
            )
        _REHEARSED.add(model_yaml)
    checks.check_input_size(cfg, state.model.net, state.datamodule)
    checks.check_classes(cfg, state.model, state.datamodule)
    checks.check_logger_needs(cfg)
    checks.check_validation_needs(cfg)
    _set_wandb_identity(cfg, run_dir)
    state.loggers = [build(cfg, f"logger.{k}") for k, v in (cfg.logger or {}).items() if v]
    state.stop = cb.CheckpointOnStop(rundir.last_ckpt(run_dir))
    required = [
        cb.EpochSeed(state.settings.seed),
        state.history,
        cb.EpochLog(state.history),
        cb.FiniteLossGuard(),
        cb.ConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=True)),
        state.stop,
        # last.ckpt after every epoch: the newest checkpoint, kept alone (Lightning's
        # save_last writes only when a top-k checkpoint was written in that step)
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        ),
    ]
    optional = [
        (f"callbacks.{k}", build(cfg, f"callbacks.{k}"))
        for k, v in (cfg.callbacks or {}).items()
        if v
    ]
    checks.check_monitors(optional, LOGGED)
    checks.check_checkpoint_names(optional)
    optional = [callback for _, callback in optional]
    bar = {}
    if not sys.stdout.isatty() and "enable_progress_bar" not in cfg.trainer:
        # to a file a bar is only its last frame at exit: EpochLog's lines say it all
        optional = [c for c in optional if not isinstance(c, ProgressBar)]
        bar = {"enable_progress_bar": False}
    if cfg.get("search") and state.pruning_for is not None:
        # a job of an Optuna search: report to its trial, stop if pruned
        state.pruning = state.pruning_for(cfg)
        required += [state.pruning] if state.pruning is not None else []
    with Held("lightning.pytorch.utilities.rank_zero") as device_lines:
        state.trainer = build(
            cfg,
            "trainer",
            callbacks=optional + required,
            logger=state.loggers or False,
            plugins=[checkpoints.AtomicCheckpointIO()],
            **bar,
        )
    try:
        last_checks(state)
    except (BadInput, ConfigError):
        raise  # a refusal: its one line alone
    except BaseException:
        device_lines.release()  # a failure: the log keeps what Lightning said of the devices
        raise
    device_lines.release()  # Lightning's, once nothing can refuse the run


def last_checks(state: Run) -> None:
    """What needs the built objects: the checkpoint to resume from, the data files (the
    first data read: headers and labels) and the batches an epoch makes."""
    cfg = state.cfg
    if state.ckpt_path:  # unreadable, or another net's: say so before training
        key = "ckpt_path" if state.settings.ckpt_path else "resume"
        try:
            saved = checkpoints.load_checkpoint(state.ckpt_path)
        except checkpoints.UnreadableCheckpoint as err:
            raise ConfigError(key, state.ckpt_path, err.reason) from None
        checks.check_checkpoint_fits(key, state.ckpt_path, saved, state.model)
    try:  # names a missing or corrupt file, or an empty split
        state.datamodule.check_files()
    except ArgumentError as err:  # the DataModule's own argument, named by its config key
        raise blame(cfg, "data", make_object, err) from None
    checks.check_batches(cfg, state.datamodule)  # what needs the batches per epoch


def open_run(state: Run) -> None:
    """The run's record, saved config and provenance, and its W&B run (rank 0)."""
    run_dir, cfg = state.run_dir, state.cfg
    os.environ["CNNLAB_RUN_DIR"] = str(run_dir)  # DDP's other ranks start from this
    if RANK:
        return
    prov = provenance.collect(state.settings.seed, state.overrides, state.datamodule.data_files())
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "provenance.json").write_text(provenance.to_json(prov))
    wandb = next((lg for lg in state.loggers if isinstance(lg, SafeWandbLogger)), None)
    previous = read_results(run_dir) or {}
    state.record = RunRecord(
        run_dir,
        seed=state.settings.seed,
        overrides=state.overrides,
        run_dir=str(run_dir),
        resumed_from=state.ckpt_path,
        provenance=prov,
        attempts=int(previous.get("attempts", 0)) + 1,
        wandb={"id": wandb and wandb.version, "mode": wandb and wandb.mode},
    )
    state.record.save()
    if wandb is not None:
        (run_dir / "wandb_id.txt").write_text(f"{wandb.version}\n")
        wandb.start()
        wandb.log_hyperparams(
            {**_flat(OmegaConf.to_container(cfg, resolve=True)), "provenance": prov}
        )


def fit(state: Run) -> None:
    if not state.settings.train:
        return
    with fitting_on_features(
        state.model, state.datamodule, state.settings.feature_cache
    ) as datamodule:
        state.trainer.fit(state.model, datamodule=datamodule, ckpt_path=state.ckpt_path)


def test(state: Run) -> None:
    """Test the best checkpoint (or the last weights); the confusion matrix as a picture."""
    if not state.settings.test:
        return
    from cnnlab.plots import save_confusion_matrix

    best = next(
        (
            c.best_model_path
            for c in state.trainer.checkpoint_callbacks
            if c.monitor and c.best_model_path
        ),
        None,
    )
    ckpt = best if state.settings.test_ckpt == "best" else None
    out = state.trainer.test(
        state.model, datamodule=state.datamodule, ckpt_path=ckpt, verbose=False
    )
    state.metrics.update(
        {k: v for k, v in (out[0] if out else {}).items() if not k.startswith("test/acc_class_")}
    )
    state.test_results = getattr(state.model, "test_results", {})
    save_test_predictions(state)
    train_accuracy(state)
    matrix = state.test_results.get("confusion_matrix")
    if matrix and RANK == 0:
        png = save_confusion_matrix(matrix, state.run_dir / "confusion_matrix.png")
        for logger in state.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image("test/confusion_matrix", [str(png)])


def save_test_predictions(state: Run) -> None:
    """Each test image's predicted class and label (uint8, test-set order), so
    cnnlab-compare counts the test set's sampling error; a single process only (under DDP
    each rank saw a shard)."""
    predicted = getattr(state.model, "test_predictions", None)
    if predicted is None or RANK or state.trainer.world_size > 1:
        return
    pred, target = predicted
    np.savez_compressed(
        state.run_dir / "test_predictions.npz", pred=pred.numpy(), target=target.numpy()
    )


def train_accuracy(state: Run) -> None:
    """Training accuracy for the gap as the test measures it: eval mode, no augmentation,
    the tested weights, on the first ``train_eval_images`` images of the training split, or
    as many as the test saw when it saw fewer (a run limited to a few test batches, whose
    gap is no finer than its test accuracy; on a one-batch run this was most of its time)."""
    n = state.settings.train_eval_images
    # a DataModule without them (backbone features) gives no gap
    batches_of = getattr(state.datamodule, "train_eval_batches", None)
    if not n or batches_of is None:
        return
    tested = getattr(state.model, "test_predictions", None)
    if tested is not None:
        n = min(n, len(tested[1]))
    found = batches_of(n, state.model.device)
    if found is None:
        return
    state.test_results["train_eval_images"], batches = found
    with torch.inference_mode():
        state.metrics["train/acc_eval"] = state.model.eval_accuracy(batches)


def record(state: Run) -> JobResult:
    """results.json: what the run measured, its best epoch, its history and timings."""
    rows, best, trainer = state.history.rows, state.history.best, state.trainer
    metrics = {**state.metrics, **{k: v for k, v in best.items() if k.startswith("val/")}}
    metrics.update(_overfitting(rows, best, metrics))
    value = metrics.get(state.settings.optimized_metric)
    pruned = state.pruning is not None and state.pruning.pruned
    status, reason = (
        ("pruned", f"pruned after epoch {state.pruning.pruned_at}")
        if pruned
        else ("completed", None)
    )
    if RANK:
        return JobResult(status, value, reason)
    wandb = next((lg for lg in state.loggers if isinstance(lg, SafeWandbLogger)), None)
    if wandb is not None:  # the W&B run ends first, so the record says if it could not
        wandb.log_metrics({k: v for k, v in metrics.items() if v is not None})
        wandb.finish()
    state.record.finish(
        status,
        metrics=metrics,
        test=state.test_results,
        best=best,
        best_checkpoint=next(
            (
                c.best_model_path
                for c in trainer.checkpoint_callbacks
                if c.monitor and c.best_model_path
            ),
            None,
        ),
        epochs=len(rows),
        global_step=trainer.global_step,
        stopped_early=bool(trainer.should_stop and trainer.current_epoch < trainer.max_epochs),
        fit_time_s=round(state.history.elapsed, 3),
        history=rows,
        gpu_memory_peak_mb=_gpu_memory_peak_mb(),
        threads=state.threads,
        wandb={**state.record.data["wandb"], "error": wandb and wandb.broken},
    )
    _print_summary(state.run_dir, state.record.data)
    return JobResult(status, value, reason)


def _gpu_memory_peak_mb() -> float | None:
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _overfitting(rows: list[dict], best: dict, metrics: dict) -> dict[str, Any]:
    """Seed 004's point: a large train − test accuracy gap means overfitting. The training
    accuracy is the eval-mode one when measured (an epoch's average, with dropout and
    augmentation on, is biased low: the gap came out negative)."""
    final = rows[-1].get("train/acc") if rows else None
    train = metrics.get("train/acc_eval", final)
    test_acc = metrics.get("test/acc")
    return {
        "train/acc_final": final,
        "train/acc_at_best": best.get("train/acc_at_best"),
        "gap/train_test": None if train is None or test_acc is None else train - test_acc,
    }


def _fail(state: Run, status: str, err: Any, code: int = EXIT_FAILED, **fields: Any) -> JobProblem:
    """Record a run that did not complete; the JobProblem to raise says why in one line."""
    message = _first_line(err)
    record = state.record
    if record is None and RANK == 0 and state.record_refused:  # refused before it opened:
        where = next(
            (
                d
                for d in (state.run_dir, state.hydra_dir)  # never over an earlier one
                if not (d / RESULTS).exists()
            ),
            None,
        )
        record = where and RunRecord(where, seed=state.cfg.get("seed"), overrides=state.overrides)
    if record is not None and RANK == 0:
        with contextlib.suppress(OSError):  # a read-only or full dir: the line says why
            record.finish(status, error=message, **fields)
    return JobProblem(status, message, code)


def _first_line(err: Any) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _one_log_stream() -> None:
    """Lightning prints through its own handler; Hydra's already shows and files them."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            if type(handler) is logging.StreamHandler:
                lg.removeHandler(handler)
        lg.propagate = True


def _set_wandb_identity(cfg: DictConfig, run_dir: Path) -> None:
    """Same W&B run id for every session of a run dir, so a resumed run continues on W&B;
    a new id starts with the run's name, which W&B's folder name (what `wandb leet` lists)
    then shows."""
    if not cfg.get("logger") or not cfg.logger.get("wandb"):
        return
    path = run_dir / "wandb_id.txt"
    with open_dict(cfg):
        cfg.logger.wandb.id = (
            path.read_text().strip()
            if path.exists()
            else new_run_id(str(cfg.logger.wandb.get("name") or "run"))
        )


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys (model.net.dropout) so the W&B dashboard can group runs by them."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _print_summary(run_dir: Path, data: dict[str, Any]) -> None:
    console = Console(markup=False)
    # the path on a line of its own, never wrapped: a table title would fold it to its width
    console.print(Text(f"cnnlab run · {run_dir}", style="italic"), soft_wrap=True)
    table = Table(show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in data.get("metrics", {}).items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    table.add_row("epochs", str(data.get("epochs")))
    table.add_row("fit time (s)", f"{data.get('fit_time_s', 0):.1f}")
    threads = data.get("threads") or {}
    if threads:
        table.add_row("torch threads", f"{threads['torch']} ({threads['why']})")
    console.print(table)

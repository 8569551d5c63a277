"""One training run, from a composed config to a results.json, whatever happens on the way."""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from cnnlab.config.checks import ConfigError, validate
from cnnlab.run.results import RunRecord, read_results

err_console = Console(stderr=True, soft_wrap=True)

# exit codes: 0 ok, 1 the run failed, 2 bad input (config, data or weights files)
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


class BadInput(ValueError):
    """A data, weights or checkpoint file, or a value, that the run cannot use."""


@contextlib.contextmanager
def bad_input_errors():
    """While building the run, a ValueError or missing file is the user's input, not a bug."""
    from hydra.errors import InstantiationException

    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        raise _as_bad_input(err) from err
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, (ValueError, FileNotFoundError)):
            raise _as_bad_input(cause) from err
        raise


class WeightsUnavailable(BadInput):
    """Pretrained weights that cannot be had here (no network and not cached)."""


def _as_bad_input(err: Exception) -> BadInput:
    from cnnlab.nets.resnet import WeightsNotAvailable

    return (WeightsUnavailable if isinstance(err, WeightsNotAvailable) else BadInput)(str(err))


def run_and_report(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> tuple[int, Any]:
    """Run, and turn any failure into one clear line, an exit code and a failed record."""
    from cnnlab.training.callbacks import NonFiniteLossError

    record = None
    try:
        validate(cfg)
        run_dir, record, done = _open_run(cfg, run_dir, overrides)
        if record is None:  # already completed: hand the sweeper its metric again
            return 0, done
        return 0, train(cfg, run_dir, overrides, record)
    except (ConfigError, BadInput, NonFiniteLossError) as err:
        if isinstance(err, WeightsUnavailable) and cfg.get("skip_unavailable_weights"):
            message = str(err).splitlines()[0]
            err_console.print(f"[bold yellow]cnnlab: skipped:[/] {message}", highlight=False)
            _fail(record, run_dir, overrides, cfg, message, status="skipped")
            return 0, None
        code = EXIT_FAILED if isinstance(err, NonFiniteLossError) else EXIT_BAD_INPUT
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        err_console.print(f"[bold red]cnnlab:[/] {message}", highlight=False, soft_wrap=True)
        _fail(record, run_dir, overrides, cfg, message)
        return code, None
    except KeyboardInterrupt:
        _fail(record, run_dir, overrides, cfg, "interrupted", status="interrupted")
        raise
    except Exception as err:
        _fail(record, run_dir, overrides, cfg, f"{type(err).__name__}: {err}")
        raise


def _fail(record, run_dir, overrides, cfg, message, status="failed"):
    from cnnlab.run.loggers import finish_wandb

    if record is None:
        record = RunRecord(run_dir, seed=cfg.get("seed"), overrides=overrides)
    record.finish(status, error=message)
    finish_wandb()


def _open_run(cfg: DictConfig, run_dir: Path, overrides: list[str]):
    """Pick the run dir (resuming an earlier one if asked) and start its record."""
    previous = read_results(run_dir)
    if previous and previous.get("status") == "completed" and cfg.skip_completed:
        Console().print(f"[green]skipping[/] {run_dir}: results.json says completed")
        return run_dir, None, previous.get("metrics", {}).get(cfg.optimized_metric)
    if cfg.resume == "auto" and cfg.ckpt_path is None and not _last_ckpt(run_dir).exists():
        earlier = find_resumable(run_dir, overrides)
        if earlier is not None:
            Console().print(f"[yellow]resume=auto:[/] continuing the unfinished run {earlier}")
            _adopt_hydra_files(run_dir, earlier)
            run_dir = earlier
    record = RunRecord(run_dir, seed=cfg.seed, overrides=overrides)
    if previous and previous.get("status") != "completed":
        record.data["attempts"] = int(previous.get("attempts", 1)) + 1
    return run_dir, record, None


def _last_ckpt(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def resume_checkpoint(run_dir: Path) -> str | None:
    """last.ckpt, or the newest checkpoint that loads if a kill left last.ckpt half-written."""
    from cnnlab.nets.transfer import load_checkpoint

    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return None
    others = sorted((p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for path in [folder / "last.ckpt", *others]:
        if not path.exists():
            continue
        try:
            load_checkpoint(path)
        except ValueError:
            Console(stderr=True, soft_wrap=True).print(f"[yellow]resume:[/] {path} is unreadable, trying an older one")
            continue
        return str(path)
    return None


def _comparable(overrides: list[str]) -> list[str]:
    return sorted(o for o in overrides if not o.split("=")[0].lstrip("+~") in ("resume", "ckpt_path"))


def find_resumable(run_dir: Path, overrides: list[str]) -> Path | None:
    """Newest sibling run dir with the same overrides, a last.ckpt and no completed result."""
    mine = _comparable(overrides)
    candidates = []
    for other in run_dir.parent.iterdir():
        if other == run_dir or not _last_ckpt(other).exists():
            continue
        res = read_results(other) or {}
        if res.get("status") == "completed":
            continue
        try:
            theirs = OmegaConf.to_container(OmegaConf.load(other / ".hydra" / "overrides.yaml"))
        except OSError:
            continue
        if _comparable(list(theirs)) == mine:
            candidates.append(other)
    return max(candidates, key=lambda p: _last_ckpt(p).stat().st_mtime, default=None)


def _adopt_hydra_files(new: Path, earlier: Path) -> None:
    """The resumed run keeps its own dir; the fresh empty dir Hydra made is removed."""
    if not (new / "checkpoints").exists():
        shutil.rmtree(new, ignore_errors=True)


def train(cfg: DictConfig, run_dir: Path, overrides: list[str], record: RunRecord) -> Any:
    """Build everything from the config, fit, test, and write results.json."""
    import lightning as L
    import torch
    from hydra.utils import instantiate

    from cnnlab.run import provenance
    from cnnlab.training.callbacks import ConfigInCheckpoint, History
    from cnnlab.run.cpu_malloc import keep_freed_memory
    from cnnlab.run.loggers import SafeWandbLogger, build_loggers, finish_wandb
    from cnnlab.analysis.plots import save_confusion_matrix
    from cnnlab.nets.transfer import load_checkpoint

    _one_log_stream()
    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    if cfg.get("cpu_malloc"):
        keep_freed_memory(**cfg.cpu_malloc)
    L.seed_everything(cfg.seed, workers=True)
    with bad_input_errors():
        datamodule = instantiate(cfg.data)
        datamodule.check_files()
        model = instantiate(cfg.model)
        model.configure_optimizers()  # optimizer/scheduler arguments fail here, not mid-fit
        if cfg.ckpt_path:
            load_checkpoint(cfg.ckpt_path)
    prov = provenance.collect(cfg.seed, overrides, datamodule.data_files())
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")

    ckpt_path = cfg.ckpt_path
    if ckpt_path is None and cfg.resume == "auto":
        ckpt_path = resume_checkpoint(run_dir)
    wandb_id = _wandb_id(run_dir, resuming=ckpt_path is not None)
    with bad_input_errors():
        loggers = build_loggers(_with_wandb_id(cfg.logger, wandb_id, run_dir))
    for logger in loggers:
        if isinstance(logger, SafeWandbLogger):
            logger.start()
            logger._guard("config", lambda: logger.experiment.config.update(
                {**_flat(resolved), "provenance": prov}, allow_val_change=True))
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values() if c is not None]
    if not loggers:
        from lightning.pytorch.callbacks import LearningRateMonitor
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    history = next((c for c in callbacks if isinstance(c, History)), None)
    if history is None:
        history = History()
        callbacks.append(history)
    callbacks.append(ConfigInCheckpoint(resolved))
    from cnnlab.search.pruning import callback_for  # TEMP wiring (optuna branch)
    pruning = callback_for(cfg)
    if pruning is not None:
        callbacks.append(pruning)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    record.update(run_dir=str(run_dir), wandb={"id": wandb_id, "mode": _wandb_mode(loggers)},
                  resumed_from=ckpt_path, provenance=prov)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        fit_time = history.elapsed
        rows = list(history.rows)  # testing a checkpoint restores callback states: copy now
        metrics: dict[str, Any] = {}
        test_results: dict[str, Any] = {}
        if cfg.test:
            ckpt = _test_checkpoint(trainer, cfg.test_ckpt)
            out = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
            metrics.update({k: v for k, v in (out[0] if out else {}).items()
                            if not k.startswith("test/acc_class_")})
            test_results = getattr(model, "test_results", {})
            if test_results.get("confusion_matrix"):
                png = save_confusion_matrix(test_results["confusion_matrix"],
                                            run_dir / "confusion_matrix.png")
                for logger in loggers:
                    if isinstance(logger, SafeWandbLogger):
                        logger.log_plot("test/confusion_matrix", png)
    best = _best(rows)
    metrics.update({k: v for k, v in best.items() if k.startswith("val/")})
    ckpt_cb = trainer.checkpoint_callback
    record.finish(
        "completed",
        metrics=metrics,
        test=test_results,
        best=best,
        best_checkpoint=getattr(ckpt_cb, "best_model_path", None) or None,
        epochs=len(rows),
        global_step=trainer.global_step,
        stopped_early=bool(trainer.should_stop and trainer.current_epoch < trainer.max_epochs),
        fit_time_s=round(fit_time, 3),
        history=rows,
    )
    for logger in loggers:
        if isinstance(logger, SafeWandbLogger) and logger.broken:
            record.update(wandb={**record.data["wandb"], "error": logger.broken})
    finish_wandb()
    _print_summary(run_dir, record.data)
    if pruning is not None and pruning.pruned:  # TEMP wiring (optuna branch)
        from cnnlab.launch.summary import JobResult
        return JobResult("pruned", metrics.get(cfg.optimized_metric),
                         f"pruned after epoch {pruning.pruned_at}")
    return metrics.get(cfg.optimized_metric)


def _one_log_stream() -> None:
    """Lightning prints through its own handler; Hydra's already shows and files them."""
    import logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            if type(handler) is logging.StreamHandler:
                lg.removeHandler(handler)
        lg.propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage())


def _best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [r for r in rows if r.get("val/acc") is not None]
    if not scored:
        return {}
    top = max(scored, key=lambda r: r["val/acc"])  # first epoch reaching the best accuracy
    losses = [r["val/loss"] for r in rows if r.get("val/loss") is not None]
    return {"epoch": top["epoch"], "val/acc_best": top["val/acc"],
            "val/loss_at_best": top.get("val/loss"),
            "val/loss_min": min(losses) if losses else None}


def _test_checkpoint(trainer, which: str) -> str | None:
    cb = trainer.checkpoint_callback
    if which == "best" and cb is not None and getattr(cb, "best_model_path", ""):
        return cb.best_model_path
    return None  # the weights in memory: the last ones


def _wandb_id(run_dir: Path, resuming: bool) -> str:
    """Same W&B run id for every session of a run dir, so a resumed run continues on W&B."""
    path = run_dir / "wandb_id.txt"
    if path.exists():
        return path.read_text().strip()
    import secrets
    run_id = secrets.token_hex(4)
    path.write_text(run_id + "\n")
    return run_id


def _with_wandb_id(logger_cfg: DictConfig | None, run_id: str, run_dir: Path):
    if not logger_cfg or "wandb" not in logger_cfg or logger_cfg.wandb is None:
        return logger_cfg
    cfg = OmegaConf.to_container(logger_cfg, resolve=True)
    cfg["wandb"]["id"] = run_id
    cfg["wandb"]["save_dir"] = str(run_dir)
    return OmegaConf.create(cfg)


def _wandb_mode(loggers) -> str | None:
    from cnnlab.run.loggers import SafeWandbLogger
    return next((lg.mode for lg in loggers if isinstance(lg, SafeWandbLogger)), None)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys (model.net.dropout) so the W&B dashboard can group runs by them."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _print_summary(run_dir: Path, data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"cnnlab run · {run_dir}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in data.get("metrics", {}).items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    table.add_row("epochs", str(data.get("epochs")))
    table.add_row("fit time (s)", f"{data.get('fit_time_s', 0):.1f}")
    Console().print(table)

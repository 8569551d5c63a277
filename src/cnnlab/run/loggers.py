"""A W&B logger that can neither block nor break a run."""

from __future__ import annotations

import contextlib
import functools
import netrc
import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal, Optional
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from cnnlab.console import error
from cnnlab.errors import UNWRITABLE, Positive, checked, require

WANDB_MODES = ("offline", "online", "disabled")
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def wandb_credentials_present() -> bool:
    """True when wandb can authenticate without asking (key in env or in ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host or "api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class SafeWandbLogger(WandbLogger):
    """WandbLogger that never prompts for a login and never takes the run down with it.

    Offline is the default. Online without credentials is refused up front (wandb would
    otherwise sit at its interactive login prompt). Any W&B error after start-up (server
    unreachable, service crashed) is reported once; from then on W&B is skipped and
    training goes on, with results still written to the run directory.

    A W&B folder that fills up or becomes unwritable mid-run (its own files, or wandb's log
    file there, whose write errors Python's logging would print as tracebacks) is one line
    naming the file and the error; the run goes on without W&B (it is the dashboard's copy:
    results.json and the checkpoints are the run's record, and results.json keeps the error).
    """

    @checked
    def __init__(
        self,
        mode: Literal[WANDB_MODES] = "offline",  # type: ignore[valid-type]
        init_timeout: Positive = 60.0,
        project: str = "cnnlab",
        entity: Optional[str] = None,
        name: Optional[str] = None,
        group: Optional[str] = None,
        job_type: Optional[str] = None,
        tags: Optional[list[str]] = None,
        save_dir: str = ".",
        log_model: bool = False,
        id: Optional[str] = None,  # noqa: A002
        **kwargs: Any,
    ) -> None:
        require(
            "mode",
            mode,
            lambda v: v != "online" or wandb_credentials_present(),
            "online needs W&B credentials and none were found: set WANDB_API_KEY or run "
            "`wandb login` once, or use offline (the default) and `wandb sync` later",
        )
        require(
            "id",
            id,
            lambda v: v is None or _RUN_ID.fullmatch(v),
            "a W&B run id of letters, digits, '-' and '_' (it becomes a folder name)",
        )
        import wandb

        from cnnlab.compat.wandb import skip_unstaged_launch_inputs

        skip_unstaged_launch_inputs()
        os.environ["WANDB_MODE"] = mode  # also covers wandb's service process
        os.environ.setdefault("WANDB_SILENT", "true")
        settings = wandb.Settings(init_timeout=init_timeout, console="off", silent=True)
        super().__init__(
            mode=mode,
            settings=settings,
            project=project,
            entity=entity,
            name=name,
            group=group,
            job_type=job_type,
            tags=tags,
            save_dir=save_dir,
            log_model=log_model,
            id=id,
            **kwargs,
        )
        self._wandb_init.pop("anonymous", None)  # deprecated in wandb, warns when passed
        self.mode = mode
        self.broken: str | None = None

    def _guard(self, what: str, fn, *args, **kwargs):
        if self.broken:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # W&B must never end a training run
            self._turn_off(what, err)
            return None

    def _turn_off(self, what: str, err: BaseException, where: str | None = None) -> None:
        """W&B is off for the rest of the run, said once: one line for a full or unwritable
        W&B folder, a warning for anything else."""
        if self.broken:
            return
        self.broken = f"{type(err).__name__}: {err}"
        if not isinstance(self._experiment, _LiveRun):
            self._experiment = _NoRun()  # nobody tries to start W&B again
        if isinstance(err, OSError) and err.errno in UNWRITABLE:
            # a copy's error names its source first and where it wrote second
            where = err.filename2 or err.filename or where or self.save_dir
            self.broken = f"cannot write to {where}: {err.strerror or err}"
            error(
                f"W&B is off for the rest of this run: {self.broken}; training goes on, and "
                "the run's record (results.json, checkpoints) is complete"
            )
            return
        warnings.warn(
            f"W&B {what} failed ({self.broken}); W&B logging is off for the rest "
            "of this run, results are still written to the run directory",
            stacklevel=3,
        )

    def _watch_log_files(self) -> None:
        """wandb's own log file (debug.log in its run folder): a write that fails turns W&B
        off in one line, instead of the traceback Python's logging prints for it."""
        import logging

        for handler in logging.getLogger("wandb").handlers:
            if isinstance(handler, logging.FileHandler):
                # Handler.handleError is logging's hook for a failed emit
                handler.handleError = functools.partial(self._log_file_failed, handler)  # type: ignore[method-assign]

    def _log_file_failed(self, handler: Any, record: Any) -> None:
        import logging
        import sys

        logging.getLogger("wandb").removeHandler(handler)
        stream, handler.stream = handler.stream, None  # closed here, not again by wandb
        with contextlib.suppress(Exception):
            stream.close()
        err = sys.exc_info()[1]
        if isinstance(err, Exception):
            self._turn_off("logging", err, handler.baseFilename)

    def log_metrics(self, metrics, step=None):
        return self._guard("log_metrics", super().log_metrics, metrics, step)

    def log_hyperparams(self, params, *args, **kwargs):
        return self._guard("log_hyperparams", super().log_hyperparams, params, *args, **kwargs)

    def log_image(self, *args, **kwargs):
        return self._guard("log_image", super().log_image, *args, **kwargs)

    def log_table(self, *args, **kwargs):
        return self._guard("log_table", super().log_table, *args, **kwargs)

    def after_save_checkpoint(self, checkpoint_callback):
        return self._guard(
            "after_save_checkpoint", super().after_save_checkpoint, checkpoint_callback
        )

    def finalize(self, status: str) -> None:
        self._guard("finalize", super().finalize, status)

    @rank_zero_only
    def start(self) -> bool:
        """Create the W&B run now, so a failure shows at start and not mid-epoch (its
        folder is made only now: building the logger writes nothing)."""
        Path(self.save_dir or ".").mkdir(parents=True, exist_ok=True)
        started = self._guard("init", lambda: self.experiment) is not None
        if started:
            self._watch_log_files()
        return started

    @rank_zero_only
    def finish(self) -> None:
        """End the W&B run, so the next job of a sweep starts its own."""
        if self._experiment is not None and isinstance(self._experiment, _LiveRun):
            self._guard("finish", self._experiment.finish)


class _NoRun:
    """Stands in for a W&B run that could not start: every call does nothing."""

    id = None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


try:
    from wandb.sdk.wandb_run import Run as _LiveRun
except ImportError:  # pragma: no cover
    _LiveRun = type(None)

# wandb is imported only when a W&B logger is used (logger=none/csv runs start without it)


def finish_wandb() -> None:
    """End the process's W&B run, so the next job of a multirun starts its own."""
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except Exception as err:
        if isinstance(err, OSError) and err.errno in UNWRITABLE:
            error(
                f"W&B could not finish: cannot write to {err.filename2 or err.filename or 'its folder'}: "
                f"{err.strerror or err}; the run's record (results.json, checkpoints) is complete"
            )
            return
        warnings.warn(
            f"W&B finish failed ({err}); the run's local results are unaffected", stacklevel=2
        )

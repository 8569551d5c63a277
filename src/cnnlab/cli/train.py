"""cnnlab-train: compose a run from conf/, train, test, and record it all in its run dir.

Exit codes: 0 done, 1 the run (or a job of the sweep) failed, 2 bad input (a config value,
a data, weights or checkpoint file) named in one line, 128 + the signal's number when stopped
by one (143 SIGTERM, 130 Ctrl-C), as a shell reports it.
"""

from __future__ import annotations

import difflib
import errno
import logging
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any, cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import cnnlab.config.schema  # noqa: F401  (registers run_schema with Hydra's ConfigStore)
from cnnlab.cli import flags
from cnnlab.compat.hydra import adapt_args_parser, hide_internal_options
from cnnlab.config import conf_dir
from cnnlab.console import error
from cnnlab.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    UNWRITABLE,
    ConfigError,
    unwritable,
)
from cnnlab.launch.summary import JobProblem, JobResult, SweepIncomplete
from cnnlab.run import rundir
from cnnlab.run.rundir import staging_dir
from cnnlab.run.signals import Interrupted, exit_code, watching

# The runner (torch, Lightning) is imported when a job starts, so Hydra's --help and --cfg
# answer without it; search.pruning (Optuna) only for a search's jobs

CONF_DIR = conf_dir()

# One id per process: two runs started in the same second get different run dirs.
_UID = f"{os.getpid():x}{secrets.token_hex(2)}"
OmegaConf.register_new_resolver("cnnlab_uid", lambda: _UID, replace=True)
# where Hydra's files of a job wait until its run holds the run dir (cnnlab.run.rundir)
OmegaConf.register_new_resolver(
    "cnnlab_staging", lambda output_dir: staging_dir(output_dir), replace=True
)
# the job's log: in its staging dir; in the run dir itself when Hydra writes no files for
# the job (Lightning's DDP ranks are started with hydra.output_subdir=null)
OmegaConf.register_new_resolver(
    "cnnlab_log_file",
    lambda subdir, output_dir: f"{output_dir if subdir is None else subdir}/train.log",
    replace=True,
)
# GPUs to ask a cluster for: those the trainer will use (trainer.accelerator/devices)
OmegaConf.register_new_resolver(
    "cnnlab_gpus",
    lambda accelerator, devices: (
        (devices if isinstance(devices, int) else 1) if accelerator in ("gpu", "cuda") else None
    ),
    replace=True,
)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def task(cfg: DictConfig) -> JobResult:
    """One job: a run, or one job of a sweep (Hydra calls this once per job)."""
    from cnnlab.run.runner import run

    hc = HydraConfig.get()
    jobs = OmegaConf.select(cast(Any, hc), "launcher.n_jobs") if hc.mode == RunMode.MULTIRUN else 1
    sweep = hc.mode == RunMode.MULTIRUN
    if not sweep and not str(hc.run.dir).strip():  # a sweep's is the sweeper's to refuse
        rundir.discard_staged(rundir.staged())
        error(
            str(
                ConfigError(
                    "hydra.run.dir",
                    hc.run.dir,
                    "a folder for the run's files ('' would write them into the current directory)",
                )
            )
        )
        sys.exit(EXIT_BAD_INPUT)
    try:
        result = run(
            cfg,
            Path(hc.runtime.output_dir),
            list(hc.overrides.task),
            jobs=jobs if isinstance(jobs, int) else 1,
            pruning_for=_pruning_callback,
            sweep=sweep,
        )
    except JobProblem as problem:
        if sweep:
            _job_done(hc, cfg, problem.status, problem.reason)
            raise  # the sweep goes on; its summary reports this job
        rundir.remove_made_dirs(str(hc.run.dir), _UID)  # a run refused before it opened
        error(problem.reason)
        sys.exit(problem.code)
    if sweep:
        _job_done(hc, cfg, result.status, result.reason, result.value)
    return result


def _pruning_callback(cfg: DictConfig) -> Any:
    """A search job's pruning callback, given to the runner (search is the layer above run);
    Optuna is imported only by a search job."""
    from cnnlab.search.pruning import callback_for

    return callback_for(cfg)


def _job_done(hc: Any, cfg: DictConfig, status: str, reason: str | None, value: Any = None) -> None:
    """A sweep's line per finished job (Hydra's launchers log only each job's start)."""
    metric = cfg.get("optimized_metric")
    what = f"{metric} {value:.4f}" if isinstance(value, float) else reason
    # the run dir's name says which arm and seed
    logging.getLogger("cnnlab.sweep").info(
        "job #%s %s%s → %s", hc.job.num, status, f" ({what})" if what else "", hc.runtime.output_dir
    )


def main() -> None:
    """The console script: Hydra's errors and a sweep's failures as one line, no traceback."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        hide_internal_options()
    adapt_args_parser(flags.one_line_errors)  # an unknown flag: one line, not the usage block
    with watching() as signals:  # SIGTERM or Ctrl-C ends the run (or sweep) in one line
        _main(signals)


def _main(signals) -> None:
    try:
        task()
    except Interrupted as err:
        error(str(err))
        sys.exit(exit_code(signals.received))
    except SweepIncomplete as err:
        error(str(err))
        sys.exit(exit_code(signals.received) if signals.received else EXIT_FAILED)
    except ConfigError as err:
        error(str(err))
        sys.exit(EXIT_BAD_INPUT)
    except OSError as err:  # Hydra making the run (or sweep) dir where nothing can be written
        if _from_hydra(err):  # MissingConfigException is an IOError too (an unknown option)
            error(_hydra_message(err))
            sys.exit(EXIT_BAD_INPUT)
        if err.errno not in (*UNWRITABLE, errno.EEXIST, errno.ENOTDIR):  # a file on the path
            raise
        sweep = any(a in ("-m", "--multirun") for a in sys.argv[1:])
        dir_key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
        error(unwritable(err, f"{dir_key}, paths.log_dir or CNNLAB_LOG_DIR"))
        sys.exit(EXIT_BAD_INPUT)
    except Exception as err:  # Hydra refusing a command line or composing a config
        if not _from_hydra(err):
            raise
        error(_hydra_message(err))
        sys.exit(EXIT_BAD_INPUT)


def _from_hydra(err: BaseException) -> bool:
    return isinstance(err, (HydraException, OmegaConfBaseException))


def _hydra_message(err: BaseException) -> str:
    """Hydra's message, with the key and value of a type error put first."""
    cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else err
    key, value = getattr(cause, "full_key", None), getattr(cause, "value", None)
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    lines = [
        line
        for line in lines[
            : next(
                (i for i, line in enumerate(lines) if line.startswith("Config search path")), None
            )
        ]
        if not line.startswith(("full_key:", "object_type=", "reference_type="))
    ]
    if key and value is not None:
        return f"{key}={value!r} is invalid: {' '.join(lines)}"
    group = re.search(r"Available options in '([^']+)'", str(err))
    missing = getattr(err, "missing_cfg_file", None) or ""
    if group and "/" in missing.removeprefix(group[1] + "/"):  # a value in a subfolder:
        return _options_below(group[1], missing) or " ".join(lines)  # Hydra lists the group's
    override = getattr(err, "override", None)  # Hydra's parser: the override it could not read
    if override:  # its text once, no caret, no Hydra prefix; what is wrong, then the link
        said = [
            ln
            for ln in lines
            if ln.strip("^ ") and override not in ln and not ln.startswith("See https")
        ]
        link = [ln for ln in lines if ln.startswith("See https")]
        why = " ".join(said) or "a character the override grammar does not allow"
        return " ".join([f"{override} cannot be read: {why}.", *link])
    if cause is not err:  # what Hydra was doing, then why it could not
        return f"{str(err).splitlines()[0].strip()} ({' '.join(lines)}){known_keys(cause)}"
    return " ".join(lines)


def _options_below(group: str, missing: str) -> str:
    """``experiment=ablation/dropuot`` (group ``experiment``): the options in
    ``experiment/ablation`` (cnnlab's configs and a ``--config-dir`` given) and the nearest
    one; '' when that folder has none."""
    folder, _, name = missing.rpartition("/")
    args = sys.argv[1:]
    dirs = [conf_dir()] + [
        Path(a.split("=", 1)[1] if "=" in a else args[i + 1])
        for i, a in enumerate(args)
        if a.split("=", 1)[0] in ("--config-dir", "-cd") and ("=" in a or i + 1 < len(args))
    ]
    found = {p.stem for d in dirs for p in (Path(d) / folder).glob("*.yaml")}
    names = sorted(n for n in found if not n.startswith("_"))  # _study: a base, no option
    if not names:
        return ""
    close = difflib.get_close_matches(name, names, n=1)
    below = folder.removeprefix(group + "/")
    hint = f"; did you mean {group}={below}/{close[0]}?" if close else ""
    return f"could not find '{missing}': the options in '{folder}' are {' '.join(names)}{hint}"


def known_keys(cause: BaseException | None) -> str:
    """For a key the config does not have: the nearest it has, and those of its node."""
    parent, key = getattr(cause, "parent_node", None), getattr(cause, "key", None)
    if not isinstance(parent, DictConfig) or key is None or key in parent:
        return ""
    known = [str(k) for k in parent if not str(k).startswith("_") and k != "hydra"]
    node = str(getattr(cause, "full_key", "") or "").rpartition(".")[0]
    close = difflib.get_close_matches(str(key), known, n=1)
    said = [f"did you mean {'.'.join(filter(None, (node, close[0])))}?"] if close else []
    if node and len(known) <= 12:  # the config's top level has too many to list
        said.append(f"{node} has: {', '.join(known)}")
    return f"; {' '.join(said)}" if said else ""


if __name__ == "__main__":
    main()

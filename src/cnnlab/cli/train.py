"""cnnlab-train: compose a run from conf/, train, test, and record it all in its run dir.

Exit codes: 0 done, 1 the run (or a job of the sweep) failed, 2 bad input (a config value,
a data, weights or checkpoint file) named in one line, 143 stopped by a signal.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import cnnlab.config.schema  # noqa: F401  (registers run_schema with Hydra's ConfigStore)
from cnnlab.config import conf_dir
from cnnlab.console import error
from cnnlab.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, ConfigError
from cnnlab.launch.summary import JobProblem, JobResult, SweepIncomplete

CONF_DIR = conf_dir()

# One id per process: two runs started in the same second get different run dirs.
_UID = f"{os.getpid():x}{secrets.token_hex(2)}"
OmegaConf.register_new_resolver("cnnlab_uid", lambda: _UID, replace=True)
# GPUs to ask a cluster for: those the trainer will use (trainer.accelerator/devices)
OmegaConf.register_new_resolver(
    "cnnlab_gpus", lambda accelerator, devices: (
        (devices if isinstance(devices, int) else 1) if accelerator in ("gpu", "cuda") else None),
    replace=True)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def task(cfg: DictConfig) -> JobResult:
    """One job: a run, or one job of a sweep (Hydra calls this once per job)."""
    from cnnlab.run.runner import run

    hc = HydraConfig.get()
    jobs = OmegaConf.select(hc, "launcher.n_jobs") if hc.mode == RunMode.MULTIRUN else 1
    try:
        return run(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task),
                   jobs=jobs if isinstance(jobs, int) else 1)
    except JobProblem as problem:
        if hc.mode == RunMode.MULTIRUN:
            raise  # the sweep goes on; its summary reports this job
        error(problem.reason)
        sys.exit(problem.code)


def main() -> None:
    """The console script: Hydra's errors and a sweep's failures as one line, no traceback."""
    from cnnlab.run.signals import Interrupted, watch

    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    watch()  # SIGTERM from here on ends the run (or sweep) in one line
    try:
        task()
    except Interrupted as err:
        error(str(err))
        sys.exit(EXIT_INTERRUPTED)
    except SweepIncomplete as err:
        error(str(err))
        sys.exit(EXIT_INTERRUPTED if watch().received else EXIT_FAILED)
    except ConfigError as err:
        error(str(err))
        sys.exit(EXIT_BAD_INPUT)
    except Exception as err:  # Hydra refusing a command line or composing a config
        if not _from_hydra(err):
            raise
        error(_hydra_message(err))
        sys.exit(EXIT_BAD_INPUT)


def _from_hydra(err: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(err, (HydraException, OmegaConfBaseException))


def _hydra_message(err: BaseException) -> str:
    """Hydra's message, with the key and value of a type error put first."""
    from omegaconf.errors import OmegaConfBaseException

    cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else err
    key, value = getattr(cause, "full_key", None), getattr(cause, "value", None)
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    lines = [line for line in lines[:next((i for i, line in enumerate(lines)
                                           if line.startswith("Config search path")), None)]
             if not line.startswith(("full_key:", "object_type=", "reference_type="))]
    if key and value is not None:
        return f"{key}={value!r} is invalid: {' '.join(lines)}"
    if cause is not err:  # what Hydra was doing, then why it could not
        return f"{str(err).splitlines()[0].strip()} ({' '.join(lines)})"
    return " ".join(lines)


if __name__ == "__main__":
    main()

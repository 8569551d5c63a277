"""cnnlab-train: compose a run from conf/, train, test, and record it all in its run dir."""

from __future__ import annotations

import os
import secrets
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

# One id per process: two runs started in the same second get different run dirs.
_UID = f"{os.getpid():x}{secrets.token_hex(2)}"
OmegaConf.register_new_resolver("cnnlab_uid", lambda: _UID, replace=True)


class RunFailed(RuntimeError):
    """A job failed with a message already shown to the user (Hydra moves on to the next)."""


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    from cnnlab.runner import run_and_report

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    code, value = run_and_report(cfg, Path(HydraConfig.get().runtime.output_dir),
                                 list(HydraConfig.get().overrides.task))
    if code == 0:
        return value
    if multirun:  # let the other jobs of the sweep run; Hydra reports the failure at the end
        raise RunFailed(f"job {HydraConfig.get().job.num} failed (see its results.json)")
    sys.exit(code)


if __name__ == "__main__":
    main()

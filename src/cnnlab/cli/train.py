"""cnnlab-train: compose a run from conf/, train, test, and record it all in its run dir."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

CONF_DIR = str(Path(__file__).resolve().parents[3] / "conf")

# One id per process: two runs started in the same second get different run dirs.
_UID = f"{os.getpid():x}{secrets.token_hex(2)}"
OmegaConf.register_new_resolver("cnnlab_uid", lambda: _UID, replace=True)


class RunFailed(RuntimeError):
    """A job failed with a message already shown to the user (Hydra moves on to the next)."""


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    from cnnlab.run.runner import run_and_report

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    n_jobs = OmegaConf.select(hc, "launcher.n_jobs")
    if multirun and cfg.torch_threads is None and isinstance(n_jobs, int) and n_jobs > 1:
        # n parallel jobs share the cores: each gets its 1/n, none oversubscribes
        with open_dict(cfg):
            cfg.torch_threads = max(1, (os.cpu_count() or 1) // n_jobs)
    code, value = run_and_report(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))
    if code == 0:
        return value
    if multirun:  # let the other jobs of the sweep run; Hydra reports the failure at the end
        raise RunFailed(f"job {HydraConfig.get().job.num} failed (see its results.json)")
    sys.exit(code)


if __name__ == "__main__":
    main()

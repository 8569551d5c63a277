"""The run's own top-level keys, typed: a renamed or misspelt key is refused at composition.

Registered in Hydra's ConfigStore as ``run_schema`` and listed first in conf/train.yaml's
defaults, so Hydra checks every top-level value's type while composing (``seed=abc`` never
reaches the runner) and refuses keys it does not know. Ranges are checked when the
runner turns the config into this object (``settings(cfg)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, cast

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cnnlab.config import arms
from cnnlab.cpu_malloc import MAX_MB as MALLOC_MAX_MB
from cnnlab.errors import ArgumentError, ConfigError, require
from cnnlab.results import RECORDED

RESUME = ("never", "auto")
MAX_THREADS = 1024
TEST_CKPT = ("best", "last")


@dataclass
class CpuMalloc:
    mmap_threshold_mb: int = 32
    trim_threshold_mb: int = 1024

    def __post_init__(self) -> None:
        for name in ("mmap_threshold_mb", "trim_threshold_mb"):
            require(
                f"cpu_malloc.{name}",
                getattr(self, name),
                lambda v: 0 <= v <= MALLOC_MAX_MB,
                f"an integer number of MiB in [0, {MALLOC_MAX_MB}]",
            )


@dataclass
class RunConfig:
    seed: int = 42
    group: Optional[str] = None
    job_type: str = "train"
    tags: List[str] = field(default_factory=list)
    arm: Optional[str] = None
    run_name: str = "run"
    train: bool = True
    test: bool = True
    test_ckpt: str = "best"
    train_eval_images: int = 10000
    resume: str = "never"
    ckpt_path: Optional[str] = None
    skip_completed: bool = True
    torch_threads: Optional[int] = None
    cpu_malloc: Optional[CpuMalloc] = field(default_factory=CpuMalloc)
    feature_cache: bool = True
    skip_unavailable_weights: bool = False
    optimized_metric: str = "val/acc_best"
    study_reference: Optional[str] = None
    study_epochs: Optional[int] = None  # an ablation study's budget (conf/experiment/ablation)
    study_budget: int = 1  # its multiple: study_budget=2 re-runs at twice it
    search: Any = None  # set per job by the Optuna sweeper (a plain dict)
    # the groups: each object checks its own arguments when it is built
    data: Any = None
    model: Any = None
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None
    paths: Any = None

    def __post_init__(self) -> None:
        require("seed", self.seed, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")
        require(
            "train_eval_images",
            self.train_eval_images,
            lambda v: v >= 0,
            "an integer >= 0 (0: not measured)",
        )
        require(
            "study_budget",
            self.study_budget,
            lambda v: v >= 1,
            "an integer >= 1 (a multiple of the study's epochs)",
        )
        require("resume", self.resume, lambda v: v in RESUME, f"one of {list(RESUME)}")
        require("test_ckpt", self.test_ckpt, lambda v: v in TEST_CKPT, f"one of {list(TEST_CKPT)}")
        require(
            "torch_threads",
            self.torch_threads,
            lambda v: v is None or 1 <= v <= MAX_THREADS,  # torch segfaults at 100000
            f"null or an integer in [1, {MAX_THREADS}]",
        )
        require(
            "run_name",
            self.run_name,
            # it names the run's folder under paths.log_dir: it may not climb out of it
            lambda v: (
                bool(v.strip())
                and not v.startswith(("/", "\\"))
                and ".." not in v.replace("\\", "/").split("/")
            ),
            "a non-empty name, not absolute and with no '..' part (it names a folder "
            "under paths.log_dir)",
        )
        require(
            "optimized_metric",
            self.optimized_metric,
            lambda v: v in RECORDED,
            f"one of the metrics a run records {list(RECORDED)}",
        )
        require(
            "ckpt_path",
            self.ckpt_path,
            lambda v: v is None or Path(v).is_file(),
            "null or the path of an existing checkpoint file",
        )


ConfigStore.instance().store(name="run_schema", node=RunConfig)

# What a run is called, from the job's overrides (cnnlab/config/arms.py): `arm` in
# conf/train.yaml, the W&B name, id folder and tags (conf/logger/wandb.yaml), the run dir
# of a multirun job (conf/hydra/default.yaml), one W&B folder per study (conf/paths).
for _name, _fn in (
    ("cnnlab_arm", arms.job_arm),
    ("cnnlab_run_name", arms.job_run_name),
    ("cnnlab_dirname", arms.dirname),
    ("cnnlab_study_dir", arms.study_dir),
    ("cnnlab_tags", arms.with_arm_tag),
    ("cnnlab_times", lambda a, b: int(a) * int(b)),
    # a value, or the default when it is null (oc.select gives null for a null key)
    ("cnnlab_or", lambda value, default: default if value is None else value),
):
    OmegaConf.register_new_resolver(_name, _fn, replace=True)

GROUPS = ("data", "model", "trainer", "logger", "callbacks", "paths", "hydra")


def settings(cfg: DictConfig) -> RunConfig:
    """The run's top-level settings, type- and range-checked; the groups are left to the
    objects they build. Raises ConfigError naming the key."""
    top = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k not in GROUPS
    }  # resolved in place: tags name arms
    try:
        return cast(
            RunConfig, OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), top))
        )
    except ArgumentError as err:
        raise ConfigError(err.name, err.value, err.allowed) from None
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        message = str(err).splitlines()[0]
        raise ConfigError(
            key, OmegaConf.select(OmegaConf.create(top), key, default=None), message
        ) from None

"""The Hydra side of cnnlab's Optuna search: config schema and plugin class, nothing else.

Hydra instantiates sweepers only from the ``hydra_plugins`` namespace, and imports every
module there on every run: this one imports no Optuna and hands over to
:mod:`cnnlab.search.sweep`, where the search is.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class CnnlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.cnnlab_optuna_sweeper.sweeper.CnnlabOptunaSweeper"
    _recursive_: bool = False  # sampler and pruner are built by the search, not by Hydra
    direction: str = "maximize"
    n_trials: int = 20
    n_jobs: Optional[int] = None  # trials per batch; null: the launcher's n_jobs or 1
    storage: Optional[str] = None  # null (memory), journal file, or SQLAlchemy URL
    study_name: str = "cnnlab"
    sampler: Optional[Dict[str, Any]] = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None}
    )
    pruner: Optional[Dict[str, Any]] = None  # conf/hydra/sweeper/pruner/*.yaml
    monitor: str = "val/acc"  # what jobs report to the pruner each epoch
    params: Optional[Dict[str, Any]] = None
    max_failures: Optional[int] = None  # failed jobs before this process gives up (n_trials)
    heartbeat_s: float = 30.0
    stale_after_s: float = 180.0  # a trial of another machine with no heartbeat
    poll_s: float = 5.0  # waiting for trials running elsewhere


ConfigStore.instance().store(
    group="hydra/sweeper", name="cnnlab_optuna", node=CnnlabOptunaSweeperConf, provider="cnnlab"
)


class CnnlabOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self.settings = settings
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        from cnnlab.search.sweep import run_search

        return run_search(self.settings, self, arguments)

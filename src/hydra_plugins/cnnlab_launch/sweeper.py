"""Hydra's basic sweeper, minus its raise on the first failed job."""

import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, cast

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from cnnlab.compat.hydra import basic_sweeper
from cnnlab.errors import ConfigError
from cnnlab.launch import summary
from cnnlab.results import STUDY_FILE, SWEEP_CONFIG
from cnnlab.run import rundir

log = logging.getLogger(__name__)


class ComposeOnce:
    """Hydra's config loader, except that a job's config composed to check its batch is
    handed to the launcher's identical request instead of being composed again (~0.4 s a
    job on a 2-core CPU; experiments/benchmark/README.md §6). What runs is then exactly
    what was checked. Pickled for joblib's or SLURM's job processes, it keeps nothing: a
    job there composes its own config, as before."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._kept: Dict[Tuple[str, ...], DictConfig] = {}

    def check(self, master_config: DictConfig, batch: Sequence[Sequence[str]]) -> None:
        """Compose each job of a batch (Hydra's error if one cannot be) and keep it."""
        self._kept = {}  # a batch's leftovers (a job never launched) go with it
        for overrides in batch:
            self._kept[tuple(overrides)] = self._loader.load_sweep_config(
                master_config=master_config, sweep_overrides=list(overrides)
            )

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: List[str]
    ) -> DictConfig:
        kept = self._kept.pop(tuple(sweep_overrides), None)
        if kept is not None:
            return kept
        return self._loader.load_sweep_config(
            master_config=master_config, sweep_overrides=sweep_overrides
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_loader", "_kept"):  # unpickling, copying
            raise AttributeError(name)
        return getattr(self._loader, name)

    def __reduce__(self) -> Any:
        return (ComposeOnce, (self._loader,))


class CnnlabSweeper(basic_sweeper()):  # type: ignore[misc]  # Hydra's, see compat
    """Every job of the sweep runs whatever happens to the others; at the end one table of
    all jobs, and ``SweepIncomplete`` (exit 1, no traceback) if any did not complete.

    Hydra's BasicSweeper reads each batch's results as it goes and raises on the first
    failed job, so the batches after it never run; this loop is its loop without that.
    """

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        loader: Any = ComposeOnce(hydra_context.config_loader)  # a ConfigLoader by delegation
        context = HydraContext(config_loader=loader, callbacks=hydra_context.callbacks)
        super().setup(hydra_context=context, task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.config is not None
        self.hydra_context.config_loader.check(self.config, batch)

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        # joblib's rule, checked before the sweep dir or any job: it raised after listing them
        n_jobs = OmegaConf.select(self.config, "hydra.launcher.n_jobs", default=None)
        if n_jobs is not None and (not isinstance(n_jobs, int) or n_jobs == 0):
            raise ConfigError(
                "hydra.launcher.n_jobs",
                n_jobs,
                "an integer other than 0 (jobs at once; -1: one per core, joblib's rule)",
            )
        if not str(self.config.hydra.sweep.dir).strip():
            raise ConfigError(
                "hydra.sweep.dir",
                self.config.hydra.sweep.dir,
                "a folder for the sweep's runs ('' would put them in the current directory)",
            )
        params = self._parse_config()
        params.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        parsed = parser.parse_overrides(params)
        for override in parsed:  # range(1,1): a sweep of no job would end "done", exit 0
            if override.is_sweep_override() and not list(override.sweep_string_iterator()):
                raise ConfigError(
                    override.get_key_element(),
                    override.get_value_string(),
                    "a sweep of no value: give at least one",
                )
        self.overrides = self.split_arguments(parsed, self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        self._check_sweep_dir(sweep_dir)
        returns: List[Sequence[JobReturn]] = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)  # a bad override: refused, nothing written
            if not (sweep_dir / SWEEP_CONFIG).exists():  # a relaunch keeps its sweep's
                sweep_dir.mkdir(parents=True, exist_ok=True)
                OmegaConf.save(self.config, sweep_dir / SWEEP_CONFIG)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            initial_job_idx += len(batch)
            returns.append(results)
        summary.finish([r for batch in returns for r in batch], sweep_dir)
        return returns

    def _check_sweep_dir(self, sweep_dir: Path) -> None:
        """A sweep dir holds one sweep: relaunched (to finish it, or with more seeds or arms)
        it goes on; another sweep or a search there would overwrite its multirun.yaml (which
        names its arms) and sweep.json, so it is refused before anything is written."""
        assert self.config is not None
        if (sweep_dir / STUDY_FILE).exists():
            raise ConfigError(
                "hydra.sweep.dir",
                str(sweep_dir),
                f"it holds an Optuna search's trials ({STUDY_FILE}); give a new sweep dir",
            )
        try:
            theirs = sweep_specs(OmegaConf.load(sweep_dir / SWEEP_CONFIG).hydra)
        except Exception:  # noqa: BLE001 - none, or not a sweep's: the jobs check their dirs
            return
        other = rundir.other_sweep(theirs, sweep_specs(self.config.hydra))
        if other:
            raise ConfigError(
                "hydra.sweep.dir",
                str(sweep_dir),
                f"it holds another sweep ({other}); give a new sweep dir, or that sweep's "
                "command to finish it or add seeds or arms",
            )


def sweep_specs(hydra: Any) -> List[str]:
    """What a sweep was launched with: its ``hydra.sweeper.params`` as ``k=v`` (as written,
    unresolved), then its command line's overrides."""
    params = OmegaConf.select(hydra, "sweeper.params", throw_on_resolution_failure=False)
    given = OmegaConf.to_container(params, resolve=False) if params else {}
    task = OmegaConf.select(hydra, "overrides.task", throw_on_resolution_failure=False) or []
    return [f"{k}={v}" for k, v in cast(dict, given).items()] + [str(o) for o in task]

"""Hydra's basic sweeper, minus its raise on the first failed job."""

import logging
from pathlib import Path
from typing import Any, List, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from cnnlab.compat.hydra import basic_sweeper
from cnnlab.launch import summary

log = logging.getLogger(__name__)


class CnnlabSweeper(basic_sweeper()):  # type: ignore[misc]  # Hydra's, see compat
    """Every job of the sweep runs whatever happens to the others; at the end one table of
    all jobs, and ``SweepIncomplete`` (exit 1, no traceback) if any did not complete.

    Hydra's BasicSweeper reads each batch's results as it goes and raises on the first
    failed job, so the batches after it never run; this loop is its loop without that.
    """

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        params = self._parse_config()
        params.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params), self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns: List[Sequence[JobReturn]] = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            initial_job_idx += len(batch)
            returns.append(results)
        summary.finish([r for batch in returns for r in batch], sweep_dir)
        return returns

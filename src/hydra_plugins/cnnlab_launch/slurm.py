"""Hydra's submitit SLURM launcher, watching its jobs instead of waiting on the first one.

submitit's launcher returns ``[job.results()[0] for job in jobs]``: the first cancelled job
raises and ends the sweep while the others run on unwatched, and a job that can never
start (more CPUs than any node has) is waited on without a word. Here every job is
watched until it ends; a job cancelled, timed out or failed becomes that job's outcome in
the sweep's summary; a job pending for a reason that will never clear is cancelled and
reported with that reason.
"""

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from cnnlab.errors import ConfigError
from cnnlab.launch.summary import JobProblem
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

# submitit and cnnlab.run are imported where used: Hydra imports every plugin on every run

log = logging.getLogger(__name__)

# squeue's pending reasons that no amount of waiting clears
NEVER = (
    "PartitionConfig",
    "ReqNodeNotAvail",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "PartitionDown",
    "PartitionInactive",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "DependencyNeverSatisfied",
    "QOSMaxCpuPerJobLimit",
    "QOSMaxGRESPerJob",
    "QOSMaxMemoryPerJob",
    "QOSMaxNodePerJobLimit",
    "QOSMaxWallDurationPerJobLimit",
    "AssocMaxCpuPerJobLimit",
    "AssocMaxWallDurationPerJobLimit",
    "AssocMaxNodesPerJobLimit",
    "JobHeldAdmin",
    "launch failed requeued held",
)
# SLURM job states → the job's status in the sweep summary
ENDED = {
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout",
    "PREEMPTED": "interrupted",
    "NODE_FAIL": "failed",
    "OUT_OF_MEMORY": "failed",
    "FAILED": "failed",
    "BOOT_FAIL": "failed",
    "DEADLINE": "timeout",
}


@dataclass
class CnnlabSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.cnnlab_launch.slurm.CnnlabSlurmLauncher"
    # seconds between looks at the jobs' states
    poll_s: float = 5.0


ConfigStore.instance().store(
    group="hydra/launcher", name="cnnlab_slurm", node=CnnlabSlurmConf(), provider="cnnlab"
)


class CnnlabSlurmLauncher(SlurmLauncher):
    def __init__(self, poll_s: float = 5.0, **params: Any) -> None:
        super().__init__(**params)
        self.poll_s = float(poll_s)

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """In the job: watch the stop signals first (before Hydra and torch start), so a
        time-limit warning that comes early is cnnlab's to handle."""
        from cnnlab.run.signals import watch

        watch()
        return super().__call__(*args, **kwargs)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        jobs = self._submit(job_overrides, initial_job_idx)
        return self._watch(jobs, job_overrides, initial_job_idx)

    def _executor(self):
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(
            folder=params.pop("submitit_folder"),
            cluster="slurm",
            slurm_max_num_timeout=params.pop("max_num_timeout"),
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{k if k in base else f"slurm_{k}": v for k, v in params.items()}
        )
        return executor

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        assert self.config is not None
        if shutil.which("sbatch") is None:  # submitit would fail deep in a subprocess call
            raise ConfigError(
                "hydra/launcher",
                "slurm",
                "a machine where SLURM's sbatch is "
                "on PATH (a cluster's login node); here run the sweep with "
                "hydra/launcher=basic or local_parallel",
            )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        args = []
        for i, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{i} : {' '.join(filter_overrides(overrides))}")
            args.append(
                (list(overrides), "hydra.sweep.dir", i, f"job_id_for_{i}", Singleton.get_state())
            )
        try:
            return self._executor().map_array(self, *zip(*args))
        except (subprocess.CalledProcessError, RuntimeError, ValueError) as err:
            text = getattr(err, "output", None) or getattr(err, "stderr", None) or str(err)
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            lines = [line for line in str(text).splitlines() if "error" in line.lower()]
            raise ConfigError(
                "hydra.launcher",
                ConfigError.NODE,
                "SLURM refused the jobs: " + ("; ".join(lines) or str(err)),
            ) from None

    def _watch(
        self, jobs: list, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list:
        """Every job's JobReturn once it has ended; never raises for one job."""
        outcomes: dict = {}
        while len(outcomes) < len(jobs):
            reasons = _pending_reasons([j.job_id for i, j in enumerate(jobs) if i not in outcomes])
            for i, job in enumerate(jobs):
                if i in outcomes:
                    continue
                reason = reasons.get(str(job.job_id))
                if reason in NEVER:
                    job.cancel(check=False)
                    outcomes[i] = _problem(
                        job_overrides[i],
                        "failed",
                        f"SLURM job {job.job_id} can never start "
                        f"(pending: {reason}); check the launcher's "
                        "partition, CPUs, memory and GPUs",
                    )
                elif job.done():
                    outcomes[i] = _outcome(job, job_overrides[i])
            if len(outcomes) < len(jobs):
                time.sleep(self.poll_s)
        return [outcomes[i] for i in range(len(jobs))]


def _pending_reasons(job_ids: list) -> dict:
    """squeue's reason for each pending job (array tasks as 'ARRAY_TASK')."""
    if not job_ids:
        return {}
    try:
        out = subprocess.run(
            [
                "squeue",
                "-h",
                "-r",
                "-t",
                "PD",
                "-o",
                "%i %r",
                "-j",
                ",".join(str(j) for j in job_ids),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split(None, 1) for line in out.splitlines() if " " in line)


def _outcome(job: Any, overrides: Sequence[str]) -> JobReturn:
    """The job's own JobReturn, or one that says how SLURM ended it."""
    try:
        result = job.results()[0]
    except Exception as err:  # noqa: BLE001 - no result: SLURM ended the job
        state = _final_state(job)
        return _problem(
            overrides,
            _status(state) or "failed",
            f"SLURM job {job.job_id} ended {state}: {_last_line(job, err)}",
        )
    if result.status == JobStatus.COMPLETED:  # it finished, whatever SLURM did after
        return result
    state = _final_state(job)
    if _status(state) in ("cancelled", "timeout"):  # it recorded its stop; SLURM says why
        return _problem(
            overrides,
            _status(state),
            f"SLURM job {job.job_id} ended {state}; "
            "relaunch the same command with hydra.sweep.dir=<this sweep dir> "
            "resume=auto to finish it",
        )
    return result


def _status(state: str):
    return next((s for prefix, s in ENDED.items() if state.startswith(prefix)), None)


def _final_state(job: Any, wait_s: float = 30.0) -> str:
    """SLURM's state of an ended job, asked afresh (a job may have written its result a
    moment before SLURM records it CANCELLED or TIMEOUT)."""
    deadline = time.time() + wait_s
    while True:
        state = str(job.get_info(mode="force").get("State") or "UNKNOWN").split()[0]
        if state not in ("RUNNING", "COMPLETING", "PENDING", "UNKNOWN") or time.time() > deadline:
            return state
        time.sleep(1.0)


def _last_line(job: Any, err: BaseException) -> str:
    try:
        lines = [line for line in Path(job.paths.stderr).read_text().splitlines() if line.strip()]
        cnnlab = [line for line in lines if line.startswith("cnnlab:")]
        return (cnnlab or lines or [str(err)])[-1]
    except OSError:
        return str(err).splitlines()[0]


def _problem(overrides: Sequence[str], status: str, reason: str) -> JobReturn:
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    ret.return_value = JobProblem(status, reason)
    return ret

"""How much of the machine a run takes: torch threads and glibc's malloc."""

from __future__ import annotations

import os

import torch

from cnnlab.run.cpu_malloc import keep_freed_memory


def cores() -> int:
    """CPUs this process may use: SLURM's allocation, else the affinity mask."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit():
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def torch_threads(explicit: int | None, jobs: int = 1, processes: int = 1) -> int | None:
    """Threads for torch: ``explicit`` wins; else this job's share of the cores when it
    shares them (parallel jobs, DDP processes) or was given some (SLURM); else None
    (torch's own choice)."""
    if explicit:
        return explicit
    share = max(1, jobs) * max(1, processes)
    if share == 1 and "SLURM_CPUS_PER_TASK" not in os.environ:
        return None
    return max(1, cores() // share)


def apply(threads: int | None, cpu_malloc: dict | None) -> None:
    skip_failing_nvml_probe()
    if threads:
        torch.set_num_threads(int(threads))
    if cpu_malloc:
        keep_freed_memory(**cpu_malloc)


def skip_failing_nvml_probe() -> None:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import, so torch asks NVML for the
    GPU count; where there is no NVML library (a CPU-only machine) every ask dlopens it in
    vain and falls back to the CUDA runtime's count, uncached: Adam asks at every step
    (~0.1-0.4 ms a step here, experiments/benchmark/README.md). Without NVML the fallback is
    the answer anyway, so ask it directly."""
    import ctypes

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the name torch loads
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]

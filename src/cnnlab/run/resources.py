"""How much of the machine a run takes: torch threads and glibc's malloc."""

from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path

import torch

from cnnlab.cpu_malloc import keep_freed_memory

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cores() -> tuple[int, str]:
    """CPUs this process may use, and why: SLURM's allocation, else the smaller of the
    affinity mask and the cgroup's CPU quota (a container's or a systemd slice's limit)."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit():
        return int(slurm), f"SLURM_CPUS_PER_TASK={slurm}"
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1, "os.cpu_count()"
    quota = cgroup_cpus()
    if quota is not None and quota < affinity:
        return quota, f"cgroup cpu.max quota of {quota} CPUs"
    return affinity, f"CPU affinity: {affinity} core{'s' * (affinity != 1)}"


def cgroup_cpus(path: Path | None = None) -> int | None:
    """The cgroup v2 CPU quota rounded up to whole CPUs (``cpu.max`` "QUOTA PERIOD"), or
    None when there is no quota ("max") or no such file."""
    try:
        quota, period = (path or CPU_MAX).read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def torch_threads(explicit: int | None, jobs: int = 1, processes: int = 1) -> tuple[int, str]:
    """Threads for torch and why: ``explicit`` wins; else this job's share of the CPUs it
    may use (never more, so a quota or a shared allocation is not oversubscribed)."""
    if explicit:
        return int(explicit), "torch_threads"
    count, why = cores()
    share = max(1, jobs) * max(1, processes)
    if share > 1:
        why += f", shared by {share} {'jobs' if processes == 1 else 'processes'}"
    return max(1, count // share), why


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
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the name torch loads
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]

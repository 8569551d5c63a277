"""Torch's thread count follows what the machine can actually give this process."""

import os

from cnnlab.run import resources


def test_threads_follow_the_slurm_allocation(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert resources.torch_threads(None) == (3, "SLURM_CPUS_PER_TASK=3")
    n, why = resources.torch_threads(None, jobs=3)
    assert n == 1 and "shared by 3 jobs" in why


def test_threads_follow_the_cgroup_quota_below_the_affinity(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(resources, "CPU_MAX", cpu_max)
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs: 2 threads, not 16
    assert resources.torch_threads(None) == (2, "cgroup cpu.max quota of 2 CPUs")
    cpu_max.write_text("max 100000\n")  # no quota: the affinity mask
    assert resources.torch_threads(None) == (16, "CPU affinity: 16 cores")
    assert resources.torch_threads(None, processes=4)[0] == 4
    assert resources.torch_threads(5) == (5, "torch_threads")

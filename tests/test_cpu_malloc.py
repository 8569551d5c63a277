"""The malloc tuning is applied where glibc is there and is a harmless no-op elsewhere."""

import ctypes
import sys

import pytest

from cnnlab import cpu_malloc


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL("libc.so.6"), "mallopt")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc(), reason="needs glibc's mallopt (Linux with glibc)")
def test_glibc_accepts_the_configured_thresholds():
    assert cpu_malloc.keep_freed_memory(mmap_threshold_mb=32, trim_threshold_mb=1024)


def test_without_glibc_nothing_is_touched(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cpu_malloc.keep_freed_memory(mmap_threshold_mb=32, trim_threshold_mb=1024) is False


def test_without_nvml_the_cuda_check_is_not_an_nvml_probe_at_every_optimizer_step(monkeypatch):
    import os

    import torch

    from cnnlab.run import resources

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        pytest.skip("NVML is installed here: torch's NVML-based check works and stays on")
    except OSError:
        pass
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as importing Lightning does
    resources.apply(None, None)
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ
    assert torch.cuda.is_available() is False  # the answer NVML's fallback gave

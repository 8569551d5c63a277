"""What a run needs to be rerun and trusted: versions, git state, device, data checksums."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import cnnlab

PACKAGES = (
    "torch",
    "torchvision",
    "lightning",
    "hydra-core",
    "omegaconf",
    "wandb",
    "torchmetrics",
    "numpy",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "cnnlab": cnnlab.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(where: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the cnnlab source tree (None outside a git checkout)."""
    where = where or Path(cnnlab.__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def cpu_model() -> str | None:
    """The CPU's name (platform.processor() is empty on most Linux machines)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def device_info() -> dict[str, Any]:
    # the CPU's vector ISA picks torch's kernels: another one gives other last bits
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "gpu": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def data_checksums(files: list[Path]) -> dict[str, str | None]:
    return {p.name: (_md5_of(p.resolve(), *_stamp(p)) if p.exists() else None) for p in files}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


# the jobs of an in-process sweep hash the same 55 MB of MNIST: once per process, keyed by
# size and mtime so a file changed in between is hashed again
@functools.lru_cache(maxsize=32)
def _md5_of(path: Path, size: int, mtime_ns: int) -> str:
    return md5(path)


def to_json(prov: dict[str, Any]) -> str:
    return json.dumps(prov, indent=2) + "\n"


def collect(seed: int, overrides: list[str], data_files: list[Path]) -> dict[str, Any]:
    return {
        "seed": seed,
        "overrides": overrides,
        "command": sys.argv,
        "versions": package_versions(),
        "git": git_state(),
        "device": device_info(),
        "data_md5": data_checksums(data_files),
    }

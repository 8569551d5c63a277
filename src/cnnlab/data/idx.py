"""Checks on IDX files (the MNIST file format) before torchvision reads them."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from cnnlab.errors import BadInput

# The four files torchvision's MNIST-style datasets read from ``ROOT/<Name>/raw/``.
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_DTYPE_SIZES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def idx_shape(path: Path) -> tuple[int, ...]:
    """Shape declared by an IDX file's header, after checking the file holds exactly that."""
    size = path.stat().st_size  # the header and the size: the file's 47 MB are not read
    with open(path, "rb") as f:
        data = f.read(4 + 4 * 255)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPE_SIZES:
        raise BadInput(f"data file {path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise BadInput(f"data file {path} is truncated: its header is incomplete")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + _DTYPE_SIZES[data[2]] * _prod(shape)
    if size != expected:
        raise BadInput(
            f"data file {path} is corrupt or truncated: its header declares shape {list(shape)} "
            f"({expected} bytes) but the file has {size} bytes")
    return shape


def gunzip_missing(raw: Path) -> None:
    """Unpack ``name.gz`` beside a missing ``name`` (how Debian and mirrors ship them)."""
    for name in IDX_FILES:
        target, packed = raw / name, raw / f"{name}.gz"
        if not target.exists() and packed.exists():
            with gzip.open(packed, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for v in shape:
        out *= v
    return out

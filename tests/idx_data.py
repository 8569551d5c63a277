"""Tiny MNIST-format datasets written by the tests themselves."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from cnnlab.data.idx import IDX_FILES

# IDX type codes (the third magic byte) and the big-endian dtype each stores
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> None:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(IDX_TYPES[type_code]).tobytes())


def make_dataset(
    root: Path, folder: str = "MNIST", n_train: int = 200, n_test: int = 50, seed: int = 0
) -> Path:
    """Learnable toy digits: class c is a bright bar at row 2c+4, plus noise."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = []
    for n in (n_train, n_test):
        labels = rng.integers(0, 10, size=n)
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 * c + 4 : 2 * c + 6, 4:24] = 255
        arrays += [images, labels]
    for name, array in zip(IDX_FILES, (arrays[0], arrays[1], arrays[2], arrays[3])):
        write_idx(raw / name, array)
    return root

"""Checks on IDX files (the MNIST file format) before torchvision reads them."""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
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
_DTYPE_NAMES = {
    0x08: "uint8",
    0x09: "int8",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
UINT8 = 0x08  # what MNIST-style files hold: pixels 0..255, labels 0..255


@dataclass(frozen=True)
class IdxHeader:
    path: Path
    dtype: int
    shape: tuple[int, ...]

    @property
    def dtype_name(self) -> str:
        return _DTYPE_NAMES[self.dtype]


def idx_header(path: Path) -> IdxHeader:
    """An IDX file's header, after checking the file is a readable file whose size is what
    the header declares. Reads the header only (a few bytes), never the data."""
    if path.is_dir():
        raise BadInput(f"data file {path} is a directory, not a file")
    if path.exists() and not path.is_file():  # a FIFO or device would block or never end
        raise BadInput(f"data file {path} is not a regular file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(4)
            ndim = head[3] if len(head) == 4 else 0
            dims = f.read(4 * ndim)
    except OSError as err:  # unreadable: permissions, a dangling link, an I/O error
        raise BadInput(f"data file {path} cannot be read ({err.strerror or err})") from None
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPE_SIZES:
        raise BadInput(f"data file {path} is not an IDX file (bad magic number)")
    if len(dims) < 4 * ndim:
        raise BadInput(f"data file {path} is truncated: its header is incomplete")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + _DTYPE_SIZES[head[2]] * _prod(shape)
    if size != expected:
        raise BadInput(
            f"data file {path} is corrupt or truncated: its header declares shape {list(shape)} "
            f"({expected} bytes) but the file has {size} bytes"
        )
    return IdxHeader(path, head[2], shape)


def idx_shape(path: Path) -> tuple[int, ...]:
    """Shape declared by an IDX file's header, after checking the file holds exactly that."""
    return idx_header(path).shape


def check_pair(images: Path, labels: Path, image_hw: tuple[int, int], num_classes: int) -> int:
    """One split's images and labels files, as MNIST-style data: uint8 images of
    ``image_hw``, as many uint8 labels, each in ``0..num_classes-1``. Returns the count.

    Each problem is one BadInput naming the file and what is wrong (a labels file where
    the images should be, the test set in place of the training set, EMNIST's letters...).
    Reads the headers, and the labels themselves (one byte each).
    """
    im, lb = idx_header(images), idx_header(labels)
    for h in (im, lb):
        if h.dtype != UINT8:
            raise BadInput(
                f"data file {h.path} holds {h.dtype_name} values; MNIST-style "
                "files hold uint8 (IDX type 0x08)"
            )
    want = [*image_hw]
    if len(im.shape) != 3:
        what = (
            "labels (1-D): a labels file in place of the images file?"
            if len(im.shape) == 1
            else f"an array of shape {list(im.shape)}"
        )
        raise BadInput(
            f"data file {images} holds {what}; expected images of shape "
            f"[count, {want[0]}, {want[1]}]"
        )
    if list(im.shape[1:]) != want:
        raise BadInput(
            f"data file {images} holds {im.shape[1]}x{im.shape[2]} images; the "
            f"dataset (data.name) and the net expect {want[0]}x{want[1]}"
        )
    if len(lb.shape) != 1:
        what = (
            "images (3-D): an images file in place of the labels file?"
            if len(lb.shape) == 3
            else f"an array of shape {list(lb.shape)}"
        )
        raise BadInput(f"data file {labels} holds {what}; expected one label per image")
    if im.shape[0] != lb.shape[0]:
        raise BadInput(
            f"data file {images} holds {im.shape[0]} images but {labels.name} "
            f"holds {lb.shape[0]} labels: the two files are not one split "
            "(a test file in place of a training file?)"
        )
    with open(labels, "rb") as f:
        f.seek(8)
        top = max(f.read(), default=0)
    if top >= num_classes:
        raise BadInput(
            f"data file {labels} holds label {top}, outside the classes "
            f"0..{num_classes - 1} (data.num_classes={num_classes})"
        )
    return im.shape[0]


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

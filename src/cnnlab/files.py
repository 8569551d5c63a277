"""Files other people may have written: read as bounded data from inside the folder given,
and outputs written without following a link planted where they go.

A shared study folder or run dir can hold a symlink to any file of the reader's (their
``~/.ssh``, a file outside the study) or a file of any size. Reading goes through
:func:`read_text`: a regular file, under a stated size, and (given a root) inside that
root once links are resolved. Writing goes through :func:`write_bytes`: a new file renamed
into place, so a symlink standing at the destination is replaced, never written through.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any

from cnnlab.errors import BadInput

MiB = 2**20
# a cnnlab record is kilobytes; these limits are far above any real one and far below
# what would hang a reader
LIMITS = {"overrides": 1 * MiB, "config": 4 * MiB, "record": 32 * MiB}


def inside(path: Path | str, root: Path | str) -> bool:
    """Whether ``path``, links resolved, is ``root`` or below it."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False
    return True


def read_text(path: Path | str, kind: str, root: Path | str | None = None) -> str:
    """The text of a regular file of at most ``LIMITS[kind]`` bytes (inside ``root`` when
    given), or BadInput in one line naming the file and what is wrong (never its content).
    FileNotFoundError is left to the caller, for which a missing file may be normal."""
    data = read_bytes(path, kind, root)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text: not read") from None


def read_bytes(path: Path | str, kind: str, root: Path | str | None = None) -> bytes:
    """:func:`read_text`'s bytes, with the same checks."""
    path, limit = Path(path), LIMITS[kind]
    if root is not None and not inside(path, root):
        raise BadInput(f"{path} leads outside {root} (a symlink?): not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise
    except OSError as err:
        raise BadInput(f"{path} cannot be read: {err.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BadInput(f"{path} is not a regular file: not read")
        if info.st_size > limit:
            raise BadInput(
                f"{path} is {info.st_size / MiB:.1f} MiB, over the "
                f"{limit / MiB:.0f} MiB a cnnlab {kind} file may have: not read"
            )
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while we read it
        raise BadInput(
            f"{path} is over the {limit / MiB:.0f} MiB a cnnlab {kind} file may have: not read"
        )
    return data


def write_bytes(path: Path | str, data: bytes | str) -> None:
    """Write ``path`` whole through a temporary file renamed over it: a symlink planted at
    ``path`` is replaced by the file, not followed; a directory there is refused."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise BadInput(f"{path} is a directory: cannot write a file there")
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def output_dir(path: Path | str, what: str) -> Path:
    """A folder cnnlab writes into, made if missing; refused (one line) when it is a
    symlink that someone else could have planted, or is not a folder."""
    path = Path(path)
    if path.is_symlink():
        raise BadInput(
            f"{what} {path} is a symlink: cnnlab does not write through links "
            "it did not make (remove it, or pass a real folder)"
        )
    if path.exists() and not path.is_dir():
        raise BadInput(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInput(f"{what} {path} cannot be made: {err.strerror}") from None
    return path


def write_figure(fig: Any, path: Path | str, dpi: int = 110) -> None:
    """A matplotlib figure as a PNG, written as :func:`write_bytes` writes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_bytes(path, buffer.getvalue())

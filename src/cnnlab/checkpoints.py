"""Checkpoint files: read as data (never as code), written whole or not at all."""

from __future__ import annotations

import errno
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from rich.console import Console

from cnnlab.errors import BadInput


class UnreadableCheckpoint(BadInput):
    """A checkpoint path that gives no checkpoint; ``reason`` says what it is instead."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"checkpoint {path} is {reason}")
        self.reason = reason


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A cnnlab/Lightning checkpoint, loaded without unpickling arbitrary objects."""
    path = Path(path)
    if path.is_dir():
        last = path / "checkpoints" / "last.ckpt"
        hint = f"e.g. {last}" if last.is_file() else "a .ckpt file"
        raise UnreadableCheckpoint(path, f"a folder: give a checkpoint file ({hint})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:  # no permission, an I/O error: the file is not to blame
        raise UnreadableCheckpoint(path, f"unreadable ({err.strerror or err})") from None
    except Exception as err:
        if not zipfile.is_zipfile(path):  # torch's text would blame weights_only
            what = "an empty file" if path.stat().st_size == 0 else "not the zip torch.save writes"
            raise UnreadableCheckpoint(
                path, f"corrupt or not a torch checkpoint ({what})"
            ) from None
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise UnreadableCheckpoint(path, f"corrupt or not a torch checkpoint: {first}") from None


class DiskFull(BadInput):
    """No space left to write a file of the run (the path and what was being written)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, through a temporary file renamed into place.

    A kill or a full disk during a save leaves the previous file untouched and no
    truncated one beside it; a full disk is reported in one line naming the file.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        buffer = io.BytesIO()  # serialised first: a full disk then fails the write, plainly
        torch.save(checkpoint, buffer)
        try:
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(
                    f"no space left on the device to write the checkpoint {path} "
                    "(nothing was written; free space and resume with "
                    "resume=auto)"
                ) from None
            raise


def remove_stale_temps(folders: set[Path]) -> None:
    """The temporary files of checkpoint writes that a kill cut short (``.NAME.ckpt.tmpPID``):
    removed when a run next holds its dir, since no other process writes there then."""
    for folder in folders:
        for tmp in Path(folder).glob(".*.ckpt.tmp*") if Path(folder).is_dir() else ():
            tmp.unlink(missing_ok=True)


def resume_checkpoint(run_dir: Path) -> str | None:
    """last.ckpt, or the newest checkpoint that loads if last.ckpt cannot be read."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    others = sorted(
        (p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for path in [folder / "last.ckpt", *others]:
        if not path.exists():
            continue
        try:
            load_checkpoint(path)
        except BadInput:
            Console(stderr=True, soft_wrap=True, markup=False).print(
                f"resume: {path} is unreadable, trying an older one"
            )
            continue
        return str(path)
    return None

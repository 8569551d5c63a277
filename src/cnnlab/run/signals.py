"""The signals that stop a run, handled the way Lightning and submitit already do.

- SIGTERM (``kill``, ``timeout``, ``scancel``, preemption): Lightning's own handler raises
  ``SIGTERMException`` after the current batch, and cnnlab's ``CheckpointOnStop`` saves
  there. Outside a Lightning loop (building, reading data) it stops the run at once.
- SIGINT (Ctrl-C) takes the same path as SIGTERM (Lightning alone would exit on the spot,
  with no checkpoint), and the record names it.
- SIGUSR2, submitit's warning that a SLURM time limit is near (SLURM may send it a minute
  early): submitit would checkpoint, requeue and exit on the spot, mid-step. cnnlab notes
  it and trains on; at the limit SLURM sends SIGTERM, the path above checkpoints after the
  current batch, and then submitit's own handler requeues the job (its ``checkpoint()``,
  ``scontrol requeue``) and exits. The requeued job resumes from that checkpoint.

This module only records which signal came and routes it; it keeps no protocol of its own.
Its state belongs to one command or run (``watching()``): the handlers are installed for it
and the previous ones put back after it, so a later run in the same process starts clean.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
from types import FrameType
from typing import Any


def exit_code(received: str | None) -> int:
    """128 + the stop signal's number, as a shell reports a process that signal ended: 130
    for Ctrl-C (SIGINT), 143 for SIGTERM (and for a stop whose signal is not known)."""
    from cnnlab.errors import EXIT_INTERRUPTED

    name = (received or "").split(" ", 1)[0]
    try:
        return 128 + signal.Signals[name].value
    except KeyError:
        return EXIT_INTERRUPTED


class Interrupted(Exception):
    """A stop signal that arrived outside a Lightning loop."""


class StopSignals:
    """One per command or run (``watching()``), installed before Hydra starts, so a signal
    at any point of a run or sweep ends it in one line."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.time_limit_near = False
        self._previous: dict[int, Any] = {}
        self._usr2_owner: Any = None  # submitit's handler, called after our checkpoint
        self._done = False

    def install(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals can only be handled in the main thread
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_term)
        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_int)
        previous = signal.signal(signal.SIGUSR2, self._on_usr2)
        self._previous[signal.SIGUSR2] = previous
        if callable(previous) and "submitit" in getattr(previous, "__module__", "") + repr(
            previous
        ):
            self._usr2_owner = previous
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        if self._done:
            return
        again = self.received is not None  # a second signal: the first is being handled
        self.received = self.received or signal.Signals(signum).name + (
            " at the SLURM time limit" if self.time_limit_near else ""
        )
        if not again and signal.getsignal(signal.SIGTERM) == self._on_term:
            raise Interrupted(f"stopped by {self.received}")  # no Lightning loop is watching

    def _on_int(self, signum: int, frame: FrameType | None) -> None:
        """Ctrl-C: whatever handles SIGTERM now (Lightning's handler in a fit, which calls
        ours after it; ours elsewhere) handles it, so it stops the way SIGTERM does."""
        if self._done:
            return
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler) and handler != self._on_term:
            self.received = self.received or signal.Signals(signum).name
        (handler if callable(handler) else self._on_term)(signum, frame)

    def _on_usr2(self, signum: int, frame: FrameType | None) -> None:
        self.time_limit_near = True  # train on: SLURM's SIGTERM at the limit stops the run

    def hand_over(self) -> None:
        """After the run recorded its stop at a time limit: let submitit requeue the job (it
        calls the launcher's ``checkpoint()``, ``scontrol requeue`` and exits)."""
        if self._usr2_owner is not None and self.time_limit_near:
            owner, self._usr2_owner, self._done = self._usr2_owner, None, True
            owner(signal.SIGUSR2, None)


_WATCHER: StopSignals | None = None


@contextlib.contextmanager
def watching():
    """The StopSignals of this command or run: the one already watching (a sweep's jobs share
    their command's), or a new one, installed here and removed, handlers restored, after."""
    global _WATCHER
    if _WATCHER is not None:
        yield _WATCHER
        return
    _WATCHER = StopSignals().install()
    try:
        yield _WATCHER
    finally:
        _WATCHER.uninstall()
        _WATCHER = None


def received() -> str | None:
    """The stop signal the command or run being watched got, if any (None when unwatched)."""
    return _WATCHER.received if _WATCHER is not None else None


def watch() -> StopSignals:
    """The StopSignals watching now; outside ``watching()`` (a SLURM job's process, before
    Hydra starts), a new one that watches until the process exits."""
    global _WATCHER
    if _WATCHER is None:
        _WATCHER = StopSignals().install()
        atexit.register(_WATCHER.uninstall)  # a signal while the interpreter exits: no traceback
    return _WATCHER

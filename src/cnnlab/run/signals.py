"""The signals that stop a run, handled the way Lightning and submitit already do.

- SIGTERM (``kill``, ``timeout``, ``scancel``, preemption): Lightning's own handler raises
  ``SIGTERMException`` after the current batch, and cnnlab's ``CheckpointOnStop`` saves
  there. Outside a Lightning loop (building, reading data) it stops the run at once.
- SIGUSR2, submitit's warning that a SLURM time limit is near (SLURM may send it a minute
  early): submitit would checkpoint, requeue and exit on the spot, mid-step. cnnlab notes
  it and trains on; at the limit SLURM sends SIGTERM, the path above checkpoints after the
  current batch, and then submitit's own handler requeues the job (its ``checkpoint()``,
  ``scontrol requeue``) and exits. The requeued job resumes from that checkpoint.

This module only records which signal came and routes it; it keeps no protocol of its own.
"""

from __future__ import annotations

import atexit
import signal
import threading
from types import FrameType
from typing import Any


class Interrupted(Exception):
    """A stop signal that arrived outside a Lightning loop."""


class StopSignals:
    """One per process (``watch()``), installed before Hydra starts, so a signal at any
    point of a run or sweep ends it in one line."""

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
        previous = signal.signal(signal.SIGUSR2, self._on_usr2)
        self._previous[signal.SIGUSR2] = previous
        if callable(previous) and "submitit" in getattr(previous, "__module__", "") + repr(previous):
            self._usr2_owner = previous
        atexit.register(self.uninstall)  # a signal while the interpreter exits: no traceback
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
            " at the SLURM time limit" if self.time_limit_near else "")
        if not again and signal.getsignal(signal.SIGTERM) == self._on_term:
            raise Interrupted(f"stopped by {self.received}")  # no Lightning loop is watching

    def _on_usr2(self, signum: int, frame: FrameType | None) -> None:
        self.time_limit_near = True  # train on: SLURM's SIGTERM at the limit stops the run

    def hand_over(self) -> None:
        """After the run recorded its stop at a time limit: let submitit requeue the job (it
        calls the launcher's ``checkpoint()``, ``scontrol requeue`` and exits)."""
        if self._usr2_owner is not None and self.time_limit_near:
            owner, self._usr2_owner, self._done = self._usr2_owner, None, True
            owner(signal.SIGUSR2, None)


_WATCHER: StopSignals | None = None


def watch() -> StopSignals:
    """The process's StopSignals, installed on first use."""
    global _WATCHER
    if _WATCHER is None:
        _WATCHER = StopSignals().install()
    return _WATCHER

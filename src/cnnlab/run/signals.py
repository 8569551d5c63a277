"""The signals that stop a run, handled the way Lightning and submitit already do.

- SIGTERM (``kill``, ``timeout``, ``scancel``, preemption): Lightning's own handler raises
  ``SIGTERMException`` after the current batch, and cnnlab's ``CheckpointOnStop`` saves
  there. Outside a Lightning loop (building, reading data) it stops the run at once.
- SIGUSR2, submitit's warning before a SLURM time limit: submitit would checkpoint,
  requeue and exit on the spot, mid-step. cnnlab first turns it into the SIGTERM path
  above (a consistent checkpoint after a whole batch), then hands it to submitit's
  handler, which requeues the job through ``checkpoint()`` and exits; the requeued job
  resumes from that checkpoint.

This module only records which signal came and routes it; it keeps no protocol of its own.
"""

from __future__ import annotations

import os
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
        self._previous: dict[int, Any] = {}
        self._usr2_owner: Any = None  # submitit's handler, called after our checkpoint

    def install(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals can only be handled in the main thread
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_term)
        previous = signal.signal(signal.SIGUSR2, self._on_usr2)
        self._previous[signal.SIGUSR2] = previous
        if callable(previous) and "submitit" in getattr(previous, "__module__", "") + repr(previous):
            self._usr2_owner = previous
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name
        if signal.getsignal(signal.SIGTERM) == self._on_term:  # no Lightning loop is watching
            raise Interrupted(f"stopped by {self.received}")

    def _on_usr2(self, signum: int, frame: FrameType | None) -> None:
        self.received = "SIGUSR2 (SLURM time limit ahead)"
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's path: stop after this batch

    def hand_over(self) -> None:
        """After the run recorded its stop: let submitit requeue a job warned of its time
        limit (it calls the launcher's ``checkpoint()``, requeues and exits)."""
        if self._usr2_owner is not None and self.received and "SIGUSR2" in self.received:
            owner, self._usr2_owner = self._usr2_owner, None
            owner(signal.SIGUSR2, None)


_WATCHER: StopSignals | None = None


def watch() -> StopSignals:
    """The process's StopSignals, installed on first use."""
    global _WATCHER
    if _WATCHER is None:
        _WATCHER = StopSignals().install()
    return _WATCHER

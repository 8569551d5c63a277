"""Which RUNNING trials still have a live sweeper behind them.

Each trial a cnnlab sweeper asks carries its owner (host, boot id, pid, process start
time, a random token) and, while it runs, a heartbeat written every ``heartbeat_s``. A
RUNNING trial is stale, so failed and asked again, when

- its owner was on this machine and that process is gone (or the pid now belongs to
  another process): known at once, so a relaunch after a crash goes on immediately;
- its owner is on another machine and its heartbeat is older than ``stale_after_s``
  (clocks are assumed to agree to well within that; NTP does);
- it has no cnnlab owner (not asked by a cnnlab sweeper, or its sweeper died between
  asking and writing the owner) and started more than ``stale_after_s`` ago.

Optuna's own heartbeat (``RDBStorage(heartbeat_interval=...)``) is not used: JournalStorage
has none, and it cannot tell at once that a process on this machine is dead.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OWNER_ATTR = "cnnlab:owner"
HEARTBEAT_ATTR = "cnnlab:heartbeat"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), on Linux."""
    text = _read(f"/proc/{pid}/stat")
    return text.rsplit(")", 1)[1].split() if text and ")" in text else None


def _start_time(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None  # field 22: starttime


@dataclass(frozen=True)
class Owner:
    host: str
    boot: str
    pid: int
    start: str | None
    token: str

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(
            socket.gethostname(),
            _read("/proc/sys/kernel/random/boot_id") or "",
            pid,
            _start_time(pid),
            secrets.token_hex(6),
        )

    def attr(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "asked_at": time.time()}

    def verdict(self, other: dict[str, Any]) -> bool | None:
        """Is the process that ``other`` describes alive? None: not on this machine."""
        if other.get("host") != self.host or other.get("boot") != self.boot:
            return None
        if other.get("token") == self.token:
            return True
        pid = other.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return None
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, another user's
        except OSError:
            return None
        fields = _proc_stat(pid)
        if fields is None:  # no /proc: the pid exists, trust it
            return True
        if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
            return False
        start = fields[19] if len(fields) > 19 else None
        return not (other.get("start") and start and start != other.get("start"))


def is_stale(trial: Any, me: Owner, now: float, stale_after_s: float) -> bool:
    """Whether a RUNNING trial (a FrozenTrial) has no live sweeper behind it any more."""
    attrs = trial.system_attrs
    owner = attrs.get(OWNER_ATTR)
    if isinstance(owner, dict):
        verdict = me.verdict(owner)
        if verdict is not None:
            return not verdict
    last = attrs.get(HEARTBEAT_ATTR) or (owner or {}).get("asked_at")
    if last is None and trial.datetime_start is not None:
        last = trial.datetime_start.timestamp()
    return last is not None and now - float(last) > stale_after_s


class Heartbeat:
    """Writes a heartbeat to each trial this process is running, every ``interval_s``."""

    def __init__(self, storage: Any, interval_s: float) -> None:
        self.storage, self.interval_s = storage, interval_s
        self._trials: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cnnlab-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._trials.add(trial_id)
        self._beat(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._trials.discard(trial_id)

    def _beat(self, trial_id: int) -> None:
        try:
            self.storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except Exception as err:  # finished meanwhile, storage busy: the next beat will do
            log.debug("heartbeat of trial id %s: %s", trial_id, err)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                trials = list(self._trials)
            for trial_id in trials:
                self._beat(trial_id)

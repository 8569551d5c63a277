"""Which directory a run writes to, whether it continues an earlier one, and who holds it.

One process per run dir: the lock file names its holder (host, PID, the process's start
time, the SLURM job id) so a second process can say who has the dir. A lock left by a
dead process on this host, or by a SLURM job that is no longer running, is broken.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from cnnlab.config.arms import SEED_KEYS
from cnnlab.config.overrides import NOT_RUN_KEYS, key_of, without
from cnnlab.errors import BadInput
from cnnlab.files import read_text
from cnnlab.results import RESULTS, RESUMED_IN, read_results

# Hydra is imported only inside a Hydra job: cnnlab-rerun reads run dirs without it

LOCK = "run.lock"


def other_run(theirs: list[str], mine: list[str]) -> str | None:
    """How overrides ``mine`` make another run than ``theirs`` (one override each side
    differs in, said in a few words), or None when they make the same run."""

    def specs(given: list[str]) -> list[tuple[str, str]]:
        return [(o, o) for o in without(given, NOT_RUN_KEYS)]

    return _differ(specs(theirs), specs(mine), "run")


def other_sweep(theirs: list[str], mine: list[str]) -> str | None:
    """How a sweep of specs ``mine`` (its ``hydra.sweeper.params`` as ``k=v``, then its
    command line) is another sweep than ``theirs``, the one a sweep dir's multirun.yaml
    saved: another fixed value, or another key swept (its runs would be named otherwise);
    None when it is the same sweep. A swept key may take other values, and the seed any: a
    relaunch may add seeds or arms to its sweep, or redo one seed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()

    def specs(given: list[str]) -> list[tuple[str, str]]:  # (compared, shown); last one wins
        out: dict[str, tuple[str, str]] = {}
        for spec in without(given, (*NOT_RUN_KEYS, *SEED_KEYS)):
            try:
                (override,) = parser.parse_overrides([spec])
                swept = override.is_sweep_override()
            except Exception:  # noqa: BLE001 - compared as its text
                swept = False
            out[key_of(spec)] = (f"{key_of(spec)} swept" if swept else spec, spec)
        return list(out.values())

    return _differ(specs(theirs), specs(mine), "sweep")


def _differ(theirs: list[tuple[str, str]], mine: list[tuple[str, str]], what: str) -> str | None:
    """One difference each side has, said in a few words; each item (compared, shown)."""
    a, b = dict(sorted(theirs)), dict(sorted(mine))
    if a.keys() == b.keys():
        return None
    said = [f"this launch gives {b[k]}" for k in b if k not in a][:1]
    said += [f"the {what} was made with {a[k]}" for k in a if k not in b][:1]
    return ", ".join(said)


@dataclass
class Holder:
    host: str
    pid: int
    started: str | None  # the process's start time in clock ticks since boot (this host)
    job_id: str | None
    since: str

    def __str__(self) -> str:
        job = f", SLURM job {self.job_id}" if self.job_id else ""
        return f"PID {self.pid} on {self.host}{job}, since {self.since}"


class RunDirInUse(RuntimeError):
    """Another live process holds the run dir."""


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command name


def me() -> Holder:
    job = os.environ.get("SLURM_JOB_ID")
    if job and os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    return Holder(
        socket.gethostname(),
        os.getpid(),
        _start_ticks(os.getpid()),
        job,
        time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def _alive(holder: Holder) -> bool:
    if holder.host == socket.gethostname():
        return holder.started is not None and _start_ticks(holder.pid) == holder.started
    if holder.job_id and shutil.which("squeue"):
        try:
            out = subprocess.run(
                ["squeue", "-h", "-j", holder.job_id, "-o", "%T"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            return True  # cannot tell: do not take a dir from a job that may be running
        return out.returncode == 0 and out.stdout.strip() in (
            "RUNNING",
            "COMPLETING",
            "SUSPENDED",
            "STOPPED",
        )
    return True  # another host and no job id: nothing to check, assume it lives


def _read_holder(path: Path) -> Holder | None:
    try:
        return Holder(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


class RunDirLock:
    """``with RunDirLock(run_dir):`` — this process alone writes there."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.held = False

    def acquire(self) -> None:
        """Take the lock, or raise RunDirInUse naming the live holder. The lock file appears
        whole (hard-linked from a written temporary file), and a stale one is moved aside
        and checked before it is replaced, so two processes never both hold the dir."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{LOCK}.{os.getpid()}")
        tmp.write_text(json.dumps(asdict(me())))
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    self.held = True
                    return
                except FileExistsError:
                    self._break_if_stale()
            raise RunDirInUse(f"{self.path.parent} is in use (its lock came back at once)")
        finally:
            tmp.unlink(missing_ok=True)

    def _break_if_stale(self) -> None:
        holder = self.holder()
        if holder is not None and _alive(holder):
            raise RunDirInUse(f"{self.path.parent} is in use by {holder}")
        aside = self.path.with_name(f".{LOCK}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another process broke it first: try again
        moved = _read_holder(aside)
        if moved != holder and moved is not None and _alive(moved):  # a fresh lock, not ours
            os.rename(aside, self.path)
            raise RunDirInUse(f"{self.path.parent} is in use by {moved}")
        aside.unlink(missing_ok=True)

    def holder(self) -> Holder | None:
        return _read_holder(self.path)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def requeued() -> bool:
    """A SLURM job started again by the scheduler (time limit, preemption, requeue)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


def last_ckpt(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def load_overrides(run_dir: Path, root: Path | None = None) -> list[str]:
    """A run dir's saved Hydra overrides (bounded, inside ``root`` when given), or
    BadInput in one line saying why not."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    try:  # plain YAML: nothing in the text is interpolated or resolved here
        saved = yaml.safe_load(read_text(path, "overrides", root))
    except FileNotFoundError:
        raise BadInput(f"{path} does not exist") from None
    except yaml.YAMLError:
        raise BadInput(f"{path} is not a YAML list of overrides") from None
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise BadInput(f"{path} is not a YAML list of overrides")
    return saved


def saved_overrides(run_dir: Path, root: Path | None = None) -> list[str] | None:
    """A run dir's saved Hydra overrides (None when missing or not a list of them)."""
    try:
        return load_overrides(run_dir, root)
    except (OSError, BadInput):
        return None


def find_resumable(run_dir: Path, overrides: list[str]) -> Path | None:
    """Newest sibling run dir with the same overrides, a last.ckpt and no completed result."""
    candidates = []
    for other in run_dir.parent.iterdir():
        if other == run_dir or not last_ckpt(other).exists():
            continue
        if (read_results(other) or {}).get("status") == "completed":
            continue
        theirs = saved_overrides(other)
        if theirs is not None and other_run(theirs, overrides) is None:
            candidates.append(other)
    return max(candidates, key=lambda p: last_ckpt(p).stat().st_mtime, default=None)


def choose(run_dir: Path, overrides: list[str], resume: bool, has_ckpt_path: bool) -> Path:
    """This run's dir: the one Hydra made, or (resume) the unfinished run it continues."""
    if not resume or has_ckpt_path or last_ckpt(run_dir).exists():
        return run_dir
    earlier = find_resumable(run_dir, overrides)
    if earlier is None:
        return run_dir
    # the fresh dir Hydra made keeps this session's log, and says where the run went on
    (run_dir / RESUMED_IN).write_text(f"{earlier}\n")
    return earlier


def check_unrecorded(run_dir: Path, overrides: list[str]) -> None:
    """A run dir with no cnnlab record (results.json) is written into only when it is empty
    or this run's own, killed before its first record (its ``.hydra/overrides.yaml`` makes
    the same run); anything else is a folder of someone else's files, and a run never
    writes over files it did not write (config.yaml, checkpoints/, .hydra/ are common
    names). ``train.log`` is not counted: it is only appended to, and Hydra opens it there
    before the run starts when the job has no ``.hydra`` folder (``hydra.output_subdir``
    null)."""
    run_dir = Path(run_dir)
    if (run_dir / RESULTS).exists():  # cnnlab writes it whole: this one is not a record
        raise BadInput(
            f"{run_dir} holds a {RESULTS} that is not a cnnlab run's record, and a run "
            "never writes over files it did not write: give another hydra.run.dir"
        )
    try:
        theirs = sorted(p.name for p in run_dir.iterdir() if p.name != "train.log")
    except OSError:  # not there yet (Hydra makes it), or unreadable: the run will say
        return
    saved = saved_overrides(run_dir)
    if not theirs or (saved is not None and other_run(saved, overrides) is None):
        return
    shown = ", ".join(theirs[:3]) + (f" and {len(theirs) - 3} more" if len(theirs) > 3 else "")
    raise BadInput(
        f"{run_dir} holds files of no cnnlab run of these overrides ({shown}), and a run "
        "never writes over files it did not write: give another hydra.run.dir (a new or "
        "empty folder)"
    )


def remove_made_dirs(run_dir: str, mark: str) -> None:
    """A single run refused before it opened: the empty folders Hydra made for ``run_dir``
    on the way (``run_name=a/b`` makes ``runs/<time>_<mark>_a``, ``x/../../y`` makes
    ``runs/<time>_<mark>_x``) go with it. Only those named with this process's ``mark`` (the
    run dir's unique id), so a folder the user had is never touched; deepest first."""
    parts = Path(run_dir).parts
    prefixes = [Path(*parts[: i + 1]) for i in range(len(parts))]
    for path in reversed([p for p in prefixes if mark in p.name and p.name != ".."]):
        with contextlib.suppress(OSError):  # not empty, or already gone
            path.rmdir()


# --- Hydra's own files, kept out of the run dir until the run goes ahead --------------------
STAGED = ("config.yaml", "hydra.yaml", "overrides.yaml")


STAGING = "cnnlab-hydra-"  # + host-PID-start: the process a staging dir belongs to
_STAGING_NAME = re.compile(rf"{STAGING}(?:(?P<host>.+)-(?P<pid>\d+)-(?P<started>\d+)|(?P<old>\d+))")
_swept = False


def staging_dir(output_dir: str, pid: int | None = None) -> str:
    """Where Hydra writes a job's ``.hydra`` files and ``train.log`` (``hydra.output_subdir``
    is this absolute path): outside the run dir, one per process and job, so a process that
    is refused (dir in use) or skips (completed) leaves that dir as it was. ``pid``: another
    process's (for a test to watch it). A process's first one removes those of processes
    that died before their run took them (SIGKILL, out of memory)."""
    global _swept
    job = hashlib.sha1(str(output_dir).encode()).hexdigest()[:12]
    pid = pid or os.getpid()
    owner = f"{socket.gethostname()}-{pid}-{_start_ticks(pid) or 0}"
    path = Path(tempfile.gettempdir()) / f"{STAGING}{owner}" / job
    if pid == os.getpid():
        if not _swept:
            _swept = True
            remove_stale_staging()
        path.mkdir(parents=True, exist_ok=True)  # Hydra opens the log there before the job
    return str(path)


def remove_stale_staging() -> list[Path]:
    """Remove the staging dirs of dead processes: this user's, on this host, whose process
    (its PID and start time; PID alone for those named before the start time was) is gone.
    One whose owner cannot be told (another host, no /proc) is kept. Returns those removed."""
    if not Path("/proc/self/stat").exists():
        return []  # nothing to tell a live process from a dead one by
    removed = []
    host = socket.gethostname()
    for path in Path(tempfile.gettempdir()).glob(f"{STAGING}*"):
        name = _STAGING_NAME.fullmatch(path.name)
        try:
            info = path.lstat()
        except OSError:
            continue
        if name is None or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue  # a link or a file planted there, or another user's
        if name["host"] not in (None, host):
            continue
        pid, started = int(name["pid"] or name["old"]), name["started"]
        alive = Path(f"/proc/{pid}").exists() if started is None else _start_ticks(pid) == started
        if not alive:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def staged() -> Path | None:
    """This job's staging dir, when Hydra runs it with one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    sub = cast(Any, HydraConfig.get()).get("output_subdir")  # a DictConfig at run time
    return Path(sub) if sub and Path(sub).is_absolute() else None


def adopt_staged(staging: Path | None, hydra_dir: Path) -> None:
    """The run holds its dir and goes ahead: Hydra's files move into ``<hydra_dir>/.hydra``
    and the log written so far is appended to ``<hydra_dir>/train.log``, which the log's
    handler then writes to."""
    if staging is None or not staging.is_dir():
        return
    target = Path(hydra_dir) / ".hydra"
    target.mkdir(parents=True, exist_ok=True)
    for name in STAGED:
        if (staging / name).exists():
            shutil.move(str(staging / name), target / name)
    log, dest = staging / "train.log", Path(hydra_dir) / "train.log"
    for handler in {h for h in _all_file_handlers() if Path(h.baseFilename) == log}:
        with _locked(handler):
            handler.flush()
            if log.exists():
                with open(dest, "a") as out:
                    out.write(log.read_text())
                log.unlink()
            handler.close()
            handler.baseFilename, handler.mode = str(dest), "a"
            handler.stream = handler._open()  # FileHandler has no public way to move its file
    discard_staged(staging)


def discard_staged(staging: Path | None) -> None:
    """A refused or skipped process: its Hydra files go (its log lines went to the console
    too), and the run dir keeps its own. The process's staging dir goes when it is empty."""
    if staging is not None and staging.is_dir():
        shutil.rmtree(staging, ignore_errors=True)
    if staging is not None and staging.parent.name.startswith(STAGING):
        with contextlib.suppress(OSError):  # another job of this process still stages there
            staging.parent.rmdir()


def _all_file_handlers() -> list:
    return [
        h
        for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for h in getattr(lg, "handlers", [])
        if isinstance(h, logging.FileHandler)
    ]


class _locked:  # logging.Handler has acquire/release but no context manager
    def __init__(self, handler: Any) -> None:
        self.handler = handler

    def __enter__(self) -> None:
        self.handler.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.handler.release()

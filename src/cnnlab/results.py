"""results.json: one machine-readable record per run, written atomically at each stage."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from cnnlab.errors import BadInput
from cnnlab.files import read_text

RESULTS = "results.json"
# cnnlab-rerun's record in the rerun's dir: the original run's dir and what differed
RERUN = "rerun.json"
# in the fresh dir of a resume=auto run that went on in an earlier dir: that dir's path (the
# fresh dir keeps only this session's log; it is no run of its own)
RESUMED_IN = "resumed_in.txt"
# in a sweep dir: the sweep's whole config as launched (Hydra's name), and an Optuna
# search's claim on the dir (its storage and study)
SWEEP_CONFIG = "multirun.yaml"
STUDY_FILE = "search/study.json"
STATUSES = ("running", "completed", "pruned", "failed", "interrupted", "skipped")
# the metrics results.json records for every run (a sweeper optimizes one of them)
RECORDED = (
    "test/acc",
    "test/loss",
    "val/acc_best",
    "val/loss_at_best",
    "val/loss_min",
    "train/acc_final",
    "train/acc_at_best",
    "gap/train_test",
)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all: a reader never sees half a file, even if we are killed, and a
    full disk leaves the previous file and no temporary one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_results(run_dir: Path, root: Path | None = None) -> dict[str, Any]:
    """A run's results.json (bounded, inside ``root`` when given), or BadInput in one line
    saying why not, naming the file and never quoting it."""
    path = Path(run_dir) / RESULTS
    try:
        data = json.loads(read_text(path, "record", root))
    except FileNotFoundError:
        raise BadInput(f"{path} does not exist") from None
    except json.JSONDecodeError as err:
        raise BadInput(f"{path} is not JSON (line {err.lineno})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not a cnnlab record (a JSON object)")
    return data


def read_results(run_dir: Path, root: Path | None = None) -> dict[str, Any] | None:
    """A run's results.json, or None when it is missing or unreadable."""
    try:
        return load_results(run_dir, root)
    except (OSError, BadInput):
        return None


class RunRecord:
    """The evolving results.json of one run."""

    def __init__(self, where: Path, **fields: Any) -> None:
        self.path = Path(where) / RESULTS
        self.data: dict[str, Any] = {
            "status": "running",
            "error": None,
            "metrics": {},
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **fields,
        }
        self._t0 = time.perf_counter()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def finish(self, status: str, error: str | None = None, **fields: Any) -> None:
        self.data.update(
            fields,
            status=status,
            error=error,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            session_wall_time_s=round(time.perf_counter() - self._t0, 3),
        )
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)

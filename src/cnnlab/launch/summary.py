"""The end of a sweep: one table of every job (overrides, status, the one-line reason).

Hydra's sweepers raise on the first failed job; cnnlab's sweepers collect every job's
outcome instead, print this table, and end the sweep with :class:`SweepIncomplete`
(exit 1, no traceback) when a job did not complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cnnlab.compat.hydra import job_value
from cnnlab.config.overrides import NOT_RUN_KEYS, as_dict, without
from cnnlab.results import write_json

SWEEP_RECORD = "sweep.json"  # every job of the sweep: its overrides, status and reason

# Hydra is imported where a JobReturn is read: search.space and storage (cnnlab-search-report)
# use this module without it

# outcomes that leave nothing for the user to do
FINE = ("completed", "skipped", "pruned")  # a pruned trial is a search working as meant


class JobResult(NamedTuple):
    """What a cnnlab job returns to its sweeper (picklable, for joblib and SLURM)."""

    status: str  # completed | skipped
    value: Any  # the optimized metric, for search sweepers
    reason: str | None = None


class JobProblem(RuntimeError):
    """A job that did not complete; ``status`` says how and the message says why, in one
    line; ``code`` is the exit code of a single run that ends so."""

    def __init__(self, status: str, reason: str, code: int = 1) -> None:
        super().__init__(reason)
        self.status, self.reason, self.code = status, reason, code

    def __reduce__(self):  # keep status, reason and code across process boundaries
        return type(self), (self.status, self.reason, self.code)


class SweepIncomplete(RuntimeError):
    """Some jobs of a sweep did not complete (already reported in the table)."""


@dataclass
class Outcome:
    num: int
    overrides: list[str]
    status: str
    reason: str | None
    value: Any = None
    run_dir: Path | None = None


def outcome_of(num: int, job_return: Any) -> Outcome:
    """Status, reason and value of one Hydra JobReturn, whoever launched it."""
    from hydra.core.utils import JobStatus

    overrides = list(getattr(job_return, "overrides", None) or [])
    run_dir = None
    hydra_cfg = getattr(job_return, "hydra_cfg", None)
    if hydra_cfg is not None:
        out = hydra_cfg.hydra.runtime.get("output_dir")
        run_dir = Path(out) if out else None
        num = hydra_cfg.hydra.job.get("num", num)
    value = job_value(job_return)
    if job_return.status == JobStatus.COMPLETED:
        if isinstance(value, JobResult):
            return Outcome(num, overrides, value.status, value.reason, value.value, run_dir)
        return Outcome(num, overrides, "completed", None, value, run_dir)
    if isinstance(value, JobProblem):
        return Outcome(num, overrides, value.status, value.reason, None, run_dir)
    reason = f"{type(value).__name__}: {value}" if value is not None else "unknown failure"
    return Outcome(num, overrides, "failed", one_line(reason), None, run_dir)


def one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def swept(outcomes: list[Outcome]) -> list[str]:
    """The override keys whose values differ between jobs (all of them for one job)."""
    values = [as_dict(o.overrides) for o in outcomes]
    keys = list(dict.fromkeys(k for v in values for k in v))
    differ = [k for k in keys if len({v.get(k) for v in values}) > 1]
    return differ or keys


def render(outcomes: list[Outcome]) -> Table:
    table = Table(
        title=f"sweep: {sum(o.status == 'completed' for o in outcomes)} of "
        f"{len(outcomes)} jobs completed"
    )
    for col in ("job", "overrides", "status", "reason"):
        table.add_column(col, overflow="fold")
    styles = {"completed": "green", "skipped": "yellow"}
    keys = swept(outcomes)
    for o in outcomes:
        mine = as_dict(o.overrides)
        shown = " ".join(f"{k}={mine[k]}" for k in keys if k in mine)
        # Text cells: overrides and reasons are the user's text, never Rich markup
        table.add_row(
            str(o.num),
            Text(shown),
            Text(o.status, style=styles.get(o.status, "bold red")),
            Text(o.reason or ""),
        )
    return table


def _not_relaunched(sweep_dir: Path, jobs: list[dict]) -> list[dict]:
    """The rows of an earlier launch of this sweep whose jobs this launch did not run (a
    relaunch of one seed keeps the others' rows), each marked ``earlier_launch``."""
    try:
        earlier = json.loads((Path(sweep_dir) / SWEEP_RECORD).read_text())["jobs"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    ran = {_job_key(j.get("overrides")) for j in jobs}
    return [
        {**j, "earlier_launch": True}
        for j in earlier
        if isinstance(j, dict) and _job_key(j.get("overrides")) not in ran
    ]


def _job_key(overrides: Any) -> tuple[str, ...]:
    return tuple(sorted(without(overrides, NOT_RUN_KEYS))) if isinstance(overrides, list) else ()


def finish(
    job_returns: list[Any], sweep_dir: Path | None = None, console: Console | None = None
) -> list[Outcome]:
    """Print the table (and write it to ``<sweep_dir>/sweep.json``); raise SweepIncomplete
    when any job did not complete."""
    outcomes = [outcome_of(i, r) for i, r in enumerate(job_returns)]
    (console or Console(stderr=True)).print(render(outcomes))
    if sweep_dir is not None:
        jobs = [
            {
                "job": o.num,
                "overrides": o.overrides,
                "status": o.status,
                "reason": o.reason,
                "run_dir": o.run_dir and str(o.run_dir),
            }
            for o in outcomes
        ]
        write_json(
            Path(sweep_dir) / SWEEP_RECORD, {"jobs": jobs + _not_relaunched(sweep_dir, jobs)}
        )
    bad = [o for o in outcomes if o.status not in FINE]
    if bad:
        raise SweepIncomplete(
            f"{len(bad)} of {len(outcomes)} jobs did not complete: "
            + ", ".join(f"job {o.num} {o.status}" for o in bad)
        )
    return outcomes

"""The results of a search, as files: the best trial, every trial, Optuna's plots.

Written into ``<sweep dir>/search/`` at the end of each search process, and on demand from
the storage by ``cnnlab-search-report``:

- ``best.yaml``: the best trial's number, value, parameters, the overrides that rerun it,
  its run's metrics and run dir; and how many trials completed, were pruned or failed.
- ``trials.csv``: one row per trial (surplus trials, which never ran, left out).
- ``history.png`` (optimization history), ``importances.png`` (parameter importances,
  fANOVA; from 2 completed trials on), ``curves.png`` (the monitored metric per epoch,
  when jobs reported it).

On demand: ``cnnlab-search-report`` (cnnlab/cli/search_report.py).
"""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path
from typing import Any

import yaml

# Optuna and matplotlib are imported where used: Hydra imports the sweeper plugin on every
# run (search/__init__.py)

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """Numbers and strings as YAML writes them plainly (no numpy or enum types)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def summary(study: Any, storage_shown: str) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    out: dict[str, Any] = {
        "study": study.study_name,
        "storage": storage_shown,
        "direction": study.direction.name.lower(),
        "trials": {k: v for k, v in counts.items() if v},
        "best": None,
    }
    if counts["complete"]:
        best = study.best_trial
        out["best"] = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "overrides": best.user_attrs.get("overrides") or [],
            "metrics": best.user_attrs.get("metrics") or {},
            "run_dir": best.user_attrs.get("run_dir"),
        }
    return _plain(out)


def write(study: Any, out_dir: Path, storage_shown: str) -> dict[str, Any]:
    """Write every report file into ``out_dir``; return the best.yaml content."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = summary(study, storage_shown)
    info["files"] = ["best.yaml", "trials.csv", *_plots(study, out_dir)]
    (out_dir / "best.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    _trials_csv(study, out_dir / "trials.csv")
    return info


def _trials_csv(study: Any, path: Path) -> None:
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    params = sorted({p for t in trials for p in t.params})
    metrics = sorted({m for t in trials for m in (t.user_attrs.get("metrics") or {})})
    head = [
        "number",
        "state",
        "value",
        *params,
        "status",
        "reason",
        "retry_of",
        "duration_s",
        *metrics,
        "run_dir",
    ]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        for t in trials:
            a = t.user_attrs
            took = t.duration.total_seconds() if t.duration is not None else None
            w.writerow(
                [
                    t.number,
                    t.state.name,
                    t.value,
                    *(t.params.get(p) for p in params),
                    a.get("status"),
                    a.get("reason"),
                    a.get("retry_of"),
                    None if took is None else round(took, 3),
                    *((a.get("metrics") or {}).get(m) for m in metrics),
                    a.get("run_dir"),
                ]
            )


def _plots(study: Any, out_dir: Path) -> list[str]:
    """Optuna's own plots (matplotlib backend) that this study has data for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = [
        p
        for p in {p for t in complete for p in t.params}
        if len({repr(t.params.get(p)) for t in complete}) > 1
    ]
    wanted = []
    if complete:
        wanted.append(("history.png", ovm.plot_optimization_history))
    if len(complete) >= 2 and varied:
        wanted.append(("importances.png", ovm.plot_param_importances))
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        wanted.append(("curves.png", ovm.plot_intermediate_values))
    written = []
    for name, plot in wanted:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning on every call
                ax = plot(study)
            fig = (ax[0] if hasattr(ax, "__len__") else ax).figure
            fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(name)
        except Exception as err:  # a plot Optuna cannot draw for this study: the rest stands
            log.warning("search report: no %s: %s", name, err)
    return written


def describe(info: dict[str, Any], out_dir: Path) -> str:
    """Two lines for the console: the best trial and where the report is."""
    t = info["trials"]
    counts = ", ".join(f"{n} {state}" for state, n in t.items()) or "no trials"
    best = info["best"]
    if best is None:
        return f"search {info['study']!r}: {counts}; no completed trial yet\nreport: {out_dir}"
    return (
        f"search {info['study']!r}: {counts}; best trial {best['number']}: "
        f"{best['value']:.6g} with {' '.join(best['overrides'])}\nreport: {out_dir}"
    )

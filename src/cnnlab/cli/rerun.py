"""cnnlab-rerun: run a past run again from what it saved, and say what came out different."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from cnnlab.run.results import read_results

console = Console()


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merged_overrides(saved: list[str], extra: list[str]) -> list[str]:
    """The saved overrides, with any key given again on the command line replaced."""
    replaced = {override_key(o) for o in extra}
    return [o for o in saved if override_key(o) not in replaced] + list(extra)


def run_threads(device: dict[str, Any]) -> int | None:
    """The torch threads a run used (runs from before ``torch_threads`` stored them as
    ``cpu_count``)."""
    return device.get("torch_threads", device.get("cpu_count"))


def pinned_overrides(resolved: Any, provenance: dict[str, Any]) -> list[str]:
    """What came from the environment rather than the command line, pinned as it was.

    The data folder, and the torch thread count: a parallel launcher gave the job
    cores / n_jobs threads, and a CPU reduction split over another number of threads sums
    in another order, so the same seed would not give the same bits.
    """
    pinned = []
    if resolved is not None:
        pinned.append(f"data.root={resolved.data.root}")
    threads = run_threads(provenance.get("device") or {})
    if threads is None and resolved is not None:
        threads = resolved.get("torch_threads")
    if threads:
        pinned.append(f"torch_threads={int(threads)}")
    return pinned


def compared_metrics(res: dict[str, Any]) -> dict[str, float]:
    """Every number a rerun should reproduce: final metrics and the per-epoch history."""
    out = {k: v for k, v in (res.get("metrics") or {}).items() if isinstance(v, (int, float))}
    for row in res.get("history") or []:
        for k, v in row.items():
            if k not in ("epoch", "time_s", "step") and isinstance(v, (int, float)):
                out[f"epoch {row['epoch']} {k}"] = v
    out["epochs"] = res.get("epochs")
    return out


def diff_metrics(old: dict[str, Any], new: dict[str, Any], tolerance: float):
    """Rows (name, old, new, verdict, ok) for every metric in either run."""
    rows = []
    for key in sorted(set(old) | set(new), key=_order):
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            rows.append((key, a, b, "missing in " + ("rerun" if b is None else "original"), False))
            continue
        delta = abs(float(a) - float(b))
        if delta == 0 or (math.isnan(a) and math.isnan(b)):
            rows.append((key, a, b, "identical", True))
        else:
            rows.append((key, a, b, f"differs by {delta:.3g}", delta <= tolerance))
    return rows


def _order(key: str):
    return (key.startswith("epoch "), key)


def provenance_warnings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    warnings = []
    for section in ("versions", "data_md5"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                warnings.append(f"{section}.{k}: {a.get(k)} → {b.get(k)}")
    ga, gb = old.get("git") or {}, new.get("git") or {}
    if ga.get("commit") != gb.get("commit"):
        warnings.append(f"git commit: {ga.get('commit')} → {gb.get('commit')}")
    if gb.get("dirty"):
        warnings.append("git: the source tree has uncommitted changes")
    da, db = old.get("device") or {}, new.get("device") or {}
    ta, tb = run_threads(da), run_threads(db)
    if (da.get("gpu"), ta) != (db.get("gpu"), tb):
        warnings.append(f"device: {da.get('gpu') or 'cpu'}/{ta} threads → "
                        f"{db.get('gpu') or 'cpu'}/{tb} threads")
    for key in ("cpu_model", "cpu_capability"):  # other CPU kernels: expect other last bits
        if key in da and key in db and da[key] != db[key]:
            warnings.append(f"{key}: {da[key]} → {db[key]} (CPU results are bit-identical "
                            f"only on the same kind of CPU)")
    return warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnlab-rerun", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run dir written by cnnlab-train")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied on top")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="largest absolute difference still accepted (default 0: bit-identical)")
    parser.add_argument("--out", type=Path, help="dir of the rerun (default: beside the original)")
    args = parser.parse_args(argv)
    err = Console(stderr=True, soft_wrap=True)

    run_dir = args.run_dir.resolve()
    saved_overrides = run_dir / ".hydra" / "overrides.yaml"
    old = read_results(run_dir)
    if not saved_overrides.is_file() or old is None:
        err.print(f"[bold red]cnnlab-rerun:[/] {run_dir} is not a cnnlab run dir "
                  "(needs .hydra/overrides.yaml and results.json)", highlight=False)
        return 2
    saved = [str(o) for o in OmegaConf.load(saved_overrides)]
    resolved = OmegaConf.load(run_dir / "config.yaml") if (run_dir / "config.yaml").exists() else None
    pinned = pinned_overrides(resolved, old.get("provenance") or {})
    out = (args.out or run_dir.parent / f"{run_dir.name}-rerun-{time.strftime('%H%M%S')}").resolve()
    overrides = merged_overrides(pinned + saved, [o for o in args.overrides])
    overrides = [o for o in overrides if override_key(o) not in ("resume", "ckpt_path")]
    cmd = [sys.executable, "-m", "cnnlab.cli.train", *overrides, f"hydra.run.dir={out}"]
    console.print(f"[bold]rerunning[/] {run_dir.name} → {out}\n  {' '.join(overrides)}")
    proc = subprocess.run(cmd)
    new = read_results(out)
    if new is None:
        err.print(f"[bold red]cnnlab-rerun:[/] the rerun wrote no results.json (exit {proc.returncode})")
        return 1
    if new.get("status") != "completed":
        err.print(f"[bold red]cnnlab-rerun:[/] the rerun {new.get('status')}: {new.get('error')}")
        return 1

    for w in provenance_warnings(old.get("provenance") or {}, new.get("provenance") or {}):
        console.print(f"[yellow]warning:[/] {w}")
    rows = diff_metrics(compared_metrics(old), compared_metrics(new), args.tolerance)
    table = Table(title=f"rerun of {run_dir.name}")
    for col in ("metric", "original", "rerun", "verdict"):
        table.add_column(col, justify="right" if col in ("original", "rerun") else "left")
    for key, a, b, verdict, ok in rows:
        style = "green" if verdict == "identical" else ("yellow" if ok else "red")
        table.add_row(key, _fmt(a), _fmt(b), f"[{style}]{verdict}[/]")
    console.print(table)
    bad = [r for r in rows if not r[4]]
    summary = {"original": str(run_dir), "rerun": str(out), "tolerance": args.tolerance,
               "identical": all(r[3] == "identical" for r in rows),
               "differences": [{"metric": k, "original": a, "rerun": b, "verdict": v}
                               for k, a, b, v, _ in rows if v != "identical"]}
    (out / "rerun.json").write_text(json.dumps(summary, indent=2) + "\n")
    if bad:
        console.print(f"[bold red]{len(bad)} of {len(rows)} metrics differ beyond "
                      f"tolerance {args.tolerance}[/]")
        return 1
    console.print(f"[bold green]all {len(rows)} metrics within tolerance "
                  f"{args.tolerance}[/] ({'identical' if summary['identical'] else 'close'})")
    return 0


def _fmt(v: Any) -> str:
    return "—" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


if __name__ == "__main__":
    sys.exit(main())

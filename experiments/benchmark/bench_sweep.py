"""Sweep throughput: the same 4-run sweep with one job at a time vs the joblib launcher.

Sequential jobs get every core each (torch's default); ``hydra/launcher=local_parallel``
runs ``n_jobs`` at once and cnnlab gives each cores / n_jobs torch threads, so the jobs
do not oversubscribe the machine. Prints both wall times, the speedup and each job's
test accuracy.

    python experiments/benchmark/bench_sweep.py
    python experiments/benchmark/bench_sweep.py --runs 8 --extra trainer.max_epochs=2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def sweep(launcher: str, args, out: Path) -> dict:
    seeds = ",".join(str(s) for s in range(1, args.runs + 1))
    cmd = [
        sys.executable,
        "-m",
        "cnnlab.cli.train",
        "-m",
        f"seed={seeds}",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={out}",
        f"data.root={args.data_root}",
        "logger=none",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        f"trainer.max_epochs={args.epochs}",
        f"trainer.limit_train_batches={args.train_fraction}",
        *args.extra,
    ]
    env = {**os.environ, "WANDB_MODE": "offline"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{launcher} sweep failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*/results.json"))]
    return {
        "wall_s": wall,
        "n": len(runs),
        "fit_s": [r["fit_time_s"] for r in runs],
        "test_acc": [r["metrics"].get("test/acc") for r in runs],
        "threads": [
            json.loads((p.parent / "provenance.json").read_text())["device"].get("torch_threads")
            for p in sorted(out.glob("*/results.json"))
        ],
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-fraction", type=float, default=0.5)
    p.add_argument(
        "--data-root",
        default=os.environ.get("CNNLAB_DATA_DIR", str(REPO.parent / "shared" / "data")),
    )
    p.add_argument("--extra", nargs="*", default=[], help="more overrides for every job")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    res = {}
    with tempfile.TemporaryDirectory(prefix="cnnlab-sweep-bench-") as tmp:
        for launcher in ("basic", "local_parallel"):
            res[launcher] = sweep(launcher, args, Path(tmp) / launcher)
            print(f"{launcher}: {res[launcher]['wall_s']:.1f} s", file=sys.stderr)

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{args.runs}-run sweep (mycnn, {args.epochs} epoch(s) over "
        f"{args.train_fraction:g} of the training split) on {os.cpu_count()} cores"
    )
    for col in (
        "launcher",
        "wall s",
        "runs completed",
        "torch threads per job",
        "fit s per run",
        "test acc per run",
    ):
        table.add_column(col)
    for launcher, r in res.items():
        table.add_row(
            launcher,
            f"{r['wall_s']:.1f}",
            str(r["n"]),
            " ".join(str(t) for t in r["threads"]),
            " ".join(f"{s:.1f}" for s in r["fit_s"]),
            " ".join(f"{a:.4f}" for a in r["test_acc"]),
        )
    console = Console()
    console.print(table)
    console.print(
        f"parallel speedup: {res['basic']['wall_s'] / res['local_parallel']['wall_s']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

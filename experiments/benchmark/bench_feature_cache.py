"""Frozen-backbone transfer: head trained on cached backbone features vs the full forward.

Runs ``cnnlab-train`` twice with resnet18, ``model.freeze=backbone`` and no augmentation,
once with the feature cache (the default) and once with ``feature_cache=false``, in a
rotated order over ``--reps``, and prints fit times, the speedup and the
test accuracies (the two must agree: the cache changes the cost, not the result).

    python experiments/benchmark/bench_feature_cache.py --epochs 3
    python experiments/benchmark/bench_feature_cache.py --weights IMAGENET1K_V1 --device cuda

The backbone's weights do not change the cost; with no network here the default is a
random-initialised resnet18 (``--weights`` takes a torchvision name or a state-dict file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(mode: str, args, out: Path) -> dict:
    run_dir = out / mode
    cmd = [
        sys.executable,
        "-m",
        "cnnlab.cli.train",
        "model/net=resnet18",
        "model.freeze=backbone",
        f"model.net.weights={args.weights}",
        f"model.net.input_size={args.input_size}",
        "data/augmentation=none",
        f"data.root={args.data_root}",
        "logger=none",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        f"feature_cache={'true' if mode == 'cached' else 'false'}",
        f"trainer.max_epochs={args.epochs}",
        "callbacks.early_stopping=null",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"seed={args.seed}",
        f"paths.output_dir={run_dir}",
        "hydra.run.dir=" + str(run_dir),
    ]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{mode} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads((run_dir / "results.json").read_text())
    return {
        "fit_s": res["fit_time_s"],
        "wall_s": res["session_wall_time_s"],
        "test_acc": res["metrics"].get("test/acc"),
        "val_acc": [r.get("val/acc") for r in res["history"]],
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--weights", default="null")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--data-root",
        default=os.environ.get("CNNLAB_DATA_DIR", str(REPO.parent / "shared" / "data")),
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    modes = ["cached", "full"]
    results: dict[str, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="cnnlab-cache-bench-") as tmp:
        for rep in range(args.reps):
            for mode in modes[rep % 2 :] + modes[: rep % 2]:
                r = run(mode, args, Path(tmp) / f"rep{rep}")
                results[mode].append(r)
                print(
                    f"rep {rep + 1}/{args.reps} {mode}: fit {r['fit_s']:.1f} s, "
                    f"test acc {r['test_acc']:.4f}",
                    file=sys.stderr,
                )

    from rich.console import Console
    from rich.table import Table

    fit = {m: statistics.median(r["fit_s"] for r in results[m]) for m in modes}
    table = Table(
        title=f"resnet18 (input {args.input_size}), frozen backbone, "
        f"{args.epochs} epochs, {args.device}, {args.reps} rep(s)"
    )
    for col in ("mode", "fit s (median)", "run wall s", "test acc", "val acc by epoch"):
        table.add_column(col)
    for m in modes:
        last = results[m][-1]
        table.add_row(
            m,
            f"{fit[m]:.1f}",
            f"{last['wall_s']:.1f}",
            f"{last['test_acc']:.4f}",
            " ".join(f"{v:.4f}" for v in last["val_acc"]),
        )
    console = Console()
    console.print(table)
    gap = abs(results["cached"][-1]["test_acc"] - results["full"][-1]["test_acc"])
    console.print(
        f"speedup of the fit: {fit['full'] / fit['cached']:.2f}x   "
        f"test accuracy difference: {gap:.4f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "results": results,
                    "fit_median": fit,
                    "speedup": fit["full"] / fit["cached"],
                    "args": vars(args) | {"json": str(args.json)},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

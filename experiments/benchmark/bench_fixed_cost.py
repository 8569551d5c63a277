"""What a study pays besides training, side by side (issue 24), in one script:

  --help       ``cnnlab-train --help``, wall seconds
  first run    an in-process sweep (``cnnlab-train -m``) of ONE run that trains one batch,
               validates one and tests one: imports, Hydra, the run's fixed work
  marginal     each further run of the same sweep: (wall of N runs - wall of 1) / (N - 1)
  step         bench_step_overhead.py: ms per step that Lightning and cnnlab add over a
               plain loop (tiny net, 1 thread)
  ratio        bench_time_to_acc.py --recipes fast: cnnlab/plain s per epoch (--ratio; slow)

Every figure is a median over --reps; the sweeps use the default logger (W&B, offline).
On a shared machine read the figures as ratios within one invocation, never as absolutes.

    python experiments/benchmark/bench_fixed_cost.py                 # ~5 min on 2 quiet cores
    python experiments/benchmark/bench_fixed_cost.py --reps 1 --runs 2 --steps 20   # smoke
    python experiments/benchmark/bench_fixed_cost.py --profile /tmp/prof  # + cProfile dumps
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA_ROOT = os.environ.get("CNNLAB_DATA_DIR", str(REPO.parent / "shared" / "data"))
TARGETS = {"--help s": 0.5, "first run s": 6.0, "marginal run s": 1.0, "step overhead ms": 0.15}
ONE_BATCH = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=1",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, proc


def sweep(
    runs: int, out: Path, env: dict[str, str], profile: Path | None = None, extra: tuple = ()
) -> float:
    """Wall seconds of ``cnnlab-train -m`` over ``runs`` one-batch runs (seeds 1..runs)."""
    python = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
    cmd = [
        *python,
        "-m",
        "cnnlab.cli.train",
        "-m",
        *ONE_BATCH,
        *extra,
        f"seed=range(1,{runs + 1})",
        f"hydra.sweep.dir={out}",
    ]
    wall = timed(cmd, env)[0]
    done = [
        p for p in out.glob("*/results.json") if json.loads(p.read_text())["status"] == "completed"
    ]
    if len(done) != runs:
        sys.exit(f"{runs - len(done)} of {runs} runs did not complete; see {out}")
    return wall


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--runs", type=int, default=5, help="runs of the longer sweep")
    p.add_argument("--steps", type=int, default=750, help="steps for bench_step_overhead")
    p.add_argument("--ratio", action="store_true", help="also the fast recipe's cnnlab/plain")
    p.add_argument("--profile", type=Path, help="write cProfile dumps of the sweeps here")
    p.add_argument(
        "--no-help",
        action="store_true",
        help="skip --help (an older checkout on PYTHONPATH, before its fast path)",
    )
    p.add_argument("--data-root", default=DATA_ROOT)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for both sweeps, e.g. data.eval_batch_size=1000 (repeatable)",
    )
    args = p.parse_args()
    if args.runs < 2:
        p.error("--runs must be >= 2: the marginal cost is (N runs - 1 run) / (N - 1)")
    tmp = Path(tempfile.mkdtemp(prefix="cnnlab-fixed-"))
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "CNNLAB_DATA_DIR": args.data_root,
        "CNNLAB_LOG_DIR": str(tmp / "logs"),
        "WANDB_DIR": str(tmp),
        "PYTHONUNBUFFERED": "1",
    }
    exe = Path(sys.executable).parent / "cnnlab-train"
    helps, firsts, marginals = [], [], []
    for rep in range(args.reps):  # interleaved, so machine load hits every figure alike
        helps.append(float("nan") if args.no_help else timed([str(exe), "--help"], env)[0])
        prof = args.profile if args.profile and rep == 0 else None
        if prof:
            prof.mkdir(parents=True, exist_ok=True)
        one = sweep(1, tmp / f"one{rep}", env, prof and prof / "sweep_1.prof", args.set)
        many = sweep(
            args.runs, tmp / f"many{rep}", env, prof and prof / f"sweep_{args.runs}.prof", args.set
        )
        firsts.append(one)
        marginals.append((many - one) / (args.runs - 1))
        print(
            f"rep {rep + 1}: --help {helps[-1]:.2f} s, 1 run {one:.2f} s, "
            f"{args.runs} runs {many:.2f} s",
            flush=True,
        )
    _, step = timed(
        [
            sys.executable,
            str(HERE / "bench_step_overhead.py"),
            "--steps",
            str(args.steps),
            "--reps",
            str(args.reps),
            "--data-root",
            args.data_root,
        ],
        {**env, "OMP_NUM_THREADS": "1"},
    )
    over = {
        line.split()[0]: float(line.split("+")[-1].split()[0])
        for line in step.stdout.splitlines()
        if "over plain" in line
    }
    if "cnnlab" not in over:  # a figure that did not come out is a failure, not a NaN
        raise SystemExit("bench_step_overhead.py printed no cnnlab line:\n" + step.stdout)
    figures = {
        "--help s": statistics.median(helps),
        "first run s": statistics.median(firsts),
        "marginal run s": statistics.median(marginals),
        "step overhead ms": over.get("cnnlab", float("nan")),
    }
    print(
        f"\nmedians over {args.reps} reps; one-batch runs, default logger (W&B offline)"
        + (f"; {' '.join(args.set)}" if args.set else "")
    )
    for name, value in figures.items():
        verdict = "met" if value <= TARGETS[name] else "MISSED"
        print(f"  {name:18s} {value:8.3f}   (target <= {TARGETS[name]}) {verdict}")
    print("\nbench_step_overhead.py (1 thread):\n" + step.stdout.strip())
    if args.ratio:
        _, acc = timed(
            [
                sys.executable,
                str(HERE / "bench_time_to_acc.py"),
                "--recipes",
                "fast",
                "--reps",
                str(args.reps),
                "--data-root",
                args.data_root,
            ],
            env,
        )
        ratios = [line for line in acc.stdout.splitlines() if "cnnlab/plain" in line]
        if not ratios:
            raise SystemExit("bench_time_to_acc.py printed no cnnlab/plain ratio:\n" + acc.stdout)
        print("\nbench_time_to_acc.py --recipes fast (its target is issue 24's):")
        print("\n".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())

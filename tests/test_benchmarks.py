"""Every script in experiments/benchmark/ still runs, at its smallest budget, on tiny data.

Nothing else ran them, so argument checks added later broke one unnoticed (issue 24). Each
takes ~20 s on a quiet 2-core CPU, over a minute on a loaded one: marked slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BENCH = REPO / "experiments" / "benchmark"
SMALLEST = {
    "bench_epoch.py": ["--batches", "2", "--reps", "1"],
    "bench_step_overhead.py": ["--steps", "5", "--reps", "1"],
    "bench_sweep.py": ["--runs", "1", "--train-fraction", "0.5"],
    "bench_feature_cache.py": ["--epochs", "1", "--input-size", "32"],
    "bench_time_to_acc.py": ["--quick", "--batches", "2", "--recipes", "fast"],
    "bench_fixed_cost.py": ["--reps", "1", "--runs", "2", "--steps", "5", "--ratio"],
}


def test_every_benchmark_script_has_a_smoke_test():
    assert sorted(p.name for p in BENCH.glob("*.py")) == sorted(SMALLEST)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_benchmark_runs(script, cli_env, tiny_data, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *SMALLEST[script], "--data-root", str(tiny_data)],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_gpu_session_script_dry_runs_on_the_cpu(cli_env, tmp_path):
    env = {
        **cli_env,
        "OUT": str(tmp_path / "out"),
        "DEVICE": "cpu",
        "EXTRA": "trainer.limit_train_batches=2 trainer.limit_val_batches=1"
        " trainer.limit_test_batches=1 trainer.max_epochs=1",
        "STUDY_RUNS": "2",
        "JOBS": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["bash", str(BENCH / "gpu_session.sh")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = (tmp_path / "out" / "steps.txt").read_text()
    assert "compiled vs plain (cpu, 1 reps): compiled " in steps, steps
    assert "study, n_jobs=2: 2 runs in " in steps, steps
    for mode in ("none", "default", "reduce-overhead"):
        assert f"compile={mode}: completed" in steps, steps
    assert "rerun bit-identical" in steps, steps  # eager on the CPU reruns exactly

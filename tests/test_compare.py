"""cnnlab-compare on fabricated runs with numbers worked out by hand, and on a real sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.analysis import stats
from cnnlab.analysis.compare import group_arms, load_runs, main, summarize
from conftest import FAST, cnnlab


def fake_run(root: Path, name: str, overrides: list[str], acc: float | None,
             status: str = "completed", loss: float = 0.1, write_results: bool = True) -> Path:
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if write_results:
        res = {"status": status, "error": None if status == "completed" else "boom: it broke",
               "metrics": {} if acc is None else {"test/acc": acc, "test/loss": loss},
               "epochs": 2, "fit_time_s": 10.0,
               "history": [] if acc is None else [{"epoch": 0, "val/acc": acc - 0.01},
                                                  {"epoch": 1, "val/acc": acc}]}
        (d / "results.json").write_text(json.dumps(res))
    return d


def test_mean_std_and_paired_interval_by_hand(tmp_path):
    # arm A (reference): 0.90, 0.92, 0.94 for seeds 1, 2, 3
    # arm B:             0.91, 0.95, 0.96 -> paired differences 0.01, 0.03, 0.02
    for seed, a, b in [(1, 0.90, 0.91), (2, 0.92, 0.95), (3, 0.94, 0.96)]:
        fake_run(tmp_path, f"a{seed}", ["model.net.dropout=0.0", f"seed={seed}"], a)
        fake_run(tmp_path, f"b{seed}", ["model.net.dropout=0.5", f"seed={seed}"], b)
    arms = group_arms(load_runs([tmp_path]))
    assert list(arms) == ["model.net.dropout=0.0", "model.net.dropout=0.5"]
    ref, b = summarize(arms)
    assert ref.is_reference and ref.n == 3
    assert ref.mean == pytest.approx(0.92)                  # (0.90 + 0.92 + 0.94) / 3
    assert ref.std == pytest.approx(0.02)                   # sqrt((0.02² + 0 + 0.02²) / 2)
    assert (ref.min, ref.max) == (0.90, 0.94)
    # differences: mean 0.02, sd 0.01; half width t(0.975, 2) * 0.01 / sqrt(3)
    #            = 4.3027 * 0.0057735 = 0.024841
    assert b.paired is True
    assert b.diff == pytest.approx(0.02)
    assert b.ci_low == pytest.approx(0.02 - 0.024841, abs=1e-5)
    assert b.ci_high == pytest.approx(0.02 + 0.024841, abs=1e-5)


def test_welch_interval_when_seeds_do_not_match(tmp_path):
    # reference: 0.90, 0.92, 0.94 (mean 0.92, var 0.0004)
    # other, seeds 4, 5: 0.95, 0.97 (mean 0.96, var 0.0002)
    # se = sqrt(0.0004/3 + 0.0002/2) = sqrt(0.00023333) = 0.015275
    # dof = 0.00023333² / ((0.00013333²)/2 + (0.0001²)/1) = 5.4444e-8 / 1.8889e-8 = 2.8824
    # t(0.975, 2.8824) = 3.2572 (scipy.stats.t.ppf) -> half width 3.2572 * 0.015275 = 0.049755
    for seed, a in [(1, 0.90), (2, 0.92), (3, 0.94)]:
        fake_run(tmp_path, f"a{seed}", ["data/augmentation=none", f"seed={seed}"], a)
    for seed, b in [(4, 0.95), (5, 0.97)]:
        fake_run(tmp_path, f"b{seed}", ["data/augmentation=rotation", f"seed={seed}"], b)
    ref, other = summarize(group_arms(load_runs([tmp_path])), "data/augmentation=none")
    assert other.paired is False
    assert other.diff == pytest.approx(0.04)
    assert other.ci_high - other.diff == pytest.approx(0.049755, abs=1e-5)
    assert other.diff - other.ci_low == pytest.approx(0.049755, abs=1e-5)


def test_intervals_when_every_seed_agrees():
    # no spread at all: the interval is the point itself, not NaN
    assert stats.paired_interval([0.01, 0.01, 0.01]) == (0.01, 0.01, 0.01)
    assert stats.welch_interval([0.9, 0.9], [0.8, 0.8])[1:] == pytest.approx((0.1, 0.1))
    assert stats.paired_interval([0.02]) == (0.02, None, None)


def test_failed_and_missing_runs_are_reported_not_fatal(tmp_path, capsys):
    for seed in (1, 2):
        fake_run(tmp_path, f"a{seed}", ["model.net.batchnorm=false", f"seed={seed}"], 0.97)
        fake_run(tmp_path, f"b{seed}", ["model.net.batchnorm=true", f"seed={seed}"], 0.98)
    fake_run(tmp_path, "b3", ["model.net.batchnorm=true", "seed=3"], None, status="failed")
    fake_run(tmp_path, "a3", ["model.net.batchnorm=false", "seed=3"], None, write_results=False)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr()
    md = (tmp_path / "comparison.md").read_text()
    assert "1 failed" in md and "1 missing" in md and "boom: it broke" in md
    assert "no results.json" in md
    assert "failed" in out.out + out.err
    rows = (tmp_path / "comparison.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("model.net.batchnorm=false,2,")
    assert (tmp_path / "comparison_acc.png").stat().st_size > 1000
    assert (tmp_path / "comparison_val_curves.png").stat().st_size > 1000


def test_bad_paths_and_reference_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope does not exist" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "holds no cnnlab runs" in capsys.readouterr().err
    fake_run(tmp_path, "r", ["seed=1"], 0.9)
    assert main([str(tmp_path), "--reference", "x=1"]) == 2
    assert "reference arm 'x=1' is not one of the arms" in capsys.readouterr().err


def test_tiny_multirun_then_compare_one_row_per_arm(cli_env, tmp_path):
    sweep = tmp_path / "logs" / "sweep"
    proc = cnnlab(["-m", "model.net.dropout=0.0,0.5", "seed=1,2", *FAST, "logger=none",
                   f"hydra.sweep.dir={sweep}"], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = cnnlab([str(sweep)], cli_env, tool="cnnlab-compare")
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = json.loads((sweep / "comparison.json").read_text())
    assert [(r["arm"], r["n"]) for r in table] == [("model.net.dropout=0.0", 2),
                                                    ("model.net.dropout=0.5", 2)]
    assert table[1]["paired"] is True


def test_sweep_with_a_failing_job_keeps_the_others_and_compare_reports_it(cli_env, tmp_path):
    sweep = tmp_path / "logs" / "sweep"
    proc = cnnlab(["-m", "model.optimizer.lr=0.001,-1", "seed=1", *FAST, "logger=none",
                   f"hydra.sweep.dir={sweep}"], cli_env)
    assert proc.returncode != 0  # the sweep says a job failed...
    assert json.loads((sweep / "lr=0.001,seed=1" / "results.json").read_text())["status"] == \
        "completed"
    failed = json.loads((sweep / "lr=-1,seed=1" / "results.json").read_text())
    assert failed["status"] == "failed" and "model.optimizer.lr=-1" in failed["error"]
    proc = cnnlab([str(sweep)], cli_env, tool="cnnlab-compare")  # ...and compare shows it
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (sweep / "comparison.md").read_text()
    assert "model.optimizer.lr=-1" in md and "1 failed" in md

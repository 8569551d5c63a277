"""cnnlab-compare on fabricated runs with numbers worked out by hand, and on a real sweep."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.analysis import stats
from cnnlab.analysis.figures import PLOTS, comparison_figures
from cnnlab.analysis.load import group_arms, load_runs
from cnnlab.analysis.verdict import summarize
from cnnlab.cli.compare import leet_lines, main
from conftest import FAST, REPO, cnnlab


def fake_run(
    root: Path,
    name: str,
    overrides: list[str],
    acc: float | None,
    status: str = "completed",
    loss: float = 0.1,
    write_results: bool = True,
    metrics: dict | None = None,
    rows: list[dict] | None = None,
) -> Path:
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if write_results:
        res = {
            "status": status,
            "error": None if status == "completed" else "boom: it broke",
            "metrics": {}
            if acc is None
            else {"test/acc": acc, "test/loss": loss, **(metrics or {})},
            "epochs": 2,
            "fit_time_s": 10.0,
            "history": rows
            if rows is not None
            else []
            if acc is None
            else [{"epoch": 0, "val/acc": acc - 0.01}, {"epoch": 1, "val/acc": acc}],
        }
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
    assert ref.mean == pytest.approx(0.92)  # (0.90 + 0.92 + 0.94) / 3
    assert ref.std == pytest.approx(0.02)  # sqrt((0.02² + 0 + 0.02²) / 2)
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


def test_a_rerun_beside_its_run_is_left_out_and_named_not_counted_as_a_seed(tmp_path, capsys):
    # cnnlab-rerun writes RUN-rerun-HHMMSS beside RUN, i.e. into the study, with rerun.json
    # naming the original: a second copy of seed 2, which must not become a fourth "seed"
    for seed, a, b in [(1, 0.90, 0.91), (2, 0.92, 0.95), (3, 0.94, 0.96)]:
        fake_run(tmp_path, f"a{seed}", ["model.net.dropout=0.0", f"seed={seed}"], a)
        fake_run(tmp_path, f"b{seed}", ["model.net.dropout=0.5", f"seed={seed}"], b)
    copy = fake_run(tmp_path, "b2-rerun-101500", ["model.net.dropout=0.5", "seed=2"], 0.95)
    (copy / "rerun.json").write_text(json.dumps({"original": str(tmp_path / "b2")}))
    assert main([str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "left out:" in err and "b2-rerun-101500" in err
    arms = {a["arm"]: a for a in json.loads((tmp_path / "comparison.json").read_text())["arms"]}
    assert [v["seed"] for v in arms["model.net.dropout=0.5"]["values"]] == ["1", "2", "3"]
    # compared alone (its original not among the runs given), the rerun is a run like any
    assert main([str(copy), "--out", str(tmp_path / "alone")]) == 0
    assert "left out:" not in capsys.readouterr().err


def test_two_runs_of_one_seed_in_an_arm_are_refused_in_one_line(tmp_path, capsys):
    for seed in (1, 2):
        fake_run(tmp_path, f"a{seed}", ["model.net.batchnorm=false", f"seed={seed}"], 0.97)
        fake_run(tmp_path, f"b{seed}", ["model.net.batchnorm=true", f"seed={seed}"], 0.98)
    fake_run(tmp_path, "copied", ["model.net.batchnorm=true", "seed=2"], 0.99)  # no rerun.json
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "seed 2 of arm 'model.net.batchnorm=true'" in err and "copied" in err
    assert not list(tmp_path.glob("comparison*"))  # refused before anything was written


def test_a_metric_no_run_records_is_refused_in_one_line(tmp_path, capsys):
    for seed in (1, 2):
        fake_run(tmp_path, f"a{seed}", ["model.net.batchnorm=false", f"seed={seed}"], 0.97)
        fake_run(tmp_path, f"b{seed}", ["model.net.batchnorm=true", f"seed={seed}"], 0.98)
    assert main([str(tmp_path), "--metric", "foo"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--metric foo: no run records it (one of test/acc, test/loss)" in err, err
    assert not list(tmp_path.glob("comparison*"))  # refused before anything was written
    assert main([str(tmp_path), "--metric", "test/loss"]) == 0


def test_tiny_multirun_then_compare_one_row_per_arm(cli_env, tmp_path):
    sweep = tmp_path / "logs" / "sweep"
    proc = cnnlab(
        [
            "-m",
            "model.net.dropout=0.0,0.5",
            "seed=1,2",
            *FAST,
            "logger=none",
            f"hydra.sweep.dir={sweep}",
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = cnnlab([str(sweep)], cli_env, tool="cnnlab-compare")
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = json.loads((sweep / "comparison.json").read_text())["arms"]
    assert [(r["arm"], r["n"]) for r in table] == [
        ("model.net.dropout=0.0", 2),
        ("model.net.dropout=0.5", 2),
    ]
    # paired by seed id, with the test set's error counted from the saved predictions
    assert [p["seed"] for p in table[1]["verdict"]["paired"]] == ["1", "2"]
    assert table[1]["verdict"]["test_error_counted"] is True
    assert [v["seed"] for v in table[0]["values"]] == ["1", "2"]


def test_sweep_with_a_failing_job_keeps_the_others_and_compare_reports_it(cli_env, tmp_path):
    sweep = tmp_path / "logs" / "sweep"
    proc = cnnlab(
        [
            "-m",
            "model.optimizer.lr=0.001,-1",
            "seed=1",
            *FAST,
            "logger=none",
            f"hydra.sweep.dir={sweep}",
        ],
        cli_env,
    )
    assert proc.returncode != 0  # the sweep says a job failed...
    assert (
        json.loads((sweep / "lr=0.001,seed=1" / "results.json").read_text())["status"]
        == "completed"
    )
    failed = json.loads((sweep / "lr=-1,seed=1" / "results.json").read_text())
    assert failed["status"] == "failed" and "model.optimizer.lr=-1" in failed["error"]
    proc = cnnlab([str(sweep)], cli_env, tool="cnnlab-compare")  # ...and compare shows it
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (sweep / "comparison.md").read_text()
    assert "model.optimizer.lr=-1" in md and "1 failed" in md
    # the records kept in a repository (experiments/archive_runs.py: no checkpoints, logs or
    # W&B files) compare to the same comparison, the failed job included
    archive = tmp_path / "archive"
    script = REPO / "experiments" / "archive_runs.py"
    args = [sys.executable, str(script), str(sweep.parent), sweep.name, "--into", str(archive)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kept = archive / sweep.name
    # a NAME that is a path of its own, or whose copy would overlap the sweep, is refused
    # in one line before anything is replaced or removed
    for name, into in [(str(sweep), archive), (".", archive), (sweep.name, sweep.parent)]:
        refused = subprocess.run(
            [sys.executable, str(script), str(sweep.parent), name, "--into", str(into)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert (sweep / "lr=0.001,seed=1" / "checkpoints" / "last.ckpt").is_file()
    assert (kept / "lr=-1,seed=1" / "results.json").is_file()
    assert (kept / "lr=0.001,seed=1" / "test_predictions.npz").is_file()
    assert not [p for p in kept.rglob("*") if p.suffix in (".ckpt", ".log") or "wandb" in p.parts]
    assert cnnlab([str(kept)], cli_env, tool="cnnlab-compare").returncode == 0
    assert json.loads((kept / "comparison.json").read_text()) == json.loads(
        (sweep / "comparison.json").read_text()
    )
    # and a kept run reruns from its record alone, identically
    rerun = [str(kept / "lr=0.001,seed=1"), "--out", str(tmp_path / "rerun")]
    proc = cnnlab(rerun, cli_env, tool="cnnlab-rerun")
    assert proc.returncode == 0 and "identical" in proc.stdout, proc.stdout[-2000:]


def test_overfitting_gap_and_gradient_norm_ratio_by_hand(tmp_path):
    # arm A: gaps recorded by the runs, 0.01 and 0.03 -> mean 0.02, std 0.0141
    # arm B: an older run with no gap recorded: history's last train/acc 0.95, test 0.92
    # -> gap 0.03 computed from them
    fake_run(tmp_path, "a1", ["x=a", "seed=1"], 0.9, metrics={"gap/train_test": 0.01})
    fake_run(tmp_path, "a2", ["x=a", "seed=2"], 0.9, metrics={"gap/train_test": 0.03})
    fake_run(
        tmp_path,
        "b1",
        ["x=b", "seed=1"],
        0.92,
        rows=[{"epoch": 0, "train/acc": 0.5}, {"epoch": 1, "train/acc": 0.95}],
    )
    a, b = summarize(group_arms(load_runs([tmp_path])))
    assert a.gap == pytest.approx(0.02) and a.gap_std == pytest.approx(0.0141421, abs=1e-6)
    assert b.gap == pytest.approx(0.03)
    assert a.grad_ratio is None  # no run logged gradient norms


def test_gradient_norms_per_layer_from_the_last_epoch_that_sampled_them(tmp_path):
    # last sampled epoch: seed 1 conv1 0.1, frozen 0, fc 0.4; seed 2 conv1 0.3, frozen 0,
    # fc 0.4 -> geometric means conv1 sqrt(0.03), fc 0.4: first/last 0.4330 (the frozen
    # layer has no gradient); conv1's geometric std exp(ln 3 / sqrt 2)
    def rows(conv1):
        return [
            {"epoch": 0, "grad_norm/conv1": 9.0, "grad_norm/frozen": 0.0, "grad_norm/fc": 9.0},
            {"epoch": 1, "grad_norm/conv1": conv1, "grad_norm/frozen": 0.0, "grad_norm/fc": 0.4},
            {"epoch": 2},
        ]  # an epoch that sampled none

    for seed, conv1 in ((1, 0.1), (2, 0.3)):
        fake_run(
            tmp_path,
            f"r{seed}",
            ["model.net.activation=relu", f"seed={seed}"],
            0.9,
            rows=rows(conv1),
        )
    (arm,) = summarize(group_arms(load_runs([tmp_path])))
    assert list(arm.grad_norms) == ["conv1", "frozen", "fc"]  # network order
    assert arm.grad_norms["conv1"] == pytest.approx((0.1732051, 2.1746), rel=1e-4)
    assert arm.grad_norms["fc"] == pytest.approx((0.4, 1.0))
    assert arm.grad_ratio == pytest.approx(0.4330127)
    assert main([str(tmp_path)]) == 0
    assert (tmp_path / PLOTS["grad"]).stat().st_size > 1000
    row = json.loads((tmp_path / "comparison.json").read_text())["arms"][0]
    assert row["grad_ratio_first_last"] == pytest.approx(0.4330127)
    assert row["grad_norms"]["fc"] == {"geometric_mean": pytest.approx(0.4), "geometric_std": 1.0}
    assert "grad first/last" in (tmp_path / "comparison.md").read_text()


def test_a_gradient_that_vanished_in_some_seeds_shows_in_the_arm_ratio(tmp_path):
    # the activation study's sigmoid arm: four seeds stall (first layer 1e-14 of the
    # head's), one trains (1e-2 of it). An arithmetic mean would report ~2e-3, the one
    # seed that trained; the geometric mean reports what happened in most seeds.
    for seed, first in ((1, 1e-14), (2, 1e-14), (3, 1e-14), (4, 1e-14), (5, 1e-2)):
        fake_run(
            tmp_path,
            f"s{seed}",
            ["model.net.activation=sigmoid", f"seed={seed}"],
            0.5,
            rows=[{"epoch": 0, "grad_norm/conv1": first, "grad_norm/fc": 1.0}],
        )
    (arm,) = summarize(group_arms(load_runs([tmp_path])))
    assert arm.grad_ratio == pytest.approx(10 ** (-(4 * 14 + 2) / 5), rel=1e-6)  # 10^-11.6
    assert main([str(tmp_path)]) == 0
    assert (tmp_path / PLOTS["grad"]).stat().st_size > 1000


def test_geometric_statistics():
    assert stats.geometric([1e-2, 1e-4]) == pytest.approx((1e-3, 10 ** (2 / 2**0.5)))
    assert stats.geometric([0.5]) == (pytest.approx(0.5), 1.0)
    assert stats.geometric([0.0, 0.3]) == (0.0, 1.0)  # a zero norm: the layer did not train


def full_study(root: Path) -> None:
    """12 arms (dropout × batchnorm × augmentation) × 3 seeds, with curves and grad norms."""
    rng = random.Random(0)
    for d, b, a, seed in itertools.product(
        ["0.0", "0.5"], ["false", "true"], ["none", "rotation", "flip_rotation"], [1, 2, 3]
    ):
        layers = (
            ["conv1", "bn1", "conv2", "bn2", "fc1", "fc2"]
            if b == "true"
            else ["conv1", "conv2", "fc1", "fc2"]
        )
        acc = 0.985 + rng.gauss(0, 0.002)
        rows = [
            {
                "epoch": e,
                "val/acc": acc - 0.05 * 0.6**e,
                "train/acc": acc + 0.01,
                "val/loss": 0.3 * 0.6**e + rng.gauss(0, 0.003),
                **{
                    f"grad_norm/{k}": 0.05 * (i + 1) * (1 + rng.gauss(0, 0.1))
                    for i, k in enumerate(layers)
                },
            }
            for e in range(10)
        ]
        fake_run(
            root,
            f"{d}{b}{a}{seed}",
            [
                f"model.net.dropout={d}",
                f"model.net.batchnorm={b}",
                f"data/augmentation={a}",
                f"seed={seed}",
            ],
            acc,
            rows=rows,
        )


def overlapping_or_outside(fig) -> list[str]:
    """Pairs of tick labels of one axis that overlap, and texts that leave the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    texts = [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    texts += [t for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        for axis, i in ((ax.xaxis, 0), (ax.yaxis, 1)):
            lo, hi = sorted(axis.get_view_interval())
            shown = [
                t
                for t in axis.get_ticklabels()
                if t.get_visible() and t.get_text() and lo <= t.get_position()[i] <= hi
            ]  # ticks outside are not drawn
            texts += shown
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in shown]
            problems += [
                f"{a} overlaps {b}"
                for (a, ba), (b, bb) in itertools.combinations(boxes, 2)
                if ba.overlaps(bb)
            ]
    for t in texts:
        box = t.get_window_extent(renderer)
        if t.get_text() and not (
            box.x0 >= -1
            and box.y0 >= -1
            and box.x1 <= fig.bbox.x1 + 1
            and box.y1 <= fig.bbox.y1 + 1
        ):
            problems.append(f"{t.get_text()!r} leaves the figure")
    return problems


def test_a_twelve_arm_study_reads_at_a_glance(tmp_path):
    full_study(tmp_path)
    summaries = summarize(group_arms(load_runs([tmp_path])))
    figs = comparison_figures(summaries, "test/acc")
    assert set(figs) == {"acc", "curves", "grad"}
    from cnnlab.plots import plt

    try:
        for name, fig in figs.items():
            assert overlapping_or_outside(fig) == [], name
        forest = figs["acc"].axes[0]
        labels = [t.get_text().split("\n")[0] for t in forest.get_yticklabels()]
        # one row per arm against the reference, on an axis centred on zero, with units
        assert len(labels) == 11 and summaries[0].display not in labels
        assert "augmentation=rotation batchnorm=true dropout=0.5" in labels
        lo, hi = forest.get_xlim()
        assert lo == pytest.approx(-hi)
        assert "percentage points" in forest.get_xlabel()
        panels = [ax for ax in figs["curves"].axes if ax.get_visible()]
        assert len(panels) == 12  # small multiples: one panel per arm
        assert "error (%" in figs["curves"].get_supylabel()
        for ax, arm in zip(panels, summaries):  # every epoch's mean on the (log) axis
            assert ax.get_yscale() == "log"
            lo, hi = ax.get_ylim()
            for epoch in range(len(arm.runs[0].history)):
                mean = sum(r.history[epoch]["val/acc"] for r in arm.runs) / arm.n
                assert lo <= (1 - mean) * 100 <= hi
            # each seed a line, their mean, and the reference's mean in the other panels
            assert len(ax.lines) == arm.n + 1 + (not arm.is_reference)
        grad = figs["grad"].axes  # one panel per net: no arm drawn through a layer it lacks
        assert sorted([t.get_text() for t in ax.get_xticklabels()] for ax in grad) == [
            ["conv1", "bn1", "conv2", "bn2", "fc1", "fc2"],
            ["conv1", "conv2", "fc1", "fc2"],
        ]
        assert all(ax.get_yscale() == "log" and ax.get_ylabel() for ax in grad)
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_the_overlap_check_sees_overlapping_labels():
    from cnnlab.plots import plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(range(12), range(12))
    ax.set_xticks(range(12), [f"augmentation=flip_rotation {i}" for i in range(12)])
    try:
        assert overlapping_or_outside(fig)
    finally:
        plt.close(fig)


def test_reports_name_runs_relative_to_the_study_and_print_no_markup(tmp_path, capsys):
    study = tmp_path / "study"
    fake_run(study, "ok", ["tag=[bold]x[/bold]", "seed=1"], 0.9)
    fake_run(study, "bad", ["tag=[red]y", "seed=1"], None, status="failed")
    assert main([str(study)]) == 0
    out = capsys.readouterr()
    assert "tag=[bold]x[/bold]" in out.out  # shown as written, not as bold text
    md, js = (study / "comparison.md").read_text(), (study / "comparison.json").read_text()
    assert str(tmp_path) not in md and str(tmp_path) not in js
    assert "failed: bad — boom" in md
    assert json.loads(js)["arms"][1]["not_completed"] == ["bad"]
    # written elsewhere (experiments/<study>), runs are still named from the study dir
    assert main([str(study), "--out", str(tmp_path / "published")]) == 0
    assert json.loads((tmp_path / "published" / "comparison.json").read_text())["arms"][1][
        "not_completed"
    ] == ["bad"]


def test_leet_command_for_one_wandb_folder_or_several(tmp_path):
    def offline(wandb_dir: Path, rid: str) -> None:
        run = wandb_dir / f"offline-run-20260101_000000-{rid}"
        run.mkdir(parents=True)
        (run / f"run-{rid}.wandb").write_bytes(b"")

    offline(tmp_path / "one" / "wandb", "a-1")
    offline(tmp_path / "one" / "wandb", "b-2")
    assert leet_lines([tmp_path / "one"]) == [
        f"W&B, offline: wandb leet {tmp_path / 'one' / 'wandb'}",
        f"W&B, upload: wandb sync {tmp_path / 'one' / 'wandb'}/offline-run-*",
    ]
    for i in range(5):  # runs from before: a W&B folder in each run dir
        offline(tmp_path / "old" / str(i) / "wandb", f"r{i}")
    lines = leet_lines([tmp_path / "old"])
    assert "5 folders" in lines[0] and len(lines) == 5 and lines[-1].strip() == "..."
    assert leet_lines([tmp_path / "none"]) == []

"""cnnlab-compare's verdict on a synthetic study whose answers are known by construction,
the seed × test-image interval's coverage on simulated data, and the README generator."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab.analysis import render, stats
from cnnlab.analysis.load import group_arms, load_runs
from cnnlab.analysis.verdict import (
    EFFECT,
    EQUIVALENT,
    INCONCLUSIVE,
    Settings,
    factorial,
    summarize,
)
from cnnlab.cli.compare import main

SEEDS = [1, 2, 3, 4, 5]
Z = np.array([-1.2649, -0.6325, 0.0, 0.6325, 1.2649])  # mean 0, sample sd 1
REF = 0.990 + 0.001 * np.array([0.3, -0.5, 0.1, 0.4, -0.3])


def run(
    root: Path,
    arm: str,
    seed: int,
    acc: float,
    curve=None,
    grads=None,
    correct: np.ndarray | None = None,
    lrs=None,
) -> None:
    d = root / f"{arm},{seed}"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(f"- arm={arm}\n- seed={seed}\n")
    curve = curve or [acc - 0.02, acc - 0.0002, acc]
    rows = [{"epoch": e, "val/acc": v, **(grads or {})} for e, v in enumerate(curve)]
    for row, lr in zip(rows, lrs or []):
        row["lr"] = lr
    (d / "results.json").write_text(
        json.dumps(
            {
                "status": "completed",
                "metrics": {"test/acc": acc, "test/loss": 0.1},
                "epochs": len(curve),
                "history": rows,
            }
        )
    )
    if correct is not None:
        target = np.zeros(len(correct), dtype=np.uint8)
        np.savez(d / "test_predictions.npz", pred=(1 - correct).astype(np.uint8), target=target)


def synthetic_study(root: Path) -> None:
    """a_ref; b_effect (−1 pp); c_holm (p ≈ 0.02 raw, 4th of 5 by Holm: 0.08); d_equiv
    (0 ± tiny); e_underpowered (+0.05 pp, sd 0.4 pp); f_bimodal (4 of 5 seeds at chance);
    b_effect still improves at its last epoch."""
    arms = {
        "a_ref": np.zeros(5),
        "b_effect": -0.01 + 0.0005 * Z,
        "c_holm": 0.00168 + 0.001 * Z,
        "d_equiv": 0.0002 * Z,
        "e_underpowered": 0.0005 + 0.004 * Z,
    }
    for arm, diffs in arms.items():
        for seed, r, d in zip(SEEDS, REF, diffs):
            acc = float(r + d)
            curve = [acc - 0.03, acc - 0.01, acc] if arm == "b_effect" else None
            run(root, arm, seed, acc, curve, grads={"grad_norm/conv1": 0.1, "grad_norm/fc": 0.2})
    for seed, acc in zip(SEEDS, [0.1135, 0.1135, 0.1135, 0.1135, 0.985]):
        run(
            root,
            "f_bimodal",
            seed,
            acc,
            grads={"grad_norm/conv1": 1e-14 if acc < 0.2 else 1e-2, "grad_norm/fc": 1.0},
        )


@pytest.fixture
def verdicts(tmp_path):
    synthetic_study(tmp_path)
    summaries = summarize(group_arms(load_runs([tmp_path])), "arm=a_ref")
    return {s.label.split("=")[1]: s for s in summaries}


def test_each_arm_of_a_known_study_reads_right(verdicts):
    v = {k: s.verdict for k, s in verdicts.items()}
    assert v["a_ref"] is None and verdicts["a_ref"].is_reference
    assert v["b_effect"].reading == EFFECT and v["b_effect"].diff == pytest.approx(-0.01)
    # significant alone, not as one of five comparisons
    assert v["c_holm"].p == pytest.approx(0.02, abs=0.002)
    assert v["c_holm"].p_adjusted > 0.05 and v["c_holm"].reading == INCONCLUSIVE
    assert v["c_holm"].ci[0] > 0 and v["c_holm"].ci_adjusted[0] < 0
    assert v["d_equiv"].reading == EQUIVALENT
    # underpowered: its interval spans ±0.1 pp, and the MDE says how far from enough
    e = v["e_underpowered"]
    assert e.reading == INCONCLUSIVE and e.mde > 0.005
    assert e.seeds_needed > 5
    # bimodal: counts with Fisher's exact test, never a mean difference or a t-interval
    f = v["f_bimodal"]
    assert f.method == "Fisher exact" and f.diff is None and f.ci is None
    assert f.counts["stalled"] == 4 and f.counts["reference_stalled"] == 0
    assert f.p == pytest.approx(0.047619, abs=1e-5)  # 4/5 vs 0/5: 2 / C(10, 5)
    assert verdicts["f_bimodal"].grad_ratio is None  # no geometric mean across the groups
    assert verdicts["f_bimodal"].grad_ratio_groups["stalled"] == pytest.approx(1e-14)
    # convergence: only the arm still rising at its last epoch is flagged
    assert [k for k, s in verdicts.items() if s.still_improving] == ["b_effect"]


@pytest.mark.parametrize("adjust", ["holm", "bonferroni", "none"])
def test_the_reports_say_which_intervals_the_adjusted_ones_are(tmp_path, adjust):
    synthetic_study(tmp_path)
    settings = Settings.load(adjust=adjust)
    summaries = summarize(group_arms(load_runs([tmp_path])), "arm=a_ref", settings=settings)
    levels = {
        round(s.verdict.ci_adjusted_level, 9) for s in summaries if s.verdict and s.verdict.ci
    }
    data = render.comparison_data(summaries, settings, "test/acc")
    block = render.readme_block(data)  # the README says the same of them
    line = render.method_lines(summaries, settings)[0]
    assert f"adjusted: {adjust} across the 5 comparisons" in line
    assert (
        render.adjusted_intervals(adjust, 5) in line
        and render.adjusted_intervals(adjust, 5) in block
    )
    if adjust == "holm":  # levels that follow Holm's steps, no one simultaneous level
        assert len(levels) > 1 and "agrees with Holm's decision" in line
        assert "Bonferroni level" not in line
    elif adjust == "bonferroni":  # every interval at 1 - alpha/m: simultaneous
        assert levels == {round(1 - 0.05 / 5, 9)} and "simultaneous intervals" in line
    else:
        assert levels == {0.95} and "not adjusted" in line
    # one comparison: every method leaves its level as it is, and the sentence says so
    assert stats.adjusted_levels([0.01], 0.95, adjust) == [0.95]
    assert "its adjusted interval is the raw one" in render.adjusted_intervals(adjust, 1)


def test_comparison_json_keeps_seed_ids_and_the_verdict(tmp_path):
    synthetic_study(tmp_path)
    assert main([str(tmp_path), "--reference", "arm=a_ref"]) == 0
    data = json.loads((tmp_path / "comparison.json").read_text())
    arms = {a["arm"]: a for a in data["arms"]}
    assert [v["seed"] for v in arms["arm=c_holm"]["values"]] == ["1", "2", "3", "4", "5"]
    paired = arms["arm=c_holm"]["verdict"]["paired"]
    assert paired[0] == {"seed": "1", "diff": pytest.approx(0.00168 - 0.0012649)}
    assert arms["arm=b_effect"]["convergence"]["still_improving"] is True
    assert data["settings"]["adjust"] == "holm"
    md = (tmp_path / "comparison.md").read_text()
    assert "inconclusive at this power" in md and "stalled 4/5 vs 0/5" in md
    lo, hi = arms["arm=d_equiv"]["verdict"]["ci_equivalence"]  # what makes it equivalent
    assert -0.001 < lo < hi < 0.001
    assert f"equivalence interval [{lo * 100:+.2f}, {hi * 100:+.2f}]" in render.readme_block(data)
    # the method a flag: with no adjustment the raw reading stands
    assert main([str(tmp_path), "--reference", "arm=a_ref", "--adjust", "none"]) == 0
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert {a["arm"]: a for a in data["arms"]}["arm=c_holm"]["verdict"]["reading"] == EFFECT


def test_a_bad_statistics_flag_exits_2_before_reading(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "nowhere"), "--adjust", "fdr"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--adjust: invalid choice: 'fdr' (choose from 'holm', 'bonferroni', 'none')" in err
    assert "nowhere" not in err  # refused before the paths are read


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 -> 4*0.01, max(.04, 3*.03), max(.09, 2*.04), .5
    assert stats.adjust([0.01, 0.04, 0.03, 0.5], "holm") == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.adjust([0.01, 0.04], "bonferroni") == pytest.approx([0.02, 0.08])


def test_test_set_error_counted_when_runs_kept_predictions_else_seed_only(tmp_path):
    rng = np.random.default_rng(0)
    for seed in SEEDS:
        run(tmp_path, "a", seed, 0.9, correct=(rng.random(2000) < 0.9).astype(np.uint8))
        run(tmp_path, "b", seed, 0.91, correct=(rng.random(2000) < 0.91).astype(np.uint8))
    _, b = summarize(group_arms(load_runs([tmp_path])))
    assert b.verdict.test_error and b.verdict.method.startswith("seed × test-image")
    (tmp_path / "b,3" / "test_predictions.npz").unlink()  # an older run: none kept
    _, b = summarize(group_arms(load_runs([tmp_path])))
    assert not b.verdict.test_error and b.verdict.method == "paired t"


def simulate(rng, image_effects: bool, seeds: int = 5, images: int = 1000):
    """Per-image correctness of two arms: image difficulty shared, each seed shifted; the
    arm's effect per image +25 or −24 pp (population mean +0.5 pp) when image_effects."""
    if image_effects:
        p, delta = rng.uniform(0.5, 0.7, images), rng.choice([0.25, -0.24], size=images)
    else:
        p, delta = rng.uniform(0.85, 0.93, images), np.full(images, 0.005)
    shift = rng.normal(0, 0.003, (2, seeds, 1))
    ref = rng.random((seeds, images)) < p + shift[0]
    arm = rng.random((seeds, images)) < p + delta + shift[1]
    return arm, ref


@pytest.mark.parametrize("image_effects", [False, True])
def test_the_interval_covers_the_truth_95_percent_of_the_time(image_effects):
    rng = np.random.default_rng(7)
    hits = seed_only = 0
    draws = 800
    for _ in range(draws):
        arm, ref = simulate(rng, image_effects)
        lo, hi = stats.seed_image_estimate(arm, ref).interval(0.95)
        hits += lo <= 0.005 <= hi
        lo, hi = stats.paired_estimate(list((arm.astype(float) - ref).mean(axis=1))).interval()
        seed_only += lo <= 0.005 <= hi
    assert 0.93 <= hits / draws <= 0.97
    if image_effects:  # where the test set's own error matters, seeds alone under-cover
        assert seed_only / draws < 0.93


def test_factorial_main_effects_and_interaction_with_seed_blocks(tmp_path):
    # acc = 0.98 + seed block − 0.3 pp (dropout) + 0.2 pp (bn) + 0.1 pp (both) + noise
    rng = np.random.default_rng(1)
    for d in ("0.0", "0.5"):
        for b in ("false", "true"):
            for seed, block in zip(SEEDS, [0.001, -0.002, 0.0, 0.0015, -0.0005]):
                acc = (
                    0.98
                    + block
                    - 0.003 * (d == "0.5")
                    + 0.002 * (b == "true")
                    + 0.001 * (d == "0.5" and b == "true")
                    + rng.normal(0, 0.0001)
                )
                r = tmp_path / f"{d}{b}{seed}"
                (r / ".hydra").mkdir(parents=True)
                (r / ".hydra" / "overrides.yaml").write_text(
                    f"- model.net.dropout={d}\n- model.net.batchnorm={b}\n- seed={seed}\n"
                )
                (r / "results.json").write_text(
                    json.dumps({"status": "completed", "metrics": {"test/acc": acc}})
                )
    summaries = summarize(group_arms(load_runs([tmp_path])))
    terms = {t["term"]: t for t in factorial(summaries)}
    # main effects averaged over the other factor's levels: -0.3 + 0.1/2, 0.2 + 0.1/2
    assert terms["dropout=0.5"]["estimate"] == pytest.approx(-0.0025, abs=2e-4)
    assert terms["batchnorm=true"]["estimate"] == pytest.approx(0.0025, abs=2e-4)
    assert terms["batchnorm=true × dropout=0.5"]["estimate"] == pytest.approx(0.001, abs=3e-4)
    assert all(t["p_adjusted"] < 0.05 for t in terms.values())
    for t in terms.values():  # the adjusted interval is never narrower, and agrees with p
        assert t["ci_adjusted"][0] <= t["ci"][0] and t["ci_adjusted"][1] >= t["ci"][1]
        assert (t["ci_adjusted"][0] > 0 or t["ci_adjusted"][1] < 0) == (t["p_adjusted"] < 0.05)


def families(seed: int, diff_sd: float, se_range: tuple[float, float]):
    """Random families of 1-11 comparisons, 200 per adjustment method: (method, estimates)."""
    rng = np.random.default_rng(seed)
    for method in ("holm", "bonferroni", "none"):
        for _ in range(200):
            m = int(rng.integers(1, 12))
            yield (
                method,
                [
                    stats.Estimate(float(d), float(se), float(dof), "paired t")
                    for d, se, dof in zip(
                        rng.normal(0, diff_sd, m), rng.uniform(*se_range, m), rng.integers(3, 30, m)
                    )
                ],
            )


def test_adjusted_intervals_agree_with_the_adjusted_p_values():
    for method, ests in families(3, 0.002, (0.0004, 0.002)):
        ps = [e.p_value() for e in ests]
        for e, p, level in zip(
            ests, stats.adjust(ps, method), stats.adjusted_levels(ps, 0.95, method)
        ):
            lo, hi = e.interval(level)
            assert (lo > 0 or hi < 0) == (p < 0.05), (method, len(ests), p, level)
    # tied p-values share one level (the same adjusted p), a p of 0 keeps its step's
    assert stats.adjusted_levels([0.01, 0.01], 0.95, "holm") == pytest.approx([0.975, 0.975])
    assert stats.adjusted_levels([0.0, 0.3], 0.95, "holm")[0] == pytest.approx(0.975)
    # Holm's levels: its own step for the rejected, the first failed step's for the rest
    ps = [0.001, 0.02, 0.03, 0.5]  # steps 4 x .001 = .004 < .05; 3 x .02 = .06: stops
    assert stats.adjusted_levels(ps, 0.95, "holm") == pytest.approx(
        [1 - 0.05 / 4, 1 - 0.05 / 3, 1 - 0.05 / 3, 1 - 0.05 / 3]
    )


def test_an_equivalent_arm_has_its_equivalence_interval_inside_the_margin_and_no_other():
    margin = 0.001
    for method, ests in families(5, 0.001, (0.0001, 0.001)):
        ps = [e.tost_p(margin) for e in ests]
        for e, p, level in zip(
            ests, stats.adjust(ps, method), stats.adjusted_levels(ps, 0.95, method)
        ):
            lo, hi = e.equivalence_interval(1 - level)
            assert (-margin < lo and hi < margin) == (p < 0.05), (method, len(ests), p, level)


def test_each_verdict_carries_the_equivalence_interval_that_decides_it(verdicts):
    for s in verdicts.values():
        v = s.verdict
        if v is None or v.tost_p is None:  # the reference, a counts arm: no TOST
            continue
        assert v.ci_equivalence is not None
        inside = -v.margin < v.ci_equivalence[0] and v.ci_equivalence[1] < v.margin
        assert inside == (v.tost_p_adjusted < 0.05)
        assert (v.reading == "equivalent") <= inside
    assert any(s.verdict and s.verdict.reading == "equivalent" for s in verdicts.values())


def test_power_is_at_the_familys_level_and_welch_seeds_scale_each_arm(verdicts):
    tested = [s.verdict for s in verdicts.values() if s.verdict and s.verdict.estimate]
    assert tested and all(v.power_alpha == pytest.approx(0.05 / 5) for v in tested)
    # Welch with 3 seeds against 10: at n seeds each, each arm's own variance over n
    a, b = [0.990, 0.992, 0.994], [0.99 + 0.001 * i for i in range(10)]
    est = stats.welch_estimate(a, b)
    at10 = est.with_seeds(10)
    assert at10.se == pytest.approx(
        math.sqrt(statistics.variance(a) / 10 + statistics.variance(b) / 10)
    )
    assert est.with_seeds(est.n) is est


def test_only_an_arm_far_beyond_the_rest_leaves_the_forest_plots_axis():
    from cnnlab.analysis.figures import off_axis

    assert off_axis({0: 0.14, 1: 10.1}) == {1}  # transfer: frozen far off, fine-tune kept
    assert off_axis({0: 0.3, 1: 0.0}) == set()  # an arm of identical runs moves nothing
    assert off_axis({0: 0.3, 1: 0.3, 2: 0.0}) == set()
    assert off_axis({0: 12.0, 1: 1.0, 2: 0.9, 3: 0.05}) == {0}  # one split, at the widest gap
    assert off_axis({0: 0.30, 1: 0.06}) == set()  # 5x apart: both stay readable on one axis
    assert off_axis({0: 0.5, 1: 0.4, 2: 0.3}) == set()


def test_the_forest_plot_shows_an_equivalent_arm_by_the_interval_inside_the_margin(verdicts):
    from cnnlab.analysis.figures import forest
    from cnnlab.plots import plt

    fig = forest(list(verdicts.values()), "test/acc")
    ax = fig.axes[0]
    arms = [s for s in verdicts.values() if not s.is_reference]
    y = next(i for i, s in enumerate(arms) if s.verdict.reading == EQUIVALENT)
    v = arms[y].verdict
    at_y = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [y, y]]
    # one interval for it, the two one-sided tests', inside the shaded margin: no raw one
    assert [list(ln.get_xdata()) for ln in at_y] == [[c * 100 for c in v.ci_equivalence]]
    assert all(-v.margin * 100 < x < v.margin * 100 for x in at_y[0].get_xdata())
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "reading: equivalent" in labels and "equivalence margin ±0.1 pp" in labels
    assert any(lab.startswith("an equivalent arm") for lab in labels)
    plt.close(fig)


def test_the_mde_and_the_seeds_needed_agree_at_the_seeds_there_were():
    rng = np.random.default_rng(5)
    for image_part in (False, True):
        for _ in range(50):
            arm, ref = simulate(rng, image_effects=image_part)
            d = list((arm.astype(float) - ref).mean(axis=1))
            est = stats.seed_image_estimate(arm, ref) if image_part else stats.paired_estimate(d)
            mde = stats.minimum_detectable(est.se, est.dof, 0.01)
            # an effect just above the MDE needs no more seeds than there are; just below, more
            assert stats.seeds_needed(mde * 1.001, est, 0.01) <= est.n
            assert stats.seeds_needed(mde * 0.999, est, 0.01) > est.n


def test_the_generated_readme_block_comes_from_the_json_and_drift_is_seen(tmp_path):
    synthetic_study(tmp_path)
    for seed in SEEDS:  # an arm with no completed run (weights it could not fetch): not tested
        run(tmp_path, "g_skipped", seed, 0.0)
        record = tmp_path / f"g_skipped,{seed}" / "results.json"
        record.write_text(json.dumps({"status": "skipped", "reason": "no weights"}))
    assert main([str(tmp_path), "--reference", "arm=a_ref"]) == 0
    data = json.loads((tmp_path / "comparison.json").read_text())
    # Holm's family is the five arms with a test, not the six compared
    assert "adjusted by holm across 5 comparisons" in render.readme_block(data)
    assert "| [s](s/) | 6 × 5 (+1 arm with no completed run) |" in render.index_block({"s": data})
    readme = "# Study\n\nProse.\n\n" + render.BEGIN + "\nstale\n" + render.END + "\n\nMore.\n"
    fresh = render.regenerate(readme, data)
    assert fresh.startswith("# Study\n\nProse.\n\n") and fresh.endswith("\n\nMore.\n")
    assert "- **arm=b_effect**: an effect of -1.00 pp" in fresh
    assert "inconclusive at this power" in fresh and "stalled in 4 of 5 seeds" in fresh
    # a split arm: each group's count and mean, no mean ± std or loss over both groups
    row = next(line for line in fresh.splitlines() if line.startswith("| arm=f_bimodal | 5 |"))
    assert "split: 4/5 stalled (11.35%), 1/5 trained (98.50%)" in row and "±" not in row
    assert "| arm=f_bimodal | — (split seeds) | — (split seeds) |" in fresh
    assert "Still improving at the last epoch: arm=b_effect." in fresh
    assert render.regenerate(fresh, data) == fresh
    assert render.regenerate(fresh.replace("-1.00 pp", "-1.10 pp"), data) != fresh.replace(
        "-1.00 pp", "-1.10 pp"
    )
    (tmp_path / "README.md").write_text(readme)  # --readme re-renders the block in place
    assert (
        main([str(tmp_path), "--reference", "arm=a_ref", "--readme", str(tmp_path / "README.md")])
        == 0
    )
    assert (tmp_path / "README.md").read_text() == fresh


def test_the_readme_header_says_how_the_runs_ran_from_their_records(tmp_path):
    """The header's machine, launcher, budget and versions come from each run's own
    provenance, .hydra/config.yaml and .hydra/hydra.yaml, through comparison.json."""
    synthetic_study(tmp_path)
    for i, d in enumerate(sorted(p for p in tmp_path.iterdir() if p.is_dir())):
        record = json.loads((d / "results.json").read_text())
        record["session_wall_time_s"] = 60.0
        record["provenance"] = {
            "versions": {"torch": "2.14.1", "lightning": "2.6.6", "cnnlab": "0.1.0"},
            "git": {"commit": "abcdef0123456789" if i else "0123456789abcdef"},
            "device": {"cpu_model": "Some CPU", "cpu_count": 2, "torch_threads": 1, "gpu": None},
        }
        (d / "results.json").write_text(json.dumps(record))
        (d / ".hydra" / "config.yaml").write_text(
            "study_budget: 2\ntest_ckpt: last\ndata: {batch_size: 256, val_fraction: 0.2}\n"
            "model:\n  net: {_target_: cnnlab.nets.MyCNN}\n"
            "  optimizer: {_target_: torch.optim.Adam, lr: 0.01, betas: [0.7, 0.9]}\n"
            "  scheduler: {_target_: cnnlab.training.checked.OneCycleLR, max_lr: "
            "'${model.optimizer.lr}'}\n"
        )
        (d / ".hydra" / "hydra.yaml").write_text("hydra:\n  launcher: {n_jobs: 2}\n")
    assert main([str(tmp_path), "--reference", "arm=a_ref"]) == 0
    data = json.loads((tmp_path / "comparison.json").read_text())
    block = render.setup_block(data["setup"])
    assert (
        "- **Runs:** 30 (30 completed); 30.0 min of run time in all (summed over runs); " in block
    )
    assert "Some CPU, 2 cores, no GPU; 2 jobs in parallel, 1 torch thread each." in block
    assert (
        "MyCNN, 3 epochs (study_budget=2), batch 256, 20% of the training images held out "
        "for validation; Adam lr 0.01 with betas (0.7, 0.9), OneCycleLR; the last weights"
    ) in block
    assert "cnnlab 0.1.0 (git 0123456789, abcdef0123)" in block
    readme = f"# Study\n\n{render.SETUP_BEGIN}\n- **Runs:** 29\n{render.SETUP_END}\n"
    assert render.regenerate(readme, data) == f"# Study\n\n{block}\n"


def test_the_header_says_unknown_where_no_record_says_and_reads_older_records():
    from cnnlab.analysis.load import Run, run_setup, study_setup

    old = {  # a record from before torch_threads: cpu_count held the thread count
        "status": "completed",
        "epochs": 15,
        "provenance": {"device": {"cpu_model": "Old CPU", "cpu_count": 4}},
    }
    config = {"data": {"validation": False, "batch_size": 512}, "model": {"optimizer": {}}}
    hydra = {"hydra": {"launcher": {"_target_": "hydra._internal.BasicLauncher"}}}
    runs = [
        Run(Path("a"), {}, "completed", setup=run_setup(old, config, hydra)),
        Run(Path("b"), {}, "failed", setup=run_setup({"status": "failed", "epochs": 1}, {}, {})),
        Run(Path("c"), {}, "missing"),
    ]
    block = render.setup_block(study_setup(runs))
    assert "- **Runs:** 3 (1 completed, 1 failed, 1 missing); 0.0 min of run time in all " in block
    assert "(summed over runs; not recorded by 3); Old CPU, ? cores, ?; 1 job at a time, " in block
    assert "4 torch threads each." in block  # the old record's count, read as threads
    assert "?, 15 epochs, batch 512, no validation split; ? lr ?; the ? weights" in block
    assert render.setup_block({}).count("?") > 5  # an empty setup renders, all unknown


def test_runs_from_several_sweeps_say_their_fit_times_are_no_cost_comparison():
    from cnnlab.analysis.load import Run, run_setup, study_setup

    def run(name: str, hydra: dict) -> Run:
        return Run(Path(name), {}, "completed", setup=run_setup({"status": "completed"}, {}, hydra))

    def swept(d: str) -> dict:  # as hydra.yaml has it: sweep.dir unresolved, the job's folder not
        template = "${paths.log_dir}/multiruns/${now:%Y-%m-%d_%H-%M-%S}_${cnnlab_uid:}"
        return {
            "hydra": {
                "mode": "MULTIRUN",
                "sweep": {"dir": template},
                "runtime": {"output_dir": f"{d}/seed={len(d)}"},
            }
        }

    single = {"hydra": {"mode": "RUN", "runtime": {"output_dir": "/r/single"}}}
    one = study_setup([run("a", swept("/s/1")), run("b", swept("/s/1"))])
    three = study_setup([run("a", swept("/s/1")), run("b", swept("/s/2")), run("c", single)])
    assert (one["sweeps"], three["sweeps"]) == (1, 3)
    assert "sweep" not in three  # counted, not published: the paths are the publisher's
    assert "- **Runs:** 3 (3 completed) from 3 sweeps; " in render.setup_block(three)
    assert "- **Runs:** 2 (2 completed); " in render.setup_block(one)
    arm = {"label": "x", "arm": "x", "test_loss": 0.1, "gap_train_test": None}
    arm |= {"gap_eval_mode": True, "grad_ratio_first_last": None, "epochs": 3, "not_completed": []}
    assert "not a cost comparison" in "\n".join(render.measures_block([arm], 3))
    assert "not a cost comparison" not in "\n".join(render.measures_block([arm], 1))


def test_a_recipe_row_lists_every_seed_by_id_with_its_budget_and_time():
    data = {
        "arms": [
            {
                "reference": True,
                "mean": 0.99,
                "std": 0.001,
                "values": [{"seed": "2", "value": 0.991}, {"seed": "1", "value": 0.989}],
            }
        ],
        "setup": {
            "epochs": [1],
            "runs": 3,
            "run_time_s": 40.0,
            "run_time_missing": 1,
            "cpu": ["Some CPU"],
            "gpu": ["no GPU"],
            "launcher": ["1 job at a time"],
        },
    }
    block = render.recipes_block({"fast": data})
    assert (
        "| [fast](recipes/fast/) | 1 | 1: 0.9890 2: 0.9910 | 0.9900 ± 0.0010 | 20 s | "
        "Some CPU, no GPU, 1 job at a time |"
    ) in block
    readme = f"x\n{render.RECIPES_BEGIN}\nold\n{render.RECIPES_END}\ny\n"
    assert render.regenerate_index(readme, {}, {"fast": data}) == f"x\n{block}\ny\n"


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
GENERATED = sorted(
    p
    for p in [*EXPERIMENTS.glob("*/README.md"), *EXPERIMENTS.glob("recipes/*/README.md")]
    if render.BEGIN in p.read_text()
)


@pytest.mark.parametrize("readme", GENERATED, ids=[p.parent.name for p in GENERATED])
def test_every_published_readme_matches_its_comparison_json(readme):
    data = json.loads((readme.parent / "comparison.json").read_text())
    assert render.SETUP_BEGIN in readme.read_text(), f"{readme}: its header is not generated"
    assert render.regenerate(readme.read_text(), data) == readme.read_text(), (
        f"{readme} differs from its comparison.json: re-render it with cnnlab-compare --readme"
    )
    for arm in data["arms"]:  # every arm has its row (a one-arm recipe's had been lost)
        assert f"\n| {arm['label'] or arm['arm']} | {arm['n']} | " in readme.read_text()


def test_the_index_of_studies_matches_every_comparison_json():
    index = EXPERIMENTS / "README.md"
    if render.BEGIN not in index.read_text():
        pytest.skip("experiments/README.md has no generated index block")
    studies, recipes = (
        {p.parent.name: json.loads(p.read_text()) for p in sorted(EXPERIMENTS.glob(pattern))}
        for pattern in ("*/comparison.json", "recipes/*/comparison.json")
    )
    assert render.regenerate_index(index.read_text(), studies, recipes) == index.read_text(), (
        "experiments/README.md differs from the studies' comparison.json: "
        "python experiments/publish_study.py --index"
    )


def test_a_published_arm_rerun_in_its_own_sweep_gives_the_same_accuracies_seed_for_seed():
    """README ("Same seed, same machine, same result"): the transfer study's scratch arm, a
    sweep of its own with the full study's reference config, on the same machine."""

    def values(study: str, arm: str) -> dict[str, float]:
        data = json.loads((EXPERIMENTS / study / "comparison.json").read_text())
        (found,) = [a for a in data["arms"] if a["arm"] == arm]
        return {v["seed"]: v["value"] for v in found["values"]}

    full = values(
        "full", "data/augmentation=none, model.net.batchnorm=false, model.net.dropout=0.0"
    )
    scratch = values("transfer", "transfer_arm=scratch")
    assert len(full) == 5
    assert scratch == full


# The studies whose every run is kept in experiments/runs/: each must be re-published from
# there (one that silently stopped being published would leave its files unchanged and pass
# the byte comparison). Archiving the last sweep of another study adds it here.
KEPT_STUDIES = (
    "activation",
    "augmentation",
    "batchnorm",
    "convergence",
    "dropout",
    "full",
    "recipes/best",
    "transfer",
)


@pytest.mark.slow
def test_the_studies_whose_runs_are_kept_here_publish_to_the_published_files(tmp_path):
    """experiments/runs/ keeps the run records of the studies published from it
    (experiments/archive_runs.py): publishing from them alone, into a copy of experiments/,
    writes every published file byte for byte and no other."""
    copy = tmp_path / "experiments"
    shutil.copytree(EXPERIMENTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # the kept studies' generated files removed from the copy: each must be written again
    # (their README keeps its hand-written prose, which the publisher reads and keeps)
    removed = [f for study in KEPT_STUDIES for f in (copy / study).glob("comparison*")]
    assert len(removed) >= 4 * len(KEPT_STUDIES)  # .json .csv .md and a plot, at least
    for f in removed:
        f.unlink()
    # a cnnlab-rerun copy inside a kept sweep (its default place, beside the run) is not
    # another seed: the study still counts its runs as complete and publishes the same files
    run = copy / "runs" / "activation6" / "activation=relu,seed=1"
    rerun = shutil.copytree(run, run.with_name(f"{run.name}-rerun-120000"))
    (rerun / "rerun.json").write_text(json.dumps({"original": str(run)}))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    script = [str(copy / "publish_studies.sh"), str(copy / "runs")]
    proc = subprocess.run(["bash", *script], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    republished = re.findall(r"wrote \S+/experiments/(\S+)/README\.md", proc.stdout)
    assert sorted(republished) == sorted(KEPT_STUDIES), proc.stdout

    def files(root: Path) -> dict[Path, bytes]:
        return {
            p.relative_to(root): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file()
            and p.relative_to(root).parts[0] != "runs"
            and "__pycache__" not in p.parts
        }

    published, made = files(EXPERIMENTS), files(copy)
    assert sorted(made.keys() ^ published.keys()) == []
    # every text byte for byte; comparison.json as the same values, its floats to 1e-9
    # relative (the factorial's least squares runs in the machine's BLAS, whose last bits
    # differ between CPUs: ~5e-11 between the Intel and AMD machines here, where every
    # rendered figure is the same); a plot as the same picture (its PNG bytes are
    # matplotlib's: another release of it may encode the same picture otherwise)
    differ = [
        str(p)
        for p in sorted(made)
        if p.suffix != ".png"
        and made[p] != published[p]
        and not (p.suffix == ".json" and same_values(json.loads(made[p]), json.loads(published[p])))
    ]
    assert differ == []
    pngs = [p for p in sorted(made) if p.suffix == ".png" and made[p] != published[p]]
    assert [str(p) for p in pngs if not same_picture(copy / p, EXPERIMENTS / p)] == []


def same_values(a, b, rel: float = 1e-9) -> bool:
    """Two parsed JSON documents with the same structure, strings and integers, and floats
    equal to ``rel`` (relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_values(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel)
    return type(a) is type(b) and a == b


def test_same_values_tells_last_bit_noise_from_a_changed_value():
    doc = {"arms": [{"seed": 1, "p": 8.293987433497613e-27, "reading": "effect", "n": 5}]}
    noisy = {"arms": [{"seed": 1, "p": 8.293987433497821e-27, "reading": "effect", "n": 5}]}
    assert same_values(doc, noisy)
    for changed in (
        {"arms": [{"seed": 1, "p": 8.2939874e-27, "reading": "effect", "n": 5}]},
        {"arms": [{"seed": 1, "p": 8.293987433497613e-27, "reading": "equivalent", "n": 5}]},
        {"arms": [{"seed": 1, "p": 8.293987433497613e-27, "reading": "effect", "n": 5.0}]},
        {"arms": [{"seed": 1, "p": 8.293987433497613e-27, "reading": "effect"}]},
        {"arms": []},
    ):
        assert not same_values(doc, changed)


def same_picture(a: Path, b: Path) -> bool:
    """Two PNGs that decode to the same pixels."""
    import matplotlib.image

    x, y = matplotlib.image.imread(a), matplotlib.image.imread(b)
    return x.shape == y.shape and bool(np.array_equal(x, y))


def test_a_study_at_twice_its_budget_against_itself_arm_by_arm(tmp_path, capsys):
    # at 2x, arm b gains 0.4 pp on every seed, arm a nothing
    for budget, gain in ((1, 0.0), (2, 0.004)):
        for seed, r in zip(SEEDS, REF):
            for arm, extra in (("a", 0.0), ("b", gain)):
                d = tmp_path / f"x{budget}" / f"{arm}{seed}"
                (d / ".hydra").mkdir(parents=True)
                (d / ".hydra" / "overrides.yaml").write_text(
                    f"- arm={arm}\n- seed={seed}\n- study_budget={budget}\n"
                )
                (d / "results.json").write_text(
                    json.dumps(
                        {
                            "status": "completed",
                            "metrics": {"test/acc": r + extra + 0.0001 * seed * (arm == "b")},
                        }
                    )
                )
    assert main([str(tmp_path / "x2"), "--against", str(tmp_path / "x1")]) == 0
    out = capsys.readouterr().out.split("each arm against itself")[1]
    row_b = next(line for line in out.splitlines() if "arm=b" in line)
    assert "+0.40 pp" in row_b and "effect" in row_b
    # the budget test is kept in comparison.json and is each arm's convergence
    data = json.loads((tmp_path / "x2" / "comparison.json").read_text())
    budget = {a["label"]: a["verdict"] for a in data["against"]["arms"]}
    assert budget["arm=b"]["diff"] == pytest.approx(0.004, abs=1e-4)
    assert budget["arm=b"]["reading"] == EFFECT and budget["arm=a"]["reading"] == EQUIVALENT
    assert data["against"]["study"] == "../x1"
    conv = {a["label"]: a["convergence"]["budget"] for a in data["arms"]}
    assert conv == {"arm=a": EQUIVALENT, "arm=b": EFFECT}
    block = render.readme_block(data)
    assert "| arm=b | 5 | +0.40 pp" in block and "| no (budget test) |" in block
    assert "Changed with the budget (not converged): arm=b" in block
    assert "converged (no change beyond ±0.1 pp): arm=a" in block
    # every arm as one claim (intersection-union): arm=b changed, so not shown
    assert data["against"]["every_arm"]["not_shown"] == ["arm=b"]
    assert "**Not shown that every arm converged**" in block
    assert render.budget_cell(data["against"]) == (  # no epochs on record: says so
        "Δ: this study minus the other (which budget is larger is not known); "
        "changed with the budget: arm=b (+0.40 pp); converged: arm=a (+0.00 pp); "
        "every arm converged: not shown"
    )
    # the budget asked for, where the epochs trained do not tell (stopped early)
    asked = {**data["against"], "setup": {"epochs": [4, 6], "study_budget": [2]}}
    assert render.budget_cell(asked, {"epochs": [3], "study_budget": [1]}).startswith(
        "changed with the budget: arm=b (-0.40 pp)"
    )
    # the index reads every budget test as the larger budget minus the smaller: published
    # by the study with the smaller budget (x1 against x2), the sign turns
    smaller = {**data["against"], "setup": {"epochs": [6]}}
    assert render.budget_cell(smaller, {"epochs": [3]}).startswith(
        "changed with the budget: arm=b (-0.40 pp)"
    )
    assert render.budget_cell(smaller, {"epochs": [12]}).startswith(
        "changed with the budget: arm=b (+0.40 pp)"
    )
    assert "Δ is this study's runs (3 epochs) minus those (6 epochs)" in "\n".join(
        render.against_block(smaller, data["settings"], {"epochs": [3]})
    )
    many = [
        {"label": f"arm={i}", "verdict": {"reading": INCONCLUSIVE, "diff": 0.0}} for i in "cdefg"
    ]
    assert render.budget_cell({"arms": data["against"]["arms"] + many}).endswith(
        "; inconclusive at this power: 5 arms"
    )
    assert render.budget_cell({"arms": [{"label": "arm=h", "verdict": None}]}).endswith(
        "; not compared: 1 arm"
    )
    assert main([str(tmp_path / "x2"), "--against", str(tmp_path / "nope")]) == 2
    (tmp_path / "empty").mkdir()  # a folder with no runs: refused before a table or a file
    capsys.readouterr()
    out = tmp_path / "refused"
    argv = [str(tmp_path / "x2"), "--against", str(tmp_path / "empty"), "--out", str(out)]
    assert main(argv) == 2
    assert not out.exists() and "holds no cnnlab runs" in capsys.readouterr().err


def test_a_budget_test_of_a_split_arm_is_counts():
    counts = {"stalled": 4, "n": 5, "reference_stalled": 3, "reference_n": 5}
    verdict = {"counts": counts, "diff": None, "p": 1.0, "p_adjusted": 1.0}
    against = {"arms": [{"label": "act=sigmoid", "n": 5, "verdict": verdict | {"reading": "x"}}]}
    block = "\n".join(render.against_block(against, {"margin_pp": 0.1}))
    assert "| act=sigmoid | 5 | stalled 4/5 vs 3/5 | counts | 1 / 1 (Fisher) |" in block
    assert "act=sigmoid (stalled 4/5 vs 3/5)" in render.budget_cell(against)


def test_every_arm_converged_is_one_claim_tested_without_correction():
    from cnnlab.analysis.verdict import Settings, every_arm_converged

    def pair(label: str, tost_p: float | None):
        verdict = None if tost_p is None else type("V", (), {"tost_p": tost_p})()
        return type("P", (), {"display": label, "label": label, "verdict": verdict})()

    settings = Settings.load()
    # each arm equivalent at 5% on its own: every arm converged, p the largest (Holm across
    # the three would have said 3 x 0.02 = 0.06 for the smallest: not shown one by one)
    every = every_arm_converged([pair("a", 0.02), pair("b", 0.04), pair("c", 0.01)], settings)
    assert every["converged"] and every["p"] == 0.04 and every["not_shown"] == []
    every = every_arm_converged([pair("a", 0.02), pair("b", 0.3)], settings)
    assert not every["converged"] and every["not_shown"] == ["b"]
    every = every_arm_converged([pair("a", 0.001), pair("b", None)], settings)
    assert not every["converged"] and every["p"] is None and every["not_shown"] == ["b"]
    line = render.every_arm_line({"converged": True, "p": 0.04, "alpha": 0.05}, {"margin_pp": 0.1})
    assert line.startswith("**Every arm converged** (no change beyond ±0.1 pp with the budget)")


def test_an_execution_override_given_to_one_sweep_is_not_an_arm_with_ignore(tmp_path, capsys):
    for seed, r in zip(SEEDS, REF):
        run(tmp_path, "a", seed, float(r))
        run(tmp_path, "b", seed, float(r) + 0.001)
        if seed > 3:  # these runs of arm b were relaunched with their thread count given
            extra = tmp_path / f"b,{seed}" / ".hydra" / "overrides.yaml"
            extra.write_text(extra.read_text() + "- torch_threads=1\n")
    argv = [str(tmp_path), "--reference", "arm=a", "--out", str(tmp_path / "out")]
    assert main(argv) == 2  # the override is a key: every arm's label has it, b splits in two
    assert "torch_threads=1" in capsys.readouterr().err
    assert main([*argv, "--ignore", "torch_threads"]) == 0
    data = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert [(a["arm"], a["n"]) for a in data["arms"]] == [("arm=a", 5), ("arm=b", 5)]


def test_an_annealed_schedule_is_not_read_as_still_improving(tmp_path):
    # both arms gain 0.5 pp in their last epoch; one with a constant lr, one annealed to ~0
    for seed, r in zip(SEEDS, REF):
        curve = [r - 0.02, r - 0.005, r]
        run(tmp_path, "constant", seed, r, curve, lrs=[1e-3, 1e-3, 1e-3])
        run(tmp_path, "onecycle", seed, r, curve, lrs=[1e-2, 5e-3, 4e-4])
    arms = {s.label: s for s in summarize(group_arms(load_runs([tmp_path])), "arm=constant")}
    assert arms["arm=constant"].still_improving is True and not arms["arm=constant"].annealed
    assert arms["arm=onecycle"].still_improving is None and arms["arm=onecycle"].annealed
    assert arms["arm=onecycle"].last_gain == pytest.approx(0.005)  # the gain is still shown
    assert main([str(tmp_path), "--reference", "arm=constant"]) == 0
    block = render.readme_block(json.loads((tmp_path / "comparison.json").read_text()))
    assert "| arm=onecycle | 5 |" in block and "| — (annealed lr) |" in block
    assert "Still improving at the last epoch: arm=constant. Not read from the curve" in block


def test_a_study_read_as_its_user_gives_it(tmp_path, capsys):
    """One epoch says nothing of convergence; the same study given twice counts each run
    once; a resume=auto session's fresh dir is no run, and resume= makes no arm; the
    reference may be named as W&B and the run dirs name it (dropout=0.0)."""
    for seed, r in zip(SEEDS, REF):
        run(tmp_path, "0.0", seed, r, [r])
        run(tmp_path, "0.5", seed, r - 0.001, [r - 0.001])
    resumed = tmp_path / "0.0,1"  # relaunched with resume=auto: its record says so
    record = json.loads((resumed / "results.json").read_text())
    (resumed / "results.json").write_text(json.dumps({**record, "overrides": ["resume=auto"]}))
    (resumed / ".hydra" / "overrides.yaml").write_text("- arm=0.0\n- seed=1\n- resume=auto\n")
    stub = tmp_path / "0.0,1,session2"  # the fresh dir that session made, then left
    shutil.copytree(resumed / ".hydra", stub / ".hydra")
    (stub / "resumed_in.txt").write_text(f"{resumed}\n")
    for saved in tmp_path.glob("*/.hydra/overrides.yaml"):
        saved.write_text(saved.read_text().replace("- arm=", "- model.net.dropout="))
    runs = load_runs([tmp_path, tmp_path])
    assert len(runs) == 10 and stub not in {r.path for r in runs}
    assert main([str(stub)]) == 2  # given alone: it says where its run went on
    assert f"is a resume=auto session's dir, no run: its run went on in {resumed}" in (
        capsys.readouterr().err.replace("\n", "")
    )
    assert len(load_runs([resumed, stub])) == 1  # beside its run: no run, and no refusal
    arms = {s.label: s for s in summarize(group_arms(runs))}
    assert sorted(arms) == ["model.net.dropout=0.0", "model.net.dropout=0.5"]
    assert arms["model.net.dropout=0.5"].n == 5
    assert arms["model.net.dropout=0.5"].still_improving is None
    assert main([str(tmp_path), str(tmp_path), "--reference", "0.5"]) == 2  # no arm's name
    assert main([str(tmp_path), str(tmp_path), "--reference", "dropout=0.5"]) == 0
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert [(a["arm"], a["n"]) for a in data["arms"]] == [
        ("model.net.dropout=0.5", 5),
        ("model.net.dropout=0.0", 5),
    ]
    assert "| dropout=0.0 | 5 |" in render.readme_block(data)
    assert "| — |" in render.readme_block(data)  # converged: unknown after one epoch


def test_a_run_keeps_its_test_predictions_and_an_eval_mode_training_accuracy(cli_env, tmp_path):
    from conftest import FAST, cnnlab

    run_dir = tmp_path / "run"
    proc = cnnlab(
        [*FAST, "logger=none", "train_eval_images=64", f"hydra.run.dir={run_dir}"], cli_env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((run_dir / "results.json").read_text())
    with np.load(run_dir / "test_predictions.npz") as saved:
        pred, target = saved["pred"], saved["target"]
    assert pred.dtype == np.uint8 and pred.shape == target.shape == (100,)  # tiny test set
    assert (pred == target).mean() == pytest.approx(res["metrics"]["test/acc"])
    m = res["metrics"]
    assert m["gap/train_test"] == pytest.approx(m["train/acc_eval"] - m["test/acc"])
    assert int(round(m["train/acc_eval"] * 64)) == pytest.approx(m["train/acc_eval"] * 64)
    assert res["test"]["train_eval_images"] == 64

    # a run that tests one batch measures training accuracy on as many images, not 10,000
    short = tmp_path / "short"
    args = [*FAST, "logger=none", "++trainer.limit_test_batches=1", f"hydra.run.dir={short}"]
    proc = cnnlab([*args, "data.eval_batch_size=16"], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((short / "results.json").read_text())
    assert res["test"]["train_eval_images"] == 16
    assert int(round(res["metrics"]["train/acc_eval"] * 16)) == pytest.approx(
        res["metrics"]["train/acc_eval"] * 16
    )

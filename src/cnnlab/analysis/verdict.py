"""From a study's arms to its verdict: per-arm statistics, each arm against the reference
(multiplicity-adjusted, with power, an equivalence test and a three-way reading), exact
counts for arms that stalled, convergence per arm and a factorial study's linear model."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from cnnlab.analysis import stats
from cnnlab.analysis.load import (
    CompareError,
    Run,
    arm_keys,
    display_labels,
    group_arms,
    without_keys,
)
from cnnlab.config import conf_dir
from cnnlab.config.arms import short_keys

SETTINGS = Path(conf_dir()) / "analysis" / "compare.yaml"
METHODS = ("holm", "bonferroni", "none")
EFFECT, EQUIVALENT, INCONCLUSIVE = "effect", "equivalent", "inconclusive at this power"


def stalled_counts(c: dict) -> str:
    """A counts comparison as the table, the budget test and the forest plot write it."""
    return f"stalled {c['stalled']}/{c['n']} vs {c['reference_stalled']}/{c['reference_n']}"


@dataclass
class Settings:
    level: float = 0.95
    adjust: str = "holm"
    power: float = 0.8
    effect_pp: float = 0.1
    margin_pp: float = 0.1
    stalled_below: float = 0.2
    min_gain_pp: float = 0.05
    annealed_below: float = 0.1

    @classmethod
    def load(cls, path: Path = SETTINGS, **flags) -> Settings:
        """conf/analysis/compare.yaml, with the given flags (not None) over it."""
        base = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}
        merged = {**base, **{k: v for k, v in flags.items() if v is not None}}
        settings = cls(**{k: v for k, v in merged.items() if k in cls.__dataclass_fields__})
        settings.check()
        return settings

    def check(self) -> None:
        if self.adjust not in METHODS:
            raise CompareError(f"--adjust {self.adjust!r}: one of {', '.join(METHODS)}")
        for name in ("level", "power"):
            if not 0 < getattr(self, name) < 1:
                raise CompareError(f"--{name} {getattr(self, name)}: a fraction in (0, 1)")
        for name in ("effect_pp", "margin_pp"):
            if not getattr(self, name) > 0:
                raise CompareError(f"--{name.replace('_', '-')} {getattr(self, name)}: > 0")

    @property
    def alpha(self) -> float:
        return 1 - self.level


@dataclass
class Verdict:
    """One arm against the reference."""

    method: str  # paired t | Welch t | variance components | Fisher exact
    diff: float | None = None
    ci: tuple[float, float] | None = None
    ci_adjusted: tuple[float, float] | None = None
    ci_adjusted_level: float | None = None  # compatible with p_adjusted (stats.adjusted_levels)
    ci_simultaneous: tuple[float, float] | None = None  # Bonferroni's, for the whole family
    p: float | None = None
    p_adjusted: float | None = None
    tost_p: float | None = None
    tost_p_adjusted: float | None = None
    margin: float | None = None  # the equivalence margin (a fraction) the TOST tested
    # the TOST's interval at the level compatible with tost_p_adjusted (stats.adjusted_levels):
    # inside ±margin exactly when the reading is equivalent (or an effect inside the margin)
    ci_equivalence: tuple[float, float] | None = None
    mde: float | None = None
    seeds_needed: int | None = None
    power_alpha: float | None = None  # the alpha the MDE and seeds_needed were computed at
    reading: str = INCONCLUSIVE
    seeds: list[str] = field(default_factory=list)  # the seed ids paired
    diffs: list[float] = field(default_factory=list)  # per paired seed, same order
    counts: dict | None = None  # stalled runs per arm, when reported as counts
    test_error: bool = False  # test-set sampling error counted
    estimate: stats.Estimate | None = None


@dataclass
class ArmSummary:
    label: str
    runs: list[Run]
    n: int
    seeds: list[str]
    values: list[float]
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    test_loss: float | None
    epochs: float | None
    fit_time_s: float | None
    gap: float | None = None
    gap_std: float | None = None
    gap_eval_mode: bool = False
    # per layer: geometric mean over seeds and geometric std (a factor): norms span decades
    grad_norms: dict[str, tuple[float, float]] = field(default_factory=dict)
    stalled: list[str] = field(default_factory=list)  # seed ids at chance
    grad_ratio_groups: dict[str, float | None] = field(default_factory=dict)
    verdict: Verdict | None = None
    still_improving: bool | None = None
    last_gain: float | None = None
    # the learning rate ended far below its peak (OneCycle, cosine): the last epoch's gain is
    # the schedule's annealing, not a sign of too short a budget, so the curve rule is not
    # applied; only a run at twice the budget (--against) says whether the arm converged
    annealed: bool = False
    budget: Verdict | None = None  # this arm at another budget (--against), when compared
    is_reference: bool = False
    display: str = ""  # the label with short key names (dropout=0.25), for plots

    # the arm-vs-reference numbers, as the tables and plots read them
    @property
    def diff(self) -> float | None:
        return self.verdict.diff if self.verdict else None

    @property
    def ci_low(self) -> float | None:
        return self.verdict.ci[0] if self.verdict and self.verdict.ci else None

    @property
    def ci_high(self) -> float | None:
        return self.verdict.ci[1] if self.verdict and self.verdict.ci else None

    @property
    def paired(self) -> bool | None:
        return None if not self.verdict or self.verdict.counts else self.verdict.method != "Welch t"

    @property
    def mixed(self) -> bool:
        """Some seeds stalled and some trained: two groups, no mean describes them."""
        return 0 < len(self.stalled) < self.n

    @property
    def grad_ratio(self) -> float | None:
        """First / last gradient norm over the layers that train (frozen ones have none);
        of geometric means over seeds. None for a mixed arm (see grad_ratio_groups)."""
        return None if self.mixed else _ratio(self.grad_norms)

    @property
    def problems(self) -> list[Run]:
        return [r for r in self.runs if r.status != "completed"]


# how a gradient ratio is printed: three significant digits, trailing zeros kept (8.00, not 8)
RATIO = "#.3g"


def _ratio(norms: dict[str, tuple[float, float]]) -> float | None:
    live = [mean for mean, _ in norms.values() if mean > 0]
    return live[0] / live[-1] if len(live) >= 2 else None


def _done(runs: list[Run], metric: str) -> list[Run]:
    return sorted(
        (r for r in runs if r.status == "completed" and metric in r.metrics),
        key=lambda r: str(r.seed),
    )


def _summary(label: str, runs: list[Run], metric: str, settings: Settings) -> ArmSummary:
    done = _done(runs, metric)
    vals = [r.metrics[metric] for r in done]

    def avg(xs):
        xs = [x for x in xs if x is not None]
        return statistics.fmean(xs) if xs else None

    gaps = [g for g in (r.gap for r in done) if g is not None]
    stalled = [
        r for r in done if metric.endswith("acc") and r.metrics[metric] <= settings.stalled_below
    ]
    s = ArmSummary(
        label,
        runs,
        len(done),
        [str(r.seed) for r in done],
        vals,
        statistics.fmean(vals) if vals else None,
        stats.std(vals) if vals else None,
        min(vals) if vals else None,
        max(vals) if vals else None,
        avg([r.metrics.get("test/loss") for r in done]),
        avg([r.epochs for r in done]),
        avg([r.fit_time_s for r in done]),
        gap=avg(gaps),
        gap_std=stats.std(gaps) if gaps else None,
        gap_eval_mode=bool(done) and all(r.gap_in_eval_mode for r in done),
        grad_norms=layer_stats(done),
        stalled=[str(r.seed) for r in stalled],
    )
    if s.mixed:
        trained = [r for r in done if r not in stalled]
        s.grad_ratio_groups = {
            "stalled": _ratio(layer_stats(stalled)),
            "trained": _ratio(layer_stats(trained)),
        }
    epochs, curve, _ = mean_curve(runs)
    s.still_improving, s.last_gain = (
        stats.still_improving(curve, settings.min_gain_pp / 100) if curve else (None, None)
    )
    s.annealed = bool(done) and all(_annealed(r, settings.annealed_below) for r in done)
    if s.annealed:
        s.still_improving = None
    return s


def _annealed(run: Run, below: float) -> bool:
    """The run's last logged learning rate is under ``below`` × its peak."""
    lrs = [row["lr"] for row in run.history if isinstance(row.get("lr"), (int, float))]
    return bool(lrs) and max(lrs) > 0 and lrs[-1] < below * max(lrs)


def layer_stats(runs: list[Run]) -> dict[str, tuple[float, float]]:
    """Geometric mean and std over seeds of each layer's last-epoch gradient norm, in
    network order: a seed whose gradient vanished (1e-14) and one that trained (1e-2)
    average to 1e-8, not to half the second."""
    per_layer: dict[str, list[float]] = {}
    for run in runs:
        for layer, value in run.grad_norms.items():
            per_layer.setdefault(layer, []).append(value)
    return {k: stats.geometric(v) for k, v in per_layer.items()}


def summarize(
    arms: dict[str, list[Run]],
    reference: str | None = None,
    metric: str = "test/acc",
    settings: Settings | None = None,
) -> list[ArmSummary]:
    """Per-arm statistics and each arm's verdict against the reference arm (default: the
    study's declared one, else the first)."""
    settings = settings or Settings.load()
    summaries = [_summary(label, runs, metric, settings) for label, runs in arms.items()]
    if not summaries:
        return summaries
    for s, short in zip(summaries, display_labels(arms).values()):
        s.display = short
    if reference is None:
        declared = {r.reference for runs in arms.values() for r in runs} - {None}
        reference = next(iter(declared)) if len(declared) == 1 else None
    labels = [s.label for s in summaries]
    shown = {s.display: s.label for s in summaries if s.display}  # dropout=0.5, as W&B says
    reference = shown.get(reference, reference) if reference not in labels else reference
    if reference is not None and reference not in labels:
        raise CompareError(f"reference arm {reference!r} is not one of the arms {labels}")
    ref = next(s for s in summaries if s.label == (reference or labels[0]))
    ref.is_reference = True
    summaries.remove(ref)
    summaries.insert(0, ref)  # the reference row first, the others in sweep order
    for s in summaries[1:]:
        if s.values and ref.values:
            s.verdict = compare_arm(s, ref, metric, settings)
    adjust_family([s.verdict for s in summaries[1:] if s.verdict], settings)
    return summaries


def compare_arm(arm: ArmSummary, ref: ArmSummary, metric: str, settings: Settings) -> Verdict:
    """The raw comparison: exact counts when either arm has stalled runs; else paired by
    seed id where every seed matches (with test-set error when both kept predictions),
    else Welch."""
    if arm.stalled or ref.stalled:
        k, kr = len(arm.stalled), len(ref.stalled)
        return Verdict(
            "Fisher exact",
            p=stats.fisher(k, arm.n, kr, ref.n),
            counts={
                "stalled": k,
                "n": arm.n,
                "reference_stalled": kr,
                "reference_n": ref.n,
                "stalled_seeds": arm.stalled,
            },
        )
    mine = {r.seed: r for r in _done(arm.runs, metric)}
    theirs = {r.seed: r for r in _done(ref.runs, metric)}
    common = sorted(set(mine) & set(theirs), key=str)
    est, seeds, diffs, test_error = None, [], [], False
    if len(common) >= 2 and len(common) == len(mine) == len(theirs):
        seeds = [str(k) for k in common]
        diffs = [mine[k].metrics[metric] - theirs[k].metrics[metric] for k in common]
        preds = [(mine[k].correct, theirs[k].correct) for k in common]
        if metric == "test/acc" and all(
            a is not None and b is not None and a.shape == b.shape for a, b in preds
        ):
            est = stats.seed_image_estimate(
                np.stack([a for a, _ in preds]), np.stack([b for _, b in preds])
            )
            test_error = True
        else:
            est = stats.paired_estimate(diffs)
    else:
        est = stats.welch_estimate(arm.values, ref.values)
    if est is None:
        return Verdict("too few seeds", diff=arm.mean - ref.mean)
    return Verdict(
        est.method,
        diff=est.diff,
        ci=est.interval(settings.level),
        p=est.p_value(),
        tost_p=est.tost_p(settings.margin_pp / 100),
        margin=settings.margin_pp / 100,
        seeds=seeds,
        diffs=diffs,
        test_error=test_error,
        estimate=est,
    )


def adjust_family(verdicts: list[Verdict], settings: Settings) -> None:
    """Adjusted p-values and intervals across the study's comparisons, the power each had,
    then each reading: an effect (adjusted p below alpha; its adjusted interval, at the
    level compatible with that p, excludes 0), equivalent (the adjusted TOST p below
    alpha: within ±margin) or inconclusive at this power.

    Power (the MDE and the seeds a stated effect needs) is computed at the family's
    Bonferroni alpha (alpha / m): the level a comparison is tested at in the worst case,
    so Holm detects at least what it says."""
    tested = [v for v in verdicts if v.p is not None]
    for v, p in zip(tested, stats.adjust([v.p for v in tested], settings.adjust)):
        v.p_adjusted = p
    with_tost = [v for v in tested if v.tost_p is not None]
    for v, p in zip(with_tost, stats.adjust([v.tost_p for v in with_tost], settings.adjust)):
        v.tost_p_adjusted = p
    eq_levels = stats.adjusted_levels(
        [v.tost_p for v in with_tost], settings.level, settings.adjust
    )
    for v, level in zip(with_tost, eq_levels):
        if v.estimate is not None:
            v.ci_equivalence = v.estimate.equivalence_interval(1 - level)
    levels = stats.adjusted_levels([v.p for v in tested], settings.level, settings.adjust)
    # Bonferroni's alpha: the power's level and the simultaneous intervals'
    alpha = settings.alpha / (max(len(tested), 1) if settings.adjust != "none" else 1)
    for v, level in zip(tested, levels):
        if v.estimate is not None:
            est = v.estimate
            v.ci_adjusted, v.ci_adjusted_level = est.interval(level), level
            v.ci_simultaneous = est.interval(1 - alpha)
            v.mde = stats.minimum_detectable(est.se, est.dof, alpha, settings.power)
            v.seeds_needed = stats.seeds_needed(
                settings.effect_pp / 100, est, alpha, settings.power
            )
            v.power_alpha = alpha
        if v.p_adjusted < settings.alpha:
            v.reading = EFFECT
        elif v.tost_p_adjusted is not None and v.tost_p_adjusted < settings.alpha:
            v.reading = EQUIVALENT
        else:
            v.reading = INCONCLUSIVE


def mean_curve(runs: list[Run], key: str = "val/acc") -> tuple[list[int], list[float], list[float]]:
    """Per-epoch mean and sample std over the seeds that reached each epoch."""
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        if r.status != "completed":
            continue
        for row in r.history:
            if row.get(key) is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(row[key])
    epochs = sorted(by_epoch)
    return (
        epochs,
        [statistics.fmean(by_epoch[e]) for e in epochs],
        [stats.std(by_epoch[e]) for e in epochs],
    )


def factorial(
    summaries: list[ArmSummary], metric: str = "test/acc", settings: Settings | None = None
) -> list[dict]:
    """A study that crosses two or more keys, as a linear model with seed blocks over the
    runs that did not stall: main effects (each key's level against the reference arm's,
    averaged over the other keys' levels: centred coding) and every interaction of two or
    more keys (differences of differences); [] when the study is not fully crossed. Each
    term's interval and p adjusted across the terms as the study's arms are."""
    settings = settings or Settings.load()
    runs = [r for s in summaries for r in _done(s.runs, metric) if str(r.seed) not in s.stalled]
    keys = arm_keys([r for s in summaries for r in s.runs])
    if len(keys) < 2 or not runs or not summaries:
        return []
    ref = summaries[0].runs[0].overrides
    levels = {k: sorted({r.overrides.get(k) for r in runs} - {ref.get(k)}, key=str) for k in keys}
    cells = {tuple(r.overrides.get(k) for k in keys) for r in runs}
    if len(cells) != int(np.prod([len(v) + 1 for v in levels.values()])):
        return []  # not fully crossed
    short = short_keys(keys)
    # centred at 1/levels, not the sample mean: unweighted averages over the other keys'
    # levels, also where a stalled run left a cell short
    by_key = {
        k: {
            f"{short[k]}={lv}": np.array([float(r.overrides.get(k) == lv) for r in runs])
            - 1 / (len(levels[k]) + 1)
            for lv in levels[k]
        }
        for k in keys
    }
    cols = {name: c for k in keys for name, c in by_key[k].items()}
    for order in range(2, len(keys) + 1):
        for combo in itertools.combinations(keys, order):
            for names in itertools.product(*(by_key[k] for k in combo)):
                cols[" × ".join(names)] = np.prod([cols[n] for n in names], axis=0)
    terms = stats.linear_effects(
        np.array([r.metrics[metric] for r in runs]),
        cols,
        np.array([str(r.seed) for r in runs]),
        settings.level,
    )
    levels_adj = stats.adjusted_levels([t["p"] for t in terms], settings.level, settings.adjust)
    for t, p, level in zip(
        terms, stats.adjust([t["p"] for t in terms], settings.adjust), levels_adj
    ):
        t["p_adjusted"] = p
        half = stats.t_quantile(level, t["dof"]) * t["se"]
        t["ci_adjusted"] = [t["estimate"] - half, t["estimate"] + half]
    return terms


def against(
    arms: dict[str, list[Run]],
    before: dict[str, list[Run]],
    metric: str = "test/acc",
    settings: Settings | None = None,
) -> list[ArmSummary]:
    """Each arm of a study against the same arm of another run of it (e.g. at twice the
    budget, ``study_budget=2``): one verdict per arm, paired by seed id, adjusted as one
    family. Arms only one of the two studies has are left out."""
    settings = settings or Settings.load()
    drop = {"study_budget", "trainer.max_epochs"}  # what the two runs of a study differ by

    def by_arm(groups):  # copies: the study's own runs keep their overrides
        return group_arms(without_keys([r for rs in groups.values() for r in rs], drop))

    now, then = by_arm(arms), by_arm(before)
    shown = display_labels(now)  # short keys (dropout=0.5), as the study's own table names arms
    summaries = []
    for label in [k for k in now if k in then]:
        mine = _summary(label, now[label], metric, settings)
        theirs = _summary(label, then[label], metric, settings)
        if mine.values and theirs.values:
            mine.verdict = compare_arm(mine, theirs, metric, settings)
        mine.display = shown[label]
        summaries.append(mine)
    adjust_family([s.verdict for s in summaries if s.verdict], settings)
    return summaries


def every_arm_converged(pairs: list[ArmSummary], settings: Settings) -> dict[str, Any]:
    """Whether every arm converged, as one claim (Berger's intersection-union test): it
    holds when each arm's own equivalence test (TOST, ±margin) rejects at alpha, with no
    multiplicity correction, since the claim needs every arm and not any; its p-value is
    the largest arm's. An arm with no test (no completed run on a side) leaves it unshown."""
    tests = {(p.display or p.label): (p.verdict.tost_p if p.verdict else None) for p in pairs}
    untested = sorted(k for k, v in tests.items() if v is None)
    worst = max((v for v in tests.values() if v is not None), default=None)
    return {
        "p": None if untested or worst is None else worst,
        "converged": not untested and worst is not None and worst < settings.alpha,
        "not_shown": sorted(k for k, v in tests.items() if v is None or v >= settings.alpha),
        "alpha": settings.alpha,
    }


def attach_budget(summaries: list[ArmSummary], pairs: list[ArmSummary]) -> None:
    """Each arm's comparison with itself at the other budget (``against``): the same runs."""
    found = {r.path: p.verdict for p in pairs for r in p.runs}
    for s in summaries:
        s.budget = next((found[r.path] for r in s.runs if r.path in found), None)

"""The statistics of a study's verdict: intervals, multiplicity, power, equivalence, exact
counts, a two-level bootstrap and a linear model of a factorial study (scipy.stats)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats


def std(xs: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); 0 for a single value."""
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def geometric(xs: Sequence[float]) -> tuple[float, float]:
    """Geometric mean and geometric standard deviation (a factor >= 1) of positive values,
    for quantities that span orders of magnitude; (0, 1) when any value is 0.
    By hand: scipy's gmean/gstd warn or fail on a zero."""
    if any(x <= 0 for x in xs):
        return 0.0, 1.0
    logs = [math.log(x) for x in xs]
    return math.exp(statistics.fmean(logs)), math.exp(std(logs))


def paired_interval(diffs: Sequence[float], level: float = 0.95):
    """Mean of paired differences and its t-interval (n - 1 degrees of freedom)."""
    m = statistics.fmean(diffs)
    if len(diffs) < 2:
        return m, None, None
    if std(diffs) == 0:  # every seed moved by the same amount: no spread to widen it
        return m, m, m
    ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(level)
    return m, float(ci.low), float(ci.high)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95):
    """mean(a) - mean(b) and its Welch t-interval (Welch–Satterthwaite dof)."""
    d = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return d, None, None
    if std(a) == 0 and std(b) == 0:
        return d, d, d
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(level)
    return d, float(ci.low), float(ci.high)


# -- the verdict: one comparison as (difference, standard error, degrees of freedom) -------


@dataclass
class Estimate:
    """A difference with its standard error and t degrees of freedom, and how it was had."""

    diff: float
    se: float
    dof: float
    method: str  # "paired t" | "Welch t" | "two-level bootstrap"
    se_seed: float | None = None  # the seed-only part (for the seeds a target effect needs)
    n: int = 0
    image_dof: float | None = None  # the test-image part's degrees of freedom, when counted
    # Welch: each arm's variance of one seed's value, so more seeds scale each arm's part
    arm_variances: tuple[float, float] | None = None

    def with_seeds(self, n: int) -> Estimate:
        """The same study with ``n`` seeds (per arm): the seed variance shrinks, the test
        set's does not; degrees of freedom as this estimate has them (Satterthwaite's where
        both parts count, Welch's for unpaired arms, else n - 1). Itself at its own ``n``."""
        if n == self.n or self.n < 1:
            return self
        if self.arm_variances is not None:  # Welch: both arms at n seeds
            va, vb = (v / n for v in self.arm_variances)
            se = math.sqrt(va + vb)
            dof = (va + vb) ** 2 / ((va**2 + vb**2) / (n - 1)) if se else n - 1.0
            return Estimate(self.diff, se, dof, self.method, se, n, None, self.arm_variances)
        seed_se = self.se_seed if self.se_seed is not None else self.se
        seed_var, image_var = seed_se**2 * self.n / n, max(self.se**2 - seed_se**2, 0.0)
        total = seed_var + image_var
        if self.image_dof and image_var:
            dof = total**2 / (seed_var**2 / (n - 1) + image_var**2 / self.image_dof)
        else:
            dof = n - 1.0
        return Estimate(
            self.diff, math.sqrt(total), dof, self.method, math.sqrt(seed_var), n, self.image_dof
        )

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        if self.se == 0:
            return self.diff, self.diff
        half = stats.t.ppf(0.5 + level / 2, self.dof) * self.se
        return float(self.diff - half), float(self.diff + half)

    def p_value(self) -> float:
        if self.se == 0:
            return 1.0 if self.diff == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.diff / self.se), self.dof))

    def equivalence_interval(self, alpha: float) -> tuple[float, float]:
        """The two one-sided tests' interval at ``alpha`` (the two-sided 1 − 2α one): it lies
        inside ±margin exactly when ``tost_p(margin)`` is below ``alpha``."""
        return self.interval(1 - 2 * alpha)

    def tost_p(self, margin: float) -> float:
        """Two one-sided tests that |difference| < margin: the larger of the two p-values."""
        if self.se == 0:
            return 0.0 if abs(self.diff) < margin else 1.0
        lower = stats.t.sf((self.diff + margin) / self.se, self.dof)
        upper = stats.t.cdf((self.diff - margin) / self.se, self.dof)
        return float(max(lower, upper))


def paired_estimate(diffs: Sequence[float]) -> Estimate | None:
    n = len(diffs)
    if n < 2:
        return None
    se = std(diffs) / math.sqrt(n)
    return Estimate(statistics.fmean(diffs), se, n - 1, "paired t", se_seed=se, n=n)


def welch_estimate(a: Sequence[float], b: Sequence[float]) -> Estimate | None:
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    # Welch–Satterthwaite, by hand: scipy gives it only inside ttest_ind's result
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se else 1.0
    return Estimate(
        statistics.fmean(a) - statistics.fmean(b),
        se,
        dof,
        "Welch t",
        se_seed=se,
        n=min(len(a), len(b)),
        arm_variances=(statistics.variance(a), statistics.variance(b)),
    )


def seed_image_estimate(arm: np.ndarray, ref: np.ndarray) -> Estimate:
    """The difference of paired runs with seed-to-seed and test-set sampling error both
    counted: a crossed random-effects (seed × test image) variance decomposition.

    ``arm``/``ref``: (seeds, images) 0/1 correctness, rows paired by seed id, columns by
    test image. With D = arm − ref = μ + a_seed + b_image + e, the mean's variance is
    σa²/S + σb²/N + σe²/(SN); the seed means' spread estimates σa² + σe²/N, the image
    means' σb² + σe²/S and the residual mean square σe², so
    var = var(seed means)/S + (var(image means) − MSe/S)/N, in a t interval with Satterthwaite's degrees of freedom.
    By hand (method of moments): a two-level bootstrap counts σe² twice (once per level)
    and over-covers (99.5% for a nominal 95% on tests/test_verdict.py's simulation).
    """
    d = arm.astype(np.float64) - ref.astype(np.float64)
    s, n = d.shape
    seed_means, image_means = d.mean(axis=1), d.mean(axis=0)
    resid = d - seed_means[:, None] - image_means[None, :] + d.mean()
    ms_e = float((resid**2).sum()) / ((s - 1) * (n - 1))
    seed_var = float(seed_means.var(ddof=1)) / s
    image_var = max(float(image_means.var(ddof=1)) - ms_e / s, 0.0) / n
    total = seed_var + image_var
    # Satterthwaite's degrees of freedom for the two components (S − 1 and N − 1)
    dof = total**2 / (seed_var**2 / (s - 1) + image_var**2 / (n - 1)) if total else s - 1
    return Estimate(
        float(d.mean()),
        math.sqrt(total),
        dof,
        "seed × test-image variance components",
        se_seed=math.sqrt(seed_var),
        n=s,
        image_dof=n - 1,
    )


def adjust(pvalues: Sequence[float], method: str) -> list[float]:
    """Family-wise adjusted p-values: holm | bonferroni | none.
    Holm by hand: scipy.stats only adjusts for the false discovery rate."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if method == "none" or m == 0:
        return p.tolist()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    order = np.argsort(p)
    stepped = np.maximum.accumulate(np.minimum((m - np.arange(m)) * p[order], 1.0))
    out = np.empty(m)
    out[order] = stepped
    return out.tolist()


def adjusted_levels(pvalues: Sequence[float], level: float, method: str) -> list[float]:
    """Each comparison's confidence level, compatible with its adjusted p-value: the
    interval excludes 0 exactly when the adjusted p is below 1 − level.

    bonferroni: 1 − α/m for all (simultaneous intervals). holm: a comparison the step-down
    rejects gets 1 − α/c, c its adjusted p over its raw p (its step's multiplier, or an
    earlier step's where the step-down's monotonicity lifted it; tied p-values share one);
    the others get 1 − α/(m − r), r the number rejected (Strassburger & Bretz's level for
    what Holm does not reject). These agree with Holm's decisions but, unlike Bonferroni's,
    are not simultaneous intervals: each covers at its own level. By hand: scipy has
    neither."""
    p = np.asarray(pvalues, dtype=float)
    m, alpha = len(p), 1 - level
    if method == "none" or m <= 1:
        return [level] * m
    if method == "bonferroni":
        return [1 - alpha / m] * m
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate((m - np.arange(m)) * p[order])  # Holm, uncapped
    rejected = int(np.sum(steps < alpha))  # a prefix: the step-down stops at the first
    out = np.empty(m)
    for k, i in enumerate(order):
        if k < rejected:
            c = steps[k] / p[i] if p[i] > 0 else m - k
            out[i] = 1 - alpha / max(c, m - k)
        else:
            out[i] = 1 - alpha / (m - rejected)
    return out.tolist()


def t_quantile(level: float, dof: float) -> float:
    """The two-sided t critical value of a ``level`` interval."""
    return float(stats.t.ppf(0.5 + level / 2, dof))


def power(effect: float, se: float, dof: float, alpha: float = 0.05) -> float:
    """Power of the two-sided t-test to see ``effect`` (noncentral t)."""
    crit = stats.t.ppf(1 - alpha / 2, dof)
    nc = effect / se
    near, far = stats.nct.sf(crit, dof, abs(nc)), stats.nct.cdf(-crit, dof, abs(nc))
    if math.isnan(near):  # scipy's noncentral t fails far out, where power is ~1
        near = 1.0
    return float(near + (0.0 if math.isnan(far) else far))  # NaN there: ~0


def minimum_detectable(se: float, dof: float, alpha: float = 0.05, target: float = 0.8) -> float:
    """The smallest difference the t-test detects with probability ``target``."""
    if se == 0:
        return 0.0
    # in units of the standard error: the noncentral t loses precision far out
    hi = 15.0
    while power(hi, 1.0, dof, alpha) < target:  # one degree of freedom needs ~40 se
        hi *= 4
    k = optimize.brentq(lambda k: power(k, 1.0, dof, alpha) - target, 0.0, hi)
    return float(k * se)


def seeds_needed(
    effect: float, est: Estimate, alpha: float = 0.05, target: float = 0.8, most: int = 1000
) -> int | None:
    """Seeds for ``target`` power at ``effect`` (``Estimate.with_seeds``: the seed variance
    shrinks with more seeds, the test set's does not; None: no number of seeds reaches it).
    At ``est.n`` seeds it agrees with ``minimum_detectable``: same standard error and
    degrees of freedom."""
    for n in range(2, most + 1):
        e = est.with_seeds(n)
        if e.se == 0 or power(effect, e.se, e.dof, alpha) >= target:
            return n
    return None


def fisher(k_arm: int, n_arm: int, k_ref: int, n_ref: int) -> float:
    """Two-sided exact p-value that two arms stall (or split) equally often."""
    return float(stats.fisher_exact([[k_arm, n_arm - k_arm], [k_ref, n_ref - k_ref]]).pvalue)


def still_improving(curve: Sequence[float], min_gain: float) -> tuple[bool | None, float | None]:
    """The stated rule: the mean validation accuracy rose by more than ``min_gain`` over
    the last epoch. Returns the flag and that last gain; (None, None) for a curve of one
    epoch, which says nothing either way."""
    if len(curve) < 2:
        return None, None
    gain = curve[-1] - curve[-2]
    return gain > min_gain, gain


def linear_effects(
    y: np.ndarray, columns: dict[str, np.ndarray], blocks: np.ndarray, level: float = 0.95
) -> list[dict]:
    """Least-squares fit of y on the named 0/1 columns plus one intercept per seed block;
    each named term's estimate, standard error, interval and p-value (t, residual dof).
    numpy's lstsq, by hand: statsmodels is not a dependency."""
    names = list(columns)
    seeds = sorted(set(blocks.tolist()))
    x = np.column_stack([columns[k] for k in names] + [(blocks == s).astype(float) for s in seeds])
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    dof = len(y) - rank
    if dof <= 0:
        return []
    resid = y - x @ coef
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.pinv(x.T @ x)
    crit = stats.t.ppf(0.5 + level / 2, dof)
    out = []
    for i, name in enumerate(names):
        se = math.sqrt(max(cov[i, i], 0.0))
        p = float(2 * stats.t.sf(abs(coef[i] / se), dof)) if se else float(coef[i] == 0)
        out.append(
            {
                "term": name,
                "estimate": float(coef[i]),
                "se": se,
                "ci": [float(coef[i] - crit * se), float(coef[i] + crit * se)],
                "p": p,
                "dof": int(dof),
            }
        )
    return out

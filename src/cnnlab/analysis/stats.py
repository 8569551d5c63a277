"""Confidence intervals for the difference between arms across seeds (scipy.stats)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy import stats


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

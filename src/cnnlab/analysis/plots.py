"""Figures written next to results: confusion matrix, comparison bars and curves.

The comparison figures are sized by what they show (one bar row per arm, one tick per
layer) and their legends sit outside the axes, so a 12-arm study reads as well as a
2-arm one; tests/test_compare.py checks that no two tick labels overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_confusion_matrix(matrix: list[list[int]], path: Path) -> Path:
    """Row-normalised confusion matrix with counts, written to ``path`` (returned)."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    n = m.shape[0]
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true",
           title="test confusion matrix")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


REFERENCE_COLOR, ARM_COLOR = "#555555", "#3a78c2"


@dataclass
class Band:
    """A curve with its spread at x[i]: y[i] ± spread[i], or explicit (low, high) bounds
    (None: no value there)."""

    label: str
    x: Sequence
    y: Sequence[float | None]
    spread: Sequence[float | None] = field(default_factory=list)
    bounds: Sequence[tuple[float, float] | None] = field(default_factory=list)


def arm_colors(n: int) -> list:
    """n colours that stay apart: tab10 up to 10 arms, tab20 beyond (then cycled)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def arm_bars(labels: Sequence[str], means: Sequence[float], stds: Sequence[float],
             values: Sequence[Sequence[float]], reference: int | None, xlabel: str):
    """One horizontal bar per arm (mean ± std, dots: seeds), top to bottom in the given
    order; the reference arm grey, with a dashed line at its mean."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(8.0, max(2.4, 0.42 * n + 1.4)), layout="constrained")
    ys = list(range(n))
    colors = [REFERENCE_COLOR if i == reference else ARM_COLOR for i in ys]
    ax.barh(ys, means, xerr=stds, height=0.6, color=colors, alpha=0.85, capsize=4,
            error_kw={"elinewidth": 1})
    for y, vals in zip(ys, values):
        offsets = _spread_offsets(len(vals), 0.18)
        ax.scatter(vals, [y + o for o in offsets], color="black", s=9, zorder=3)
    if reference is not None:
        ax.axvline(means[reference], color=REFERENCE_COLOR, linestyle="--", linewidth=1)
    every = [v for vals in values for v in vals]
    if every:
        lo, hi = min(every), max(every)
        pad = max((hi - lo) * 0.3, 0.002)
        ax.set_xlim(lo - pad, min(1.0, hi + pad) if hi <= 1 else hi + pad)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()  # the first arm (the reference) on top
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _spread_offsets(k: int, width: float) -> list[float]:
    """k vertical offsets in [-width, width], so a bar's seed dots do not sit on each other."""
    return [0.0] if k <= 1 else [-width + 2 * width * i / (k - 1) for i in range(k)]


def arm_curves(panels: Sequence[tuple[str, Sequence[Band]]], xlabel: str = "epoch"):
    """Side-by-side panels (title, one Band per arm): each arm's mean with a ±std band;
    one legend for all panels, below them."""
    labels = list(dict.fromkeys(b.label for _, bands in panels for b in bands))
    width = 5.6 * len(panels)
    ncols, legend_h = _legend_shape(labels, width)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.0 + legend_h),
                             layout="constrained", squeeze=False)
    colors = dict(zip(labels, arm_colors(len(labels))))
    for ax, (title, bands) in zip(axes[0], panels):
        for band in bands:
            _draw_band(ax, band, colors[band.label])
        ax.set(xlabel=xlabel, title=title)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    _legend_below(fig, [ax for ax in axes[0]], ncols)
    return fig


def layer_norms(layers: Sequence[str], bands: Sequence[Band], title: str):
    """Per-layer values on a log scale, layers left to right in network order, one line
    (± band) per arm; layer names on their own rotated ticks."""
    width = max(8.0, 0.32 * len(layers) + 3.0)
    ncols, legend_h = _legend_shape([b.label for b in bands], width)
    fig, ax = plt.subplots(figsize=(width, 4.4 + legend_h), layout="constrained")
    ax.set_yscale("log")
    for band, color in zip(bands, arm_colors(len(bands))):
        _draw_band(ax, band, color)
    ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
    ax.set(ylabel="gradient norm (log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both", axis="y")
    _legend_below(fig, [ax], ncols)
    return fig


def _bounds(band: Band) -> list[tuple[float, float]]:
    """(low, high) at each point: the band's own bounds, else y ± spread (none: y, y)."""
    pad = [None] * len(band.y)
    if band.bounds:
        return [b or (y, y) for y, b in zip(band.y, list(band.bounds) + pad)]
    return [(y - (s or 0), y + (s or 0)) if y is not None else (y, y)
            for y, s in zip(band.y, list(band.spread) + pad)]


def _draw_band(ax, band: Band, color) -> None:
    pts = [(x, y, b) for x, y, b in zip(band.x, band.y, _bounds(band))
           if y is not None and math.isfinite(y) and (ax.get_yscale() != "log" or y > 0)]
    if not pts:
        return
    xs, ys, bs = zip(*pts)
    ax.plot(xs, ys, marker="o", markersize=3, color=color, label=band.label)
    if any(hi > lo for lo, hi in bs):
        lo, hi = [b[0] for b in bs], [b[1] for b in bs]
        if ax.get_yscale() == "log" and not band.bounds:  # y - std <= 0 would fill the axis
            lo = [max(v, y / 20) for v, y in zip(lo, ys)]
        ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)


LEGEND_FONT = 7


def _legend_shape(labels: Sequence[str], width_in: float) -> tuple[int, float]:
    """Columns that fit the legend's longest label in the figure's width, and the height
    (inches) its rows need, so the figure grows instead of the legend spilling out."""
    if not labels:
        return 1, 0.0
    column_in = 0.6 + 0.075 * max(len(label) for label in labels) * LEGEND_FONT / 10 * 1.35
    ncols = max(1, min(len(labels), 3, int((width_in - 0.3) // column_in)))
    return ncols, 0.3 + 0.17 * math.ceil(len(labels) / ncols)


def _legend_below(fig, axes, ncols: int) -> None:
    handles: dict = {}
    for ax in axes:  # every arm once, even one missing from the first panel
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   fontsize=LEGEND_FONT, ncols=ncols, frameon=False)


def save(fig, path: Path, dpi: int = 110) -> Path:
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

"""The comparison's figures: differences against the reference as a forest plot on a
zero-centred axis (each seed shown), validation curves as small multiples (one panel per
arm, the reference drawn in each) and gradient norms over the layers each net has."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from cnnlab.analysis.verdict import (
    EFFECT,
    EQUIVALENT,
    INCONCLUSIVE,
    RATIO,
    ArmSummary,
    layer_stats,
    mean_curve,
    stalled_counts,
)

# matplotlib (cnnlab.plots) is imported where a figure is drawn: cnnlab-compare --no-plots
# and the text verdict start without it

PLOTS = {
    "acc": "comparison_acc.png",
    "budget": "comparison_budget.png",
    "curves": "comparison_val_curves.png",
    "grad": "comparison_grad_norms.png",
}


def _name(s: ArmSummary) -> str:
    return s.display or s.label


def off_axis(reach: dict[int, float], ratio: float = 10.0) -> set[int]:
    """The arms to write at the axis edge: the top of the one widest gap between
    neighbouring reaches (sorted), when it is wider than ``ratio`` and leaves at least half
    the arms, none of reach 0, on the axis."""
    order = sorted(reach, key=reach.get, reverse=True)
    gaps = [
        (reach[order[k]] / reach[order[k + 1]], k + 1)
        for k in range(len(order) // 2)
        if reach[order[k + 1]] > 0 and all(reach[y] > 0 for y in order[k + 1 :])
    ]
    widest, top = max(gaps, default=(0.0, 0))
    return set(order[:top]) if widest > ratio else set()


def forest(
    summaries: list[ArmSummary],
    metric: str,
    title: str | None = None,
    xlabel: str = "against the reference",
):
    """One row per arm: the mean difference with its interval (thin) and its
    multiplicity-adjusted interval (thick), each paired seed's difference as a dot just
    below it (spread vertically, so seeds at the same value stay apart), on an axis
    centred on 0, with the equivalence margin shaded. An arm read as equivalent shows only
    the interval that says so (the two one-sided tests', inside the margin) in place of
    both, so no interval drawn for it crosses the margin. An arm far beyond
    the others (more than 10× their reach) is written at the axis edge with its numbers
    instead of squeezing the rest to a point; arms read as counts say so in words."""
    from cnnlab.plots import ARM_COLOR, EQUIVALENT_COLOR, REFERENCE_COLOR, plt

    arms = [s for s in summaries if not s.is_reference and s.verdict is not None]
    ref = next((s for s in summaries if s.is_reference), None)
    if not arms:  # one arm (a recipe's seeds): nothing to compare
        return None
    n = len(arms)
    fig, ax = plt.subplots(figsize=(8.4, max(2.4, 0.5 * n + 1.6)), layout="constrained")
    seeds: dict[int, list[float]] = {}
    reach: dict[int, float] = {}
    for y, s in enumerate(arms):
        v = s.verdict
        if v.counts:
            continue
        seeds[y] = [d * 100 for d in v.diffs] or (
            [x * 100 - ref.mean * 100 for x in s.values] if ref and ref.mean is not None else []
        )
        bounds = [c * 100 for c in (_decisive(v) or v.ci or ()) if c is not None]
        reach[y] = max(abs(x) for x in [*seeds[y], *bounds, v.diff * 100])
    margin = next((v.margin * 100 for s in arms if (v := s.verdict).margin is not None), None)

    def edge_without(off: set[int]) -> float:  # the margin's edges always on the axis
        shown = [reach[y] for y in reach if y not in off]
        return max([*shown, margin or 0.0, 0.01]) * 1.15  # zero width when all are 0

    off = off_axis(reach)
    off = {y for y in off if reach[y] > edge_without(off)}  # within the margin's axis: shown
    edge = edge_without(off)
    if margin is not None:
        ax.axvspan(-margin, margin, color=EQUIVALENT_COLOR, alpha=0.08, linewidth=0)
    colors = {EFFECT: ARM_COLOR, EQUIVALENT: EQUIVALENT_COLOR}
    method = None
    drawn: set[str] = set()  # what the legend names: only what the plot shows
    for y, s in enumerate(arms):
        v = s.verdict
        if v.counts:
            ax.text(
                0,
                y,
                f"{stalled_counts(v.counts)} (Fisher p = {v.p:.2g}): counts, no mean",
                ha="center",
                va="center",
                fontsize=8,
                color="#aa3333",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},  # over the 0 line
            )
            continue
        color = colors.get(v.reading, REFERENCE_COLOR)
        drawn.add(v.reading)
        thick = _decisive(v)
        equivalent = v.reading == EQUIVALENT
        if y in off:
            side = -1 if v.diff < 0 else 1
            shown = thick or v.ci
            what = "equivalence interval" if equivalent and thick else "adjusted"
            ax.annotate(
                f"{v.diff * 100:+.2f} pp"
                + (f", {what} [{shown[0] * 100:+.2f}, {shown[1] * 100:+.2f}]" if shown else "")
                + " (off this axis)",
                xy=(side * edge, y),
                xytext=(side * edge * 0.35, y),
                ha="center",
                va="center",
                fontsize=8,
                color=color,
                arrowprops={"arrowstyle": "->", "color": color},
            )
            continue
        ys = [y + 0.3 * (i + 1) / (len(seeds[y]) + 1) for i in range(len(seeds[y]))]
        ax.scatter(seeds[y], ys, s=10, color="black", alpha=0.6, zorder=3)
        if ys:
            drawn.add("seeds")
        if thick:
            ax.plot(
                [c * 100 for c in thick],
                [y, y],
                color=color,
                linewidth=4,
                alpha=0.35,
                solid_capstyle="butt",
            )
            drawn.add("equivalence interval" if equivalent else "adjusted interval")
        # an equivalent arm shows only the interval that decides it: its raw 95% interval
        # can be wider than the 90% one of the two one-sided tests and cross the margin
        if v.ci and not equivalent:
            ax.plot([c * 100 for c in v.ci], [y, y], color=color, linewidth=1.4)
            drawn.add("raw interval")
            method = method or v.method
        ax.plot([v.diff * 100], [y], marker="D", color=color, markersize=6, zorder=4)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-edge, edge)
    ax.set_yticks(range(len(arms)), [f"{_name(s)}\n{s.verdict.reading}" for s in arms], fontsize=7)
    ax.set_ylim(max(len(arms), 1) - 0.5, -0.5)
    ax.set_xlabel(f"Δ {metric.replace('/', ' ')} {xlabel} (percentage points)")
    ax.set_title(title or f"reference: {_name(ref) if ref else '—'}", fontsize=8)
    ax.set_ylabel("arm (reading)")
    ax.grid(axis="x", alpha=0.3)
    handles = _forest_legend(drawn, method, margin)
    if handles:
        ncols = 3 if len(handles) <= 6 else 2  # eight entries in three columns overflow
        fig.legend(
            handles=handles, loc="outside lower center", ncols=ncols, fontsize=7, frameon=False
        )
    return fig


def _decisive(v) -> tuple[float, float] | None:
    """The interval an arm's reading rests on: the two one-sided tests' for an equivalent
    arm (inside the margin), else the multiplicity-adjusted one."""
    return v.ci_equivalence if v.reading == EQUIVALENT else v.ci_adjusted


def _forest_legend(drawn: set[str], method: str | None, margin: float | None) -> list:
    """The forest plot's legend: an entry for each kind of mark it drew, no other."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from cnnlab.plots import ARM_COLOR, EQUIVALENT_COLOR, REFERENCE_COLOR

    grey = REFERENCE_COLOR
    entries = [
        (EFFECT, Line2D([], [], marker="D", ls="", color=ARM_COLOR, label="reading: an effect")),
        (
            EQUIVALENT,
            Line2D([], [], marker="D", ls="", color=EQUIVALENT_COLOR, label="reading: equivalent"),
        ),
        (
            INCONCLUSIVE,
            Line2D([], [], marker="D", ls="", color=grey, label=f"reading: {INCONCLUSIVE}"),
        ),
        (
            "seeds",
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                color="black",
                alpha=0.6,
                markersize=4,
                label="a seed (paired by seed id), below its arm",
            ),
        ),
        (
            "adjusted interval",
            Line2D(
                [],
                [],
                color=grey,
                lw=4,
                alpha=0.35,
                label="adjusted interval (agrees with the adjusted p)",
            ),
        ),
        (
            "equivalence interval",
            Line2D(
                [],
                [],
                color=EQUIVALENT_COLOR,
                lw=4,
                alpha=0.35,
                label="an equivalent arm: its two one-sided tests' interval (adjusted), alone",
            ),
        ),
        (
            "raw interval",
            Line2D([], [], color=grey, lw=1.4, label=f"raw interval ({method})"),
        ),
    ]
    handles = [h for key, h in entries if key in drawn]
    if margin is not None and handles:
        handles.append(
            Patch(color=EQUIVALENT_COLOR, alpha=0.08, label=f"equivalence margin ±{margin:g} pp")
        )
    return handles


def curves(summaries: list[ArmSummary], key: str = "val/acc"):
    """Small multiples: one panel per arm, its validation error (100 - accuracy, in %) on a
    log scale over every epoch, each seed a thin line and their mean a bold one, the
    reference's mean dashed in every other panel. The log scale keeps the first epochs'
    errors (~5-10%) and the last ones' (< 1%) on one readable axis, so no epoch is cut
    off; the panels share it, except an arm whose seeds split (some stalled, near 90%):
    its seeds on their own range, and no mean, which describes neither group.
    ``key`` is an accuracy in [0, 1] logged per epoch."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from cnnlab.plots import ARM_COLOR, REFERENCE_COLOR, plt

    def error(acc: float) -> float:  # %, floored off zero for the log axis
        return max((1 - acc) * 100, 1e-3)

    drawn = []
    for s in summaries:
        epochs, mean, _ = mean_curve(s.runs, key)
        seeds = [mean_curve([r], key)[:2] for r in s.runs]
        if epochs:
            drawn.append((s, epochs, mean, [(e, m) for e, m in seeds if e]))
    if not drawn:
        return None
    ncols = min(4, len(drawn))
    nrows = math.ceil(len(drawn) / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(3.0 * ncols + 0.6, 2.3 * nrows + 0.8),
        sharex=True,
        layout="constrained",
        squeeze=False,
    )
    ref = next((d for d in drawn if d[0].is_reference), drawn[0])

    def span(rows, top_of_means: bool) -> tuple[float, float]:
        # every mean inside; a seed above the means' top leaves the panel upward, visibly
        low = [error(a) for _, _, _, seeds in rows for _, accs in seeds for a in accs]
        high = [error(m) for _, _, mean, _ in rows for m in mean] if top_of_means else low
        return min(low) / 1.15, min(100.0, max(high) * 1.25)

    unsplit = [d for d in drawn if not d[0].mixed]
    shared = span(unsplit, True) if unsplit else None
    for ax, (s, epochs, mean, seeds) in zip(axes.flat, drawn):
        color = REFERENCE_COLOR if s.is_reference else ARM_COLOR
        if s is not ref[0]:
            ax.plot(
                [e + 1 for e in ref[1]],
                [error(m) for m in ref[2]],
                color=REFERENCE_COLOR,
                linewidth=1,
                linestyle="--",
            )
        for ex, accs in seeds:
            ax.plot(
                [e + 1 for e in ex],
                [error(a) for a in accs],
                color=color,
                linewidth=0.6,
                alpha=0.45,
            )
        if not s.mixed:  # two groups: no mean describes them
            ax.plot(
                [e + 1 for e in epochs],
                [error(m) for m in mean],
                marker="o",
                markersize=3,
                linewidth=1.6,
                color=color,
            )
        ax.set_yscale("log")
        ax.set_ylim(*(span([(s, epochs, mean, seeds)], False) if s.mixed else shared))
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # one per axis
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        flag = " (still improving)" if s.still_improving else ""
        flag += f" (split: {len(s.stalled)}/{s.n} stalled; own y range, no mean)" if s.mixed else ""
        title = f"{_name(s)}{flag}" + (" (reference)" if s.is_reference else "")
        ax.set_title(textwrap.fill(title, 34), fontsize=7)
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.12, which="minor")
        ax.tick_params(labelsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(drawn) :]:
        ax.set_visible(False)
    fig.supxlabel("epoch", fontsize=9)
    label = f"{key.split('/')[0]} error (%, 100 − {key.replace('/', ' ')}), log scale"
    # wrapped to the figure's height (~12 characters an inch at 9 pt), never cut off
    fig.supylabel(textwrap.fill(label, int((2.3 * nrows + 0.8) * 12)), fontsize=9)
    key_line = "thin: one seed · bold: mean of the seeds · dashed: the reference's mean"
    fig.suptitle(textwrap.fill(key_line, int((3.0 * ncols + 0.6) * 12)), fontsize=8)
    return fig


def _seeds(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def _grad_series(s: ArmSummary) -> list[tuple[str, dict[str, tuple[float, float]], str]]:
    """What to draw of an arm: its geometric means over seeds, or, for an arm whose seeds
    split (some stalled), the stalled and the trained seeds apart (one mean of both
    describes neither)."""
    name = _name(s)
    if s.mixed:  # completed runs, as the table counts them
        done = [r for r in s.runs if r.status == "completed"]
        stalled = [r for r in done if str(r.seed) in s.stalled]
        trained = [r for r in done if str(r.seed) not in s.stalled]
        return [
            (f"{name}: {_seeds(len(stalled))} stalled", layer_stats(stalled), ":"),
            (f"{name}: {_seeds(len(trained))} trained", layer_stats(trained), None),
        ]
    ratio = f" (first/last {s.grad_ratio:{RATIO}})" if s.grad_ratio else ""
    return [(name + ratio, s.grad_norms, None)]


def gradient_norms(summaries: list[ArmSummary]):
    """Per-layer gradient norms (log scale), one panel per distinct set of layers, so an
    arm is drawn only over the layers its net has."""
    from cnnlab.plots import arm_styles, plt

    with_grads = [s for s in summaries if s.grad_norms]
    if not with_grads:
        return None
    groups: dict[tuple[str, ...], list[ArmSummary]] = {}
    for s in with_grads:
        groups.setdefault(tuple(s.grad_norms), []).append(s)
    width = max(4.0, 0.5 * max(len(k) for k in groups) + 2.0) + 4.5  # + the legend
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(width, 4.2 * len(groups)),
        layout="constrained",
        squeeze=False,
        sharey=True,  # one scale: panels (nets with other layers) compare by eye
    )
    styles = dict(zip([s.label for s in with_grads], arm_styles(len(with_grads))))
    for ax, (layers, arms) in zip(axes[:, 0], groups.items()):
        xs = list(range(len(layers)))
        for s in arms:
            color, dash = styles[s.label]
            for label, norms, own_dash in _grad_series(s):
                pts = [(x, *norms[k]) for x, k in zip(xs, layers) if k in norms and norms[k][0] > 0]
                if not pts:
                    continue
                px, pm, pf = zip(*pts)
                ax.plot(
                    px,
                    pm,
                    marker="o",
                    markersize=3,
                    color=color,
                    linestyle=own_dash or dash,
                    label=label,
                )
                ax.fill_between(
                    px,
                    [m / f for m, f in zip(pm, pf)],
                    [m * f for m, f in zip(pm, pf)],
                    color=color,
                    alpha=0.12,
                    linewidth=0,
                )
        ax.set_yscale("log")
        ax.set_xticks(xs, layers, rotation=90, fontsize=7)
        ax.set_xlabel("layer (network order)")
        ax.set_ylabel("gradient norm, last sampled epoch (log scale)")
        ax.grid(alpha=0.3, which="both", axis="y")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle(
        "gradient norm per layer: geometric mean ×/÷ geometric std over seeds", fontsize=10
    )
    return fig


def comparison_figures(
    summaries: list[ArmSummary], metric: str, pairs: list[ArmSummary] | None = None
) -> dict[str, Any]:
    """The comparison's figures by name (``PLOTS``); with ``pairs`` (--against), the
    budget test as a forest plot too. The caller saves or closes them."""
    figs = {
        "acc": forest(summaries, metric),
        "budget": forest(
            pairs,
            metric,
            "budget test: each arm against itself at the other budget, paired by seed",
            "(this study minus the other budget)",
        )
        if pairs
        else None,
        "curves": curves(summaries),
        "grad": gradient_norms(summaries),
    }
    return {k: v for k, v in figs.items() if v is not None}


def write_plots(
    summaries: list[ArmSummary], out: Path, metric: str, pairs: list[ArmSummary] | None = None
) -> list[Path]:
    from cnnlab.plots import save

    return [
        save(fig, out / PLOTS[name])
        for name, fig in comparison_figures(summaries, metric, pairs).items()
    ]

"""The verdict as text: the terminal table, comparison.md/.csv/.json, and the generated
block of a study README (tables and verdict sentences from comparison.json alone, so a
published number cannot drift from its data)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from cnnlab.analysis.verdict import (
    RATIO,
    ArmSummary,
    Settings,
    Verdict,
    every_arm_converged,
    stalled_counts,
)
from cnnlab.files import write_bytes

COLUMNS = [
    "arm",
    "n",
    "test acc mean ± std",
    "min",
    "max",
    "test loss",
    "train − test",
    "grad first/last",
    "epochs",
    "fit time (s)",
    "Δ vs reference [95% CI]",
    "adjusted CI",
    "p (raw / adj.)",
    "MDE",
    "reading",
    "converged",
    "not completed",
]
GRAD_COLUMN = "grad first/last"
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"
SETUP_BEGIN, SETUP_END = "<!-- setup:begin -->", "<!-- setup:end -->"


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)


def _pp(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:+.2f}"


def _interval(ci) -> str:
    return "—" if not ci or ci[0] is None else f"[{ci[0] * 100:+.2f}, {ci[1] * 100:+.2f}]"


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}"


def columns(summaries: list[ArmSummary]) -> list[str]:
    """The table's columns; the gradient-norm ratio only when some run logged the norms."""
    return [c for c in COLUMNS if c != GRAD_COLUMN or any(s.grad_norms for s in summaries)]


def _row(s: ArmSummary, cols: list[str] = COLUMNS) -> list[str]:
    v = s.verdict
    if s.is_reference:
        delta, adj, p, mde, reading = "reference", "", "", "", ""
    elif v is None:
        delta, adj, p, mde, reading = "—", "—", "—", "—", "—"
    elif v.counts:
        delta = stalled_counts(v.counts)
        adj, mde = "counts", "—"
        p, reading = f"{_p(v.p)} / {_p(v.p_adjusted)} (Fisher)", v.reading
    else:
        delta = f"{_pp(v.diff)} pp {_interval(v.ci)} {v.method}"
        adj, p = _interval(v.ci_adjusted), f"{_p(v.p)} / {_p(v.p_adjusted)}"
        mde, reading = f"{_fmt(v.mde and v.mde * 100, '.2f')} pp", v.reading
    acc = "—" if s.mean is None else f"{s.mean:.4f} ± {s.std:.4f}"
    if s.mixed:
        acc = f"split: {len(s.stalled)}/{s.n} stalled"
    bad = (
        ", ".join(
            f"{sum(r.status == st for r in s.problems)} {st}"
            for st in sorted({r.status for r in s.problems})
        )
        or "0"
    )
    ratio = (
        _fmt(s.grad_ratio, RATIO)
        if not s.mixed
        else " / ".join(f"{k} {_fmt(r, RATIO)}" for k, r in s.grad_ratio_groups.items())
    )
    converged = converged_cell(
        {
            "budget": s.budget and s.budget.reading,
            "annealed": s.annealed,
            "still_improving": s.still_improving,
        }
    )
    cells = dict(
        zip(
            COLUMNS,
            [
                s.label,
                str(s.n),
                acc,
                _fmt(s.min),
                _fmt(s.max),
                _fmt(s.test_loss),
                _fmt(s.gap, "+.4f"),
                ratio,
                _fmt(s.epochs, ".1f"),
                _fmt(s.fit_time_s, ".1f"),
                delta,
                adj,
                p,
                mde,
                reading,
                converged,
                bad,
            ],
        )
    )
    return [cells[c] for c in cols]


def render_table(summaries: list[ArmSummary], title: str) -> Table:
    """The terminal table; every cell is plain text (labels and paths are never markup)."""
    cols = columns(summaries)
    table = Table(title=Text(title))
    for col in cols:
        table.add_column(
            col,
            justify="left" if col in ("arm", "Δ vs reference [95% CI]", "reading") else "right",
            # a narrow terminal folds an arm's label: cut short, two arms could read the same
            overflow="fold" if col == "arm" else "ellipsis",
        )
    for s in summaries:
        table.add_row(*map(Text, _row(s, cols)), style="bold" if s.is_reference else None)
    return table


def against_table(summaries: list[ArmSummary], title: str) -> Table:
    """Each arm against itself in the other study (``cnnlab-compare --against``)."""
    table = Table(title=Text(title))
    for col in (
        "arm",
        "n",
        "Δ [95% CI]",
        "adjusted CI",
        "p (raw / adj.)",
        "reading",
        "still improving",
    ):
        table.add_column(col)
    for s in summaries:
        v = s.verdict
        table.add_row(
            *map(
                Text,
                [
                    s.label,
                    str(s.n),
                    "—" if v is None or v.diff is None else f"{_pp(v.diff)} pp {_interval(v.ci)}",
                    _interval(v and v.ci_adjusted),
                    "—" if v is None else f"{_p(v.p)} / {_p(v.p_adjusted)}",
                    "—" if v is None else v.reading,
                    "—" if s.still_improving is None else str(s.still_improving),
                ],
            )
        )
    return table


def problem_lines(summaries: list[ArmSummary], relative_to: Path | None = None) -> list[str]:
    """One line per run that did not complete; paths relative to ``relative_to`` if given."""
    return [
        f"{r.status}: {_where(r.path, relative_to)} — "
        f"{(r.error or '').splitlines()[0] if r.error else ''}"
        for s in summaries
        for r in s.problems
    ]


def _where(path: Path, relative_to: Path | None) -> str:
    """A run's path as the report shows it: relative to the study dir, so a report copied
    elsewhere names no directory of the machine it was written on."""
    if relative_to is None or str(path).startswith("wandb:"):
        return str(path)
    return os.path.relpath(Path(path).resolve(), Path(relative_to).resolve())


def adjusted_intervals(adjust: str, comparisons: int) -> str:
    """What the adjusted intervals are, by the adjustment and the family's size
    (stats.adjusted_levels's levels)."""
    if comparisons <= 1:  # every method leaves one comparison's level as it is
        return "one comparison: its adjusted interval is the raw one" if comparisons else "none"
    if adjust == "holm":
        return (
            "each adjusted interval at the level that agrees with Holm's decision for it, so "
            "it excludes 0 exactly when the adjusted p is below alpha; these are not "
            "simultaneous intervals (Bonferroni's, which are, are in comparison.json as "
            "ci_simultaneous)"
        )
    return "Bonferroni's simultaneous intervals" if adjust == "bonferroni" else "not adjusted"


def method_lines(summaries: list[ArmSummary], settings: Settings) -> list[str]:
    """What the numbers mean, in the words the reports use."""
    verdicts = [s.verdict for s in summaries if s.verdict]
    lines = [
        f"Δ: percentage points against the reference, {settings.level:.0%} interval; "
        f"adjusted: {settings.adjust} across the {len(verdicts)} "
        f"comparison{'s' * (len(verdicts) != 1)} "
        f"({adjusted_intervals(settings.adjust, len(verdicts))}). MDE: the smallest difference "
        f"detected with {settings.power:.0%} power at the seeds the arm had. Reading: "
        f"effect (adjusted p < {settings.alpha:.2g}), equivalent (TOST within "
        f"±{settings.margin_pp} pp, adjusted) or inconclusive at this power. Arms with "
        f"runs at or below {settings.stalled_below} accuracy (stalled) are counts with "
        "Fisher's exact test. converged: with --against, the arm against itself in the other "
        "study (the budget test; equivalent = converged); else the mean validation accuracy "
        f"rose at most {settings.min_gain_pp} pp over the last epoch, a rule not applied when "
        f"the learning rate ended under {settings.annealed_below:g} of its peak (annealed)."
    ]
    if any(v.test_error for v in verdicts):
        lines.append(
            "Test-set sampling error counted: seed × test-image variance "
            "components from each run's per-image test predictions."
        )
    if any(v.method in ("paired t", "Welch t") for v in verdicts):
        lines.append(
            "Seed-only intervals (runs without per-image test predictions): the "
            "test set's own sampling error (~0.09 pp for one accuracy on 10k "
            "images) is not counted."
        )
    gaps = [s for s in summaries if s.gap is not None]
    if gaps and not all(s.gap_eval_mode for s in gaps):
        lines.append(
            "train − test: training accuracy averaged over the last epoch with "
            "dropout and augmentation on (older runs), so it is biased low."
        )
    return lines


def write_markdown(
    summaries: list[ArmSummary],
    path: Path,
    title: str,
    metric: str,
    settings: Settings,
    factorial: list[dict] | None = None,
    study: Path | None = None,
) -> None:
    """comparison.md; runs named relative to ``study`` (default: where the file goes)."""
    cols = columns(summaries)
    lines = [f"# {title}", "", f"Metric: `{metric}` (mean ± sample std over seeds).", ""]
    lines += [line for m in method_lines(summaries, settings) for line in (m, "")]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_row(s, cols)) + " |" for s in summaries]
    if factorial:
        lines += ["", factorial_table(factorial)]
    problems = problem_lines(summaries, study or path.parent)
    if problems:
        lines += ["", "Runs that did not complete:", ""] + [f"- {p}" for p in problems]
    write_bytes(path, "\n".join(lines) + "\n")


def factorial_table(terms: list[dict]) -> str:
    rows = [
        "| term | estimate (pp) | 95% CI | adjusted CI | p (raw / adj.) |",
        "|---|---|---|---|---|",
    ]
    rows += [
        f"| {t['term']} | {_pp(t['estimate'])} | {_interval(t['ci'])} | "
        f"{_interval(t.get('ci_adjusted'))} | {_p(t['p'])} / {_p(t.get('p_adjusted'))} |"
        for t in terms
    ]
    return (
        "Factorial reading (linear model with seed blocks, non-stalled runs): a main effect "
        "is a level against the reference's, averaged over the other factors' levels "
        "(centred coding); an interaction is a difference of differences; intervals count "
        "seed-to-seed error only (the test set's sampling error is not in this model); "
        "adjusted across the terms as the arms are.\n\n" + "\n".join(rows)
    )


def write_csv(summaries: list[ArmSummary], path: Path) -> None:
    f = io.StringIO(newline="")  # built in memory, written as every output is
    w = csv.writer(f)
    w.writerow(
        [
            "arm",
            "n",
            "mean",
            "std",
            "min",
            "max",
            "test_loss",
            "epochs",
            "fit_time_s",
            "diff",
            "ci_low",
            "ci_high",
            "paired",
            "reference",
            "not_completed",
            "gap_train_test",
            "gap_std",
            "grad_ratio_first_last",
            "p",
            "p_adjusted",
            "mde",
            "reading",
            "still_improving",
        ]
    )
    for s in summaries:
        v = s.verdict
        w.writerow(
            [
                s.label,
                s.n,
                s.mean,
                s.std,
                s.min,
                s.max,
                s.test_loss,
                s.epochs,
                s.fit_time_s,
                s.diff,
                s.ci_low,
                s.ci_high,
                s.paired,
                s.is_reference,
                len(s.problems),
                s.gap,
                s.gap_std,
                s.grad_ratio,
                v and v.p,
                v and v.p_adjusted,
                v and v.mde,
                v and v.reading,
                s.still_improving,
            ]
        )
    write_bytes(path, f.getvalue())


def comparison_data(
    summaries: list[ArmSummary],
    settings: Settings,
    metric: str,
    factorial: list[dict] | None = None,
    relative_to: Path | None = None,
    pairs: list[ArmSummary] | None = None,
    against: list[Path] | None = None,
    setup: dict[str, Any] | None = None,
    against_setup: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """comparison.json: every number a report quotes, with the seed id of every value;
    with ``pairs``, each arm against itself in the study ``against`` (another budget);
    ``setup``: the runs' machine, budget and versions (load.study_setup), and
    ``against_setup`` the other study's (its epochs give the budget test's direction)."""

    def verdict(s: ArmSummary, v: Verdict | None = None):
        v = v or s.verdict
        if v is None:
            return None
        return {
            "method": v.method,
            "diff": v.diff,
            "ci": v.ci,
            "ci_adjusted": v.ci_adjusted,
            "ci_adjusted_level": v.ci_adjusted_level,
            "ci_simultaneous": v.ci_simultaneous,
            "p": v.p,
            "p_adjusted": v.p_adjusted,
            "tost_p": v.tost_p,
            "tost_p_adjusted": v.tost_p_adjusted,
            "ci_equivalence": v.ci_equivalence,
            "mde": v.mde,
            "seeds_needed": v.seeds_needed,
            "power_alpha": v.power_alpha,
            "reading": v.reading,
            "test_error_counted": v.test_error,
            "counts": v.counts,
            "paired": [{"seed": k, "diff": d} for k, d in zip(v.seeds, v.diffs)],
        }

    arms = [
        {
            "arm": s.label,
            "label": s.display,
            "n": s.n,
            "reference": s.is_reference,
            "values": [{"seed": k, "value": x} for k, x in zip(s.seeds, s.values)],
            "mean": s.mean,
            "std": s.std,
            "min": s.min,
            "max": s.max,
            "test_loss": s.test_loss,
            "epochs": s.epochs,
            "fit_time_s": s.fit_time_s,
            "stalled_seeds": s.stalled,
            "verdict": verdict(s),
            "convergence": {
                "still_improving": s.still_improving,
                "last_gain": s.last_gain,
                "annealed": s.annealed,
                "budget": s.budget and s.budget.reading,
            },
            "gap_train_test": s.gap,
            "gap_std": s.gap_std,
            "gap_eval_mode": s.gap_eval_mode,
            "grad_norms": {
                k: {"geometric_mean": m, "geometric_std": f} for k, (m, f) in s.grad_norms.items()
            },
            "grad_ratio_first_last": s.grad_ratio,
            "grad_ratio_groups": s.grad_ratio_groups,
            "not_completed": [_where(r.path, relative_to) for r in s.problems],
        }
        for s in summaries
    ]
    data: dict[str, Any] = {
        "metric": metric,
        "settings": vars(settings),
        "arms": arms,
        "factorial": factorial or [],
    }
    if setup is not None:
        data["setup"] = setup
    if pairs is not None:
        other: dict[str, Any] = {
            "study": " ".join(_where(d, relative_to) for d in against or []) or None,
            "arms": [
                {"label": p.display or p.label, "n": p.n, "verdict": verdict(p)} for p in pairs
            ],
        }
        if against_setup is not None:
            other["setup"] = against_setup
        other["every_arm"] = every_arm_converged(pairs, settings)
        data["against"] = other
    return data


def write_json(data: dict[str, Any], path: Path) -> None:
    write_bytes(path, json.dumps(data, indent=2) + "\n")


# -- a study README's generated block ------------------------------------------------------


def readme_block(data: dict[str, Any]) -> str:
    """The README's tables and verdict sentences, from comparison.json alone."""
    s = data["settings"]
    arms = data["arms"]
    ref = next(a for a in arms if a["reference"])
    lines = [
        BEGIN,
        "",
        "| arm | n | test acc mean ± std | Δ vs reference [CI] | adjusted CI "
        "| p (raw / adj.) | MDE | reading | converged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in arms:
        v = a["verdict"]
        acc = acc_cell(a)
        conv = converged_cell(a["convergence"])
        if a["reference"]:
            cells = ["reference", "", "", "", ""]
        elif v is None:
            cells = ["—"] * 5
        elif v["counts"]:
            c = v["counts"]
            cells = [
                stalled_counts(c),
                "counts",
                f"{_p(v['p'])} / {_p(v['p_adjusted'])} (Fisher)",
                "—",
                v["reading"],
            ]
        else:
            cells = [
                f"{_pp(v['diff'])} pp {_interval(v['ci'])}",
                _interval(v["ci_adjusted"]),
                f"{_p(v['p'])} / {_p(v['p_adjusted'])}",
                f"{v['mde'] * 100:.2f} pp" if v["mde"] is not None else "—",
                v["reading"],
            ]
        lines.append(
            f"| {a['label'] or a['arm']} | {a['n']} | {acc} | " + " | ".join(cells) + f" | {conv} |"
        )
    # the family Holm adjusted over: arms with a test, not arms with no completed run
    tested = sum(1 for _, v in _compared(arms) if v["p"] is not None)
    if len(arms) > 1:  # one arm (a recipe's seeds) is compared with nothing
        lines += [
            "",
            f"Against {ref['label'] or ref['arm']}; intervals at {s['level']:.0%}, "
            f"adjusted by {s['adjust']} across {tested} comparison{'s' * (tested != 1)}; "
            + family_note(s, arms, tested)
            + f" equivalence margin ±{s['margin_pp']} pp (an arm that is not an effect reads "
            "equivalent when its equivalence interval, the two one-sided tests' at the level "
            "that agrees with their adjusted p, lies inside it).",
            "",
        ]
    for name, v in _compared(arms):
        if v["counts"]:
            c = v["counts"]
            text = (
                f"stalled in {c['stalled']} of {c['n']} seeds against {c['reference_stalled']}"
                f" of {c['reference_n']} (Fisher exact p = {_p(v['p'])}, adjusted "
                f"{_p(v['p_adjusted'])}): {v['reading']}."
            )
        elif v["reading"] == "effect":
            text = (
                f"an effect of {_pp(v['diff'])} pp (adjusted interval "
                f"{_interval(v['ci_adjusted'])}, adjusted p = {_p(v['p_adjusted'])})."
            )
        elif v["reading"] == "equivalent":
            text = (
                f"no effect larger than ±{s['margin_pp']} pp ({_pp(v['diff'])} pp; "
                + (
                    f"equivalence interval {_interval(v['ci_equivalence'])} inside the margin, "
                    if v.get("ci_equivalence")  # an older comparison.json has none
                    else ""
                )
                + f"TOST adjusted p = {_p(v['tost_p_adjusted'])})."
            )
        elif v["mde"] is None:
            text = f"inconclusive: {v['method']} ({_pp(v['diff'])} pp)."
        else:
            need = v["seeds_needed"]
            text = (
                f"inconclusive at this power ({_pp(v['diff'])} pp, adjusted interval "
                f"{_interval(v['ci_adjusted'])}; the smallest effect these seeds detect "
                f"is {v['mde'] * 100:.2f} pp; {s['effect_pp']} pp would need "
                + (f"{need} seeds)." if need else "more than the test set allows).")
            )
        lines.append(f"- **{name}**: {text}")
    still = [a["label"] or a["arm"] for a in arms if a["convergence"]["still_improving"]]
    annealed = [a for a in arms if a["convergence"].get("annealed")]
    why = (
        f"learning rate ended under {s.get('annealed_below', 0.1):g} of its peak, so its last "
        "epoch's gain is the schedule's annealing; only the budget test says whether it converged"
    )
    curves = ""  # what the validation curves say, where one was read
    if any(a["convergence"].get("last_gain") is not None for a in arms):
        curves = "Still improving at the last epoch: " + (", ".join(still) or "none") + "."
    if annealed and len(annealed) == sum(1 for a in arms if a["n"]):  # every arm with a run
        curves = f"Convergence is not read from the validation curves: every arm's {why}."
    elif annealed:
        note = f"Not read from the curve for {len(annealed)} arms whose {why}."
        curves = f"{curves} {note}" if curves else note
    if curves:
        lines += ["", curves]
    lines += ["", *measures_block(arms, (data.get("setup") or {}).get("sweeps"))]
    if data.get("against"):
        lines += ["", *against_block(data["against"], s, data.get("setup"))]
    if data.get("factorial"):
        lines += ["", factorial_table(data["factorial"])]
    return "\n".join(lines + ["", END])


def acc_cell(a: dict[str, Any]) -> str:
    """An arm's accuracy: mean ± std, or for an arm whose seeds split (some stalled) each
    group's count and mean apart (one mean ± std of both describes neither)."""
    if a["mean"] is None:
        return "—"
    if not a["stalled_seeds"]:
        return f"{a['mean'] * 100:.2f}% ± {a['std'] * 100:.2f}"
    groups: dict[str, list[float]] = {"stalled": [], "trained": []}
    for v in a["values"]:
        groups["stalled" if v["seed"] in a["stalled_seeds"] else "trained"].append(v["value"])
    return "split: " + ", ".join(
        f"{len(xs)}/{a['n']} {name} ({sum(xs) / len(xs) * 100:.2f}%)"
        for name, xs in groups.items()
        if xs
    )


def family_note(s: dict[str, Any], arms: list[dict[str, Any]], tested: int) -> str:
    """How the adjusted intervals and the MDE were had (from the verdicts themselves);
    ``tested``: the family's size, the arms with a test."""
    alphas = {v.get("power_alpha") for _, v in _compared(arms) if v.get("power_alpha")}
    at = f" (alpha {_p(alphas.pop())})" if len(alphas) == 1 else ""
    how = f"{adjusted_intervals(s['adjust'], tested)}; "
    family = "the family's Bonferroni level" if s["adjust"] != "none" else "the raw level"
    return f"{how}MDE at {s['power']:.0%} power at {family}{at};"


def measures_block(arms: list[dict[str, Any]], sweeps: int | None = None) -> list[str]:
    """The other measures of each arm: loss, gap, gradient ratio, time, runs not completed.
    ``sweeps``: how many sweeps the runs came from (more than one: say fit times across
    them are no cost comparison)."""
    lines = [
        "| arm | test loss | train − test | grad first/last | epochs | fit time (s) "
        "| not completed |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in arms:
        gap = _fmt(a["gap_train_test"], "+.4f")
        if a["gap_train_test"] is not None and not a["gap_eval_mode"]:
            gap += " (train mode)"
        loss = _fmt(a["test_loss"])
        if a.get("stalled_seeds"):  # a mean over stalled and trained seeds describes neither
            gap = loss = "— (split seeds)"
        groups = a.get("grad_ratio_groups") or {}
        ratio = (
            " / ".join(f"{k} {_fmt(v, RATIO)}" for k, v in groups.items())
            if groups
            else _fmt(a["grad_ratio_first_last"], RATIO)
        )
        lines.append(
            f"| {a['label'] or a['arm']} | {loss} | {gap} | {ratio} | "
            f"{_fmt(a['epochs'], '.1f')} | {_fmt(a.get('fit_time_s'), '.0f')} | "
            f"{len(a['not_completed'])} |"
        )
    lines += [
        "",
        "train − test: accuracy on the first training images in eval mode (no dropout, no "
        "augmentation) minus test accuracy. grad first/last: the first layer's gradient norm "
        "over the last layer's at the last epoch, geometric mean over seeds (seeds that "
        "stalled and seeds that trained apart). fit time: mean seconds of training per run"
        + (
            f"; the runs come from {sweeps} sweeps run at different times, and other work may "
            "have shared the machine, so fit times of arms from different sweeps are not a "
            "cost comparison."
            if sweeps and sweeps > 1
            else "."
        ),
    ]
    return lines


def converged_cell(conv: dict[str, Any]) -> str:
    """The README's "converged" cell: the budget test when there is one, else the curve."""
    budget = conv.get("budget")
    if budget is not None:
        word = {"equivalent": "yes", "effect": "no"}.get(budget, "inconclusive")
        return f"{word} (budget test)"
    if conv.get("annealed"):
        return "— (annealed lr)"
    still = conv.get("still_improving")
    return "—" if still is None else ("still improving" if still else "yes")


def budget_epochs(setup: dict[str, Any] | None, against: dict[str, Any]) -> tuple[str, str]:
    """' (N epochs)' for this study and the other, where each trained one budget."""

    def epochs(facts: dict[str, Any] | None) -> str:
        values = (facts or {}).get("epochs") or []
        return f" ({values[0]} epochs)" if len(values) == 1 else ""

    return epochs(setup), epochs(against.get("setup"))


def budget_sign(setup: dict[str, Any] | None, against: dict[str, Any]) -> int:
    """+1 when this study had the larger budget, -1 when the other did (0: unknown), so a
    budget test reads as the larger budget minus the smaller whichever side published it."""
    for key in ("epochs", "study_budget"):  # the epochs trained, else the budget asked for
        mine = (setup or {}).get(key) or []
        theirs = (against.get("setup") or {}).get(key) or []
        if len(mine) == 1 and len(theirs) == 1 and mine != theirs:
            return 1 if mine[0] > theirs[0] else -1
    return 0


def against_block(
    against: dict[str, Any], s: dict[str, Any], s_setup: dict[str, Any] | None = None
) -> list[str]:
    """The budget test: each arm against itself in the other study, and what it says."""
    mine, theirs = budget_epochs(s_setup, against)
    lines = [
        "Each arm against itself in the runs given with `--against` (the budget test: "
        f"Δ is this study's runs{mine} minus those{theirs}, paired by seed):",
        "",
        "| arm | n | Δ [CI] | adjusted CI | p (raw / adj.) | equivalence p (raw / adj.) "
        "| MDE | reading |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in against["arms"]:
        v = a["verdict"]
        if v is not None and v["counts"]:  # stalled runs on a side: counts, Fisher's test
            lines.append(
                f"| {a['label']} | {a['n']} | {stalled_counts(v['counts'])} | counts | "
                f"{_p(v['p'])} / {_p(v['p_adjusted'])} (Fisher) | — | — | {v['reading']} |"
            )
            continue
        if v is None or v["diff"] is None:
            lines.append(f"| {a['label']} | {a['n']} | — | — | — | — | — | — |")
            continue
        lines.append(
            f"| {a['label']} | {a['n']} | {_pp(v['diff'])} pp {_interval(v['ci'])} | "
            f"{_interval(v['ci_adjusted'])} | {_p(v['p'])} / {_p(v['p_adjusted'])} | "
            f"{_p(v['tost_p'])} / {_p(v['tost_p_adjusted'])} | "
            + (f"{v['mde'] * 100:.2f} pp" if v["mde"] is not None else "—")
            + f" | {v['reading']} |"
        )
    groups: dict[str, list[str]] = {}
    for a in against["arms"]:
        reading = a["verdict"]["reading"] if a["verdict"] else "not compared"
        groups.setdefault(reading, []).append(a["label"])
    said = {
        "equivalent": f"converged (no change beyond ±{s['margin_pp']} pp)",
        "effect": "changed with the budget (not converged)",
    }
    lines += [
        "",
        "; ".join(
            f"{said.get(k, k).capitalize() if i == 0 else said.get(k, k)}: {', '.join(v)}"
            for i, (k, v) in enumerate(sorted(groups.items()))
        )
        + ".",
    ]
    every = against.get("every_arm")
    if every:
        lines += ["", every_arm_line(every, s)]
    return lines


def every_arm_line(every: dict[str, Any], s: dict[str, Any]) -> str:
    """The study's budget as one claim: every arm converged (intersection-union test)."""
    how = (
        f"each arm's equivalence test at {every['alpha']:g} with no correction, as a claim "
        "about every arm needs (Berger's intersection-union test; the readings above are "
        "corrected because they read arms one at a time)"
    )
    if every["converged"]:
        return (
            f"**Every arm converged** (no change beyond ±{s['margin_pp']} pp with the budget): "
            f"{how}; p = {_p(every['p'])}, the largest arm's."
        )
    return (
        f"**Not shown that every arm converged**: {how}; not shown for "
        f"{', '.join(every['not_shown'])}."
    )


def _compared(arms: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each arm compared with the reference, by its label, with its verdict."""
    return [
        (a["label"] or a["arm"], a["verdict"])
        for a in arms
        if not a["reference"] and a["verdict"] is not None
    ]


def setup_block(setup: dict[str, Any]) -> str:
    """A study README's header facts (runs, machine, budget, versions), from comparison.json's
    ``setup`` alone: nothing about how the runs ran is typed by hand; "?" where no run's
    record says."""

    def num(v: Any, spec: str = "g") -> str:  # a recorded value that is not a number: as is
        return (
            format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
        )

    def one(key: str, fmt=str, none: str = "?") -> str:
        return distinct(setup, key, fmt, none)

    def seq(v: Any) -> str:
        return "(" + ", ".join(num(x) for x in v) + ")" if isinstance(v, list) else str(v)

    def plural(values: str, word: str) -> str:
        return f"{values} {word}{'' if values == '1' else 's'}"

    statuses = ", ".join(f"{n} {s}" for s, n in (setup.get("status") or {}).items())
    missing = setup.get("run_time_missing") or 0
    time = f"{setup.get('run_time_s', 0) / 60:.1f} min of run time in all (summed over runs"
    time += f"; not recorded by {missing})" if missing else ")"
    budget = setup.get("study_budget") or []
    times = f" (study_budget={one('study_budget')})" if budget and budget != [1] else ""
    optimizer = f"{one('optimizer')} lr {one('lr', num)}"
    if setup.get("betas"):
        optimizer += f" with betas {one('betas', seq)}"
    scheduler = f", {one('scheduler')}" if setup.get("scheduler") else ""
    held = one("held_out", lambda v: "no validation split" if v == "none" else num(v, ".0%"))
    if held != "no validation split":
        held += " of the training images held out for validation"
    return "\n".join(
        [
            SETUP_BEGIN,
            f"- **Runs:** {setup.get('runs', 0)} ({statuses or 'none'})"
            f"{sweeps_from(setup.get('sweeps'))}; {time}; "
            f"{one('cpu', none='CPU')}, {plural(one('cpu_count'), 'core')}, {one('gpu')}; "
            f"{' or '.join(setup.get('launcher') or ['?'])}, "
            f"{plural(one('torch_threads'), 'torch thread')} each.",
            f"- **Budget per run:** {one('net')}, {plural(one('epochs'), 'epoch')}{times}, "
            f"batch {one('batch_size')}, {held}; {optimizer}{scheduler}; the "
            f"{one('test_ckpt')} weights tested on the test images.",
            f"- **Versions:** torch {one('torch')}, lightning {one('lightning')}, cnnlab "
            f"{one('cnnlab')} (git {one('commit')}).",
            SETUP_END,
        ]
    )


def distinct(setup: dict[str, Any] | None, key: str, fmt=str, none: str = "?") -> str:
    """Every distinct value the runs' records give for ``key``, in order; ``none`` if none."""
    return ", ".join(fmt(v) for v in (setup or {}).get(key) or []) or none


def sweeps_from(sweeps: int | None) -> str:
    return f" from {sweeps} sweeps" if sweeps and sweeps > 1 else ""


def regenerate(readme: str, data: dict[str, Any]) -> str:
    """The README with its generated blocks re-rendered (unchanged where it has none)."""
    readme = _replace_block(readme, lambda: readme_block(data))
    if "setup" in data:
        readme = _replace_block(readme, lambda: setup_block(data["setup"]), SETUP_BEGIN, SETUP_END)
    return readme


def _replace_block(readme: str, block, begin: str = BEGIN, end: str = END) -> str:
    if begin not in readme or end not in readme:
        return readme
    head, rest = readme.split(begin, 1)
    return head + block() + rest.split(end, 1)[1]


# -- an index of several studies (experiments/README.md) -----------------------------------


def index_block(studies: dict[str, dict[str, Any]]) -> str:
    """One row per study, from each study's comparison.json: arms and seeds, the reference
    arm's accuracy and each other arm by its reading."""
    lines = [
        BEGIN,
        "",
        "| study | arms × seeds | epochs (budget test's) | reference | effect (Δ, adjusted "
        "interval) | no effect beyond the margin | inconclusive at this power | budget test |",
        "|---|---|---|---|---|---|---|---|",
    ]

    for name, data in studies.items():
        if not isinstance(data, dict) or "arms" not in data:  # an earlier compare's format
            continue
        arms = data["arms"]
        ref = next(a for a in arms if a["reference"])
        ran = [a for a in arms if a["n"]]
        seeds = sorted({a["n"] for a in ran})
        # arms with no completed run (skipped: weights it could not fetch) are named apart
        idle = len(arms) - len(ran)
        size = f"{len(ran)} × {'/'.join(map(str, seeds))}" + (
            f" (+{idle} arm{'s' * (idle > 1)} with no completed run)" if idle else ""
        )
        cells: dict[str, list[str]] = {"effect": [], "equivalent": [], "inconclusive": []}
        for name_, v in _compared(arms):
            if v["counts"]:
                c = v["counts"]
                text = (
                    f"{name_}: stalled {c['stalled']}/{c['n']} (Fisher p = {_p(v['p_adjusted'])})"
                )
            elif v["reading"] == "effect":
                text = f"{name_}: {_pp(v['diff'])} pp {_interval(v['ci_adjusted'])}"
            else:
                text = f"{name_} ({_pp(v['diff'])} pp)"
            key = v["reading"] if v["reading"] in cells else "inconclusive"
            cells[key].append(text)
        acc = "—" if ref["mean"] is None else f"{ref['mean'] * 100:.2f}% ± {ref['std'] * 100:.2f}"
        against = data.get("against") or {}
        budget = distinct(data.get("setup"), "epochs") + (
            f" ({distinct(against.get('setup'), 'epochs')})" if against.get("arms") else ""
        )
        lines.append(
            f"| [{name}]({name}/) | {size} | {budget} | "
            f"{ref['label'] or ref['arm']}: {acc} | "
            + " | ".join("; ".join(cells[k]) or "—" for k in cells)
            + f" | {budget_cell(against, data.get('setup'))} |"
        )
    lines += [
        "",
        "Readings as each study's README defines them: multiplicity-adjusted (Holm) within a "
        "study, equivalence by TOST within the study's margin, and stalled arms as counts. "
        "Budget test: Δ is the larger budget's accuracy minus the smaller's, whichever study "
        "published it (a study compared with a larger budget shows its arms' gain from it).",
        "",
        END,
    ]
    return "\n".join(lines)


BUDGET_READINGS = {  # the budget test's readings, as the index names them
    "effect": "changed with the budget",
    "equivalent": "converged",
    "inconclusive": "inconclusive at this power",
}


def budget_cell(
    against: dict[str, Any], setup: dict[str, Any] | None = None, named_up_to: int = 4
) -> str:
    """A study's budget test in one cell: the arms that changed (with Δ, the larger budget
    minus the smaller) and those shown converged by name, the inconclusive ones by name
    while there are few, else counted."""
    sign = budget_sign(setup, against)
    groups: dict[str, list[str]] = {}
    untested = 0  # an arm with no completed run on one side
    for a in against.get("arms", []):
        v = a["verdict"]
        if v is None:
            untested += 1
            continue
        key = v["reading"] if v["reading"] in BUDGET_READINGS else "inconclusive"
        what = (
            stalled_counts(v["counts"])
            if v["diff"] is None
            else f"{_pp((sign or 1) * v['diff'])} pp"
        )
        groups.setdefault(key, []).append(f"{a['label']} ({what})")
    parts = []
    for key, what in BUDGET_READINGS.items():
        names = groups.get(key, [])
        if names and key == "inconclusive" and len(names) > named_up_to:
            parts.append(f"{what}: {len(names)} arms")
        elif names:
            parts.append(f"{what}: {', '.join(names)}")
    if untested:
        parts.append(f"not compared: {untested} arm{'s' * (untested > 1)}")
    every = against.get("every_arm")
    if parts and every:  # the claim about the whole budget (intersection-union test)
        parts.append(
            f"every arm converged (p = {_p(every['p'])})"
            if every["converged"]
            else "every arm converged: not shown"
        )
    if parts and not sign:  # which budget is larger is not on record
        parts.insert(0, "Δ: this study minus the other (which budget is larger is not known)")
    return "; ".join(parts) or "—"


RECIPES_BEGIN, RECIPES_END = "<!-- recipes:begin -->", "<!-- recipes:end -->"


def recipes_block(recipes: dict[str, dict[str, Any]]) -> str:
    """One row per published recipe (a sweep of seeds of one config, its comparison.json):
    budget, each seed's test accuracy by seed id, mean ± std, run time and machine."""
    lines = [
        RECIPES_BEGIN,
        "",
        "| recipe | epochs | test acc by seed | mean ± std | run time per run | machine |",
        "|---|---|---|---|---|---|",
    ]
    for name, data in recipes.items():
        arm = next((a for a in data.get("arms", []) if a["reference"]), None)
        if arm is None:
            continue
        setup = data.get("setup") or {}
        by_seed = " ".join(
            f"{v['seed']}: {v['value']:.4f}" for v in sorted(arm["values"], key=lambda v: v["seed"])
        )
        acc = "—" if arm["mean"] is None else f"{arm['mean']:.4f} ± {arm['std']:.4f}"
        timed = setup.get("runs", 0) - setup.get("run_time_missing", 0)
        per_run = (
            f"{setup['run_time_s'] / timed:.0f} s" if timed and setup.get("run_time_s") else "—"
        )
        machine = ", ".join(
            str(v)
            for v in (
                " / ".join(map(str, setup.get("cpu") or [])) or None,
                " / ".join(map(str, setup.get("gpu") or [])) or None,
                " or ".join(setup.get("launcher") or []) or None,
            )
            if v
        )
        epochs = " / ".join(map(str, setup.get("epochs") or [])) or "—"
        lines.append(
            f"| [{name}](recipes/{name}/) | {epochs} | {by_seed} | {acc} | {per_run} | "
            f"{machine or '—'} |"
        )
    lines += [
        "",
        "Generated from each recipe's comparison.json (`python experiments/publish_study.py "
        "--index`); run time per run is the whole run (start-up, training, test), on a "
        "machine other work may have shared.",
        "",
        RECIPES_END,
    ]
    return "\n".join(lines)


def regenerate_index(
    readme: str,
    studies: dict[str, dict[str, Any]],
    recipes: dict[str, dict[str, Any]] | None = None,
) -> str:
    """experiments/README.md with its index block (and recipes block) re-rendered."""
    readme = _replace_block(readme, lambda: index_block(studies))
    if recipes is not None:
        readme = _replace_block(readme, lambda: recipes_block(recipes), RECIPES_BEGIN, RECIPES_END)
    return readme

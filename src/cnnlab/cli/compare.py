"""cnnlab-compare: a study's verdict, each arm against the reference.

Runs are grouped into arms by the overrides that differ between them (the seed
excepted). Each arm is compared with the reference arm, paired by seed id where every seed
matches: the difference in test accuracy with its raw and multiplicity-adjusted intervals
and p-values, the minimum detectable effect at the seeds it had, and a reading (an effect,
equivalent within a margin, or inconclusive at this power). Runs that kept their per-image
test predictions count the test set's sampling error too; arms with stalled runs are
counts with Fisher's exact test. Every arm is checked for still improving at its last
epoch; a crossed study is also read as main effects and interactions.
Defaults: conf/analysis/compare.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from cnnlab.analysis import render
from cnnlab.analysis.figures import write_plots
from cnnlab.analysis.load import (
    CompareError,
    Run,
    group_arms,
    leave_out_reruns,
    load_runs,
    runs_from_wandb,
    study_setup,
    without_keys,
)
from cnnlab.analysis.verdict import METHODS, Settings, against, attach_budget, factorial, summarize
from cnnlab.cli import flags
from cnnlab.console import error, note
from cnnlab.errors import BadInput
from cnnlab.files import output_dir, write_bytes


def wandb_dirs(paths: list[Path]) -> list[Path]:
    """The W&B folders holding these runs' offline W&B files (one per study since cnnlab
    shares it between a sweep's jobs; one per run before)."""
    found = {
        f.parent.parent
        for root in paths
        if root.is_dir()
        for f in root.rglob("*.wandb")
        if f.parent.name.startswith(("offline-run-", "run-"))
    }
    return sorted(found)


def leet_lines(paths: list[Path]) -> list[str]:
    """How to look at the compared runs in W&B's terminal dashboard, and upload them."""
    dirs = wandb_dirs(paths)
    if not dirs:
        return []
    if len(dirs) == 1:
        return [
            f"W&B, offline: wandb leet {dirs[0]}",
            f"W&B, upload: wandb sync {dirs[0]}/offline-run-*",
        ]
    return (
        [
            f"W&B: these runs keep their W&B files in {len(dirs)} folders (one per run, as "
            "before cnnlab kept one per study); `wandb leet` shows one folder at a time:"
        ]
        + [f"  wandb leet {d}" for d in dirs[:3]]
        + (["  ..."] if len(dirs) > 3 else [])
    )


def runs_of(paths: list[Path]) -> list[Run]:
    """The runs below the paths, less the copies cnnlab-rerun made of runs among them (each
    named on stderr)."""
    runs, reruns = leave_out_reruns(load_runs(paths))
    for rerun, original in reruns:
        note(f"{rerun.path} (cnnlab-rerun's copy of {original})", "left out:", stderr=True)
    return runs


def parser() -> argparse.ArgumentParser:
    p = flags.Parser(
        prog="cnnlab-compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", type=Path, help="multirun dirs or run dirs")
    p.add_argument(
        "--reference",
        help="the reference arm, by its label or as W&B names it, e.g. "
        "'model.net.dropout=0.0' or 'dropout=0.0' (default: the study's, else the first arm)",
    )
    p.add_argument(
        "--metric",
        default="test/acc",
        help="the results.json metric the arms are compared on (default: test/acc)",
    )
    p.add_argument("--out", help="where to write comparison.* (default: the first path)")
    p.add_argument("--title", help="title of the table and report")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from the W&B API")
    p.add_argument("--group", help="with --wandb: the W&B group (the study)")
    p.add_argument(
        "--against",
        nargs="+",
        metavar="DIR",
        help="compare each arm "
        "with the same arm of another run of the study (its sweep or run dirs; e.g. the 1x "
        "budget when PATHS ran with study_budget=2): the budget test, printed and kept in "
        "comparison.json",
    )
    p.add_argument(
        "--ignore",
        nargs="+",
        default=[],
        metavar="KEY",
        help="overrides that are not arms: how some runs executed, not what they are (e.g. "
        "torch_threads=1 given to one sweep that the others ran with by default)",
    )
    p.add_argument(
        "--readme",
        help="a study README whose generated block "
        "(between <!-- generated:begin/end --> markers) to re-render",
    )
    stat = p.add_argument_group("statistics (defaults: conf/analysis/compare.yaml)")
    fraction = flags.number(0, 1, low_open=True, high_open=True)
    stat.add_argument("--adjust", choices=METHODS, help="multiplicity adjustment")
    stat.add_argument("--level", type=fraction, help="confidence level, e.g. 0.95")
    stat.add_argument("--power", type=fraction, help="power of the stated MDE, e.g. 0.8")
    stat.add_argument(
        "--effect-pp",
        type=flags.number(0, low_open=True),
        help="effect (pp) whose seeds-needed is given",
    )
    stat.add_argument(
        "--margin-pp",
        type=flags.number(0, low_open=True),
        help="equivalence margin (pp) of the TOST",
    )
    stat.add_argument(
        "--stalled-below",
        type=flags.number(0, 1),
        help="test accuracy at or below which a run stalled",
    )
    stat.add_argument(
        "--min-gain-pp",
        type=flags.number(0),
        help="last-epoch gain in mean val acc (pp) above which an arm is still improving",
    )
    stat.add_argument(
        "--annealed-below",
        type=flags.number(0, 1),
        help="a final lr under this fraction of its peak: the curve rule does not apply",
    )
    return p


@flags.command("cnnlab-compare")
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.out = flags.out_dir("--out", args.out)
    args.against = [flags.in_dir("--against", d) for d in args.against or []]
    args.readme = flags.in_file("--readme", args.readme)
    try:
        settings = Settings.load(
            adjust=args.adjust,
            level=args.level,
            power=args.power,
            effect_pp=args.effect_pp,
            margin_pp=args.margin_pp,
            stalled_below=args.stalled_below,
            min_gain_pp=args.min_gain_pp,
            annealed_below=args.annealed_below,
        )
        if args.wandb:
            runs = runs_from_wandb(args.wandb, args.group)
        elif args.paths:
            runs = runs_of(args.paths)
        else:
            raise CompareError("give run or multirun dirs, or --wandb ENTITY/PROJECT")
        runs = without_keys(runs, args.ignore)
        recorded = sorted({k for r in runs for k in r.metrics})
        if recorded and args.metric not in recorded:  # none completed: each arm says so
            raise CompareError(
                f"--metric {args.metric}: no run records it (one of {', '.join(recorded)})"
            )
        summaries = summarize(group_arms(runs), args.reference, args.metric, settings)
        # each arm against itself at another budget: read before anything is written
        before = without_keys(runs_of(args.against), args.ignore) if args.against else []
        pairs = (
            against(group_arms(runs), group_arms(before), args.metric, settings)
            if args.against
            else None
        )
    except CompareError as e:
        error(str(e), "cnnlab-compare")
        return 2
    terms = factorial(summaries, args.metric, settings)
    study = args.paths[0] if args.paths and args.paths[0].is_dir() else None
    try:
        out = output_dir(args.out or study or Path("."), "the output folder")
    except BadInput as e:
        error(str(e), "cnnlab-compare")
        return 2
    title = args.title or f"comparison of {len(runs)} runs in {len(summaries)} arms"
    # a terminal's own width (80 columns included); a file or pipe keeps every column
    console = Console(width=None if sys.stdout.isatty() else 240)
    console.print(render.render_table(summaries, title))
    if terms:
        console.print(Text(render.factorial_table(terms)))
    for line in render.method_lines(summaries, settings):
        console.print(Text(line))
    for line in render.problem_lines(summaries):
        note(line, "not completed:", stderr=True)
    if pairs is not None:
        attach_budget(summaries, pairs)
    render.write_markdown(
        summaries, out / "comparison.md", title, args.metric, settings, terms, study
    )
    render.write_csv(summaries, out / "comparison.csv")
    data = render.comparison_data(
        summaries,
        settings,
        args.metric,
        terms,
        study or out,
        pairs,
        args.against,
        study_setup(runs),
        study_setup(before) if args.against else None,
    )
    render.write_json(data, out / "comparison.json")
    written = write_plots(summaries, out, args.metric, pairs)
    plain = Console(soft_wrap=True, highlight=False)
    plain.print(
        Text(
            f"wrote {out}/comparison.md, comparison.csv, comparison.json, "
            + ", ".join(p.name for p in written)
        )
    )
    if args.readme is not None:
        write_bytes(args.readme, render.regenerate(args.readme.read_text(), data))
        plain.print(Text(f"re-rendered the generated block of {args.readme}"))
    if pairs is not None:
        where = " ".join(map(str, args.against))
        console.print(render.against_table(pairs, f"each arm against itself in {where}"))
    for line in leet_lines(args.paths):
        plain.print(Text(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())

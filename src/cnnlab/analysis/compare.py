"""cnnlab-compare: arms of a study side by side, with their spread across seeds.

Runs are grouped into arms by the overrides that differ between them (the seed
excepted); each arm is compared with a reference arm by the mean difference in test
accuracy and its 95% confidence interval, paired by seed where the seeds match.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from cnnlab.analysis import stats
from cnnlab.config.overrides import as_dict
from cnnlab.run.results import read_results

SEED_KEYS = ("seed",)


@dataclass
class Run:
    path: Path
    overrides: dict[str, str]
    status: str  # completed | failed | skipped | running | interrupted | missing
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs: int | None = None
    fit_time_s: float | None = None
    reference: str | None = None

    @property
    def seed(self) -> str | None:
        return self.overrides.get("seed")


@dataclass
class ArmSummary:
    label: str
    runs: list[Run]
    n: int
    values: list[float]
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    test_loss: float | None
    epochs: float | None
    fit_time_s: float | None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    paired: bool | None = None
    is_reference: bool = False

    @property
    def problems(self) -> list[Run]:
        return [r for r in self.runs if r.status != "completed"]


class CompareError(ValueError):
    """Bad input to cnnlab-compare (a path with no runs, an unknown reference arm)."""


def load_run(path: Path) -> Run:
    saved = path / ".hydra" / "overrides.yaml"
    res = read_results(path)
    if saved.exists():
        overrides = [str(o) for o in OmegaConf.load(saved)]
    else:
        overrides = list((res or {}).get("overrides") or [])
    parsed = as_dict(overrides)
    reference = None
    if (path / ".hydra" / "config.yaml").exists():
        reference = OmegaConf.load(path / ".hydra" / "config.yaml").get("study_reference")
    if res is None:
        return Run(path, parsed, "missing", "no results.json (the job died before writing it)",
                   reference=reference)
    return Run(path, parsed, res.get("status", "missing"), res.get("error"),
               metrics={k: v for k, v in (res.get("metrics") or {}).items() if v is not None},
               history=res.get("history") or [], epochs=res.get("epochs"),
               fit_time_s=res.get("fit_time_s"), reference=reference)


def load_runs(paths: list[Path]) -> list[Run]:
    runs = []
    for root in paths:
        if not root.exists():
            raise CompareError(f"{root} does not exist")
        found = sorted({p.parent.parent if p.parent.name == ".hydra" else p.parent
                        for pattern in ("results.json", ".hydra/overrides.yaml")
                        for p in root.rglob(pattern) if "wandb" not in p.parts})
        if not found:
            raise CompareError(f"{root} holds no cnnlab runs (no results.json or "
                               ".hydra/overrides.yaml below it)")
        runs += [load_run(p) for p in found]
    return runs


def arm_keys(runs: list[Run]) -> list[str]:
    """The overrides whose values differ between runs: what the study swept."""
    keys = sorted({k for r in runs for k in r.overrides} - set(SEED_KEYS))
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


def arm_label(run: Run, keys: list[str]) -> str:
    return ", ".join(f"{k}={run.overrides.get(k, '')}" for k in keys) or "all"


def group_arms(runs: list[Run]) -> dict[str, list[Run]]:
    keys = arm_keys(runs)
    arms: dict[str, list[Run]] = {}
    for run in runs:
        arms.setdefault(arm_label(run, keys), []).append(run)
    return dict(sorted(arms.items(), key=lambda kv: _natural(kv[0])))


def _natural(label: str):
    out = []
    for part in label.replace(",", " ").split():
        key, _, value = part.partition("=")
        try:
            out.append((key, 0, float(value), ""))
        except ValueError:
            out.append((key, 1, 0.0, value))
    return out


def _summary(label: str, runs: list[Run], metric: str) -> ArmSummary:
    done = [r for r in runs if r.status == "completed" and metric in r.metrics]
    vals = [r.metrics[metric] for r in done]

    def avg(xs):
        xs = [x for x in xs if x is not None]
        return statistics.fmean(xs) if xs else None

    return ArmSummary(
        label, runs, len(done), vals,
        statistics.fmean(vals) if vals else None, stats.std(vals) if vals else None,
        min(vals) if vals else None, max(vals) if vals else None,
        avg([r.metrics.get("test/loss") for r in done]), avg([r.epochs for r in done]),
        avg([r.fit_time_s for r in done]))


def summarize(arms: dict[str, list[Run]], reference: str | None = None,
              metric: str = "test/acc") -> list[ArmSummary]:
    """Per-arm statistics and the difference to the reference arm (default: the first)."""
    summaries = [_summary(label, runs, metric) for label, runs in arms.items()]
    if not summaries:
        return summaries
    if reference is None:
        declared = {r.reference for runs in arms.values() for r in runs} - {None}
        reference = next(iter(declared)) if len(declared) == 1 else None
    labels = [s.label for s in summaries]
    if reference is not None and reference not in labels:
        raise CompareError(f"reference arm {reference!r} is not one of the arms {labels}")
    ref = next(s for s in summaries if s.label == (reference or labels[0]))
    ref.is_reference = True
    summaries.remove(ref)
    summaries.insert(0, ref)  # the reference row first, the others in sweep order
    ref_by_seed = {r.seed: r.metrics[metric] for r in ref.runs
                   if r.status == "completed" and metric in r.metrics}
    for s in summaries:
        if s is ref or not s.values or not ref.values:
            continue
        mine = {r.seed: r.metrics[metric] for r in s.runs
                if r.status == "completed" and metric in r.metrics}
        common = sorted(set(mine) & set(ref_by_seed))
        if len(common) >= 2 and len(common) == len(mine) == len(ref_by_seed):
            s.diff, s.ci_low, s.ci_high = stats.paired_interval(
                [mine[k] - ref_by_seed[k] for k in common])
            s.paired = True
        else:
            s.diff, s.ci_low, s.ci_high = stats.welch_interval(s.values, ref.values)
            s.paired = False
    return summaries


def mean_curve(runs: list[Run], key: str = "val/acc") -> tuple[list[int], list[float]]:
    """Per-epoch mean over the seeds that reached each epoch."""
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        if r.status != "completed":
            continue
        for row in r.history:
            if row.get(key) is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(row[key])
    epochs = sorted(by_epoch)
    return epochs, [statistics.fmean(by_epoch[e]) for e in epochs]


COLUMNS = ["arm", "n", "test acc mean ± std", "min", "max", "test loss", "epochs",
           "fit time (s)", "Δ vs reference [95% CI]", "not completed"]


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)


def _row(s: ArmSummary) -> list[str]:
    if s.is_reference:
        delta = "reference"
    elif s.diff is None:
        delta = "—"
    else:
        ci = ("n/a" if s.ci_low is None else
              f"[{s.ci_low * 100:+.2f}, {s.ci_high * 100:+.2f}]")
        delta = f"{s.diff * 100:+.2f} pp {ci} {'paired' if s.paired else 'Welch'}"
    acc = "—" if s.mean is None else f"{s.mean:.4f} ± {s.std:.4f}"
    bad = ", ".join(f"{sum(r.status == st for r in s.problems)} {st}"
                    for st in sorted({r.status for r in s.problems})) or "0"
    return [s.label, str(s.n), acc, _fmt(s.min), _fmt(s.max), _fmt(s.test_loss),
            _fmt(s.epochs, ".1f"), _fmt(s.fit_time_s, ".1f"), delta, bad]


def render_table(summaries: list[ArmSummary], title: str) -> Table:
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("arm", "Δ vs reference [95% CI]") else "right")
    for s in summaries:
        table.add_row(*_row(s), style="bold" if s.is_reference else None)
    return table


def problem_lines(summaries: list[ArmSummary]) -> list[str]:
    return [f"{r.status}: {r.path} — {(r.error or '').splitlines()[0] if r.error else ''}"
            for s in summaries for r in s.problems]


def write_markdown(summaries: list[ArmSummary], path: Path, title: str, metric: str) -> None:
    lines = [f"# {title}", "", f"Metric: `{metric}` (mean ± sample std over seeds); Δ in "
             "percentage points with a 95% t-interval, paired by seed where seeds match.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(s)) + " |" for s in summaries]
    problems = problem_lines(summaries)
    if problems:
        lines += ["", "Runs that did not complete:", ""] + [f"- {p}" for p in problems]
    path.write_text("\n".join(lines) + "\n")


def write_csv(summaries: list[ArmSummary], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "n", "mean", "std", "min", "max", "test_loss", "epochs",
                    "fit_time_s", "diff", "ci_low", "ci_high", "paired", "reference",
                    "not_completed"])
        for s in summaries:
            w.writerow([s.label, s.n, s.mean, s.std, s.min, s.max, s.test_loss, s.epochs,
                        s.fit_time_s, s.diff, s.ci_low, s.ci_high, s.paired, s.is_reference,
                        len(s.problems)])


def write_plots(summaries: list[ArmSummary], out: Path, metric: str) -> list[Path]:
    from cnnlab.analysis.plots import plt

    shown = [s for s in summaries if s.mean is not None]
    paths = [out / "comparison_acc.png", out / "comparison_val_curves.png"]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(shown) + 2), 4.2))
    xs = range(len(shown))
    ax.bar(xs, [s.mean for s in shown], yerr=[s.std for s in shown], capsize=5,
           color=["#555" if s.is_reference else "#3a78c2" for s in shown])
    for x, s in zip(xs, shown):
        ax.scatter([x] * len(s.values), s.values, color="black", s=10, zorder=3)
    if shown:
        lo = min(min(s.values) for s in shown)
        hi = max(max(s.values) for s in shown)
        pad = max((hi - lo) * 0.3, 0.002)
        ax.set_ylim(lo - pad, min(1.0, hi + pad) if hi <= 1 else hi + pad)
    ax.set_xticks(list(xs), [s.label.replace(", ", "\n") for s in shown], fontsize=8)
    ax.set_ylabel(f"{metric} (mean ± std over seeds; dots: seeds)")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s in summaries:
        epochs, curve = mean_curve(s.runs)
        if epochs:
            ax.plot([e + 1 for e in epochs], curve, marker="o", label=f"{s.label} (n={s.n})")
    ax.set(xlabel="epoch", ylabel="val/acc (mean over seeds)", title="validation accuracy")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def runs_from_wandb(path: str, group: str | None) -> list[Run]:
    """The same records, read from the W&B API (needs credentials and a network)."""
    from cnnlab.run.loggers import wandb_credentials_present

    if not wandb_credentials_present():
        raise CompareError("--wandb needs W&B credentials (WANDB_API_KEY or `wandb login`) "
                           "and a network; offline runs: compare their run dirs instead")
    import wandb

    try:
        api = wandb.Api(timeout=30)
        found = api.runs(path, filters={"group": group} if group else None)
        runs = []
        for wr in found:
            cfg = dict(wr.config)
            overrides = as_dict(o for o in cfg.get("provenance", {}).get("overrides", [])
                                if "=" in str(o))
            summary = dict(wr.summary)
            status = {"finished": "completed", "crashed": "failed",
                      "failed": "failed"}.get(wr.state, wr.state)
            runs.append(Run(Path(f"wandb:{wr.id}"), overrides, status,
                            metrics={k: summary[k] for k in ("test/acc", "test/loss",
                                                             "val/acc_best") if k in summary},
                            reference=cfg.get("study_reference")))
    except Exception as err:
        raise CompareError(f"could not read {path} from W&B: {err}") from None
    if not runs:
        raise CompareError(f"no W&B runs in {path}" + (f" with group {group!r}" if group else ""))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnlab-compare", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, help="multirun dirs or run dirs")
    parser.add_argument("--reference", help="label of the reference arm, e.g. "
                        "'model.net.dropout=0.0' (default: the study's, else the first arm)")
    parser.add_argument("--metric", default="test/acc")
    parser.add_argument("--out", type=Path, help="where to write comparison.* "
                        "(default: the first path)")
    parser.add_argument("--title", help="title of the table and report")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from the W&B API")
    parser.add_argument("--group", help="with --wandb: the W&B group (the study)")
    args = parser.parse_args(argv)
    err = Console(stderr=True, soft_wrap=True)
    try:
        if args.wandb:
            runs = runs_from_wandb(args.wandb, args.group)
        elif args.paths:
            runs = load_runs(args.paths)
        else:
            raise CompareError("give run or multirun dirs, or --wandb ENTITY/PROJECT")
        summaries = summarize(group_arms(runs), args.reference, args.metric)
    except CompareError as e:
        err.print(f"[bold red]cnnlab-compare:[/] {e}", highlight=False)
        return 2
    out = args.out or (args.paths[0] if args.paths and args.paths[0].is_dir() else Path("."))
    out.mkdir(parents=True, exist_ok=True)
    title = args.title or f"comparison of {len(runs)} runs in {len(summaries)} arms"
    Console(width=200).print(render_table(summaries, title))
    for line in problem_lines(summaries):
        err.print(f"[yellow]{line}[/]", highlight=False)
    write_markdown(summaries, out / "comparison.md", title, args.metric)
    write_csv(summaries, out / "comparison.csv")
    write_plots(summaries, out, args.metric)
    (out / "comparison.json").write_text(json.dumps(
        [{"arm": s.label, "n": s.n, "values": s.values, "mean": s.mean, "std": s.std,
          "diff": s.diff, "ci": [s.ci_low, s.ci_high], "paired": s.paired,
          "reference": s.is_reference, "not_completed": [str(r.path) for r in s.problems]}
         for s in summaries], indent=2) + "\n")
    Console().print(f"wrote {out}/comparison.md, comparison.csv, comparison_acc.png, "
                    "comparison_val_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

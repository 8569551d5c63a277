"""cnnlab-compare: arms of a study side by side, with their spread across seeds.

Runs are grouped into arms by the overrides that differ between them (the seed
excepted); each arm is compared with a reference arm by the mean difference in test
accuracy and its 95% confidence interval, paired by seed where the seeds match. Each arm
also shows its overfitting gap (final train accuracy − test accuracy, seed 004) and, when
the runs logged them, its per-layer gradient norms (seeds 002/003: the first layer's norm
over the last's shows gradients vanishing).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cnnlab.analysis import arms as arm_names
from cnnlab.analysis import stats
from cnnlab.analysis.arms import SEED_KEYS
from cnnlab.config.overrides import as_dict
from cnnlab.console import error, note
from cnnlab.run.results import read_results
from cnnlab.run.rundir import saved_overrides

GRAD_PREFIX = "grad_norm/"


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

    @property
    def gap(self) -> float | None:
        """Final train accuracy − test accuracy: the run's own, or from its history (runs
        recorded before results.json carried it)."""
        if "gap/train_test" in self.metrics:
            return self.metrics["gap/train_test"]
        final = self.history[-1].get("train/acc") if self.history else None
        test = self.metrics.get("test/acc")
        return None if final is None or test is None else final - test

    @property
    def grad_norms(self) -> dict[str, float]:
        """Per-layer gradient norms of the last epoch that sampled them, in network order."""
        for row in reversed(self.history):
            norms = {k[len(GRAD_PREFIX):]: v for k, v in row.items()
                     if k.startswith(GRAD_PREFIX) and v is not None}
            if norms:
                return norms
        return {}


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
    gap: float | None = None
    gap_std: float | None = None
    # per layer: geometric mean over seeds and geometric std (a factor): norms span decades
    grad_norms: dict[str, tuple[float, float]] = field(default_factory=dict)
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    paired: bool | None = None
    is_reference: bool = False
    display: str = ""  # the label with short key names (dropout=0.25), for plots

    @property
    def grad_ratio(self) -> float | None:
        """First / last gradient norm over the layers that train (frozen ones have none);
        of geometric means over seeds, i.e. the geometric mean of the seeds' ratios."""
        live = [mean for mean, _ in self.grad_norms.values() if mean > 0]
        return live[0] / live[-1] if len(live) >= 2 else None

    @property
    def problems(self) -> list[Run]:
        return [r for r in self.runs if r.status != "completed"]


class CompareError(ValueError):
    """Bad input to cnnlab-compare (a path with no runs, an unknown reference arm)."""


def load_run(path: Path) -> Run:
    res = read_results(path)
    res = res if isinstance(res, dict) else None  # a results.json that is no record: missing
    overrides = saved_overrides(path)
    if overrides is None:
        overrides = [str(o) for o in (res or {}).get("overrides") or []]
    parsed = as_dict(overrides)
    try:
        reference = OmegaConf.load(path / ".hydra" / "config.yaml").get("study_reference")
    except Exception:  # noqa: BLE001 - no (readable) config: no declared reference
        reference = None
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


def display_labels(arms: dict[str, list[Run]]) -> dict[str, str]:
    """Each arm's label with short key names (``dropout=0.25``), as W&B names it."""
    keys = arm_keys([r for runs in arms.values() for r in runs])
    return {label: arm_names.label(runs[0].overrides, keys) if keys else label
            for label, runs in arms.items()}


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

    gaps = [g for g in (r.gap for r in done) if g is not None]
    return ArmSummary(
        label, runs, len(done), vals,
        statistics.fmean(vals) if vals else None, stats.std(vals) if vals else None,
        min(vals) if vals else None, max(vals) if vals else None,
        avg([r.metrics.get("test/loss") for r in done]), avg([r.epochs for r in done]),
        avg([r.fit_time_s for r in done]), gap=avg(gaps),
        gap_std=stats.std(gaps) if gaps else None, grad_norms=_layer_stats(done))


def _layer_stats(runs: list[Run]) -> dict[str, tuple[float, float]]:
    """Geometric mean and std over seeds of each layer's last-epoch gradient norm, in
    network order: a seed whose gradient vanished (1e-14) and one that trained (1e-2)
    average to 1e-8, not to half the second."""
    per_layer: dict[str, list[float]] = {}
    for run in runs:
        for layer, value in run.grad_norms.items():
            per_layer.setdefault(layer, []).append(value)
    return {k: stats.geometric(v) for k, v in per_layer.items()}


def summarize(arms: dict[str, list[Run]], reference: str | None = None,
              metric: str = "test/acc") -> list[ArmSummary]:
    """Per-arm statistics and the difference to the reference arm (default: the first)."""
    summaries = [_summary(label, runs, metric) for label, runs in arms.items()]
    if not summaries:
        return summaries
    for s, short in zip(summaries, display_labels(arms).values()):
        s.display = short
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


def mean_curve(runs: list[Run], key: str = "val/acc"
               ) -> tuple[list[int], list[float], list[float]]:
    """Per-epoch mean and sample std over the seeds that reached each epoch."""
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        if r.status != "completed":
            continue
        for row in r.history:
            if row.get(key) is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(row[key])
    epochs = sorted(by_epoch)
    return (epochs, [statistics.fmean(by_epoch[e]) for e in epochs],
            [stats.std(by_epoch[e]) for e in epochs])


COLUMNS = ["arm", "n", "test acc mean ± std", "min", "max", "test loss", "train − test",
           "grad first/last", "epochs", "fit time (s)", "Δ vs reference [95% CI]",
           "not completed"]
GRAD_COLUMN = "grad first/last"


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)


def columns(summaries: list[ArmSummary]) -> list[str]:
    """The table's columns; the gradient-norm ratio only when some run logged the norms."""
    return [c for c in COLUMNS
            if c != GRAD_COLUMN or any(s.grad_ratio is not None for s in summaries)]


def _row(s: ArmSummary, cols: list[str] = COLUMNS) -> list[str]:
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
    cells = dict(zip(COLUMNS, [
        s.label, str(s.n), acc, _fmt(s.min), _fmt(s.max), _fmt(s.test_loss),
        _fmt(s.gap, "+.4f"), _fmt(s.grad_ratio, ".3g"), _fmt(s.epochs, ".1f"),
        _fmt(s.fit_time_s, ".1f"), delta, bad]))
    return [cells[c] for c in cols]


def render_table(summaries: list[ArmSummary], title: str) -> Table:
    """The terminal table; every cell is plain text (labels and paths are never markup)."""
    cols = columns(summaries)
    table = Table(title=Text(title))
    for col in cols:
        table.add_column(col, justify="left" if col in ("arm", "Δ vs reference [95% CI]") else "right")
    for s in summaries:
        table.add_row(*map(Text, _row(s, cols)), style="bold" if s.is_reference else None)
    return table


def problem_lines(summaries: list[ArmSummary], relative_to: Path | None = None) -> list[str]:
    """One line per run that did not complete; paths relative to ``relative_to`` if given."""
    return [f"{r.status}: {_where(r.path, relative_to)} — "
            f"{(r.error or '').splitlines()[0] if r.error else ''}"
            for s in summaries for r in s.problems]


def _where(path: Path, relative_to: Path | None) -> str:
    """A run's path as the report shows it: relative to the study dir, so a report copied
    elsewhere names no directory of the machine it was written on."""
    if relative_to is None or str(path).startswith("wandb:"):
        return str(path)
    return os.path.relpath(Path(path).resolve(), Path(relative_to).resolve())


def write_markdown(summaries: list[ArmSummary], path: Path, title: str, metric: str,
                   study: Path | None = None) -> None:
    """comparison.md; runs named relative to ``study`` (default: where the file goes)."""
    cols = columns(summaries)
    lines = [f"# {title}", "", f"Metric: `{metric}` (mean ± sample std over seeds); Δ in "
             "percentage points with a 95% t-interval, paired by seed where seeds match. "
             "train − test: final training accuracy minus test accuracy (mean over seeds; "
             "large means overfitting).", ""]
    if GRAD_COLUMN in cols:
        lines += ["grad first/last: the first layer's gradient norm over the last's in the "
                  "last epoch that sampled them (layers that train; geometric mean over seeds); well "
                  "below 1, the gradients vanish on their way down.", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_row(s, cols)) + " |" for s in summaries]
    problems = problem_lines(summaries, study or path.parent)
    if problems:
        lines += ["", "Runs that did not complete:", ""] + [f"- {p}" for p in problems]
    path.write_text("\n".join(lines) + "\n")


def write_csv(summaries: list[ArmSummary], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "n", "mean", "std", "min", "max", "test_loss", "epochs",
                    "fit_time_s", "diff", "ci_low", "ci_high", "paired", "reference",
                    "not_completed", "gap_train_test", "gap_std", "grad_ratio_first_last"])
        for s in summaries:
            w.writerow([s.label, s.n, s.mean, s.std, s.min, s.max, s.test_loss, s.epochs,
                        s.fit_time_s, s.diff, s.ci_low, s.ci_high, s.paired, s.is_reference,
                        len(s.problems), s.gap, s.gap_std, s.grad_ratio])


def write_json(summaries: list[ArmSummary], path: Path, study: Path | None = None) -> None:
    path.write_text(json.dumps(
        [{"arm": s.label, "label": s.display, "n": s.n, "values": s.values, "mean": s.mean,
          "std": s.std, "test_loss": s.test_loss, "diff": s.diff, "ci": [s.ci_low, s.ci_high],
          "paired": s.paired, "reference": s.is_reference,
          "gap_train_test": s.gap, "gap_std": s.gap_std,
          "grad_norms": {k: {"geometric_mean": m, "geometric_std": f}
                         for k, (m, f) in s.grad_norms.items()},
          "grad_ratio_first_last": s.grad_ratio,
          "not_completed": [_where(r.path, study or path.parent) for r in s.problems]}
         for s in summaries], indent=2) + "\n")


PLOTS = {"acc": "comparison_acc.png", "curves": "comparison_val_curves.png",
         "grad": "comparison_grad_norms.png"}


def comparison_figures(summaries: list[ArmSummary], metric: str) -> dict[str, Any]:
    """The comparison's figures by name (``PLOTS``): arm bars, validation curves and, when
    the runs logged them, per-layer gradient norms. The caller saves or closes them."""
    from cnnlab.analysis import plots

    shown = [s for s in summaries if s.mean is not None]
    ref = next((i for i, s in enumerate(shown) if s.is_reference), None)
    figs = {"acc": plots.arm_bars(
        [s.display or s.label for s in shown], [s.mean for s in shown],
        [s.std for s in shown], [s.values for s in shown], ref,
        f"{metric} (bar: mean ± std over seeds; dots: seeds)")}
    panels = []
    for key, title in (("val/acc", "validation accuracy"), ("val/loss", "validation loss")):
        bands = []
        for s in summaries:
            epochs, mean, std = mean_curve(s.runs, key)
            if epochs:
                bands.append(plots.Band(f"{s.display or s.label} (n={s.n})",
                                        [e + 1 for e in epochs], mean, std))
        if bands:
            panels.append((f"{title} (mean ± std over seeds)", bands))
    if panels:
        figs["curves"] = plots.arm_curves(panels)
    with_grads = [s for s in summaries if s.grad_norms]
    if with_grads:
        layers = merged_order([list(s.grad_norms) for s in with_grads])
        bands = []
        for s in with_grads:
            g = [s.grad_norms.get(k, (None, None)) for k in layers]
            bands.append(plots.Band(
                f"{s.display or s.label} (first/last {_fmt(s.grad_ratio, '.3g')})",
                list(range(len(layers))), [m for m, _ in g],
                bounds=[(m / f, m * f) if m is not None else None for m, f in g]))
        figs["grad"] = plots.layer_norms(
            layers, bands, "gradient norm per layer, last sampled epoch "
            "(geometric mean ×/÷ geometric std over seeds)")
    return figs


def merged_order(orders: list[list[str]]) -> list[str]:
    """One sequence holding every list's items, each list's order kept (arms whose nets
    differ by a layer, e.g. batchnorm on and off, share one layer axis)."""
    merged: list[str] = []
    for order in sorted(orders, key=len, reverse=True):
        for i, item in enumerate(order):
            if item in merged:
                continue
            before = next((merged.index(p) for p in reversed(order[:i]) if p in merged), -1)
            merged.insert(before + 1, item)
    return merged


def write_plots(summaries: list[ArmSummary], out: Path, metric: str) -> list[Path]:
    from cnnlab.analysis.plots import save

    return [save(fig, out / PLOTS[name])
            for name, fig in comparison_figures(summaries, metric).items()]


def wandb_dirs(paths: list[Path]) -> list[Path]:
    """The W&B folders holding these runs' offline W&B files (one per study since cnnlab
    shares it between a sweep's jobs; one per run before)."""
    found = {f.parent.parent for root in paths if root.is_dir()
             for f in root.rglob("*.wandb") if f.parent.name.startswith(("offline-run-", "run-"))}
    return sorted(found)


def leet_lines(paths: list[Path]) -> list[str]:
    """How to look at the compared runs in W&B's terminal dashboard, and upload them."""
    dirs = wandb_dirs(paths)
    if not dirs:
        return []
    if len(dirs) == 1:
        return [f"W&B, offline: wandb leet {dirs[0]}",
                f"W&B, upload: wandb sync {dirs[0]}/offline-run-*"]
    return [f"W&B: these runs keep their W&B files in {len(dirs)} folders (one per run, as "
            "before cnnlab kept one per study); `wandb leet` shows one folder at a time:"] + \
        [f"  wandb leet {d}" for d in dirs[:3]] + (["  ..."] if len(dirs) > 3 else [])


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
    try:
        if args.wandb:
            runs = runs_from_wandb(args.wandb, args.group)
        elif args.paths:
            runs = load_runs(args.paths)
        else:
            raise CompareError("give run or multirun dirs, or --wandb ENTITY/PROJECT")
        summaries = summarize(group_arms(runs), args.reference, args.metric)
    except CompareError as e:
        error(str(e), "cnnlab-compare")
        return 2
    study = args.paths[0] if args.paths and args.paths[0].is_dir() else None
    out = args.out or study or Path(".")
    out.mkdir(parents=True, exist_ok=True)
    title = args.title or f"comparison of {len(runs)} runs in {len(summaries)} arms"
    # a terminal's own width (80 columns included); a file or pipe gets whole lines
    Console(width=None if sys.stdout.isatty() else 200).print(render_table(summaries, title))
    for line in problem_lines(summaries):
        note(line, "not completed:", stderr=True)
    write_markdown(summaries, out / "comparison.md", title, args.metric, study)
    write_csv(summaries, out / "comparison.csv")
    write_json(summaries, out / "comparison.json", study)
    written = write_plots(summaries, out, args.metric)
    console = Console(soft_wrap=True, highlight=False)
    console.print(Text(f"wrote {out}/comparison.md, comparison.csv, comparison.json, "
                       + ", ".join(p.name for p in written)))
    for line in leet_lines(args.paths):
        console.print(Text(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())

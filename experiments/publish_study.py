"""Publish a study into experiments/<study>/: cnnlab-compare's files and a README.

    python experiments/publish_study.py dropout /work/studies/full/dropout=*,batchnorm=false,augmentation=none,*
        --reference model.net.dropout=0.0 --command "cnnlab-train -m experiment=ablation/dropout"

The README is made of four parts, three of them by code:
- the header: the title and commands as given, then the runs, machine, budget and versions,
  generated from comparison.json's ``setup`` (the runs' own records);
- the hand-written reading, kept as it is between the prose markers of the README already
  there (a new study starts with a placeholder): it interprets and quotes no number;
- the generated block (tables and verdict sentences), from comparison.json alone; this and
  the header's facts are what tests/test_verdict.py re-renders on every published study;
- the plots' links.
`python experiments/publish_study.py --index` re-renders experiments/README.md's table of
every study from their comparison.json files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnlab.analysis import render
from cnnlab.cli.compare import main as compare

HERE = Path(__file__).resolve().parent
PROSE_BEGIN, PROSE_END = "<!-- prose:begin -->", "<!-- prose:end -->"


def header(args: argparse.Namespace, data: dict) -> str:
    """The title and commands (as given), then the runs' facts from comparison.json."""
    commands = "\n".join(args.command)
    notes = f"\n\n{args.notes}" if args.notes else ""
    return f"""# {args.title}

```bash
{commands}
```

{render.setup_block(data["setup"])}{notes}
"""


def prose(readme: Path) -> str:
    """The hand-written reading of the README already there (placeholder if none)."""
    text = readme.read_text() if readme.is_file() else ""
    if PROSE_BEGIN in text and PROSE_END in text:
        return text[text.index(PROSE_BEGIN) : text.index(PROSE_END) + len(PROSE_END)]
    return f"{PROSE_BEGIN}\n**Reading it.** (to write: what the verdict means; no numbers)\n{PROSE_END}"


def images(out: Path, budget: bool) -> str:
    """The study's plots that compare wrote (one arm has no forest plot, a run with no
    validation split no curves; the budget test's only with --against)."""
    shown = [
        ("each arm against the reference", "comparison_acc.png"),
        *([("each arm against itself at the other budget", "comparison_budget.png")] * budget),
        ("validation error per epoch, log scale", "comparison_val_curves.png"),
        ("per-layer gradient norms", "comparison_grad_norms.png"),
    ]
    return "\n\n".join(f"![{alt}]({name})" for alt, name in shown if (out / name).exists())


def recipes() -> dict[str, dict]:
    """Every published recipe's comparison.json (experiments/recipes/NAME/), by name."""
    return {
        p.parent.name: json.loads(p.read_text())
        for p in sorted((HERE / "recipes").glob("*/comparison.json"))
    }


def published() -> dict[str, dict]:
    """Every published study's comparison.json, by folder name (alphabetical)."""
    return {
        p.parent.name: json.loads(p.read_text()) for p in sorted(HERE.glob("*/comparison.json"))
    }


def main() -> int:
    if sys.argv[1:] == ["--index"]:  # experiments/README.md's table of every study
        index = HERE / "README.md"
        index.write_text(render.regenerate_index(index.read_text(), published(), recipes()))
        print(f"wrote {index}")
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study")
    p.add_argument("paths", nargs="+", type=Path, help="sweep dirs or run dirs")
    p.add_argument("--command", action="append", required=True, help="as the README shows it")
    p.add_argument("--title", required=True)
    p.add_argument("--reference")
    p.add_argument("--against", type=Path, nargs="+")
    p.add_argument("--ignore", nargs="+", help="cnnlab-compare --ignore: overrides not arms")
    p.add_argument("--notes", default="", help="prose after the header's facts (no numbers)")
    args = p.parse_args()
    out = HERE / args.study
    out.mkdir(parents=True, exist_ok=True)
    flags = [*map(str, args.paths), "--out", str(out), "--title", args.title]
    flags += ["--reference", args.reference] if args.reference else []
    flags += ["--against", *map(str, args.against)] if args.against else []
    flags += ["--ignore", *args.ignore] if args.ignore else []
    if compare(flags) != 0:
        return 1
    data = json.loads((out / "comparison.json").read_text())
    readme = out / "README.md"
    budget = bool(args.against)
    text = f"""{header(args, data)}
{prose(readme)}

## The verdict

{render.readme_block(data)}

{images(out, budget)}

Every number above is generated from [comparison.json](comparison.json) (per seed, with
seed ids; also [comparison.csv](comparison.csv) and [comparison.md](comparison.md)), by
`experiments/publish_study.py`; `tests/test_verdict.py` fails if they differ.
"""
    readme.write_text(text)
    print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Publish a study into experiments/<study>/: cnnlab-compare's files and a README.

    python experiments/publish_study.py dropout /work/studies/full/dropout=*,batchnorm=false,augmentation=none,*
        --reference model.net.dropout=0.0 --command "cnnlab-train -m experiment=ablation/dropout"

The README is made of four parts, three of them by code:
- the header (title, commands, machine, versions, budget), from the runs' own records;
- the hand-written reading, kept as it is between the prose markers of the README already
  there (a new study starts with a placeholder): it interprets and quotes no number;
- the generated block (tables and verdict sentences), from comparison.json alone, which
  tests/test_verdict.py re-renders and compares on every published study;
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
STUDY_BUDGET = (
    "the study default (`conf/experiment/ablation/_study.yaml`): 3 epochs over the 48,000-image\n"
    "  training split, batch 256, Adam lr 1e-2 with betas (0.7, 0.9), OneCycleLR stepped every\n"
    "  batch; the final weights are tested on the 10,000 MNIST test images."
)


def records(paths: list[Path]) -> list[dict]:
    """Every run's results.json below the given sweep or run dirs."""
    found = sorted(
        {p for path in paths for p in path.rglob("results.json") if "wandb" not in p.parts}
    )
    return [json.loads(p.read_text()) for p in found]


def header(args: argparse.Namespace, runs: list[dict]) -> str:
    statuses = [r.get("status") for r in runs]
    provs = [r["provenance"] for r in runs if r.get("provenance")]

    def distinct(values) -> str:  # runs of one study may come from several sweeps
        return ", ".join(dict.fromkeys(v for v in values if v))

    def version(package: str) -> str:
        return distinct((p.get("versions") or {}).get(package) for p in provs) or "None"

    cpu = distinct(
        " ".join(str(x) for x in (d.get("cpu_model"), d.get("cpu_capability")) if x)
        for d in (p.get("device") or {} for p in provs)
    )
    commits = distinct(str((p.get("git") or {}).get("commit"))[:10] for p in provs)
    commands = "\n".join(args.command)
    wall = (
        f"{args.wall_s / 60:.1f} min of wall time for the study's own runs; " if args.wall_s else ""
    )
    return f"""# {args.title}

```bash
{commands}
```

- **Runs:** {len(runs)} ({", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))}); {wall}{cpu or "CPU"}, 2 cores,
  no GPU; 2 jobs in parallel, 1 torch thread each.{(" " + args.notes) if args.notes else ""}
- **Budget per run:** {args.budget or STUDY_BUDGET}
- **Versions:** torch {version("torch")}, lightning {version("lightning")},
  cnnlab {version("cnnlab")} (git {commits}).
"""


def prose(readme: Path) -> str:
    """The hand-written reading of the README already there (placeholder if none)."""
    text = readme.read_text() if readme.is_file() else ""
    if PROSE_BEGIN in text and PROSE_END in text:
        return text[text.index(PROSE_BEGIN) : text.index(PROSE_END) + len(PROSE_END)]
    return f"{PROSE_BEGIN}\n**Reading it.** (to write: what the verdict means; no numbers)\n{PROSE_END}"


def published() -> dict[str, dict]:
    """Every published study's comparison.json, by folder name (alphabetical)."""
    return {
        p.parent.name: json.loads(p.read_text()) for p in sorted(HERE.glob("*/comparison.json"))
    }


def main() -> int:
    if sys.argv[1:] == ["--index"]:  # experiments/README.md's table of every study
        index = HERE / "README.md"
        index.write_text(render.regenerate_index(index.read_text(), published()))
        print(f"wrote {index}")
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study")
    p.add_argument("paths", nargs="+", type=Path, help="sweep dirs or run dirs")
    p.add_argument("--command", action="append", required=True, help="as the README shows it")
    p.add_argument("--title", required=True)
    p.add_argument("--reference")
    p.add_argument("--against", type=Path, nargs="+")
    p.add_argument("--wall-s", type=float)
    p.add_argument("--budget", help="the per-run budget, when not the study default")
    p.add_argument("--notes", default="")
    args = p.parse_args()
    out = HERE / args.study
    out.mkdir(exist_ok=True)
    flags = [*map(str, args.paths), "--out", str(out), "--title", args.title]
    flags += ["--reference", args.reference] if args.reference else []
    flags += ["--against", *map(str, args.against)] if args.against else []
    if compare(flags) != 0:
        return 1
    data = json.loads((out / "comparison.json").read_text())
    readme = out / "README.md"
    text = f"""{header(args, records(args.paths))}
{prose(readme)}

## The verdict

{render.readme_block(data)}

![each arm against the reference](comparison_acc.png)

![validation accuracy per epoch](comparison_val_curves.png)

![per-layer gradient norms](comparison_grad_norms.png)

Every number above is generated from [comparison.json](comparison.json) (per seed, with
seed ids; also [comparison.csv](comparison.csv) and [comparison.md](comparison.md)), by
`experiments/publish_study.py`; `tests/test_verdict.py` fails if they differ.
"""
    readme.write_text(text)
    print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Copy a study's cnnlab-compare output into experiments/<study>/ with a README.

    cnnlab-compare logs/multiruns/<sweep> --out experiments/dropout --title "..."
    python experiments/publish_study.py dropout logs/multiruns/<sweep> --wall-s 315 \
        --command "cnnlab-train -m experiment=ablation/dropout"
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("study")
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--command", required=True)
    p.add_argument("--wall-s", type=float, required=True)
    p.add_argument("--notes", default="")
    p.add_argument("--title", help="default: Ablation study: STUDY")
    p.add_argument("--budget", help="the per-run budget, when not the study default")
    args = p.parse_args()
    out = HERE / args.study
    table = (out / "comparison.md").read_text().split("\n", 2)[2]
    runs = sorted(args.sweep_dir.glob("*/results.json"))
    statuses = [json.loads(r.read_text())["status"] for r in runs]
    prov = (
        next(
            (
                json.loads(r.read_text()).get("provenance")
                for r in runs
                if json.loads(r.read_text()).get("provenance")
            ),
            {},
        )
        or {}
    )
    versions = prov.get("versions", {})
    device = prov.get("device") or {}
    cpu = (
        " ".join(str(x) for x in (device.get("cpu_model"), device.get("cpu_capability")) if x)
        or platform.processor()
        or platform.machine()
    )
    budget = args.budget or (
        "the study default (`conf/experiment/ablation/_study.yaml`): 3 epochs over\n"
        "  the 48,000-image training split, batch 256, Adam lr 1e-2 with betas (0.7, 0.9),\n"
        "  OneCycleLR stepped every batch; the final weights are tested on the 10,000 MNIST\n"
        "  test images."
    )
    text = f"""# {args.title or f"Ablation study: {args.study}"}

```bash
{args.command}
```

- **Wall time:** {args.wall_s / 60:.1f} min for {len(runs)} runs on this machine
  ({cpu}, 2 CPU cores, no GPU; 2 jobs in parallel,
  1 torch thread each). Runs: {", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))}.
- **Budget per run:** {budget}
- **Versions:** torch {versions.get("torch")}, lightning {versions.get("lightning")},
  cnnlab {versions.get("cnnlab")} (git {str((prov.get("git") or {}).get("commit"))[:10]}).
{args.notes}
{table}
![test accuracy per arm](comparison_acc.png)

![validation accuracy and loss per epoch](comparison_val_curves.png)

![per-layer gradient norms](comparison_grad_norms.png)

Raw numbers: [comparison.csv](comparison.csv), [comparison.json](comparison.json).
"""
    (out / "README.md").write_text(text)
    print(f"wrote {out / 'README.md'}")


if __name__ == "__main__":
    main()

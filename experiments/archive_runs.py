"""Keep a study's run records in the repository: copy from sweep dirs what cnnlab-compare
reads of each run into experiments/runs/, in the same layout, so that
`bash experiments/publish_studies.sh experiments/runs` re-publishes those studies from the
repository alone, on any machine, and a study can be assembled over several sessions.

    python experiments/archive_runs.py /work/studies activation6 activation12

Each NAME is a sweep dir below the studies folder (as experiments/run_studies.sh names
them: activation6, conv12/il5, ...); it replaces the archive's copy of that sweep. Of each
run: results.json, provenance.json, config.yaml, .hydra/{overrides,config,hydra}.yaml and
the test predictions (~30 kB a run); of each sweep its sweep.json and multirun.yaml.
Checkpoints, logs and W&B files stay behind (~2 MB a run): `cnnlab-rerun` remakes a run
from its record.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from cnnlab.analysis.load import PREDICTIONS, run_dirs
from cnnlab.results import RESULTS

HERE = Path(__file__).resolve().parent
RUN_FILES = (
    RESULTS,
    "provenance.json",
    "config.yaml",  # as the run resolved it: what cnnlab-rerun pins
    ".hydra/overrides.yaml",
    ".hydra/config.yaml",
    ".hydra/hydra.yaml",
    PREDICTIONS,
)
SWEEP_FILES = ("sweep.json", "multirun.yaml")


def archive(src: Path, name: str, into: Path) -> int:
    """Replace ``into/name`` with the records of the sweep ``src/name``; the files copied."""
    sweep, dest = src / name, into / name
    if dest.exists():
        shutil.rmtree(dest)
    copied = 0
    for rel in [Path(f) for f in SWEEP_FILES] + [
        run.relative_to(sweep) / f for run in run_dirs(sweep) for f in RUN_FILES
    ]:
        if (sweep / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(sweep / rel, dest / rel)
            copied += 1
    return copied


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", type=Path, help="the folder run_studies.sh ran into")
    p.add_argument("names", nargs="+", help="sweep dirs below it, e.g. activation6 conv12/il5")
    p.add_argument("--into", type=Path, default=HERE / "runs")
    args = p.parse_args()
    for name in args.names:  # each checked before anything is replaced
        if not (args.studies / name / "sweep.json").is_file():
            print(
                f"archive_runs: NAME={name}: {args.studies / name} has no sweep.json (no finished sweep)",
                file=sys.stderr,
            )
            return 2
    for name in args.names:
        n = archive(args.studies, name, args.into)
        print(f"{args.into / name}: {n} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import tempfile
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


def destination(src: Path, name: str, into: Path) -> tuple[Path, Path] | str:
    """The sweep and where its records go, or why not: NAME is a relative path below both
    folders (never the archive itself), and the sweep and its copy do not overlap."""
    dest = (into / name).resolve()
    sweep = (src / name).resolve()
    if Path(name).is_absolute() or ".." in Path(name).parts or dest == into.resolve():
        return "a sweep's path below STUDIES_DIR, not absolute, '.' or '..'"
    if not dest.is_relative_to(into.resolve()):
        return f"its copy {dest} would be outside {into}"
    if dest.is_relative_to(sweep) or sweep.is_relative_to(dest):
        return f"its copy {dest} and the sweep {sweep} overlap"
    if not (sweep / "sweep.json").is_file():
        return f"{sweep} has no sweep.json (no finished sweep)"
    return sweep, dest


def archive(sweep: Path, dest: Path) -> int:
    """Replace ``dest`` with the records of ``sweep``, written beside it first and then
    renamed into place (an interrupted copy leaves the old one); the files copied."""
    files = [Path(f) for f in SWEEP_FILES] + [
        run.relative_to(sweep) / f for run in run_dirs(sweep) for f in RUN_FILES
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        new = Path(tmp) / dest.name
        copied = 0
        for rel in files:
            if (sweep / rel).is_file():
                (new / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(sweep / rel, new / rel)
                copied += 1
        old = Path(tmp) / "old"
        if dest.exists():
            dest.rename(old)
        new.rename(dest)
    return copied


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", type=Path, help="the folder run_studies.sh ran into")
    p.add_argument("names", nargs="+", help="sweep dirs below it, e.g. activation6 conv12/il5")
    p.add_argument("--into", type=Path, default=HERE / "runs")
    args = p.parse_args()
    targets = []
    for name in args.names:  # each checked before anything is replaced
        target = destination(args.studies, name, args.into)
        if isinstance(target, str):
            print(f"archive_runs: NAME={name}: {target}", file=sys.stderr)
            return 2
        targets.append(target)
    for sweep, dest in targets:
        print(f"{dest}: {archive(sweep, dest)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

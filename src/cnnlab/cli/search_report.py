"""The results of a search, as files: the best trial, every trial, Optuna's plots.

``cnnlab-search-report`` rewrites them (cnnlab/search/report.py) from the search's storage::

    cnnlab-search-report logs/multiruns/<sweep dir>          # the study that dir ran
    cnnlab-search-report --storage sqlite:///optuna.db --study-name cnnlab --out report/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cnnlab.cli import flags
from cnnlab.console import error
from cnnlab.errors import EXIT_BAD_INPUT, ConfigError
from cnnlab.search import report
from cnnlab.search.storage import load_study, parse_storage


@flags.command("cnnlab-search-report")
def main(argv: list[str] | None = None) -> int:
    """cnnlab-search-report: rewrite a search's report from its storage. Exit 2 on bad input."""
    p = flags.Parser(prog="cnnlab-search-report", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir", nargs="?", type=Path, help="a search's sweep dir")
    p.add_argument("--storage", help="journal file or SQLAlchemy URL (instead of a sweep dir)")
    p.add_argument("--study-name", help="the study's name (with --storage)")
    p.add_argument("--out", type=Path, help="where to write (default: <sweep dir>/search)")
    args = p.parse_args(argv)
    flags.out_dir("--out", args.out)
    flags.in_dir("sweep_dir", args.sweep_dir)

    def fail(message: str) -> int:
        error(message, "cnnlab-search-report")
        return EXIT_BAD_INPUT

    if args.sweep_dir is not None:
        pointer = args.sweep_dir / "search" / "study.json"
        try:
            saved = json.loads(pointer.read_text())
        except (OSError, ValueError):
            return fail(f"{args.sweep_dir} holds no search/study.json: not a search's sweep dir")
        setting = args.storage or saved.get("storage")
        name = args.study_name or saved.get("study_name")
        out = args.out or args.sweep_dir / "search"
    else:
        if not (args.storage and args.study_name):
            return fail("give a sweep dir, or --storage and --study-name")
        setting, name = args.storage, args.study_name
        out = args.out or Path(f"{args.study_name}_report")
    if not setting:
        return fail("that search kept its study in memory; its report was written when it ended")
    try:
        storage = parse_storage(setting)
        study = load_study(setting, name)
    except ConfigError as err:
        return fail(str(err))
    except KeyError:
        return fail(f"no study {name!r} in {parse_storage(setting).shown()}")
    info = report.write(study, out, storage.shown())
    print(report.describe(info, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

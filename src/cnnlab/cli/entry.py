"""cnnlab-train's console script: a bare ``--help`` answered before Hydra is imported.

Hydra's own help composes the config and, per config group, deep-copies its config
repository (~137 copies here: 3.5 s on a quiet 2-core CPU, most of it not imports); the
group listing it prints is the conf/ tree, read here in milliseconds. ``--help`` with
overrides, ``--hydra-help`` and ``--cfg job`` still go to Hydra.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cnnlab.config import conf_dir

# cli.train (Hydra, then torch) is imported after a bare --help is answered (docstring)

CONF = Path(conf_dir())


def quick_help(conf: Path = CONF) -> str:
    groups: dict[str, list[str]] = {}
    for yaml in sorted(conf.rglob("*.yaml")):
        group = yaml.parent.relative_to(conf).as_posix()
        if group != "." and group.split("/")[0] != "hydra" and not yaml.stem.startswith("_"):
            # as Hydra's help, without hydra/* and cnnlab's internal _-prefixed options
            groups.setdefault(group, []).append(yaml.stem)
    lines = [
        "cnnlab-train: compose a run from conf/, train, test, and record it in its run dir.",
        "",
        "== Configuration groups ==",
        "Compose your configuration from those groups (group=option)",
        "",
    ]
    lines += [f"{g}: {', '.join(sorted(opts))}" for g, opts in sorted(groups.items())]
    lines += [
        "",
        "== Config ==",
        "Override anything in the config (foo.bar=value). The composed config:",
        "  cnnlab-train [overrides] --cfg job     (or: cnnlab-train [overrides] --help)",
        "Hydra's own flags: cnnlab-train --hydra-help",
    ]
    return "\n".join(lines)


def train() -> None:
    if sys.argv[1:] in (["--help"], ["-h"]):
        print(quick_help())
        return
    from cnnlab.cli.train import main

    main()

"""Every ``cnnlab-*`` command in README.md's fenced blocks runs, on tiny data with a tiny
budget (one epoch of two batches), so the README cannot drift from the code. Each section's
commands run in the order written, in folders of their own (one test per section).

A command shown as ``$ cnnlab-train …`` is an example of a refusal: it must exit 2. The few
that need what a test machine does not have (a W&B account, a SLURM partition, the
network for ImageNet weights) are named in SKIP and NEEDS.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import REPO, cnnlab
from test_own_repo import EXAMPLE, declare

# ~45 tiny runs in all: 14.4 min in one process on a busy 2-core machine
pytestmark = pytest.mark.slow

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.accelerator=cpu",
    "data.batch_size=32",
    "data.eval_batch_size=64",
    "logger=none",
]
# what a command needs that the test does not have: not run (W&B's servers, a SLURM
# partition: tests/test_slurm.py), or refused in one line, exit 2 (ImageNet weights offline)
SKIP = ("WANDB_MODE=online", "hydra/launcher=slurm")
NEEDS = ("IMAGENET1K_V1",)
COMMAND = r"(\$ )?([A-Z_]+=\S+ )*cnnlab-"  # a line of a bash block that is one of ours


def skipped(command: str) -> bool:
    return any(key in command for key in SKIP)


def readme_sections() -> dict[str, list[str]]:
    """The ``cnnlab-*`` commands of README.md's fenced blocks, by the heading they are under
    (a section's commands run in order: a ``<that run>`` refers to one its section made)."""
    text = (REPO / "README.md").read_text()
    sections: dict[str, list[str]] = {}
    heading = "top"
    for match in re.finditer(r"^#+ ([^\n]*)$|^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if match.group(1) is not None:
            heading = match.group(1).strip()
        elif match.group(2) == "bash":
            lines = [line.strip() for line in match.group(3).splitlines()]
            commands = [c for c in lines if re.match(COMMAND, c)]
            sections.setdefault(heading, []).extend(commands)
    return {h: commands for h, commands in sections.items() if commands}


def readme_commands() -> list[str]:
    """Every command of every ``bash`` block, wherever it is (the sections must hold them all)."""
    text = (REPO / "README.md").read_text()
    lines = [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S)
        for line in block.splitlines()
    ]
    return [line for line in lines if re.match(COMMAND, line)]


def test_the_readme_names_its_commands():
    commands = readme_commands()
    assert len(commands) > 20 and commands[0].startswith("cnnlab-train")
    # none lost to the split into sections (a fence the section scan does not see)
    assert [c for section in readme_sections().values() for c in section] == commands


# the sections with a command to run (the rest hold only what SKIP names)
SECTIONS = {
    heading: commands
    for heading, commands in readme_sections().items()
    if not all(map(skipped, commands))
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """The README's /path/to/resnet18.pth: written once for every section."""
    import torch
    import torchvision

    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


# one test per section: a failure names its section, and a section starts from clean dirs
@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_readme_command_runs(section, cli_env, tiny_data, weights, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(tiny_data)  # the README's data.root=data
    logs = tmp_path / "logs"
    env = {**cli_env, "CNNLAB_LOG_DIR": str(logs)}
    # "Your own networks and studies": its commands run in a copy of the example repo, its
    # package importable and declared (as `pip install -e .` would; tests/test_own_repo.py
    # does the real install)
    project = Path(shutil.copytree(EXAMPLE, tmp_path / "myproject"))
    site = declare(tmp_path, "cnnlab.targets", "mynets", "mynets")
    own = {**env, "PYTHONPATH": f"{project}:{site}"}
    failures = []
    for line in SECTIONS[section]:
        refusal = line.startswith("$ ")
        words = shlex.split(_placeholders(line.removeprefix("$ "), logs, weights), comments=True)
        if skipped(line):
            continue
        needs = any(key in line for key in NEEDS)
        while "=" in words[0]:  # VAR=value before the command
            key, value = words.pop(0).split("=", 1)
            env = {**env, key: value}
        tool, args = words[0], words[1:]
        if tool == "cnnlab-train" and not refusal:
            args += TINY + (
                [] if any(a.startswith("seed=") for a in args) or "-m" not in args else ["seed=1"]
            )
            args += ["hydra.sweeper.n_trials=2"] if "hparams_search=optuna" in args else []
        mine = "--config-dir" in args
        proc = cnnlab(
            args, own if mine else env, cwd=project if mine else work, tool=tool, timeout=900
        )
        expected = {2} if refusal else {0, 2} if needs else {0}
        if proc.returncode not in expected:
            failures.append(f"{line}\n  exit {proc.returncode}: {proc.stderr[-1500:]}")
        elif proc.returncode == 2:
            errors = [e for e in proc.stderr.splitlines() if e.startswith("cnnlab")]
            assert errors and "Traceback" not in proc.stderr, (line, proc.stderr[-2000:])
    assert not failures, "\n".join(failures)


def _placeholders(arg: str, logs: Path, weights: Path) -> str:
    """The README's <…> and /path/to/… stand for what earlier commands made."""
    if "<that run>" in arg:  # the run the command before made
        newest = max((logs / "runs").iterdir(), key=lambda d: d.stat().st_mtime)
        arg = arg.replace("logs/runs/<that run>", str(newest))
    if "<the study's sweep dir>" in arg:
        newest = max((logs / "multiruns").iterdir(), key=lambda d: d.stat().st_mtime)
        arg = arg.replace("logs/multiruns/<the study's sweep dir>", str(newest))
    return arg.replace("/path/to/resnet18.pth", str(weights)).replace("<yours>", "debug")

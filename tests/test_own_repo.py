"""A user's own repo (experiments/own_repo): their net, its config and a study, run with
cnnlab's commands from outside cnnlab, and admitted by cnnlab-rerun through their package's
declared entry point, not --trust."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST, REPO, cnnlab, results, run_dirs

EXAMPLE = REPO / "experiments" / "own_repo"


def declare(tmp_path: Path, group: str, name: str, value: str) -> Path:
    """A directory holding an installed distribution's metadata with one entry point."""
    site = tmp_path / "site"
    info = site / "declared-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: declared\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {value}\n")
    return site


def test_an_installed_package_admits_its_own_module_and_only_that(tmp_path, monkeypatch):
    from cnnlab.config import targets

    monkeypatch.syspath_prepend(str(EXAMPLE))  # mynets importable, not yet declared
    assert not targets.allowed("mynets.TinyNet")
    monkeypatch.syspath_prepend(str(declare(tmp_path, targets.ENTRY_POINTS, "mynets", "mynets")))
    assert targets.allowed("mynets.TinyNet")
    assert not targets.allowed("mynetsother.TinyNet")  # a prefix is a module, not a string
    assert not targets.allowed("builtins.open")  # others' targets stay refused


@pytest.mark.slow  # five cnnlab commands, each starting Python, torch and Hydra
def test_own_repo_trains_sweeps_compares_and_reruns(tmp_path, cli_env):
    project = tmp_path / "myproject"
    shutil.copytree(EXAMPLE, project)
    site = tmp_path / "site"  # `pip install .` of the user's repo, into a folder of its own
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    shutil.rmtree(project / "mynets")  # the installed copy is what runs
    env = {**cli_env, "PYTHONPATH": str(site)}
    logs = tmp_path / "logs"
    study = ["--config-dir", "conf", "experiment=tiny_study", *FAST, "logger=none"]

    one = cnnlab([*study, f"hydra.run.dir={logs / 'one'}"], env, cwd=project)
    assert one.returncode == 0, one.stderr[-2000:]
    assert results(logs / "one")["status"] == "completed"

    sweep = cnnlab(
        ["-m", *study, "seed=1,2", f"hydra.sweep.dir={logs / 'sweep'}"], env, cwd=project
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert len(run_dirs(logs / "sweep")) == 2

    compared = cnnlab(
        [str(logs / "sweep"), "--out", str(tmp_path / "cmp")],
        env,
        cwd=project,
        tool="cnnlab-compare",
    )
    assert compared.returncode == 0, compared.stderr[-2000:]

    no_decl = {**env, "PYTHONPATH": str(EXAMPLE)}  # the same net, its package not installed
    refused = cnnlab(
        [str(logs / "one"), "--config-dir", "conf", "--out", str(tmp_path / "r0")],
        no_decl,
        cwd=project,
        tool="cnnlab-rerun",
    )
    assert refused.returncode == 2 and "cnnlab.targets" in refused.stderr
    rerun = cnnlab(
        [str(logs / "one"), "--config-dir", "conf", "--out", str(tmp_path / "r1")],
        env,
        cwd=project,
        tool="cnnlab-rerun",
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert results(tmp_path / "r1")["metrics"] == results(logs / "one")["metrics"]

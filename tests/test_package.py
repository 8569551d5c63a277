"""cnnlab installed as a library: a built wheel (not the editable checkout) runs from any dir."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_dirs

# builds a wheel and a venv: about a minute on 2 busy cores. One worker runs this file
# (pyproject: --dist loadfile): its tests share the wheel, and `pip wheel` builds in the
# checkout (build/, *.egg-info), where two builds at once fail ("File exists")
pytestmark = pytest.mark.slow


def sh(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, **kw
    )


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv holding only cnnlab's wheel; its dependencies come from this venv's
    site-packages through a .pth (appended after the venv's own, so the wheel's cnnlab wins;
    the editable install's own .pth is not processed there, so the checkout is not on the path)."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = sh(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(REPO),
        ]
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("cnnlab-*.whl")
    venv = tmp / "venv"
    made = sh([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    own = sh([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    parent = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(own.stdout.strip()) / "parent_venv.pth").write_text("\n".join(parent) + "\n")
    installed = sh([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_wheel_carries_the_configs_and_imports_from_the_venv(wheel_venv):
    py = wheel_venv / "bin" / "python"
    found = sh(
        [
            str(py),
            "-c",
            "import cnnlab, cnnlab.config as c; print(cnnlab.__file__); print(c.conf_dir())",
        ],
        cwd=wheel_venv,
    )
    assert found.returncode == 0, found.stderr
    module, conf = found.stdout.split()
    assert Path(module).is_relative_to(wheel_venv) and Path(conf).is_relative_to(wheel_venv)
    assert (Path(conf) / "train.yaml").is_file()
    assert (Path(conf) / "model" / "net" / "mycnn.yaml").is_file()


def test_cnnlab_train_from_the_wheel_in_an_empty_dir(wheel_venv, cli_env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**cli_env, "PATH": f"{wheel_venv / 'bin'}{os.pathsep}{cli_env.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    done = sh([str(wheel_venv / "bin" / "cnnlab-train"), "debug=fdr"], cwd=empty, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(run_dirs(tmp_path / "logs")) == 1

"""Shared fixtures: tiny generated IDX data, an isolated environment for CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from idx_data import make_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def real_mnist_root() -> Path | None:
    """CNNLAB_DATA_DIR, else ../shared/data beside the repo, if it holds MNIST/raw."""
    for root in (os.environ.get("CNNLAB_DATA_DIR"), REPO.parent / "shared" / "data"):
        if root and (Path(root) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
            return Path(root)
    return None


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_dataset(root, "MNIST", n_train=320, n_test=100)
    make_dataset(root, "FashionMNIST", n_train=320, n_test=100, seed=1)
    return root


@pytest.fixture
def cli_env(tiny_data, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        CNNLAB_DATA_DIR=str(tiny_data),
        CNNLAB_LOG_DIR=str(tmp_path / "logs"),
        WANDB_MODE="offline",
        WANDB_DIR=str(tmp_path),
        WANDB_CACHE_DIR=str(tmp_path / "wc"),
        WANDB_CONFIG_DIR=str(tmp_path / "wcfg"),
        PYTHONUNBUFFERED="1",
        HYDRA_FULL_ERROR="0",
    )
    return env


@pytest.hookimpl(optionalhook=True)  # xdist's hook: pytest runs without xdist too (-p no:xdist)
def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per core this process may use (cnnlab's
    own count: SLURM's allocation, the affinity mask, a cgroup quota), at most 4: each
    worker's tests start training processes of their own, each with threads of its own."""
    from cnnlab.run.resources import cores

    return min(4, cores()[0])


def pytest_configure(config) -> None:
    """Under xdist, each worker keeps to its own share of the cores, and the training
    processes its tests start inherit it (cnnlab sizes torch's threads by the affinity
    mask): two workers each running 2-thread torch on 2 cores took twice as long per fit
    as each on its own core (38.6 s vs 19.0 s a fit on the Intel CI machine)."""
    worker, count = (
        os.environ.get("PYTEST_XDIST_WORKER"),
        os.environ.get("PYTEST_XDIST_WORKER_COUNT"),
    )
    if not (worker and count and hasattr(os, "sched_setaffinity")):
        return
    cpus, n = sorted(os.sched_getaffinity(0)), int(count)
    if 1 < n <= len(cpus):
        os.sched_setaffinity(0, cpus[int(worker.removeprefix("gw")) :: n])


def pytest_collection_modifyitems(config, items) -> None:
    """The files with the most slow (or SLURM) tests first, each file's tests in their own
    order: xdist hands out files in this order (--dist loadfile), and a long file handed out
    last left one worker (one core) running alone for minutes while the other idled. In
    one process (``-n 0``) the order stays as written."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from collections import Counter

    def file_of(item) -> str:
        return item.nodeid.split("::")[0]

    heavy = Counter(
        file_of(i) for i in items if i.get_closest_marker("slow") or i.get_closest_marker("slurm")
    )
    items.sort(key=lambda item: -heavy[file_of(item)])  # stable: each file's order kept


# a few batches, CPU, quiet: enough to exercise the whole path
FAST = [
    "debug=limit",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "data.batch_size=32",
    "data.eval_batch_size=64",
]


def cnnlab(
    args: list[str],
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: int = 600,
    tool: str = "cnnlab-train",
) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / tool
    return subprocess.run(
        [str(exe), *args],
        env=env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start(
    command: list[str], env: dict[str, str], stderr: int = subprocess.PIPE
) -> subprocess.Popen:
    """A process to stop, kill or wait on (``cnnlab-train``: ``[TRAIN, *args]``); its stdout
    dropped, its stderr kept as text (DEVNULL for a long run nobody reads, so no pipe fills)."""
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)


TRAIN = str(Path(sys.executable).parent / "cnnlab-train")


def dead_pid() -> int:
    """The PID of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def crafted_checkpoint(tmp_path: Path, net: dict) -> Path:
    """A checkpoint whose stored config builds ``net`` (honest weights of a MyCNN; with
    ``{"_target_": "cnnlab.nets.MyCNN"}`` an honest checkpoint)."""
    import torch

    from cnnlab.nets import MyCNN

    config = {
        "data": {"_target_": "cnnlab.data.MNISTDataModule", "name": "mnist"},
        "model": {
            "_target_": "cnnlab.training.classifier.Classifier",
            "net": net,
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True},
        },
    }
    path = tmp_path / "crafted.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in MyCNN().state_dict().items()},
            "cnnlab": {"config": config},
        },
        path,
    )
    return path


def train_inprocess(
    args: list[str], monkeypatch, capsys, data_root: Path, log_dir: Path
) -> tuple[int, str, str]:
    """cnnlab-train's console script in this process: (exit code, stdout, stderr)."""
    from cnnlab.cli.train import main

    monkeypatch.setenv("CNNLAB_DATA_DIR", str(data_root))
    monkeypatch.setenv("CNNLAB_LOG_DIR", str(log_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # main() sets it; restored after the test
    monkeypatch.setattr(sys, "argv", ["cnnlab-train", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until ``path`` exists; a run that ends first, or a wait past ``timeout``, fails the
    test (and the run is killed, never left behind)."""
    import time

    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {path} appeared")
        if time.time() - t0 > timeout:
            proc.kill()
            proc.wait(timeout=60)
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


# A test-only hook: cnnlab-train that pauses before one training batch and says so in a
# marker file, so a test signals a run at a known step instead of guessing with a sleep.
# It waits (at most 300 s) until Lightning saw a SIGTERM or SIGINT ("signal"), or until it
# is killed ("kill"); it touches no tensor and no random state.
_PAUSE_AT_BATCH = """
import sys, time
from pathlib import Path
from cnnlab.training.classifier import Classifier
marker, epoch, batch, until = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
step = Classifier.training_step
def paused(self, b, batch_idx):
    if self.current_epoch == epoch and batch_idx == batch and not self.trainer.sanity_checking:
        marker.write_text(f"{epoch} {batch_idx}")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if until == "signal" and self.trainer.received_sigterm:
                break
            time.sleep(0.01)
    return step(self, b, batch_idx)
Classifier.training_step = paused
from cnnlab.cli.train import main
sys.argv = ["cnnlab-train", *sys.argv[5:]]
main()
"""


def train_paused(
    args: list[str],
    env: dict,
    marker: Path,
    epoch: int,
    batch: int,
    until: str,
    stderr: int = subprocess.PIPE,
) -> subprocess.Popen:
    """cnnlab-train ``args``, started (as ``start`` does); it pauses before training batch
    ``batch`` of epoch ``epoch`` (``marker`` appears then) until a stop signal or a kill
    (``until``)."""
    assert until in ("signal", "kill")
    command = [sys.executable, "-c", _PAUSE_AT_BATCH, str(marker), str(epoch), str(batch)]
    return start([*command, until, *args], env, stderr=stderr)


def kill_paused(args: list[str], env: dict, marker: Path, epoch: int, batch: int) -> None:
    """cnnlab-train ``args``, SIGKILLed where it pauses: before training batch ``batch`` of
    epoch ``epoch`` (``marker`` says so), or at once if the wait for it fails."""
    proc = train_paused(args, env, marker, epoch, batch, "kill", stderr=subprocess.DEVNULL)
    try:
        wait_for(marker, proc)
    finally:
        proc.kill()
        proc.wait(timeout=60)


def run_dirs(log_dir: Path) -> list[Path]:
    return sorted(p.parent for p in log_dir.rglob("results.json"))


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())

"""W&B can neither block a run nor take it down."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir

from cnnlab.cli.train import CONF_DIR
from cnnlab.run import runner
from conftest import FAST


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))


def run(tmp_path, data_root, extra=()):
    """A run through cnnlab's runner in this process (so W&B can be patched)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    overrides = [
        f"data.root={data_root}",
        f"paths.output_dir={run_dir}",
        "run_name=wb",
        f"paths.log_dir={tmp_path / 'logs'}",
        *FAST,
        *extra,
    ]
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    runner.run(cfg, run_dir, overrides)
    return 0, json.loads((run_dir / "results.json").read_text()), run_dir


def test_wandb_failing_mid_run_leaves_training_and_results_intact(
    tmp_path, tiny_data, offline_wandb, monkeypatch
):
    from wandb.sdk.wandb_run import Run

    calls = {"n": 0}
    real_log = Run.log

    def flaky_log(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # the server "goes away" after the first metrics
            raise ConnectionError("wandb server unreachable")
        return real_log(self, *args, **kwargs)

    monkeypatch.setattr(Run, "log", flaky_log)
    with pytest.warns(UserWarning, match="W&B log_metrics failed"):
        code, res, run_dir = run(tmp_path, tiny_data)
    assert code == 0
    assert res["status"] == "completed" and res["epochs"] == 2
    assert "unreachable" in res["wandb"]["error"]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()


def test_wandb_that_cannot_start_is_turned_off_not_fatal(
    tmp_path, tiny_data, offline_wandb, monkeypatch
):
    import wandb

    def no_init(*a, **k):
        raise wandb.errors.CommError("could not reach the W&B server")

    monkeypatch.setattr(wandb, "init", no_init)
    with pytest.warns(UserWarning, match="W&B init failed"):
        code, res, _ = run(tmp_path, tiny_data)
    assert code == 0 and res["status"] == "completed"
    assert "could not reach" in res["wandb"]["error"]


def test_offline_run_logs_grouping_keys(tmp_path, tiny_data, offline_wandb):
    code, res, run_dir = run(
        tmp_path, tiny_data, ["group=study-x", "tags=[a,b]", "job_type=ablation"]
    )
    assert code == 0
    # a single run's W&B files go to the log dir's one W&B folder, its id leading with its name
    (offline,) = (tmp_path / "logs").glob("wandb/offline-run-*")
    assert offline.name.endswith(res["wandb"]["id"]) and res["wandb"]["mode"] == "offline"
    assert res["wandb"]["id"].startswith("wb-") and not (run_dir / "wandb").exists()


# a test-only hook: at the end of epoch 0 every file this process has open in the W&B folder
# (wandb's debug.log) is pointed at /dev/full, where every write fails with ENOSPC, as on a
# disk that has just filled up (no mount, no root)
W_AND_B_FILLS_UP = """
import os, sys
from pathlib import Path
from cnnlab.training.callbacks import EpochLog
wandb_dir, end = Path(sys.argv[1]).resolve(), EpochLog.on_train_epoch_end
def fill_up(self, trainer, pl_module):
    end(self, trainer, pl_module)
    if trainer.current_epoch == 0:
        full = os.open("/dev/full", os.O_WRONLY)
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = Path(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
            if target.is_relative_to(wandb_dir):
                os.dup2(full, int(fd))
                print("filled", target, file=sys.stderr)
EpochLog.on_train_epoch_end = fill_up
from cnnlab.cli.train import main
sys.argv = ["cnnlab-train", *sys.argv[2:]]
main()
"""


def test_a_wandb_folder_that_fills_up_mid_run_is_one_line_and_the_run_goes_on(cli_env, tmp_path):
    import subprocess
    import sys

    import torch

    from conftest import results

    run, wandb_dir = tmp_path / "logs" / "run", tmp_path / "logs" / "wandb"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            W_AND_B_FILLS_UP,
            str(wandb_dir),
            *FAST,
            "logger=wandb",
            f"hydra.run.dir={run}",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    filled = [ln for ln in proc.stderr.splitlines() if ln.startswith("filled ")]
    assert filled, f"the hook found no W&B file to fill: {proc.stderr[-2000:]}"
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "W&B" in ln]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(
        f"cnnlab: W&B is off for the rest of this run: cannot write to {wandb_dir}"
    )
    assert "No space left on device" in lines[0]
    record = results(run)  # the run's own record is whole, and says what happened to W&B
    assert record["status"] == "completed" and record["epochs"] == 2
    assert "No space left on device" in record["wandb"]["error"]
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        torch.load(ckpt, weights_only=True)

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

"""DDP with two CPU processes: metrics over the whole split, rank 0 alone writes, resume works."""

from __future__ import annotations

import json

import pytest

from conftest import cnnlab, results

DDP = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "debug=limit",
    "trainer.limit_test_batches=null",
    "trainer.limit_val_batches=null",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "data.batch_size=32",
    "data.eval_batch_size=30",
]


@pytest.mark.slow  # 25-95 s each in CI
def test_ddp_tests_the_whole_split_like_one_process_and_only_rank_0_writes(cli_env, tmp_path):
    run = tmp_path / "logs" / "ddp"
    proc = cnnlab([*DDP, "test_ckpt=last", f"hydra.run.dir={run}"], cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "W&B" not in proc.stderr and "Traceback" not in proc.stderr
    res = results(run)
    assert res["status"] == "completed" and res["epochs"] == 2
    # each process takes its share of the cores (2 cores / 2 processes here)
    assert res["provenance"]["device"]["torch_threads"] == max(
        1, res["provenance"]["device"]["cpu_count"] // 2
    )
    # 100 test images in batches of 30 over 2 ranks: 4 + 3 batches, none dropped or repeated
    out = tmp_path / "eval.json"
    proc = cnnlab(
        [str(run / "checkpoints" / "last.ckpt"), "--json", str(out)], cli_env, tool="cnnlab-eval"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = json.loads(out.read_text())
    assert sum(map(sum, single["confusion_matrix"])) == 100
    assert res["metrics"]["test/acc"] == single["test/acc"]
    assert res["test"]["confusion_matrix"] == single["confusion_matrix"]
    # one W&B run, one record: the other rank wrote nothing of its own
    assert len(list((tmp_path / "logs" / "wandb").glob("offline-run-*"))) == 1
    assert {p.name for p in (tmp_path / "logs").iterdir()} == {"ddp", "wandb"}


@pytest.mark.slow  # 25-95 s each in CI
def test_ddp_resume_auto_continues_from_the_last_checkpoint(cli_env, tmp_path):
    run = tmp_path / "logs" / "ddp"
    args = [*DDP, "logger=none", f"hydra.run.dir={run}"]
    proc = cnnlab([*args, "trainer.max_epochs=1"], cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = results(run)
    # as if it had been stopped there (a completed run is never rewritten, not even resumed)
    (run / "results.json").write_text(json.dumps({**first, "status": "interrupted"}))
    proc = cnnlab([*args, "trainer.max_epochs=2", "resume=auto"], cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(run)
    assert res["status"] == "completed" and res["resumed_from"].endswith("last.ckpt")
    assert res["epochs"] == 2 and res["attempts"] == 2
    assert res["history"][0] == first["history"][0]  # the first epoch came from the checkpoint

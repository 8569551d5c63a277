"""Identical reruns, verified by cnnlab-rerun, and runs that survive SIGKILL."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import FAST, cnnlab, kill_paused, results
from idx_data import make_dataset

# a run whose every source of randomness is in play: shuffling, per-sample augmentation,
# dropout, and a plateau scheduler that actually steps
RANDOM_RUN = [
    "data/augmentation=affine",
    "model.net.dropout=0.3",
    "model.scheduler.patience=0",
    "+model.scheduler.threshold=0.9",
    "seed=7",
    "logger=none",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "data.batch_size=32",
]


@pytest.mark.slow  # 25-95 s each in CI
def test_rerun_is_identical_and_reports_differences(cli_env, tmp_path):
    run = tmp_path / "logs" / "original"
    proc = cnnlab([*FAST, *RANDOM_RUN, f"hydra.run.dir={run}"], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]

    # into the run itself (skipped as completed: compared with itself) or a folder holding
    # files: refused in one line, nothing written
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    before = sorted(p.name for p in run.iterdir())
    for out in (run, tmp_path / "full"):
        proc = cnnlab([str(run), "--out", str(out)], cli_env, tool="cnnlab-rerun")
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert f"--out {out} already holds files" in proc.stderr
        assert ("it is the run being rerun" in proc.stderr) == (out == run), proc.stderr
    assert sorted(p.name for p in run.iterdir()) == before
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]

    proc = cnnlab([str(run), "--out", str(tmp_path / "same")], cli_env, tool="cnnlab-rerun")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "same" / "rerun.json").read_text())
    assert summary["identical"] and summary["differences"] == []
    assert "identical" in proc.stdout

    proc = cnnlab(
        [str(run), "model.optimizer.lr=0.01", "--out", str(tmp_path / "changed")],
        cli_env,
        tool="cnnlab-rerun",
    )
    assert proc.returncode == 1
    summary = json.loads((tmp_path / "changed" / "rerun.json").read_text())
    assert not summary["identical"]
    changed = {d["metric"] for d in summary["differences"]}
    assert "test/acc" in changed or "test/loss" in changed
    assert "differs by" in proc.stdout

    # a tolerance that covers the difference turns the verdict around
    proc = cnnlab(
        [
            str(run),
            "model.optimizer.lr=0.01",
            "--tolerance",
            "100",
            "--out",
            str(tmp_path / "tolerated"),
        ],
        cli_env,
        tool="cnnlab-rerun",
    )
    assert proc.returncode == 0


def test_rerun_of_a_sweep_run_by_its_path_without_out(cli_env, tmp_path):
    # a sweep run's dir is named by its overrides ("mycnn,seed=1"): '=' and ',' in the rerun's
    # dir must reach Hydra as a value, not as override syntax
    sweep = tmp_path / "logs" / "sweep"
    proc = cnnlab(["-m", "seed=1", *FAST, "logger=none", f"hydra.sweep.dir={sweep}"], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = sweep / "mycnn,seed=1"
    assert "job #0 completed (val/acc_best " in proc.stdout  # a line per finished job
    proc = cnnlab([str(run)], cli_env, tool="cnnlab-rerun")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (rerun,) = sweep.glob("mycnn,seed=1-rerun-*")
    assert json.loads((rerun / "rerun.json").read_text())["identical"]
    assert results(rerun)["status"] == "completed"


def test_rerun_pins_the_data_folder_and_the_thread_count_the_run_used():
    from omegaconf import OmegaConf

    from cnnlab.cli.rerun import pinned_overrides

    resolved = OmegaConf.create({"data": {"root": "/data"}, "torch_threads": None})
    # a joblib job ran with 1 of the machine's 16 threads; rerun alone it must still use 1
    assert pinned_overrides(resolved, {"device": {"cpu_count": 16, "torch_threads": 1}}) == [
        "data.root=/data",
        "data.download=false",
        "torch_threads=1",
    ]
    # runs from before torch_threads was recorded stored the threads as cpu_count
    assert pinned_overrides(resolved, {"device": {"cpu_count": 2}})[-1] == "torch_threads=2"
    assert pinned_overrides(resolved, {}) == ["data.root=/data", "data.download=false"]


def test_rerun_warns_when_the_cpu_differs():
    from cnnlab.cli.rerun import provenance_warnings
    from cnnlab.run.provenance import device_info

    here = device_info()
    assert here["cpu_capability"] and here["torch_threads"] >= 1
    other = {**here, "cpu_capability": "AVX2" if here["cpu_capability"] != "AVX2" else "AVX512"}
    warned = provenance_warnings({"device": here}, {"device": other})
    assert any("cpu_capability" in w and "same kind of CPU" in w for w in warned)
    assert provenance_warnings({"device": here}, {"device": dict(here)}) == []


def test_rerun_of_a_non_run_dir_is_refused(cli_env, tmp_path):
    proc = cnnlab([str(tmp_path)], cli_env, tool="cnnlab-rerun")
    assert proc.returncode == 2 and "is not a cnnlab run dir" in proc.stderr


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_auto_matches_an_uninterrupted_run(cli_env, tmp_path):
    data = make_dataset(tmp_path / "data", n_train=4000, n_test=200)
    env = {**cli_env, "CNNLAB_DATA_DIR": str(data)}
    args = [*RANDOM_RUN, "trainer.max_epochs=4", "trainer.num_sanity_val_steps=0"]

    straight = tmp_path / "logs" / "straight"
    proc = cnnlab([*args, f"hydra.run.dir={straight}"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]

    killed, marker = tmp_path / "logs" / "killed", tmp_path / "at_batch"
    kill_paused([*args, f"hydra.run.dir={killed}"], env, marker, epoch=1, batch=50)  # of 100
    interrupted = results(killed)
    assert interrupted["status"] == "running"  # what a killed run leaves behind
    # the kill landed mid-epoch 1: its training had begun, its end-of-epoch checkpoint not
    assert marker.read_text() == "1 50"
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0

    proc = cnnlab([*args, "resume=auto", f"hydra.run.dir={killed}"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed, reference = results(killed), results(straight)
    assert resumed["status"] == "completed"
    assert resumed["resumed_from"].endswith(".ckpt")
    assert resumed["epochs"] == reference["epochs"] == 4
    assert resumed["metrics"] == reference["metrics"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(resumed["history"]) == strip(reference["history"])
    # the plateau scheduler (patience 0) really moved the learning rate
    assert len({r["lr"] for r in reference["history"]}) > 1


def test_relaunched_multirun_skips_completed_jobs(cli_env, tmp_path):
    sweep = tmp_path / "logs" / "sweep"
    args = ["-m", "seed=1,2", *FAST, "logger=none", f"hydra.sweep.dir={sweep}"]
    proc = cnnlab(args, cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    job0, job1 = sweep / "mycnn,seed=1", sweep / "mycnn,seed=2"  # named by their overrides
    first, done = results(job1), (job0 / "results.json").read_text()
    # job 1 "was interrupted": its record says so; job 0 completed
    (job1 / "results.json").write_text(json.dumps({**first, "status": "interrupted"}))
    proc = cnnlab([*args, "resume=auto"], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipping" in proc.stdout and str(job0) in proc.stdout.replace("\n", "")
    assert (job0 / "results.json").read_text() == done  # not run again, not rewritten
    assert results(job1)["status"] == "completed"
    assert results(job1)["resumed_from"] is not None

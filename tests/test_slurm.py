"""Sweeps against a real SLURM cluster (.ci/run starts the one-node cluster of ../shared/slurm).

Every wait is bounded. One test speeds SLURM up: a requeued job is held two minutes
before it may start again (SLURM's own delay); the test releases it at once with
``scontrol update StartTime=now``, as an administrator could.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import FAST, cnnlab, results, wait_for
from idx_data import make_dataset
from test_interrupts import strip_times

# one worker runs this file's tests, one after another (pyproject: --dist loadfile): they
# share the one-node cluster's two CPUs, and one test's job must not wait behind another's
pytestmark = pytest.mark.slurm

EXE = str(Path(sys.executable).parent / "cnnlab-train")


def _cluster_reason() -> str | None:
    if shutil.which("sbatch") is None:
        return "no SLURM here (sbatch is not on PATH); .ci/run starts ../shared/slurm's cluster"
    try:
        state = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as err:
        return f"sinfo failed: {err}"
    if not set(state) & {"idle", "mixed", "allocated"}:
        return f"the SLURM node is not up (sinfo says {state or 'nothing'})"
    return None


@pytest.fixture(scope="module", autouse=True)
def cluster():
    reason = _cluster_reason()
    if reason:
        pytest.skip(reason)


SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.poll_s=1"]


@pytest.fixture
def medium(cli_env, tmp_path):
    data = make_dataset(tmp_path / "data", n_train=12000, n_test=200)
    return {**cli_env, "CNNLAB_DATA_DIR": str(data)}


def test_two_job_sweep_with_only_the_partition_named_completes(cli_env, tmp_path):
    sweep = tmp_path / "logs" / "sweep"
    proc = cnnlab(
        ["-m", *SLURM, "seed=1,2", *FAST, "logger=none", f"hydra.sweep.dir={sweep}"],
        cli_env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for job in ("mycnn,seed=1", "mycnn,seed=2"):
        res = results(sweep / job)
        assert res["status"] == "completed"
        # threads follow the allocation: the launcher's default is 2 CPUs per job
        assert res["provenance"]["device"]["torch_threads"] == 2
        assert res["threads"]["why"] == "SLURM_CPUS_PER_TASK=2"
    # what a user reads in each job's SLURM output file: a line per epoch as it ends
    outs = sorted(sweep.glob(".submitit/**/*_log.out"))
    assert len(outs) == 2
    for out in outs:
        text = out.read_text()
        assert "epoch 1/2 · train loss" in text and "epoch 2/2 · train loss" in text, text[-2000:]


def _array_task(sweep: Path, task: int, timeout: float = 60) -> str:
    """The SLURM id of one job of the sweep's array, read from submitit's folder."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = sorted(sweep.glob(f".submitit/*_{task}"))
        if found:
            return found[0].name
        time.sleep(0.5)
    raise AssertionError(f"no SLURM job for task {task} under {sweep}/.submitit")


def test_scancel_one_job_the_other_completes_and_a_relaunch_finishes_it_exactly(medium, tmp_path):
    sweep = tmp_path / "logs" / "sweep"
    args = [
        "-m",
        *SLURM,
        "hydra.launcher.cpus_per_task=1",
        "seed=1,2",
        "trainer.max_epochs=3",
        "trainer.num_sanity_val_steps=0",
        "logger=none",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        "data.batch_size=32",
        f"hydra.sweep.dir={sweep}",
    ]
    t0 = time.time()
    sweeper = subprocess.Popen(
        [EXE, *args], env=medium, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(sweep / "mycnn,seed=2" / "checkpoints" / "epoch_000.ckpt", sweeper)
    subprocess.run(["scancel", _array_task(sweep, 1)], check=True, timeout=30)
    out, err = sweeper.communicate(timeout=600)
    wall = time.time() - t0
    assert sweeper.returncode == 1, out[-2000:] + err[-2000:]
    assert "Traceback" not in out + err
    assert "1 of 2 jobs did not complete: job 1 cancelled" in err
    jobs = json.loads((sweep / "sweep.json").read_text())["jobs"]
    assert [j["status"] for j in jobs] == ["completed", "cancelled"]
    assert "resume=auto" in jobs[1]["reason"]
    assert results(sweep / "mycnn,seed=1")["status"] == "completed"
    assert results(sweep / "mycnn,seed=2")["status"] == "interrupted"
    done = (sweep / "mycnn,seed=1" / "results.json").read_text()

    proc = cnnlab([*args, "resume=auto"], medium, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (sweep / "mycnn,seed=1" / "results.json").read_text() == done  # skipped, not rerun
    resumed = results(sweep / "mycnn,seed=2")
    assert resumed["status"] == "completed" and resumed["resumed_from"]

    straight = tmp_path / "logs" / "straight"  # the same job, never stopped, one thread
    proc = cnnlab(
        [a for a in args[1:] if not a.startswith(("hydra", "seed"))]
        + ["seed=2", "torch_threads=1", f"hydra.run.dir={straight}"],
        medium,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    reference = results(straight)
    assert resumed["metrics"] == reference["metrics"]
    assert strip_times(resumed["history"]) == strip_times(reference["history"])
    print(f"scancel sweep: {wall:.0f} s to the summary")


def _release_requeued(stop: threading.Event) -> None:
    """SLURM holds a requeued job for ~2 minutes; let it start again at once."""
    while not stop.wait(1.0):
        out = subprocess.run(
            ["squeue", "-h", "-t", "PD", "-o", "%i %r"], capture_output=True, text=True, timeout=30
        ).stdout
        for line in out.splitlines():
            job, _, reason = line.partition(" ")
            if reason.strip() == "BeginTime":
                subprocess.run(
                    ["scontrol", "update", f"JobId={job}", "StartTime=now"],
                    capture_output=True,
                    timeout=30,
                )


def test_a_job_past_a_one_minute_time_limit_is_requeued_and_completes(medium, tmp_path):
    # The run's budget is 100 s of training (Lightning's max_time, whose clock a resumed run
    # restores from the checkpoint), more than one allocation (SLURM ends a one-minute job
    # 60-90 s after its start) on any machine, so two allocations whatever the CPU (three
    # where a slow start eats the second). An epoch count was not: at 18 epochs this ran 2
    # to 5 allocations (~520 s), as the tiny data's loss reached zero and the steps slowed
    # on subnormal floats.
    sweep = tmp_path / "logs" / "sweep"
    stop = threading.Event()
    releaser = threading.Thread(target=_release_requeued, args=(stop,), daemon=True)
    releaser.start()
    try:
        proc = cnnlab(
            [
                "-m",
                *SLURM,
                "hydra.launcher.cpus_per_task=1",
                "hydra.launcher.timeout_min=1",
                "hydra.launcher.signal_delay_s=30",
                "hydra.launcher.max_num_timeout=4",
                "seed=1",
                "trainer.max_epochs=1000",
                "++trainer.max_time={seconds:100}",
                "callbacks.early_stopping=null",
                "trainer.num_sanity_val_steps=0",
                "logger=none",
                "data.batch_size=32",
                "callbacks.progress_bar=null",
                "callbacks.model_summary=null",
                f"hydra.sweep.dir={sweep}",
            ],
            medium,
            timeout=900,
        )
    finally:
        stop.set()
        releaser.join(timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = results(sweep / "mycnn,seed=1")
    assert res["status"] == "completed", res
    assert res["attempts"] >= 2 and res["resumed_from"], res  # it ran past one allocation
    # the second allocation went on from the first one's epochs, not from scratch: more of
    # the budget was trained than this allocation ran (a restart would train it all here,
    # and past one allocation's ~90 s never reach 100 s: the job would time out for good)
    assert res["fit_time_s"] > res["session_wall_time_s"], res
    assert [row["epoch"] for row in res["history"]] == list(range(res["epochs"])), res


def test_a_job_that_can_never_start_is_reported_not_waited_on(cli_env, tmp_path):
    t0 = time.time()
    proc = cnnlab(
        [
            "-m",
            *SLURM,
            "hydra.launcher.cpus_per_task=64",
            "seed=1",
            *FAST,
            "logger=none",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cli_env,
        timeout=300,
    )
    assert proc.returncode == 1 and time.time() - t0 < 200
    (job,) = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["jobs"]
    assert job["status"] == "failed"
    assert "can never start (pending: PartitionConfig)" in job["reason"]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_submission_slurm_refuses_is_one_line(cli_env, tmp_path):
    proc = cnnlab(
        [
            "-m",
            *SLURM,
            "hydra.launcher.mem_gb=100000",
            "seed=1",
            *FAST,
            "logger=none",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cli_env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab:")]
    assert len(line) == 1 and "SLURM refused the jobs" in line[0]
    assert "Memory specification" in line[0] and "Traceback" not in proc.stderr


def test_gpus_are_asked_for_only_when_the_trainer_uses_them():
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from cnnlab.cli.train import CONF_DIR

    def gpus(*overrides):
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose(
                "train", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True
            )
        HydraConfig.instance().set_config(cfg)
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)["gpus_per_node"]

    assert gpus() is None and gpus("trainer=cpu") is None
    assert gpus("trainer=gpu") == 1
    assert gpus("trainer.accelerator=gpu", "trainer.devices=4") == 4
    assert json.loads(json.dumps(gpus("trainer=ddp"))) is None  # ddp on CPUs by default

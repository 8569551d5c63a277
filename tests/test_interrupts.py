"""Runs stopped by a signal, a full disk or a second process: honest records, exact resumes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from cnnlab.run.rundir import STAGED, STAGING, remove_stale_staging, staging_dir
from conftest import FAST, TRAIN, cnnlab, dead_pid, results, start, train_paused, wait_for
from idx_data import make_dataset
from test_reproducibility import RANDOM_RUN


def strip_times(rows):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def stop(proc: subprocess.Popen, run: Path, signum: signal.Signals) -> dict:
    """Send ``signum``; the run ends in one line, exit 128 + the signal's number as a shell
    reports it (143 SIGTERM, 130 Ctrl-C), a record naming the signal and its stop checkpoint
    (last.ckpt), which is returned."""
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "Traceback" not in err and f"cnnlab: stopped by {signum.name}" in err
    record = results(run)
    assert record["status"] == "interrupted" and record["signal"] == signum.name
    assert record["checkpoint"].endswith("last.ckpt")
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.fixture
def long_epochs(cli_env, tmp_path):
    """Epochs of 300 batches (~2 s on this CPU)."""
    data = make_dataset(tmp_path / "data", n_train=12000, n_test=200)
    env = {**cli_env, "CNNLAB_DATA_DIR": str(data)}
    args = [
        *RANDOM_RUN,
        "trainer.max_epochs=3",
        "trainer.num_sanity_val_steps=0",
        "torch_threads=1",
    ]
    return env, args


@pytest.mark.slow  # 25-95 s each in CI
def test_sigterm_mid_epoch_checkpoints_there_and_the_resumed_run_is_exact(long_epochs, tmp_path):
    env, args = long_epochs
    straight = tmp_path / "logs" / "straight"
    proc = cnnlab([*args, f"hydra.run.dir={straight}"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]

    stopped, marker = tmp_path / "logs" / "stopped", tmp_path / "at_batch"
    victim = train_paused(
        [*args, f"hydra.run.dir={stopped}"], env, marker, epoch=1, batch=100, until="signal"
    )
    wait_for(marker, victim)  # paused before epoch 1's batch 100 of 300
    ckpt = stop(victim, stopped, signal.SIGTERM)
    progress = ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"]
    assert (ckpt["epoch"], progress) == (1, 101), "saved after the batch the stop came in"

    proc = cnnlab([*args, "resume=auto", f"hydra.run.dir={stopped}"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed, reference = results(stopped), results(straight)
    assert resumed["status"] == "completed" and resumed["attempts"] == 2
    assert resumed["metrics"] == reference["metrics"]
    assert strip_times(resumed["history"]) == strip_times(reference["history"])


def test_sigterm_before_training_stops_at_once_and_says_so(cli_env, tmp_path):
    run = tmp_path / "logs" / "early"
    proc = start([TRAIN, *FAST, "logger=none", f"hydra.run.dir={run}"], cli_env)
    wait_for(Path(staging_dir(str(run), pid=proc.pid)) / "overrides.yaml", proc)  # Hydra's start
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err
    assert "cnnlab: stopped by SIGTERM" in err
    if (run / "results.json").exists():  # it got as far as the runner: the record says so
        assert results(run)["status"] == "interrupted"


@pytest.mark.slow  # 25-95 s each in CI
def test_a_second_process_on_a_run_dir_in_use_touches_nothing(long_epochs, tmp_path):
    env, args = long_epochs
    run = tmp_path / "logs" / "busy"
    first = start([TRAIN, *args, f"hydra.run.dir={run}"], env, stderr=subprocess.DEVNULL)
    try:
        wait_for(run / "checkpoints" / "epoch_000.ckpt", first)
        hydra_files = {f: (run / ".hydra" / f).read_bytes() for f in STAGED}
        proc = cnnlab(
            [*args, "resume=auto", "model.net.dropout=0.1", f"hydra.run.dir={run}"],
            env,
            timeout=120,
        )
        assert proc.returncode == 2
        assert {f: (run / ".hydra" / f).read_bytes() for f in STAGED} == hydra_files
        assert "model.net.dropout=0.1" not in (run / "train.log").read_text()
        line = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab:")]
        assert len(line) == 1 and "is in use by PID" in line[0] and str(first.pid) in line[0]
        # the first run's record and lock are untouched, and it is still running
        assert json.loads((run / "results.json").read_text())["status"] == "running"
        assert json.loads((run / "run.lock").read_text())["pid"] == first.pid
        assert first.poll() is None
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0 and results(run)["status"] == "completed"
    assert results(run)["attempts"] == 1 and not (run / "run.lock").exists()


def test_a_stale_lock_of_a_dead_process_is_broken(tmp_path):
    from cnnlab.run.rundir import LOCK, RunDirInUse, RunDirLock, me

    holder = {**me().__dict__, "pid": dead_pid()}
    (tmp_path / LOCK).write_text(json.dumps(holder))
    with RunDirLock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
        with pytest.raises(RunDirInUse, match=f"PID {os.getpid()}"):
            RunDirLock(tmp_path).acquire()
    assert not (tmp_path / LOCK).exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB filesystem for the run dir (root and tmpfs needed; else the test skips)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_leaves_no_truncated_checkpoint_and_resume_continues(cli_env, small_disk):
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (12 << 20))  # MyCNN checkpoints are ~6.7 MB: the 2nd fails
    run = small_disk / "run"
    args = [*FAST, "logger=none", "trainer.max_epochs=2", f"hydra.run.dir={run}"]
    proc = cnnlab(args, cli_env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab:")]
    assert len(line) == 1 and "no space left on the device" in line[0] and ".ckpt" in line[0]
    assert "Traceback" not in proc.stderr
    record = results(run)
    assert record["status"] == "failed" and "no space left" in record["error"]
    ckpts = list((run / "checkpoints").iterdir())
    assert ckpts and all(p.suffix == ".ckpt" for p in ckpts), ckpts  # no temporary files
    for p in ckpts:  # every checkpoint there is whole
        torch.load(p, weights_only=True)

    ballast.unlink()  # space freed: the same command with resume=auto finishes the run
    proc = cnnlab([*args, "resume=auto"], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = results(run)
    assert res["status"] == "completed" and res["epochs"] == 2 and res["resumed_from"]


def test_ctrl_c_checkpoints_after_the_current_batch_and_records_sigint(long_epochs, tmp_path):
    env, args = long_epochs
    run = tmp_path / "logs" / "ctrl_c"
    proc = start([TRAIN, *args, f"hydra.run.dir={run}"], env)
    wait_for(run / "checkpoints" / "epoch_000.ckpt", proc)  # training: epoch 1 under way
    ckpt = stop(proc, run, signal.SIGINT)  # exit 130, the shell's code for Ctrl-C
    assert ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] >= 1
    first = torch.load(run / "checkpoints" / "epoch_000.ckpt", weights_only=True)
    # a stop that lands while epoch 0 ends saves there; later, after epoch 1's current batch
    assert ckpt["global_step"] >= first["global_step"], "nothing trained is lost"


# a test-only hook: validation steps made slow, and a marker file when a fit's validation starts
SLOW_VALIDATION = """
import sys, time
from pathlib import Path
from cnnlab.training.classifier import Classifier
step, marker = Classifier.validation_step, Path(sys.argv[1])
def slow(self, batch, batch_idx):
    if not self.trainer.sanity_checking:
        marker.touch()
        time.sleep(0.1)
    return step(self, batch, batch_idx)
Classifier.validation_step = slow
from cnnlab.cli.train import main
sys.argv = ["cnnlab-train", *sys.argv[2:]]
main()
"""


@pytest.mark.slow  # 25-95 s each in CI
def test_sigterm_during_validation_keeps_the_epochs_training(cli_env, tmp_path):
    data = make_dataset(tmp_path / "data", n_train=2000, n_test=100)
    env = {**cli_env, "CNNLAB_DATA_DIR": str(data)}
    args = [
        *RANDOM_RUN,
        "trainer.max_epochs=2",
        "trainer.num_sanity_val_steps=0",
        "torch_threads=1",
        "data.eval_batch_size=20",
    ]  # 20 validation batches of 0.1 s
    run, marker = tmp_path / "logs" / "in_validation", tmp_path / "validating"
    proc = start(
        [sys.executable, "-c", SLOW_VALIDATION, str(marker), *args, f"hydra.run.dir={run}"], env
    )
    wait_for(marker, proc)  # epoch 0's training is done, its validation under way
    ckpt = stop(proc, run, signal.SIGTERM)
    assert ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1, (
        "epoch 0 (training and validation) is kept"
    )
    assert (run / "checkpoints" / "epoch_000.ckpt").exists(), "its validation was finished"

    proc = cnnlab([*args, "resume=auto", f"hydra.run.dir={run}"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = results(run)
    assert resumed["status"] == "completed" and resumed["attempts"] == 2
    assert [row["epoch"] for row in resumed["history"]] == [0, 1]


def test_a_run_stopped_in_process_leaves_no_signal_state_behind(
    long_epochs, tmp_path, monkeypatch, capsys
):
    """The handlers are the run's: put back after it, and the next run in the process starts."""
    import threading

    from conftest import train_inprocess

    env, args = long_epochs
    stray = []
    previous = signal.signal(signal.SIGTERM, lambda *_: stray.append(1))  # never kill pytest
    try:
        mine = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        run, done = tmp_path / "logs" / "first", threading.Event()

        def stop_when_training() -> None:
            deadline = time.time() + 300
            while not done.is_set() and time.time() < deadline:
                if (run / "checkpoints" / "epoch_000.ckpt").exists():
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                time.sleep(0.05)

        stopper = threading.Thread(target=stop_when_training, daemon=True)
        stopper.start()
        try:
            code, _, err = train_inprocess(
                [*args, f"hydra.run.dir={run}"],
                monkeypatch,
                capsys,
                Path(env["CNNLAB_DATA_DIR"]),
                tmp_path / "logs",
            )
        finally:
            done.set()
            stopper.join(timeout=10)
        assert code == 143 and "stopped by SIGTERM" in err, err[-2000:]
        assert results(run)["signal"] == "SIGTERM" and not stray
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == mine

        second = tmp_path / "logs" / "second"
        code, _, err = train_inprocess(
            [*FAST, "logger=none", f"hydra.run.dir={second}"],
            monkeypatch,
            capsys,
            Path(env["CNNLAB_DATA_DIR"]),
            tmp_path / "logs",
        )
        assert code == 0, err[-2000:]
        assert results(second)["status"] == "completed"
    finally:
        signal.signal(signal.SIGTERM, previous)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.slow  # 25-95 s each in CI
def test_a_completed_run_is_never_rewritten_and_killed_writes_leave_nothing(cli_env, tmp_path):
    run = tmp_path / "logs" / "done"
    stale = run / "checkpoints" / ".last.ckpt.tmp99999"  # a checkpoint write a kill cut short
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    # the dir of a run of this launch that was killed: its own overrides are there (a
    # folder of files of no run of these overrides is refused: tests/test_validation.py)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*FAST, "logger=none"]))
    proc = cnnlab([*FAST, "logger=none", f"hydra.run.dir={run}"], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not stale.exists() and not list(run.rglob("*.tmp*"))
    before = snapshot(run)
    assert ".hydra/overrides.yaml" in before and "train.log" in before

    # the same launch is skipped; one with other overrides is refused (it is another run)
    proc = cnnlab([*FAST, "logger=none", f"hydra.run.dir={run}"], cli_env)
    assert proc.returncode == 0 and "skipping" in proc.stdout, proc.stderr[-2000:]
    proc = cnnlab([*FAST, "logger=none", "model.net.dropout=1.5", f"hydra.run.dir={run}"], cli_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "holds a completed run of other overrides" in proc.stderr
    assert snapshot(run) == before, "the completed run's record is as it was"

    # asked not to skip it: refused in one line before anything is written
    proc = cnnlab([*FAST, "logger=none", "skip_completed=false", f"hydra.run.dir={run}"], cli_env)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[-1].startswith(f"cnnlab: {run} holds a completed run"), lines
    assert "new dir" in lines[-1]
    assert snapshot(run) == before, "the completed run's files are as they were"

    # what the line offers: training it further from its checkpoint, in a new dir
    further = tmp_path / "logs" / "further"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert f"ckpt_path={ckpt}" in lines[-1]
    proc = cnnlab(
        [
            *FAST,
            "logger=none",
            "trainer.max_epochs=3",
            f"ckpt_path={ckpt}",
            f"hydra.run.dir={further}",
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results(further)["resumed_from"] == str(ckpt) and results(further)["epochs"] == 3
    assert snapshot(run) == before


def test_an_unwritable_output_location_is_one_line(cli_env, tmp_path):
    if os.access("/sys", os.W_OK) and not (Path("/sys") / "fs").is_dir():
        pytest.skip("needs a location nobody may write (/sys here)")
    proc = cnnlab(
        [*FAST, "logger=none", "hydra.run.dir=/sys/cnnlab_test/run"], cli_env, timeout=120
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[-1].startswith("cnnlab: cannot write to /sys/cnnlab_test"), proc.stderr


@pytest.fixture
def a_live_process():
    """A process that lives until the test ends (its PID and start time are taken)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    yield proc
    proc.communicate(timeout=60)


def test_staging_dirs_of_dead_processes_go_and_those_of_live_ones_stay(
    tmp_path, monkeypatch, a_live_process
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = dead_pid()
    host, live = socket.gethostname(), a_live_process.pid
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    names = {
        "dead": f"{STAGING}{host}-{dead}-{12345}",
        "PID reused": f"{STAGING}{host}-{os.getpid()}-1",  # this PID, another start time
        "dead, named by PID alone": f"{STAGING}{dead}",
        "live": Path(staging_dir("job", pid=live)).parent.name,
        "live, named by PID alone": f"{STAGING}{live}",
        "another host's": f"{STAGING}elsewhere-{dead}-5",
    }
    for name in names.values():
        (tmp_path / name / "job").mkdir(parents=True)
        (tmp_path / name / "job" / "overrides.yaml").write_text("[]")
    (tmp_path / f"{STAGING}{host}-{dead}-7").symlink_to(outside)  # planted: never followed

    removed = {p.name for p in remove_stale_staging()}
    gone = {"dead", "PID reused", "dead, named by PID alone"}
    assert removed == {names[k] for k in gone}
    for what, name in names.items():
        assert (tmp_path / name).exists() == (what not in gone), what
    assert (outside / "keep").exists()


def test_a_killed_process_staging_dir_goes_at_the_next_start(
    cli_env, tmp_path, monkeypatch, a_live_process
):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    env = {**cli_env, "TMPDIR": str(tmp)}
    run = tmp_path / "logs" / "killed"
    proc = start([TRAIN, *FAST, "logger=none", f"hydra.run.dir={run}"], env)
    staged = Path(staging_dir(str(run), pid=proc.pid))
    wait_for(staged / "overrides.yaml", proc)
    proc.kill()  # SIGKILL: the process cleans up nothing
    proc.wait(timeout=60)
    assert staged.is_dir()
    live = Path(staging_dir("job", pid=a_live_process.pid))
    live.mkdir(parents=True)

    # the next start (here one refused at once) removes it, keeps the live one's, and its own
    # staging dir goes with it
    again = cnnlab([*FAST, "logger=none", "model.net.dropout=1.5"], env, timeout=120)
    assert again.returncode == 2, again.stderr[-2000:]
    assert [p for p in tmp.iterdir() if p.name.startswith(STAGING)] == [live.parent]

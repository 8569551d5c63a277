"""cnnlab-train end to end through the CLI, on tiny generated data, W&B offline."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import FAST, cnnlab, real_mnist_root, results, run_dirs, train_inprocess

NETS = ["mycnn", "keras_cnn", "lenet5", "convnet", "resnet18"]


@pytest.mark.slow
def test_every_net_trains_and_writes_results(cli_env, tmp_path):
    proc = cnnlab(["-m", f"model/net={','.join(NETS)}", *FAST], cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = run_dirs(tmp_path / "logs")
    assert len(dirs) == len(NETS)
    seen = set()
    for d in dirs:
        res = results(d)
        assert res["status"] == "completed", res.get("error")
        assert 0.0 <= res["metrics"]["test/acc"] <= 1.0
        assert res["epochs"] == 2 and len(res["history"]) == 2
        assert {"train/loss", "val/loss", "val/acc", "lr"} <= set(res["history"][0])
        assert len(res["test"]["per_class_acc"]) == 10
        assert (d / "config.yaml").exists() and (d / ".hydra" / "overrides.yaml").exists()
        assert (d / "checkpoints" / "last.ckpt").exists()
        # the sweep's one W&B folder holds each run's, named by what the run is
        offline = list((d.parent / "wandb").glob(f"offline-run-*-{res['wandb']['id']}"))
        assert len(offline) == 1 and not (d / "wandb").exists()
        net = res["overrides"][0].split("=", 1)[1]
        assert d.name == f"net={net},seed=42" and res["wandb"]["id"].startswith(f"net-{net}_")
        seen.add(res["overrides"][0])
    assert seen == {f"model/net={n}" for n in NETS}


def test_output_to_a_file_keeps_a_line_per_epoch(cli_env, tmp_path):
    # stdout is a pipe, as under nohup, CI or SLURM's slurm-*.out: with the default
    # callbacks (progress bar on) each epoch's figures are a line of their own, as it ends
    run = tmp_path / "logs" / "run"
    proc = cnnlab(
        [
            "debug=limit",
            "trainer.accelerator=cpu",
            "logger=none",
            "callbacks.model_summary=null",
            "data.batch_size=32",
            f"hydra.run.dir={run}",
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run / "train.log").read_text()
    for text in (proc.stdout, log):
        lines = [
            line
            for line in text.splitlines()
            if "epoch 1/2 · train loss" in line or "epoch 2/2 · train loss" in line
        ]
        assert len(lines) == 2, text[-3000:]
        assert all(
            " · val loss " in line and " · lr " in line and line.endswith(" s") for line in lines
        )
    assert "it/s" not in proc.stdout + proc.stderr  # no progress bar frame in the file
    assert "torch threads" in proc.stdout and str(run) in proc.stdout.replace("\n", "")


def test_two_runs_in_the_same_second_get_their_own_dirs(cli_env, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "cnnlab-train"
    args = [str(exe), "train=false", "test=false", "logger=none", *FAST]
    procs = [
        subprocess.Popen(args, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    dirs = run_dirs(tmp_path / "logs")
    assert len(dirs) == 2 and dirs[0] != dirs[1]


def test_online_wandb_without_credentials_fails_fast_instead_of_prompting(cli_env, tmp_path):
    env = {**cli_env, "WANDB_MODE": "online", "HOME": str(tmp_path)}
    proc = cnnlab([*FAST], env, timeout=120)
    assert proc.returncode == 2
    assert "logger.wandb.mode='online'" in proc.stderr and "WANDB_API_KEY" in proc.stderr
    assert run_dirs(tmp_path / "logs") == []  # refused before it started: no run dir


def test_transfer_from_a_fashion_mnist_checkpoint_with_frozen_backbone(cli_env, tmp_path):
    proc = cnnlab(["data=fashion_mnist", "logger=none", *FAST], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (pre,) = run_dirs(tmp_path / "logs")
    ckpt = pre / "checkpoints" / "last.ckpt"
    proc = cnnlab(
        [
            f"model.init_from={ckpt}",
            "model.freeze=backbone",
            "logger=none",
            "model.optimizer.lr=0.01",
            *FAST,
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    post = [d for d in run_dirs(tmp_path / "logs") if d != pre][0]
    before = torch.load(ckpt, weights_only=True)["state_dict"]
    after = torch.load(post / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for key in ("net.conv1.weight", "net.conv2.weight", "net.fc1.weight"):
        assert torch.equal(before[key], after[key]), key  # frozen, copied from the checkpoint
    assert not torch.equal(before["net.fc2.weight"], after["net.fc2.weight"])  # head trained


def test_cnnlab_eval_reproduces_the_test_accuracy(cli_env, tmp_path, monkeypatch, capsys):
    proc = cnnlab(["logger=none", "test_ckpt=last", *FAST], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (d,) = run_dirs(tmp_path / "logs")
    out = tmp_path / "evals" / "eval.json"  # its folder is made
    proc = cnnlab(
        [str(d / "checkpoints" / "last.ckpt"), "--json", str(out)], cli_env, tool="cnnlab-eval"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = json.loads(out.read_text())
    # debug=limit tests 2 batches; eval tests the whole (tiny) test set
    assert evaluated["dataset"] == "mnist" and 0 <= evaluated["test/acc"] <= 1
    assert len(evaluated["confusion_matrix"]) == 10
    # again into its own file: replaced; into a file it did not write (the run's record): no
    from cnnlab.cli.evaluate import main

    monkeypatch.setenv("CNNLAB_DATA_DIR", cli_env["CNNLAB_DATA_DIR"])
    ckpt, record = str(d / "checkpoints" / "last.ckpt"), (d / "results.json").read_text()
    out.write_text(json.dumps({**evaluated, "test/acc": -1}))
    assert main([ckpt, "--json", str(out)]) == 0
    assert json.loads(out.read_text()) == evaluated
    capsys.readouterr()
    assert main([ckpt, "--json", str(d / "results.json")]) == 2
    assert "--json=" in capsys.readouterr().err
    assert (d / "results.json").read_text() == record
    assert main([str(d)]) == 2  # the run dir for its checkpoint: named, and which file to give
    assert f"is a folder: give a checkpoint file (e.g. {ckpt})" in capsys.readouterr().err
    out.write_text("")  # an empty file, or a device: nothing to lose, written
    assert main([ckpt, "--json", str(out)]) == 0 and json.loads(out.read_text()) == evaluated
    assert main([ckpt, "--json", os.devnull]) == 0
    stdout = tmp_path / "stdout"  # as /dev/stdout: a link into /proc, to a redirected file
    stdout.symlink_to(f"/proc/{os.getpid()}/fd/{os.open(out, os.O_WRONLY | os.O_APPEND)}")
    assert main([ckpt, "--json", str(stdout)]) == 0 and stdout.is_symlink()  # not renamed over
    assert out.read_text().count('"checkpoint"') == 2  # written through, after what was there
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # no temporary file left


@pytest.mark.slow
@pytest.mark.skipif(
    real_mnist_root() is None,
    reason="real MNIST not found: set CNNLAB_DATA_DIR or put it in ../shared/data",
)
def test_mycnn_one_epoch_on_real_mnist_reaches_98_percent(cli_env, tmp_path):
    env = {**cli_env, "CNNLAB_DATA_DIR": str(real_mnist_root())}
    proc = cnnlab(
        [
            "trainer.max_epochs=1",
            "logger=none",
            "callbacks.progress_bar=null",
            "callbacks.model_summary=null",
        ],
        env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (d,) = run_dirs(tmp_path / "logs")
    res = results(d)
    assert res["metrics"]["test/acc"] >= 0.98, res["metrics"]


def test_a_slurm_sweep_without_sbatch_says_so_in_one_line(cli_env, tmp_path):
    env = {**cli_env, "PATH": str(Path(sys.executable).parent)}  # no SLURM client on PATH
    proc = cnnlab(
        [
            "-m",
            "hydra/launcher=slurm",
            "seed=1",
            *FAST,
            "logger=none",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab:")]
    assert len(line) == 1 and "sbatch" in line[0] and "hydra/launcher" in line[0]
    assert "Traceback" not in proc.stderr and not list(tmp_path.glob("sweep/*/results.json"))


def test_grad_norms_are_logged_at_the_step_they_were_measured(
    tiny_data, tmp_path, monkeypatch, capsys
):
    # 5 steps an epoch, sampled every 4: steps 0, 4 (an epoch's last) and 8; Lightning's own
    # per-step writes come every 50 steps, so none of these would appear through self.log
    code, _, err = train_inprocess(
        [*FAST, "logger=csv", "model.grad_norm_every=4", f"hydra.run.dir={tmp_path / 'run'}"],
        monkeypatch,
        capsys,
        tiny_data,
        tmp_path / "logs",
    )
    assert code == 0, err[-2000:]
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["train/grad_norm"]]
    assert [int(r["step"]) for r in rows] == [0, 4, 8]
    layers = [k for k in rows[0] if k.startswith("grad_norm/")]
    assert layers and all(float(r[k]) > 0 for r in rows for k in layers)
    assert len({r["train/grad_norm"] for r in rows}) == 3  # three samples, not one repeated


def test_help_lists_the_config_groups_without_importing_hydra_or_torch(cli_env):
    code = (
        "import sys; sys.argv = ['cnnlab-train', '--help']\n"
        "from cnnlab.cli.entry import train; train()\n"
        "print('imported:', sorted({'hydra', 'torch', 'lightning'} & set(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "imported: []" in proc.stdout
    lines = proc.stdout.splitlines()
    assert "model/net: convnet, convnet_best" in proc.stdout and "lenet5, mycnn" in proc.stdout
    assert "trainer: cpu, ddp, default, gpu" in lines
    assert not any(line.startswith("hydra") for line in lines)  # as Hydra's own help
    exe = Path(sys.executable).parent / "cnnlab-train"
    proc = subprocess.run(
        [str(exe), "--help"], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "trainer: cpu, ddp, default, gpu" in proc.stdout.splitlines()


class _CountingLoader:
    """Hydra's config loader as far as a sweep uses it, counting what it composes."""

    def __init__(self) -> None:
        self.composed: list[tuple[str, ...]] = []

    def load_sweep_config(self, master_config, sweep_overrides):
        from omegaconf import OmegaConf

        self.composed.append(tuple(sweep_overrides))
        return OmegaConf.create({"overrides": list(sweep_overrides)})

    def get_search_path(self):
        return "the search path"


def test_a_sweep_runs_the_config_it_checked_without_composing_it_again():
    """Hydra's sweeper composes every job of a batch to check it, and its launcher composed
    each again (~0.4 s a job): the launcher now gets the checked config, once."""
    import pickle

    from omegaconf import OmegaConf

    from hydra_plugins.cnnlab_launch.sweeper import ComposeOnce

    inner, master = _CountingLoader(), OmegaConf.create({})
    loader = ComposeOnce(inner)
    loader.check(master, [["seed=1"], ["seed=2"]])
    assert inner.composed == [("seed=1",), ("seed=2",)]
    assert loader.load_sweep_config(master, ["seed=2"]).overrides == ["seed=2"]
    assert loader.load_sweep_config(master, ["seed=1"]).overrides == ["seed=1"]
    assert len(inner.composed) == 2  # the launcher's requests were the checked configs
    loader.load_sweep_config(master, ["seed=1"])  # asked again: composed again
    assert len(inner.composed) == 3
    assert loader.get_search_path() == "the search path"  # the rest is Hydra's loader
    loader.check(master, [["seed=3"]])
    assert len(inner.composed) == 4
    shipped = pickle.loads(pickle.dumps(loader))  # to joblib's or SLURM's job processes
    shipped.load_sweep_config(master, ["seed=3"])  # kept nothing: the job composes its own
    assert shipped._loader.composed[-2:] == [("seed=3",), ("seed=3",)]


def test_a_run_without_its_data_leaves_nothing_behind(cli_env, tmp_path):
    """The first command of a newcomer with no data (offline, or the wrong folder): one
    whole line naming the folder and CNNLAB_DATA_DIR, and no run dir or data dir left."""
    empty = tmp_path / "nodata"
    proc = cnnlab([*FAST, "logger=none", f"data.root={empty}", "data.download=false"], cli_env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab:")]
    assert len(line) == 1 and str(empty) in line[0] and "CNNLAB_DATA_DIR" in line[0], line
    assert "Traceback" not in proc.stderr
    assert run_dirs(tmp_path / "logs") == [] and not empty.exists()
    runs = tmp_path / "logs" / "runs"
    assert not runs.exists() or not any(runs.iterdir())

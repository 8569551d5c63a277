"""A study on a dashboard without an account: one W&B folder per study, runs named by arm
and seed, W&B's own local viewer (`wandb leet`) reading them, and a relaunch keeping
every run's dir and W&B id."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from cnnlab.cli.train import CONF_DIR
from cnnlab.config import arms
from conftest import FAST, cnnlab, results

WANDB = Path(sys.executable).parent / "wandb"
ARMS = {"dropout=0.0": "model.net.dropout=0.0", "dropout=0.5": "model.net.dropout=0.5"}
RUNS = {f"{arm} seed={seed}": f"{arm},seed={seed}" for arm in ARMS for seed in (1, 2)}


# -- names, from overrides alone -------------------------------------------------------------


def test_short_keys_are_the_shortest_unique_ends():
    assert arms.short_keys(["model.net.dropout", "data/augmentation", "transfer_arm"]) == {
        "model.net.dropout": "dropout",
        "data/augmentation": "augmentation",
        "transfer_arm": "transfer_arm",
    }
    assert arms.short_keys(["model.net.dropout", "data.dropout"]) == {
        "model.net.dropout": "net.dropout",
        "data.dropout": "data.dropout",
    }


def test_swept_keys_from_command_line_and_sweeper_params():
    specs = [
        "model.net.dropout=0.0,0.5",
        "seed=range(1,4)",
        "debug=limit",
        "data.batch_size=32",
        "model.optimizer.lr=interval(1e-4, 1e-2)",
        "data/augmentation=glob(*)",
        "model.net.batchnorm=choice(false, true)",
        "broken=[unclosed",
    ]
    assert arms.swept_keys(specs) == [
        "model.net.dropout",
        "seed",
        "model.optimizer.lr",
        "data/augmentation",
        "model.net.batchnorm",
    ]
    job = ["model.net.dropout=0.5", "seed=2", "debug=limit"]
    assert arms.arm_of(job, specs[:3]) == "dropout=0.5"
    assert arms.arm_of(job, ["seed=1,2", "debug=limit"]) is None  # only seeds vary


def test_names_dirs_and_ids():
    assert arms.run_name("dropout=0.25", 2, "mycnn", multirun=True) == "dropout=0.25 seed=2"
    assert arms.run_name(None, 2, "mycnn", multirun=True) == "mycnn seed=2"
    assert arms.run_name(None, 2, "mycnn", multirun=False) == "mycnn"
    assert arms.dirname("dropout=0.25 seed=2") == "dropout=0.25,seed=2"
    # characters a path should not hold become '-', and a hash keeps apart names that
    # differ only in them
    odd = [arms.dirname(f"channels=[16,{c}] seed=1") for c in (32, 64)]
    assert all(re.fullmatch(r"[A-Za-z0-9._,=+-]+", d) for d in odd) and odd[0] != odd[1]
    assert arms.dirname("x=" + "9" * 300).__len__() < 140
    rid = arms.new_run_id("dropout=0.25 batchnorm=true augmentation=flip_rotation seed=3")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", rid) and rid.startswith("dropout-0p25_")
    assert arms.new_run_id("dropout=0.25 seed=2") != arms.new_run_id("dropout=0.25 seed=2")


def test_arm_tag_is_added_once():
    assert arms.with_arm_tag(["ablation"], "dropout=0.5") == ["ablation", "dropout=0.5"]
    assert arms.with_arm_tag(["batchnorm=False"], "batchnorm=false") == ["batchnorm=False"]
    assert arms.with_arm_tag([], None) == []
    assert arms.with_arm_tag([], "x=" + "y" * 70) == []  # W&B refuses tags over 64


@pytest.fixture
def as_multirun_job():
    """Compose a job of a sweep as Hydra's launcher sets it up (mode, overrides, sweep dir)."""
    before = HydraConfig.instance().cfg

    def job(sweep_cli: list[str], job_overrides: list[str], sweep_dir: Path):
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=job_overrides, return_hydra_config=True)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save({"hydra": {"overrides": {"task": sweep_cli}}}, sweep_dir / "multirun.yaml")
        with open_dict(cfg):
            cfg.hydra.mode = RunMode.MULTIRUN
            cfg.hydra.sweep.dir = str(sweep_dir)
            cfg.hydra.overrides.task = job_overrides
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield job
    HydraConfig.instance().cfg = before


@pytest.mark.parametrize(
    "study, job, arm",
    [
        ("dropout", ["model.net.dropout=0.25", "seed=2"], "dropout=0.25"),
        (
            "augmentation",
            ["data/augmentation=flip_rotation", "seed=1"],
            "augmentation=flip_rotation",
        ),
        (
            "full",
            [
                "model.net.dropout=0.5",
                "model.net.batchnorm=true",
                "data/augmentation=rotation",
                "seed=3",
            ],
            "dropout=0.5 batchnorm=true augmentation=rotation",
        ),
        ("transfer", ["transfer_arm=fashion_frozen", "seed=1"], "transfer_arm=fashion_frozen"),
    ],
)
def test_a_study_job_is_named_by_its_arm_and_seed(as_multirun_job, tmp_path, study, job, arm):
    overrides = [f"experiment=ablation/{study}", *job]
    cfg = as_multirun_job([f"experiment=ablation/{study}"], overrides, tmp_path / "sweep")
    seed = job[-1].split("=")[1]
    assert cfg.arm == arm
    assert cfg.logger.wandb.name == f"{arm} seed={seed}"
    assert cfg.hydra.sweep.subdir == f"{arm.replace(' ', ',')},seed={seed}"
    assert cfg.logger.wandb.save_dir == str(tmp_path / "sweep")  # one W&B folder per study
    tags = list(cfg.logger.wandb.tags)
    assert len(tags) == len(set(t.lower() for t in tags))
    assert arm.lower() in {t.lower() for t in tags}  # the study's own tag may say it already


def test_a_command_line_sweep_and_a_single_run(as_multirun_job, tmp_path):
    cfg = as_multirun_job(
        ["model.net.dropout=0.0,0.5", "seed=1,2", "debug=limit"],
        ["model.net.dropout=0.5", "seed=1", "debug=limit"],
        tmp_path / "s",
    )
    assert (cfg.arm, cfg.logger.wandb.name) == ("dropout=0.5", "dropout=0.5 seed=1")
    cfg = as_multirun_job(["seed=1,2"], ["seed=2"], tmp_path / "s2")
    assert (cfg.arm, cfg.logger.wandb.name, cfg.hydra.sweep.subdir) == (
        None,
        "mycnn seed=2",
        "mycnn,seed=2",
    )
    HydraConfig.instance().cfg = None  # a single run composed outside a sweep
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["run_name=mycnn", "paths.log_dir=/tmp/L"])
    assert (cfg.arm, cfg.logger.wandb.name, cfg.paths.study_dir) == (None, "mycnn", "/tmp/L")


# -- a tiny 2-arm × 2-seed study, W&B offline --------------------------------------------


def sweep_args(sweep: Path, order=("0.0,0.5", "1,2")) -> list[str]:
    return [
        "-m",
        f"model.net.dropout={order[0]}",
        f"seed={order[1]}",
        *FAST,
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep}",
    ]


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_data):
    root = tmp_path_factory.mktemp("study")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        CNNLAB_DATA_DIR=str(tiny_data),
        CNNLAB_LOG_DIR=str(root / "logs"),
        WANDB_MODE="offline",
        WANDB_DIR=str(root),
        WANDB_CACHE_DIR=str(root / "wc"),
        WANDB_CONFIG_DIR=str(root / "wcfg"),
        PYTHONUNBUFFERED="1",
    )
    sweep = root / "logs" / "sweep"
    proc = cnnlab(sweep_args(sweep), env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep, env


def inspect(run: Path, env) -> dict:
    proc = subprocess.run(
        [str(WANDB), "leet", "inspect", "--summary", "--json", str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_study_runs_share_one_wandb_folder_named_by_arm_and_seed(study):
    sweep, env = study
    assert sorted(p.name for p in sweep.iterdir() if (p / "results.json").exists()) == sorted(
        RUNS.values()
    )
    assert not list(sweep.glob("*/wandb"))  # no run keeps a W&B folder of its own
    offline = sorted((sweep / "wandb").glob("offline-run-*"))
    assert len(offline) == 4
    seen = {}
    for run_dir in (sweep / d for d in RUNS.values()):
        res = results(run_dir)
        wid = (run_dir / "wandb_id.txt").read_text().strip()
        assert res["wandb"]["id"] == wid
        (folder,) = [o for o in offline if o.name.endswith(wid)]
        summary = inspect(folder, env)  # what `wandb leet` reads for this run
        seen[summary["name"]] = summary
        assert summary["state"] == "finished" and summary["run_id"] == wid
        arm = summary["name"].rsplit(" seed=", 1)[0]
        assert summary["config"]["arm"] == arm and arm in summary["tags"]
        assert run_dir.name == RUNS[summary["name"]]
        for key in ("test/acc", "val/acc_best"):
            assert summary["summary"][key] == pytest.approx(res["metrics"][key])
    assert sorted(seen) == sorted(RUNS)


@pytest.mark.slow
def test_compare_prints_the_leet_command_and_relative_paths(study):
    sweep, env = study
    proc = cnnlab([str(sweep)], env, tool="cnnlab-compare", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.replace("\n", "")
    assert f"wandb leet {sweep / 'wandb'}" in out
    table = json.loads((sweep / "comparison.json").read_text())["arms"]
    assert [(r["arm"], r["label"], r["n"]) for r in table] == [(v, k, 2) for k, v in ARMS.items()]
    assert all(r["gap_train_test"] is not None for r in table)
    assert str(sweep) not in (sweep / "comparison.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux to drive wandb leet")
def test_wandb_leet_lists_the_study_and_filters_an_arm(study, tmp_path):
    """W&B LEET as a user runs it: a terminal program, driven through tmux."""
    sweep, env = study
    session = f"leet{os.getpid()}"
    tmux_env = {**env, "TMUX": ""}

    def tmux(*args: str) -> str:
        return subprocess.run(
            ["tmux", *args], env=tmux_env, capture_output=True, text=True, timeout=30
        ).stdout

    def screen_with(pattern: str, deadline_s: float = 60) -> str:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            text = tmux("capture-pane", "-p", "-t", session)
            if re.search(pattern, text):
                return text
            time.sleep(0.5)
        raise AssertionError(f"{pattern!r} never showed on the screen:\n{text}")

    # wide enough for LEET's run list to show W&B's folder names whole (at 120 columns the
    # list cuts them; a user drags its border wider)
    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "300",
        "-y",
        "30",
        f"{WANDB} leet {sweep / 'wandb'}",
    )
    try:
        screen_with(r"Runs \[4 items\]")
        # the selected run's overview fills in after the list (LEET reads the run's file): wait
        # for it rather than reading the first frame that has the list
        screen = screen_with(r"Name: dropout=0\.[05] seed=[12]")
        for wid in ((sweep / d / "wandb_id.txt").read_text().strip() for d in RUNS.values()):
            # the list shows W&B's folders, offline-run-<time>-<id>; the id leads with the
            # run's name: dropout-0p5_seed-1-<random>
            assert re.search(rf"offline-run-\d{{8}}_\d{{6}}-{wid}", screen), screen
        tmux("send-keys", "-t", session, "f")
        tmux("send-keys", "-t", session, "-l", "dropout=0.5")
        tmux("send-keys", "-t", session, "Enter")
        screen_with(r"Runs \[2 filtered from 4 total\]")
    finally:
        tmux("kill-session", "-t", session)


@pytest.mark.slow
def test_relaunch_in_another_order_keeps_dirs_and_wandb_ids(study):
    sweep, env = study
    job = sweep / RUNS["dropout=0.5 seed=1"]
    first = results(job)
    ids = {d: (sweep / d / "wandb_id.txt").read_text() for d in RUNS.values()}
    job.joinpath("results.json").write_text(json.dumps({**first, "status": "interrupted"}))
    # the same study, its jobs in another order (job numbers change; names do not)
    proc = cnnlab([*sweep_args(sweep, ("0.5,0.0", "2,1")), "resume=auto"], env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("skipping") == 3
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != "wandb") == sorted(
        RUNS.values()
    )
    again = results(job)
    assert again["status"] == "completed" and again["resumed_from"] is not None
    assert {d: (sweep / d / "wandb_id.txt").read_text() for d in RUNS.values()} == ids
    assert again["wandb"]["id"] == first["wandb"]["id"]
    # W&B resumes the run: a second folder with the same id, read as one run by `wandb sync`
    assert len(list((sweep / "wandb").glob(f"offline-run-*-{first['wandb']['id']}"))) == 2

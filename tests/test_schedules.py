"""Per-step schedules (OneCycle, cosine with warmup) and runs without validation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from cnnlab.cli.train import CONF_DIR
from conftest import FAST, cnnlab, kill_paused, results, train_inprocess
from idx_data import make_dataset

QUIET = [
    "logger=none",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "trainer.accelerator=cpu",
]


class LearningRates(Callback):
    """The learning rate each optimizer step trains with, in order."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def fit(overrides: list[str], data_root: Path):
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*overrides, f"data.root={data_root}", "paths.output_dir=/tmp/unused"],
        )
    rec = LearningRates()
    model = instantiate(cfg.model, _convert_="all")
    trainer = instantiate(
        cfg.trainer,
        callbacks=[rec],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=instantiate(cfg.data, _convert_="all"))
    return cfg, trainer, rec.lrs


# 320 tiny training images, no validation: 20 batches of 16 per epoch, 2 epochs = 40 steps,
# so both peaks fall on a whole step (pct_start · 40 − 1: 11 for onecycle, 1 for warmup)
@pytest.mark.parametrize("schedule", ["onecycle", "cosine_warmup"])
def test_a_per_step_schedule_peaks_at_its_max_on_its_step_and_spans_the_fit(schedule, tiny_data):
    cfg, trainer, lrs = fit(
        [
            "experiment=fast",
            f"model/scheduler={schedule}",
            "data.batch_size=16",
            "trainer.max_epochs=2",
            *QUIET,
        ],
        tiny_data,
    )
    s = cfg.model.scheduler
    assert cfg.model.scheduler_interval == "step" and s.total_steps is None  # not typed
    total = trainer.estimated_stepping_batches
    assert total == 40 and len(lrs) == 40
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert sched.total_steps == total and sched.last_epoch == total  # stepped every batch
    peak = round(s.pct_start * total) - 1
    assert lrs.index(max(lrs)) == peak
    assert lrs[peak] == pytest.approx(1e-2)  # experiment=fast's lr is the cycle's peak
    assert lrs[0] == pytest.approx(s.max_lr / s.div_factor)
    assert lrs[-1] == pytest.approx(s.max_lr / s.div_factor / s.final_div_factor)
    # rises to the peak, then falls, one step at a time (not once per epoch)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:-1], lrs[peak + 1 :]))
    # Adam's betas are the config's: the cycle does not move beta1
    betas = tuple(trainer.optimizers[0].param_groups[0]["betas"])
    assert betas == tuple(cfg.model.optimizer.betas) == (0.7, 0.9)


def test_the_cycle_follows_the_data_the_batch_and_the_epochs(tiny_data):
    _, trainer, lrs = fit(
        ["experiment=fast", "data.batch_size=64", "trainer.max_epochs=3", *QUIET], tiny_data
    )
    assert trainer.estimated_stepping_batches == len(lrs) == 3 * 5  # ceil(320 / 64) = 5
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 15


@pytest.mark.slow
def test_sigkill_then_resume_auto_matches_an_uninterrupted_run_with_a_per_step_schedule(
    cli_env, tmp_path
):
    data = make_dataset(tmp_path / "data", n_train=4000, n_test=200)
    env = {**cli_env, "CNNLAB_DATA_DIR": str(data)}
    # a lower peak than the recipe's keeps the toy digits from being learnt exactly in one
    # epoch, so every epoch's metrics still carry the schedule's effect
    args = [
        "experiment=fast",
        *QUIET,
        "trainer.max_epochs=3",
        "data.batch_size=64",
        "model.optimizer.lr=1e-3",
        "data/augmentation=affine",
        "seed=5",
    ]

    straight = tmp_path / "logs" / "straight"
    proc = cnnlab([*args, f"hydra.run.dir={straight}"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]

    killed, marker = tmp_path / "logs" / "killed", tmp_path / "at_batch"
    # killed in its second epoch, before batch 25 of 50
    kill_paused([*args, f"hydra.run.dir={killed}"], env, marker, epoch=1, batch=25)
    assert results(killed)["status"] == "running"
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0

    proc = cnnlab([*args, "resume=auto", f"hydra.run.dir={killed}"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed, reference = results(killed), results(straight)
    assert resumed["status"] == "completed" and resumed["resumed_from"].endswith(".ckpt")
    assert resumed["epochs"] == reference["epochs"] == 3
    assert resumed["global_step"] == reference["global_step"] == 3 * 63  # ceil(4000 / 64)
    assert resumed["metrics"] == reference["metrics"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(resumed["history"]) == strip(reference["history"])
    # the schedule moved within the run: past its peak in the first epoch (step 56 of
    # 189), down to its floor by the last
    lrs = [r["lr"] for r in reference["history"]]
    assert 0.9e-3 < lrs[0] < 1e-3 and lrs[0] > lrs[1] > lrs[2] and lrs[2] < 1e-3 / 1000
    # no validation: every epoch has its row, none has a val/ key, nothing "best"
    assert all(
        "train/acc" in r and not any(k.startswith("val/") for k in r) for r in reference["history"]
    )
    assert not any(k.startswith("val/") for k in reference["metrics"])
    assert reference["best"] == {} and reference["best_checkpoint"] is None


@pytest.mark.slow  # 25-95 s each in CI
def test_cnnlab_rerun_of_a_per_step_schedule_is_identical(cli_env, tmp_path):
    run = tmp_path / "logs" / "original"
    proc = cnnlab(
        [
            "experiment=fast",
            *QUIET,
            "trainer.max_epochs=2",
            "data.batch_size=32",
            "data/augmentation=affine",
            f"hydra.run.dir={run}",
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = cnnlab([str(run), "--out", str(tmp_path / "same")], cli_env, tool="cnnlab-rerun")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "same" / "rerun.json").read_text())
    assert summary["identical"] and summary["differences"] == []


def test_validation_on_validates_the_80_percent_split_each_epoch(
    tiny_data, tmp_path, monkeypatch, capsys
):
    code, _, err = train_inprocess(
        [
            "experiment=fast",
            "data.validation=true",
            *QUIET,
            "trainer.max_epochs=2",
            "data.batch_size=32",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        monkeypatch,
        capsys,
        tiny_data,
        tmp_path / "logs",
    )
    assert code == 0, err[-2000:]
    r = results(tmp_path / "run")
    assert [row["step"] for row in r["history"]] == [8, 16]  # 256 of 320 images, batch 32
    assert all("val/acc" in row for row in r["history"])
    assert "val/acc_best" in r["metrics"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["experiment=fast", "model.scheduler.pct_start=1.5"], "model.scheduler.pct_start=1.5"),
        (["experiment=fast", "model.scheduler.total_steps=0"], "model.scheduler.total_steps=0"),
        (
            [
                "experiment=fast",
                "model/scheduler=cosine_warmup",
                "model.scheduler.anneal_strategy=cube",
            ],
            "model.scheduler.anneal_strategy='cube'",
        ),
        (["experiment=fast", "model.scheduler_interval=batch"], "model.scheduler_interval='batch'"),
        # nothing computes val/ metrics without validation: refused before training, not after
        (["data.validation=false"], "callbacks.model_checkpoint"),
        (["data.validation=false", "callbacks.model_checkpoint=null"], "callbacks.early_stopping"),
        (["data.validation=false", "callbacks=none"], "model.scheduler='ReduceLROnPlateau'"),
    ],
)
def test_a_bad_schedule_is_refused_in_one_line(
    overrides, message, tiny_data, tmp_path, monkeypatch, capsys
):
    code, out, err = train_inprocess(
        [*FAST, "logger=none", *overrides], monkeypatch, capsys, tiny_data, tmp_path / "logs"
    )
    assert code == 2, err[-2000:]
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "is invalid" in lines[0], err
    assert "Epoch" not in out  # nothing trained

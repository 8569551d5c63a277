"""Config keys that are each valid but do not fit together are refused before any data is
read: one line naming the key(s), exit 2, nothing trained, no earlier run touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import FAST, results, run_dirs, train_inprocess
from test_bad_data import assert_one_line, earlier_run, snapshot


def other_net_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint as cnnlab-train writes it, of a KerasCNN (the runs below build a MyCNN)."""
    from cnnlab.nets import KerasCNN

    path = tmp_path / "keras.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in KerasCNN().state_dict().items()}}, path)
    return path


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder\n")
    return path


# (overrides, the text the one line must contain: the key(s), the value, what is allowed)
CASES = {
    "plateau stepped per batch": (
        ["model/scheduler=plateau", "model.scheduler_interval=step"],
        "model.scheduler_interval='step' is invalid: model.scheduler (ReduceLROnPlateau) steps "
        "once per epoch",
    ),
    "onecycle with no step budget": (
        ["model/scheduler=onecycle", "++trainer.max_steps=0"],
        "trainer.max_steps=0 is invalid: leaves model.scheduler (OneCycleLR) no step",
    ),
    "onecycle with a negative peak": (
        ["model/scheduler=onecycle", "model.scheduler.max_lr=-0.01"],
        "model.scheduler.max_lr=-0.01 is invalid: a number > 0",
    ),
    "validation past the end of the epoch": (
        ["++trainer.val_check_interval=50", "trainer.limit_train_batches=4"],
        "trainer.val_check_interval=50 is invalid: at most the 4 training batches",
    ),
    "no validation, test the best": (
        ["data.validation=false", "callbacks=none", "model/scheduler=none", "test_ckpt=best"],
        "test_ckpt='best' is invalid: 'last' with data.validation=false",
    ),
    "no validation, early stopping on val": (
        ["data.validation=false", "callbacks.model_checkpoint=null", "test_ckpt=last"],
        "callbacks.early_stopping='EarlyStopping' is invalid: monitors val/loss",
    ),
    "no validation, checkpoint on val": (
        ["data.validation=false", "test_ckpt=last"],
        "callbacks.model_checkpoint='ModelCheckpoint' is invalid: monitors val/acc",
    ),
    "no validation, plateau on val": (
        ["data.validation=false", "callbacks=none", "test_ckpt=last"],
        "model.scheduler='ReduceLROnPlateau' is invalid: steps on val/loss",
    ),
    "a bad format spec in the checkpoint name": (
        ["callbacks.model_checkpoint.filename='epoch_{epoch:03q}'"],
        "callbacks.model_checkpoint.filename='epoch_{epoch:03q}' is invalid: a format string",
    ),
    "the csv logger under a file": (
        ["logger=csv", "logger.csv.save_dir={file}/logs"],
        "logger.csv.save_dir='{file}/logs' is invalid: a folder to write into, but {file} is "
        "a file",
    ),
    "another net's checkpoint": (
        ["ckpt_path={other_net}"],
        "ckpt_path='{other_net}' is invalid: a checkpoint of this model (MyCNN); it holds "
        "another net's weights",
    ),
    "a nan mean": (["data.mean=nan"], "data.mean=nan is invalid: a finite number"),
    "an infinite learning rate": (
        ["model.optimizer.lr=inf"],
        "model.optimizer.lr=inf is invalid: a finite number",
    ),
    "a nan deep in a list": (
        ["model.optimizer.betas=[0.9,nan]"],
        "model.optimizer.betas[1]=nan is invalid: a finite number",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_keys_that_do_not_fit_together_are_one_line(case, tmp_path, tiny_data, monkeypatch, capsys):
    overrides, says = CASES[case]
    files = {"file": a_file(tmp_path), "other_net": other_net_checkpoint(tmp_path)}
    for name, path in files.items():
        overrides = [o.replace(f"{{{name}}}", str(path)) for o in overrides]
        says = says.replace(f"{{{name}}}", str(path))
    logs = tmp_path / "logs"
    before = earlier_run(logs)
    code, out, err = train_inprocess(
        [*FAST, "logger=none", *overrides], monkeypatch, capsys, tiny_data, logs
    )
    assert code == 2, err[-3000:]
    assert_one_line(err, "cnnlab", says)
    assert "Epoch" not in out  # nothing trained
    for d in run_dirs(logs):
        if d.name != "earlier":
            assert results(d)["status"] == "failed" and says in results(d)["error"]
            assert not (d / "checkpoints").exists()
    now = snapshot(logs)
    assert {k: now[k] for k in before} == before


@pytest.mark.parametrize(
    "space, says",
    [
        (
            "model.net.dropout=interval(0.5,1.5)",
            "model.net.dropout='interval(0.5,1.5)' is invalid: its end model.net.dropout=1.5 is "
            "refused: a probability in [0, 1)",
        ),
        (
            "data.batch_size=range(0,64,16)",
            "data.batch_size='range(0,64,16)' is invalid: its end data.batch_size=0 is refused",
        ),
        (
            "data.batch_size=choice(0,64)",
            "data.batch_size='choice(0,64)' is invalid: its value data.batch_size=0 is refused",
        ),
    ],
)
def test_a_search_range_its_object_refuses_is_refused_before_any_trial(
    space, says, tmp_path, tiny_data, monkeypatch, capsys
):
    import time

    sweep = tmp_path / "sweep"
    t0 = time.monotonic()
    code, out, err = train_inprocess(
        [
            "-m",
            "hparams_search=optuna",
            *FAST,
            "logger=none",
            "hydra/sweeper/pruner=none",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep}",
            space,
        ],
        monkeypatch,
        capsys,
        tiny_data,
        tmp_path / "logs",
    )
    assert code == 2, err[-3000:]
    assert_one_line(err, "cnnlab", says)
    assert not list(sweep.glob("trial_*"))  # no trial ran
    assert time.monotonic() - t0 < 60


def test_the_class_check_leaves_the_net_and_the_rng_as_they_were():
    """Its forward pass of a blank image changes no module's mode (a frozen backbone's
    batchnorm kept in eval stays so), no running statistic and no random stream."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from cnnlab.config.checks import check_classes
    from cnnlab.nets import MyCNN

    net = MyCNN(num_classes=10)
    net.conv2.eval()  # one submodule in eval, the rest training
    modes = [m.training for m in net.modules()]
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    data = SimpleNamespace(num_classes=10, image_size=(1, 28, 28), name="mnist")
    cfg = OmegaConf.create({"model": {"net": {"num_classes": 10}}})
    rng = torch.random.get_rng_state()
    check_classes(cfg, SimpleNamespace(net=net, num_classes=10), data)
    assert [m.training for m in net.modules()] == modes
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in weights.items())
    assert torch.equal(torch.random.get_rng_state(), rng)

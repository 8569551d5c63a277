"""The Keras-grade model summary against the seeds' own tables (004's Keras summary(), 001's
worked example), a frozen backbone, the 80-column limit, and a run that prints it."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cnnlab.cli.train import CONF_DIR
from cnnlab.nets import KerasCNN, MyCNN
from cnnlab.nets.resnet import ResNet18Transfer
from cnnlab.training.classifier import Classifier
from cnnlab.training.summary import ModelSummary, render, summarize
from conftest import FAST, cnnlab, run_dirs

# seed 004's model.summary(), as printed there: (layer, output shape without None, params)
KERAS_SEED004 = [
    ("conv2d", (28, 28, 32), 320),
    ("conv2d_1", (28, 28, 64), 18_496),
    ("max_pooling2d", (14, 14, 64), 0),
    ("flatten", (12_544,), 0),
    ("dense", (128,), 1_605_760),
    ("dense_1", (10,), 1_290),
]
KERAS_TOTAL = 1_625_866

# seed 001's worked example, (H, W, C) as the seed writes them: conv 4×4×20 → pool →
# conv 3×3×40 → pool → conv 3×3×60 → pool → conv 2×2×80 → flatten 160 → 100
SEED001_SHAPES = [
    (36, 28, 20),
    (18, 14, 20),
    (16, 12, 40),
    (8, 6, 40),
    (6, 4, 60),
    (3, 2, 60),
    (2, 1, 80),
    (160,),
    (100,),
]
# the seed counts conv weights without biases
SEED001_CONV_WEIGHTS = [320, 7_200, 21_600, 19_200]


def channels_last(shape):
    return shape if len(shape) == 1 else (*shape[1:], shape[0])


def test_keras_cnn_matches_seed_004_row_by_row():
    s = summarize(KerasCNN(), (1, 28, 28))
    # KerasCNN flattens with torch.flatten in forward, not a module: Keras's Flatten row
    # (0 parameters) has no row of its own; every other row matches, in order
    keras = [(shape, n) for name, shape, n in KERAS_SEED004 if name != "flatten"]
    assert [(channels_last(r.shape), r.params) for r in s.rows] == keras
    assert [r.kind for r in s.rows] == ["Conv2d", "Conv2d", "MaxPool2d", "Linear", "Linear"]
    assert s.total == sum(n for *_, n in KERAS_SEED004) == KERAS_TOTAL
    assert (s.trainable, s.non_trainable) == (KERAS_TOTAL, 0)
    text = render(s)
    dense = next(line for line in text.splitlines() if line.startswith(" fc1 "))
    assert dense.endswith("1,605,760") and "128" in dense
    assert "Total params: 1,625,866" in text and "Non-trainable params: 0 " in text


def test_seed_001_worked_example_shapes_and_weights():
    cfg = OmegaConf.load(f"{CONF_DIR}/model/net/convnet_seed001.yaml")
    net = instantiate(cfg, _convert_="all")
    s = summarize(net, net.input_size)
    assert [channels_last(r.shape) for r in s.rows] == SEED001_SHAPES
    convs = [r for r in s.rows if r.kind == "Conv2d+ReLU"]
    out_channels = [r.shape[0] for r in convs]
    assert [r.params - c for r, c in zip(convs, out_channels)] == SEED001_CONV_WEIGHTS
    # the seed writes 100 * 160 = 160,000 for the last layer; it is 16,000 (+ 100 biases)
    assert s.rows[-1].params == 100 * 160 + 100
    assert [r.name for r in convs] == ["layers.0", "layers.2", "layers.4", "layers.6"]


def test_frozen_backbone_shows_its_non_trainable_count():
    model = Classifier(MyCNN(), partial(torch.optim.Adam, lr=1e-3), freeze="backbone")
    s = summarize(model.net, model.net.input_size)
    head = 128 * 10 + 10
    assert s.trainable == head and s.non_trainable == s.total - head == 420_352
    text = render(s)
    assert "Trainable params: 1,290" in text and "Non-trainable params: 420,352" in text
    trains = {
        line.split()[0]: line.split()[-2]
        for line in text.splitlines()
        if line.startswith(" conv") or line.startswith(" fc")
    }
    assert trains == {"conv1": "no", "conv2": "no", "fc1": "no", "fc2": "yes"}


def test_net_layers_only_no_metrics_no_identity_no_batch_dimension(capsys):
    model = Classifier(MyCNN(dropout=0.0), partial(torch.optim.Adam, lr=1e-3))
    trainer = type("T", (), {"is_global_zero": True})()
    ModelSummary().on_fit_start(trainer, model)
    text = capsys.readouterr().out
    assert "Accuracy" not in text and "MeanMetric" not in text and "Identity" not in text
    assert "1 × 32 × 28 × 28" not in text and "32 × 28 × 28" in text
    assert "K " not in text and " M " not in text  # exact numbers, never 18.5 K / 1.6 M


def test_fits_80_columns_by_dropping_columns_not_names():
    net = ResNet18Transfer()
    s = summarize(net, net.input_size)
    names = [r.name for r in s.rows]
    for width, dropped in ((80, set()), (60, {"Type"}), (44, {"Type", "Output shape"})):
        text = render(s, width)
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width, text
        header = next(line for line in lines if line.startswith(" Layer"))
        assert {c for c in ("Type", "Output shape") if c not in header} == dropped
        assert all(any(line.split()[0] == n for line in lines if line.strip()) for n in names)
    assert "backbone.layer4.1" in names and "BasicBlock" in render(s, 80)


def test_summary_leaves_the_net_and_the_random_stream_alone():
    net = MyCNN(dropout=0.5, batchnorm=True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    summarize(net, net.input_size)
    assert net.training and all(m.training for m in net.modules())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # BN stats too


@pytest.mark.parametrize(
    "args, name",
    [({"max_depth": 0}, "max_depth"), ({"width": 0}, "width"), ({"width": "80"}, "width")],
)
def test_bad_arguments_name_themselves(args, name):
    from cnnlab.errors import ArgumentError

    with pytest.raises(ArgumentError, match=name):
        ModelSummary(**args)


def test_a_net_whose_shape_pass_fails_still_gets_its_counts(capsys):
    class Odd(torch.nn.Module):  # takes two inputs: a zero image alone cannot go through
        input_size = (1, 28, 28)

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x, y):
            return self.fc(x + y)

    trainer = type("T", (), {"is_global_zero": True})()
    ModelSummary().on_fit_start(trainer, type("M", (), {"net": Odd()})())
    out = capsys.readouterr().out
    assert "Total params: 10 " in out and "no output shapes" in out


def test_a_keras_cnn_run_prints_the_exact_counts(cli_env, tmp_path):
    fast = [o for o in FAST if not o.startswith("callbacks.model_summary")]
    proc = cnnlab(
        ["model/net=keras_cnn", "logger=none", "trainer.max_epochs=1", *fast], cli_env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dense = [line for line in proc.stdout.splitlines() if line.startswith(" fc1 ")]
    assert dense and dense[0].endswith("1,605,760")
    assert "Total params: 1,625,866" in proc.stdout
    (run,) = run_dirs(tmp_path / "logs")
    assert "1,625,866" in (run / "model_summary.txt").read_text()

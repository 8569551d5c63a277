"""cnnlab-show: the feature maps it hooks out of a net, and the pictures it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import torch
import torch.nn.functional as F

from cnnlab.cli.show import feature_maps, pick_digits, show
from cnnlab.nets import ConvNet
from conftest import FAST, REPO, cnnlab, run_dirs

SPECS = [
    {"type": "fixed", "kernel": "mean", "size": 3},
    {"type": "conv", "channels": 4, "kernel": 3, "padding": "same", "activation": "relu"},
    {"type": "pool", "kind": "max", "size": 2},
    {"type": "conv", "channels": 6, "kernel": 3},
]


def test_feature_maps_hooks_each_conv_and_fixed_filter_in_order():
    torch.manual_seed(0)
    net = ConvNet(SPECS, input_size=[1, 10, 10], num_classes=3).eval()
    x = torch.rand(2, 1, 10, 10)
    captures, out = feature_maps(net, x)
    # the fixed filter keeps 10×10; the same-padded conv too, with 4 channels; the pool
    # halves it to 5×5 and the valid 3×3 conv gives 5 - 3 + 1 = 3
    assert [c.name for c in captures] == ["layers.0", "layers.1.0", "layers.3"]
    assert [tuple(c.output.shape) for c in captures] == [
        (2, 1, 10, 10),
        (2, 4, 10, 10),
        (2, 6, 3, 3),
    ]
    assert out.shape == (2, 3)
    assert torch.equal(captures[0].input, x)
    conv = net.layers[1][0]
    # the capture is the conv's own output: before the ReLU, so it has negatives
    expected = F.conv2d(captures[1].input, conv.weight, conv.bias, padding=1)
    assert torch.allclose(captures[1].output, expected) and (captures[1].output < 0).any()
    assert all(not m._forward_hooks for m in net.modules())  # hooks removed again


def test_pick_digits_takes_one_of_each_class_first():
    labels = torch.tensor([3, 3, 1, 3, 7, 1, 0])
    # first 3 at 0, first 1 at 2, first 7 at 4
    assert pick_digits(labels, 3) == [0, 2, 4]
    # only four classes: then the first index not yet taken
    assert pick_digits(labels, 5) == [0, 2, 4, 6, 1]


def png(path: Path):
    assert path.exists() and path.stat().st_size > 10_000, path
    return matplotlib.image.imread(path)


def test_show_writes_the_pictures(tmp_path):
    net = ConvNet(SPECS, input_size=[1, 28, 28], num_classes=10)
    raw = (torch.rand(3, 1, 28, 28) * 255).to(torch.uint8)
    written = show(net, raw.float() / 255, raw, [5, 0, 4], tmp_path)
    assert [p.name for p in written] == [
        "filters_layers_1_0.png",
        "fixed_01_layers_0.png",
        "maps_02_layers_1_0.png",
        "maps_03_layers_3.png",
    ]
    maps = png(tmp_path / "maps_02_layers_1_0.png")
    # three digits down, the input and 4 channels across
    assert maps.shape[1] > maps.shape[0] and maps.std() > 0.05


@pytest.mark.slow  # 25-95 s each in CI
def test_cnnlab_show_on_a_trained_checkpoint(cli_env, tmp_path):
    proc = cnnlab(["logger=none", *FAST, "model/net=convnet_fixed"], cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = run_dirs(tmp_path / "logs")
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab.cli.show", str(run / "checkpoints" / "last.ckpt")],
        env=cli_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = run / "show"  # beside checkpoints/ by default
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [
        "filters_layers_1_0.png",
        "fixed_01_layers_0.png",
        "maps_02_layers_1_0.png",
        "maps_03_layers_3_0.png",
    ]
    # 32 filters: a grid of 4 rows of 8, wider than high
    filters = png(out / "filters_layers_1_0.png")
    assert filters.shape[1] > 1.5 * filters.shape[0]
    # 4 digits down; the input and 16 of the 32 channels across
    maps = png(out / "maps_02_layers_1_0.png")
    assert maps.shape[1] > 3 * maps.shape[0] and maps.std() > 0.05
    # 4 digits down, before and after across: higher than wide
    fixed = png(out / "fixed_01_layers_0.png")
    assert fixed.shape[0] > 1.5 * fixed.shape[1] and fixed.std() > 0.05


def test_cnnlab_show_refuses_a_file_that_is_not_a_checkpoint(cli_env, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00 not a checkpoint")
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab.cli.show", str(bad)],
        env=cli_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("cnnlab-show: ") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "show").exists()

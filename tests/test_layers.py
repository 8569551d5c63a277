"""Seed 001's pooling kinds and seeds 000/004's fixed filters, on tensors small enough to
work out by hand; and the one-line errors a bad spec of them gets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.errors import ArgumentError
from cnnlab.nets import ConvNet, CrossChannelPool2d, FixedFilter2d, StochasticPool2d
from conftest import FAST, cnnlab, results, run_dirs

# One row of four 2×2 windows (size 2, stride 2), read column pair by column pair:
#   window 0: [1, 3 / 0, 0]    window 1: [0, 0 / 0, 0]
#   window 2: [-1, -2 / 3, 0]  window 3: [2, 2 / 2, 2]
WINDOWS = torch.tensor(
    [[[[1.0, 3.0, 0.0, 0.0, -1.0, -2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 2.0, 2.0]]]]
)


def test_stochastic_pool_at_test_time_is_the_probability_weighted_average():
    pool = StochasticPool2d(2).eval()
    # window 0: p = [1/4, 3/4, 0, 0]    -> 1*1/4 + 3*3/4 = 10/4 = 2.5
    # window 1: all zero (after a ReLU)  -> 0, not 0/0
    # window 2: negatives clamp to 0, so p = [0, 0, 1, 0] -> 3
    # window 3: p = 1/4 each              -> 2
    for seed in (0, 1):  # no randomness at test time: any RNG state gives the same
        torch.manual_seed(seed)
        assert pool(WINDOWS).tolist() == [[[[2.5, 0.0, 3.0, 2.0]]]]


def test_stochastic_pool_in_training_draws_in_proportion_to_the_values():
    pool = StochasticPool2d(2).train()
    torch.manual_seed(0)
    out = pool(WINDOWS.expand(40_000, 1, 2, 8))[:, 0, 0]
    w0, w1, w2, w3 = out.unbind(1)
    # window 0 outputs 1 with probability 1/4 and 3 with 3/4, never an element at 0;
    # 40,000 draws put the share of 3s within 0.005 of 0.75 (2 sigma); 0.02 is 9 sigma
    assert set(w0.tolist()) == {1.0, 3.0}
    assert w0.eq(3).float().mean().item() == pytest.approx(0.75, abs=0.02)
    # so its mean is the test-time expectation, 2.5
    assert w0.mean().item() == pytest.approx(2.5, abs=0.04)
    assert set(w1.tolist()) == {0.0}  # all zero: nothing to draw, outputs 0
    assert set(w2.tolist()) == {3.0}  # negatives are never drawn
    assert set(w3.tolist()) == {2.0}


def test_stochastic_pool_draws_are_seeded_by_the_global_rng():
    pool = StochasticPool2d(2).train()
    x = torch.rand(4, 3, 8, 8)
    torch.manual_seed(11)
    a = pool(x)
    torch.manual_seed(11)
    b = pool(x)
    torch.manual_seed(12)
    c = pool(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # a private generator gives the same draws as the global RNG with the same seed
    private = StochasticPool2d(2, generator=torch.Generator().manual_seed(11)).train()
    assert torch.equal(private(x), a)
    # every output is one of its window's four values
    windows = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(4, 3, 4, 4, 4)
    assert (windows == a.unsqueeze(-1)).any(-1).all()


def test_stochastic_pool_gradient_goes_to_the_drawn_element():
    x = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]], requires_grad=True)
    torch.manual_seed(3)
    out = StochasticPool2d(2).train()(x)
    out.sum().backward()
    drawn = (x.detach() == out.detach().reshape(1, 1, 1, 1)).float()
    assert x.grad.sum().item() == 1.0 and torch.equal(x.grad, drawn)


def test_cross_channel_pool_takes_the_max_of_adjacent_channel_groups():
    # four channels of a 1×2 map
    x = torch.tensor([[[[1.0, -2.0]], [[0.0, 5.0]], [[7.0, 7.0]], [[-1.0, 8.0]]]])
    # groups of 2: max(c0, c1) = [1, 5], max(c2, c3) = [7, 8]
    assert CrossChannelPool2d(2)(x).tolist() == [[[[1.0, 5.0]], [[7.0, 8.0]]]]
    # one group of 4: [max(1, 0, 7, -1), max(-2, 5, 7, 8)] = [7, 8]
    assert CrossChannelPool2d(4)(x).tolist() == [[[[7.0, 8.0]]]]
    net = ConvNet(
        [
            {"type": "conv", "channels": 6, "kernel": 3, "padding": "same"},
            {"type": "pool", "kind": "cross_channel", "size": 3},
        ],
        num_classes=None,
    )
    assert net(torch.zeros(2, 1, 5, 5)).shape == (2, 2, 5, 5)


def seed004_sharpen(image: np.ndarray) -> np.ndarray:
    """Seed 004's loop, as written there: zero-pad by 1, window * filter, sum, clip."""
    filt = np.array([[-1, -1, -1], [-1, 9, -1], [-1, -1, -1]])
    image_pad = np.pad(image, ((1, 1), (1, 1)))
    convolution = np.zeros_like(image)
    for row in range(image.shape[0]):
        for col in range(image.shape[1]):
            window = image_pad[row : row + 3, col : col + 3]
            convolution[row, col] = np.clip(np.sum(window * filt), 0, 255)
    return convolution


def test_sharpening_kernel_is_seed004s_computation():
    image = np.random.default_rng(4).integers(0, 256, size=(9, 11), dtype=np.uint8)
    expected = seed004_sharpen(image.astype(np.int64))
    layer = FixedFilter2d("sharpen", padding="same", clip=[0, 255])
    got = layer(torch.from_numpy(image).float()[None, None])[0, 0]
    assert np.array_equal(got.numpy(), expected.astype(np.float32))
    # and one pixel by hand: a lone 100 in zeros -> centre 9*100 = 900, clipped to 255;
    # its 8 neighbours see -1*100 -> clipped to 0; everything else stays 0
    dot = torch.zeros(1, 1, 5, 5)
    dot[0, 0, 2, 2] = 100
    out = layer(dot)[0, 0]
    assert out[2, 2].item() == 255 and out.sum().item() == 255
    # without clip the neighbours keep their -100
    assert FixedFilter2d("sharpen")(dot)[0, 0, 1:4, 1:4].sum().item() == 900 - 8 * 100


def test_mean_filter_same_and_valid_padding():
    x = torch.full((1, 1, 4, 4), 9.0)
    # valid: every 3×3 window holds nine 9s -> 9, and 4 - 3 + 1 = 2 per side
    assert FixedFilter2d("mean", size=3, padding="valid")(x).tolist() == [
        [[[9.0, 9.0], [9.0, 9.0]]]
    ]
    # same: zero padding; a corner window holds four 9s -> 36/9 = 4, an edge one six -> 6
    same = FixedFilter2d("mean", size=3)(x)[0, 0]
    assert same.tolist() == [
        [4.0, 6.0, 6.0, 4.0],
        [6.0, 9.0, 9.0, 6.0],
        [6.0, 9.0, 9.0, 6.0],
        [4.0, 6.0, 6.0, 4.0],
    ]


def test_gaussian_kernel_values():
    w = FixedFilter2d("gaussian", size=3, sigma=1.0).weight
    # exp(-(dx² + dy²) / 2σ²): centre 1, edge neighbours e^-0.5, corners e^-1, normalized
    z = 1 + 4 * math.exp(-0.5) + 4 * math.exp(-1)
    assert w[1, 1].item() == pytest.approx(1 / z)
    assert w[0, 1].item() == pytest.approx(math.exp(-0.5) / z)
    assert w[0, 0].item() == pytest.approx(math.exp(-1) / z)
    assert w.sum().item() == pytest.approx(1.0)
    # a wider σ spreads the weight: the centre share falls
    assert FixedFilter2d("gaussian", size=3, sigma=3.0).weight[1, 1] < w[1, 1]


def test_explicit_matrix_kernel_is_a_cross_correlation_per_channel():
    # [[1, -1]]: each output is x[j] - x[j+1] (window times kernel, not flipped)
    x = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]], [[5.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]])
    out = FixedFilter2d([[1, -1]], padding="valid")(x)
    # channel 0: [0-1, 1-3] and [2-2, 2-2]; channel 1: [5-0, 0-0] and [0-0, 0-1]
    assert out.tolist() == [[[[-1.0, -2.0], [0.0, 0.0]], [[5.0, 0.0], [0.0, -1.0]]]]


def test_fixed_filter_does_not_train_and_survives_a_checkpoint(tmp_path):
    spec = [
        {"type": "fixed", "kernel": "gaussian", "size": 5, "sigma": 1.5},
        {"type": "conv", "channels": 4, "kernel": 3},
    ]
    net = ConvNet(spec, input_size=[1, 8, 8], num_classes=3)
    # parameters: conv 1*4*9 + 4 = 40, head (6*6*4)*3 + 3 = 435; the filter adds none
    assert sum(p.numel() for p in net.parameters()) == 40 + 435
    assert "layers.0.weight" in net.state_dict()
    kernel = net.layers[0].weight.clone()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    net(x).sum().backward()
    opt.step()
    assert torch.equal(net.layers[0].weight, kernel)
    assert x.grad.abs().sum() > 0  # the filter still passes gradients to what is before it
    torch.save(net.state_dict(), tmp_path / "net.pt")
    other = ConvNet([{**spec[0], "sigma": 0.5}, spec[1]], input_size=[1, 8, 8], num_classes=3)
    assert not torch.equal(other.layers[0].weight, kernel)
    other.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    assert torch.equal(other.layers[0].weight, kernel)


CONV6 = {"type": "conv", "channels": 6, "kernel": 3, "padding": "same"}


@pytest.mark.parametrize(
    "layers, name, allowed",
    [
        (
            [{"type": "pool", "kind": "median"}],
            "layers[0].kind",
            "one of ['max', 'avg', 'global_max', 'global_avg', 'stochastic', 'cross_channel']",
        ),
        ([{"type": "fixed", "kernel": "gaussian", "size": 4}], "layers[0].size", "an odd integer"),
        ([{"type": "fixed", "kernel": "gaussian", "size": [3, 5]}], "layers[0].size", "square"),
        ([{"type": "fixed", "kernel": "gaussian", "sigma": 0}], "layers[0].sigma", "> 0"),
        ([{"type": "fixed", "kernel": "gaussian", "sigma": -1.0}], "layers[0].sigma", "> 0"),
        (
            [{"type": "fixed", "kernel": "mean", "size": 29}],
            "layers[0].size",
            "a kernel that fits the layer's input of shape [1, 28, 28]",
        ),
        (
            [
                CONV6,
                {"type": "pool", "size": 4},
                {"type": "fixed", "kernel": [[1, 0, 0, 0, 0, 0, 0, 0]], "padding": "valid"},
            ],
            "layers[2].kernel",
            "fits the layer's input of shape [6, 7, 7]",
        ),
        (
            [{"type": "fixed", "kernel": "blur"}],
            "layers[0].kernel",
            "'mean', 'gaussian', 'sharpen'",
        ),
        ([{"type": "fixed", "kernel": [[1, 2], [3]]}], "layers[0].kernel", "equal-length rows"),
        ([{"type": "fixed", "kernel": "sharpen", "sigma": 1.0}], "layers[0].sigma", "only for"),
        ([{"type": "fixed", "kernel": "mean", "padding": "full"}], "layers[0].padding", "'same'"),
        ([{"type": "fixed", "kernel": "mean", "clip": [255, 0]}], "layers[0].clip", "low < high"),
        (
            [CONV6, {"type": "pool", "kind": "cross_channel", "size": 4}],
            "layers[1].size",
            "divides the 6 input channels: one of [1, 2, 3, 6]",
        ),
        ([{"type": "pool", "kind": "stochastic", "size": 0}], "layers[0].size", "an integer >= 1"),
    ],
)
def test_bad_pool_and_filter_specs_name_the_layer_key_and_what_is_allowed(layers, name, allowed):
    with pytest.raises(ArgumentError) as err:
        ConvNet(layers)
    assert err.value.name == name
    assert allowed in err.value.allowed
    assert "\n" not in str(err.value)


def test_a_bad_pool_kind_exits_2_with_one_line(cli_env):
    proc = cnnlab(
        [
            "logger=none",
            *FAST,
            "model/net=convnet",
            "model.net.layers=[{type: conv, channels: 4, kernel: 3}, {type: pool, kind: median}]",
        ],
        cli_env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "layers[1].kind='median' is invalid: one of ['max', 'avg'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any((d / "checkpoints").exists() for d in run_dirs(Path(cli_env["CNNLAB_LOG_DIR"])))


def test_a_net_of_the_new_layers_trains_a_step():
    net = ConvNet(
        [
            {"type": "fixed", "kernel": "gaussian", "size": 3, "sigma": 1.0},
            {"type": "conv", "channels": 8, "kernel": 3, "padding": "same", "activation": "relu"},
            {"type": "pool", "kind": "stochastic"},
            {"type": "pool", "kind": "cross_channel", "size": 2},
        ],
        input_size=[1, 12, 12],
        num_classes=3,
    )
    assert isinstance(net.layers[0], FixedFilter2d)
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(net(torch.rand(4, 1, 12, 12)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_a_run_with_stochastic_pooling_is_exact_on_rerun(cli_env, tmp_path):
    # seed 000's net with both pools stochastic; the draws come from the global RNG that
    # cnnlab reseeds from (seed, epoch), so the same seed trains the same, step for step
    args = [
        "logger=none",
        *FAST,
        "model/net=convnet",
        "model.net.layers.1.kind=stochastic",
        "model.net.layers.3.kind=stochastic",
        "seed=3",
    ]
    for _ in range(2):
        proc = cnnlab(args, cli_env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = (results(d) for d in run_dirs(tmp_path / "logs"))
    strip = [{k: v for k, v in row.items() if k != "time_s"} for row in first["history"]]
    assert strip == [{k: v for k, v in row.items() if k != "time_s"} for row in second["history"]]
    assert first["metrics"] == second["metrics"]
    config = (run_dirs(tmp_path / "logs")[0] / "config.yaml").read_text()
    assert config.count("kind: stochastic") == 2

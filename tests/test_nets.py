"""Networks: the parameter counts and layer shapes the seeds print."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ArgumentError
from cnnlab.nets import ConvNet, KerasCNN, LeNet5, MyCNN


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_keras_cnn_has_seed004_parameter_count():
    net = KerasCNN()
    # seed 004's summary: 320 + 18,496 + 0 + 0 + 1,605,760 + 1,290
    assert [n_params(m) for m in (net.conv1, net.conv2, net.fc1, net.fc2)] == [
        320,
        18496,
        1605760,
        1290,
    ]
    assert n_params(net) == 1_625_866


def test_mycnn_parameter_count_by_hand():
    # conv1 1*32*9+32 = 320; conv2 32*64*9+64 = 18,496; fc1 3136*128+128 = 401,536; fc2 1,290
    assert n_params(MyCNN()) == 320 + 18_496 + 401_536 + 1_290 == 421_642
    # BatchNorm2d adds weight+bias per channel: 2*32 + 2*64
    assert n_params(MyCNN(batchnorm=True)) == 421_642 + 192


def test_mycnn_switches_put_layers_where_seed003_does():
    net = MyCNN(dropout=0.5, batchnorm=True)
    assert isinstance(net.bn1, nn.BatchNorm2d) and net.bn1.num_features == 32
    assert isinstance(net.dropout, nn.Dropout) and net.dropout.p == 0.5
    assert isinstance(MyCNN().dropout, nn.Identity) and isinstance(MyCNN().bn1, nn.Identity)
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_mycnn_seed003_init():
    torch.manual_seed(0)
    net = MyCNN()
    assert net.conv2.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert all(float(m.bias.abs().sum()) == 0 for m in (net.conv1, net.conv2, net.fc1, net.fc2))
    bound = (6 / (3136 + 128)) ** 0.5  # Xavier-uniform bound of fc1
    assert net.fc1.weight.abs().max().item() <= bound
    assert net.fc1.weight.abs().max().item() > 0.9 * bound


def test_lenet5_classic_parameter_count():
    # C1 156 + C3 2,416 + F5 48,120 + F6 10,164 + out 850
    assert n_params(LeNet5()) == 61_706
    assert LeNet5()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def layer_shapes(net: ConvNet, size) -> list[list[int]]:
    """Output shape of each top-level layer, in the seeds' H×W×C order."""
    shapes = []
    x = torch.zeros(1, *size)
    for layer in net.layers:
        x = layer(x)
        shapes.append([x.shape[2], x.shape[3], x.shape[1]] if x.dim() == 4 else [x.shape[1]])
    return shapes


def test_convnet_reproduces_seed001_worked_example():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from cnnlab.cli.train import CONF_DIR

    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["model/net=convnet_seed001"])
    net = instantiate(cfg.model.net)
    assert layer_shapes(net, (1, 39, 31)) == [
        [36, 28, 20],
        [18, 14, 20],
        [16, 12, 40],
        [8, 6, 40],
        [6, 4, 60],
        [3, 2, 60],
        [2, 1, 80],
        [160],
        [100],
    ]
    # parameters as seed 001 counts them: in*FH*FW*out (+ out biases)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [m.weight.numel() for m in convs] == [
        1 * 4 * 4 * 20,
        20 * 3 * 3 * 40,
        40 * 3 * 3 * 60,
        60 * 2 * 2 * 80,
    ]


def test_convnet_expresses_seed000_sequential():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from cnnlab.cli.train import CONF_DIR

    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["model/net=convnet"])
    net = instantiate(cfg.model.net)
    # Keras summary of that model: 320 + 18,496 + 313,700 + 1,010 = 333,526
    assert n_params(net) == 333_526
    assert any(isinstance(m, nn.Dropout) and m.p == 0.4 for m in net.modules())


@pytest.mark.parametrize(
    "layers, message",
    [
        # each message starts with the layer's index and key, and the offending value
        (
            [{"type": "conv", "channels": 8, "kernel": 3, "padding": "full"}],
            "layers[0].padding='full'",
        ),
        ([{"type": "pool", "kind": "median"}], "layers[0].kind='median'"),
        ([{"type": "dense", "features": 3}], "layers[0].type='dense'"),
        ([{"type": "conv", "kernel": 3}], "layers[0].channels=None is invalid: required"),
        (
            [{"type": "conv", "channels": 8, "kernel": 30}],
            "layers[0].kernel=30 is invalid: a kernel that fits the layer's input of shape [1, 28, 28]",
        ),
        (["flatten", {"type": "pool"}], "layers[1].type='pool' is invalid: a pool needs"),
        # what no check foresees is still caught by running the layer: a 40×40 pool on 28×28
        (
            [{"type": "pool", "size": 40}],
            "layers[0]={'type': 'pool', 'size': 40} is invalid: a "
            "layer that can take an input of shape [1, 28, 28]",
        ),
        (
            [{"type": "linear", "features": 3}],
            "layers[0].type='linear' is invalid: a linear needs a flatten",
        ),
        (
            [{"type": "dropout", "p": 1.5}],
            "layers[0].p=1.5 is invalid: a dropout probability in [0, 1)",
        ),
        (
            [{"type": "conv", "channels": 8, "kernel": 3, "activation": "gelu"}],
            "layers[0].activation='gelu'",
        ),
        ([{"type": "conv", "channels": 8, "kernel": 3, "dilation": 2}], "layers[0].dilation=2"),
    ],
)
def test_convnet_rejects_bad_specs_naming_the_layer(layers, message):
    with pytest.raises(ArgumentError) as err:
        ConvNet(layers)
    assert str(err.value).startswith(message)


def test_convnet_error_names_the_right_layer():
    ok = {"type": "conv", "channels": 4, "kernel": 3, "padding": "same"}
    with pytest.raises(ArgumentError) as err:
        ConvNet([ok, ok, {"type": "pool", "kind": "median"}])
    assert (err.value.name, err.value.value) == ("layers[2].kind", "median")


def test_convnet_pooling_kinds_and_padding():
    net = ConvNet(
        [
            {"type": "conv", "channels": 4, "kernel": 3, "padding": "same"},
            {"type": "batchnorm"},
            {"type": "act", "fn": "tanh"},
            {"type": "pool", "kind": "avg", "size": 2},
            {"type": "conv", "channels": 6, "kernel": 3, "stride": 2, "padding": 1},
            {"type": "pool", "kind": "global_max"},
            {"type": "flatten"},
        ],
        num_classes=10,
    )
    assert layer_shapes(net, (1, 28, 28))[:5] == [
        [28, 28, 4],
        [28, 28, 4],
        [28, 28, 4],
        [14, 14, 4],
        [7, 7, 6],
    ]
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_convnet_is_built_in_training_mode():
    # the shape pass runs each layer in eval mode, and Lightning (2.6) does not switch
    # modules back to training mode: a net left so would train without dropout
    net = ConvNet(
        ["flatten", {"type": "dropout", "p": 0.5}], input_size=[1, 4, 4], num_classes=None
    )
    assert all(m.training for m in net.modules())
    torch.manual_seed(0)
    out = net(torch.ones(8, 1, 4, 4))
    # dropout zeroes about half of the 128 ones and doubles the rest
    assert set(out.unique().tolist()) == {0.0, 2.0}

"""A network from a list of layer specs, enough to express every network in the seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
POOLS = ("max", "avg", "global_max", "global_avg")
LAYER_TYPES = ("conv", "pool", "act", "batchnorm", "dropout", "flatten", "linear")


class ConvNet(nn.Module):
    """Sequential stack built from specs such as ``{type: conv, channels: 32, kernel: 3}``.

    Shapes are inferred by pushing a dummy input through each layer as it is added, so a
    ``linear`` needs only its output size and a spec that cannot take its input fails at
    construction, naming the layer.
    """

    def __init__(self, layers: Sequence[Mapping[str, Any] | str],
                 input_size: Sequence[int] = (1, 28, 28), num_classes: int | None = 10,
                 init: str = "default") -> None:
        super().__init__()
        self.input_size = tuple(int(v) for v in input_size)
        if len(self.input_size) != 3:
            raise ValueError(f"convnet.input_size={list(input_size)} must be [channels, height, width]")
        modules: list[nn.Module] = []
        x = torch.zeros(1, *self.input_size)
        for i, spec in enumerate(layers):
            spec = {"type": spec} if isinstance(spec, str) else dict(spec)
            module = _build(i, spec, x)
            with torch.no_grad():
                try:
                    x = module.eval()(x)
                except RuntimeError as err:
                    raise ValueError(
                        f"convnet layer {i} ({spec}) cannot take an input of shape "
                        f"{list(x.shape[1:])}: {err}") from None
            if x.numel() == 0:
                raise ValueError(f"convnet layer {i} ({spec}) shrinks the input to {list(x.shape[1:])}")
            modules.append(module)
        if num_classes is not None:
            if x.dim() != 2:
                modules.append(nn.Flatten())
                x = x.flatten(1)
            modules.append(nn.Linear(x.shape[1], num_classes))
        self.layers = nn.Sequential(*modules)
        linears = [n for n, m in self.layers.named_children() if isinstance(m, nn.Linear)]
        self.head_name = f"layers.{linears[-1]}" if linears else None
        if init == "seed003":
            from cnnlab.nets.mycnn import seed003_init
            seed003_init(self)
        elif init != "default":
            raise ValueError(f"convnet.init={init!r} is not one of ['default', 'seed003']")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _build(i: int, spec: dict[str, Any], x: torch.Tensor) -> nn.Module:
    kind = spec.pop("type", None)
    where = f"convnet layer {i}"
    try:
        if kind == "conv":
            pad = spec.pop("padding", "valid")
            stride = spec.pop("stride", 1)
            if isinstance(pad, str) and pad not in ("same", "valid"):
                raise ValueError(f"{where}: padding={pad!r} is not 'same', 'valid' or an int")
            if pad == "same" and stride != 1:
                raise ValueError(f"{where}: padding='same' needs stride 1, got stride={stride}")
            conv = nn.Conv2d(x.shape[1], spec.pop("channels"), spec.pop("kernel"), stride=stride,
                             padding=pad, bias=spec.pop("bias", True))
            act = spec.pop("activation", None)
            module = conv if act is None else nn.Sequential(conv, _activation(where, act))
        elif kind == "pool":
            pool = spec.pop("kind", "max")
            size = spec.pop("size", 2)
            stride = spec.pop("stride", None)
            if pool == "max":
                module = nn.MaxPool2d(size, stride=stride)
            elif pool == "avg":
                module = nn.AvgPool2d(size, stride=stride)
            elif pool == "global_max":
                module = nn.AdaptiveMaxPool2d(1)
            elif pool == "global_avg":
                module = nn.AdaptiveAvgPool2d(1)
            else:
                raise ValueError(f"{where}: pool kind={pool!r} is not one of {list(POOLS)}")
        elif kind == "act":
            module = _activation(where, spec.pop("fn", "relu"))
        elif kind == "batchnorm":
            module = nn.BatchNorm2d(x.shape[1]) if x.dim() == 4 else nn.BatchNorm1d(x.shape[1])
        elif kind == "dropout":
            p = float(spec.pop("p", 0.5))
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{where}: dropout p={p} is outside [0, 1)")
            module = nn.Dropout(p)
        elif kind == "flatten":
            module = nn.Flatten()
        elif kind == "linear":
            if x.dim() != 2:
                raise ValueError(f"{where}: linear needs a flatten before it (input {list(x.shape[1:])})")
            linear = nn.Linear(x.shape[1], spec.pop("features"))
            act = spec.pop("activation", None)
            module = linear if act is None else nn.Sequential(linear, _activation(where, act))
        else:
            raise ValueError(f"{where}: type={kind!r} is not one of {list(LAYER_TYPES)}")
    except KeyError as err:
        raise ValueError(f"{where} ({kind}) needs the key {err.args[0]!r}") from None
    if spec:
        raise ValueError(f"{where} ({kind}): unknown keys {sorted(spec)}")
    return module


def _activation(where: str, name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"{where}: activation={name!r} is not one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()

"""A network from a list of layer specs, enough to express every network in the seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ArgumentError
from cnnlab.nets.layers import CrossChannelPool2d, FixedFilter2d, StochasticPool2d, _is_int, _is_num
from cnnlab.nets.mycnn import seed003_init

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
POOLS = ("max", "avg", "global_max", "global_avg", "stochastic", "cross_channel")
LAYER_TYPES = ("conv", "fixed", "pool", "act", "batchnorm", "dropout", "flatten", "linear")
# the keys each layer type takes (besides `type`), and what a required one is
KEYS = {
    "conv": ("channels", "kernel", "stride", "padding", "bias", "activation"),
    "fixed": ("kernel", "size", "sigma", "padding", "clip"),
    "pool": ("kind", "size", "stride"),
    "act": ("fn",),
    "batchnorm": (),
    "dropout": ("p",),
    "flatten": (),
    "linear": ("features", "activation"),
}
REQUIRED = {
    ("conv", "channels"): "the number of output channels, an integer >= 1",
    ("conv", "kernel"): "the kernel size, an integer >= 1 or [height, width]",
    ("fixed", "kernel"): "one of ['mean', 'gaussian', 'sharpen'] or a matrix",
    ("linear", "features"): "the number of output features, an integer >= 1",
}


class ConvNet(nn.Module):
    """Sequential stack built from specs such as ``{type: conv, channels: 32, kernel: 3}``.

    Shapes are inferred by pushing a dummy input through each layer as it is added, so a
    ``linear`` needs only its output size and a spec that cannot take its input fails at
    construction. Every bad spec raises :class:`~cnnlab.errors.ArgumentError` named after
    the layer and key, e.g. ``layers[3].kind``.

    ``activation`` is the activation of every ``conv`` and ``linear`` spec that has no
    ``activation`` key (a spec says ``activation: null`` for none); with the default
    ``None`` such layers have none. One key, ``model.net.activation``, so sweeps the
    activation of a whole stack.
    """

    def __init__(
        self,
        layers: Sequence[Mapping[str, Any] | str],
        input_size: Sequence[int] = (1, 28, 28),
        num_classes: int | None = 10,
        init: str = "default",
        activation: str | None = None,
    ) -> None:
        super().__init__()
        size = list(input_size) if isinstance(input_size, Sequence) else input_size
        if not (
            isinstance(size, list) and len(size) == 3 and all(_is_int(v) and v >= 1 for v in size)
        ):
            raise ArgumentError("input_size", size, "[channels, height, width], integers >= 1")
        self.input_size = tuple(size)
        if activation is not None and activation not in ACTIVATIONS:
            raise ArgumentError("activation", activation, f"null or one of {sorted(ACTIVATIONS)}")
        if init not in ("default", "seed003"):
            raise ArgumentError("init", init, "one of ['default', 'seed003']")
        modules: list[nn.Module] = []
        x = torch.zeros(1, *self.input_size)
        for i, spec in enumerate(layers):
            spec = {"type": spec} if isinstance(spec, str) else dict(spec)
            where = f"layers[{i}]"
            try:
                module = _build(dict(spec), x, activation)
            except ArgumentError as err:  # a layer class names its own argument
                raise ArgumentError(f"{where}.{err.name}", err.value, err.allowed) from None
            with torch.no_grad():
                try:
                    x = module.eval()(x)  # back in training mode below
                except RuntimeError as err:
                    raise ArgumentError(
                        where,
                        spec,
                        f"a layer that can take an input of shape "
                        f"{list(x.shape[1:])}; torch says: {str(err).splitlines()[0]}",
                    ) from None
            if x.numel() == 0:
                raise ArgumentError(
                    where,
                    spec,
                    f"a layer that does not shrink its input "
                    f"to nothing (it gives {list(x.shape[1:])})",
                )
            modules.append(module)
        if num_classes is not None:
            if x.dim() != 2:
                modules.append(nn.Flatten())
                x = x.flatten(1)
            modules.append(nn.Linear(x.shape[1], num_classes))
        self.layers = nn.Sequential(*modules)
        linears = [n for n, m in self.layers.named_children() if isinstance(m, nn.Linear)]
        self.head_name = f"layers.{linears[-1]}" if linears else None
        # the shape pass left every layer in eval mode; Lightning does not switch modules
        # to training mode, so without this dropout, batchnorm and stochastic pooling
        # would train as they evaluate
        self.train()
        if init == "seed003":
            seed003_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _build(spec: dict[str, Any], x: torch.Tensor, default_act: str | None) -> nn.Module:
    """One layer from its spec; ArgumentError names are relative to the layer."""
    kind = spec.pop("type", None)
    if kind not in KEYS:
        raise ArgumentError("type", kind, f"one of {list(LAYER_TYPES)}")
    unknown = sorted(set(spec) - set(KEYS[kind]))
    if unknown:
        raise ArgumentError(
            unknown[0],
            spec[unknown[0]],
            f"not a key of a {kind} layer, which takes {list(KEYS[kind])}",
        )
    for (t, key), what in REQUIRED.items():
        if t == kind and key not in spec:
            raise ArgumentError(key, None, f"required for a {kind} layer: {what}")
    act = spec.pop("activation", default_act)
    if kind == "conv":
        return _conv(spec, x, act)
    if kind == "fixed":
        return _fixed(spec, x)
    if kind == "pool":
        return _pool(spec, x)
    if kind == "act":
        fn = spec.get("fn", "relu")
        if fn not in ACTIVATIONS:
            raise ArgumentError("fn", fn, f"one of {sorted(ACTIVATIONS)}")
        return ACTIVATIONS[fn]()
    if kind == "batchnorm":
        return nn.BatchNorm2d(x.shape[1]) if x.dim() == 4 else nn.BatchNorm1d(x.shape[1])
    if kind == "dropout":
        p = spec.get("p", 0.5)
        if not (_is_num(p) and 0.0 <= p < 1.0):
            raise ArgumentError("p", p, "a dropout probability in [0, 1)")
        return nn.Dropout(float(p))
    if kind == "flatten":
        return nn.Flatten()
    # linear
    if x.dim() != 2:
        raise ArgumentError(
            "type", kind, f"a linear needs a flatten before it (its input is {list(x.shape[1:])})"
        )
    if not (_is_int(spec["features"]) and spec["features"] >= 1):
        raise ArgumentError("features", spec["features"], REQUIRED["linear", "features"])
    linear = nn.Linear(x.shape[1], spec["features"])
    return linear if act is None else nn.Sequential(linear, _activation(act))


def _conv(spec: dict[str, Any], x: torch.Tensor, act: str | None) -> nn.Module:
    pad, stride = spec.get("padding", "valid"), spec.get("stride", 1)
    if not (pad in ("same", "valid") or (_is_int(pad) and pad >= 0)):
        raise ArgumentError("padding", pad, "'same', 'valid' or an integer >= 0")
    if not (_is_int(stride) and stride >= 1):
        raise ArgumentError("stride", stride, "an integer >= 1")
    if pad == "same" and stride != 1:
        raise ArgumentError(
            "padding", pad, f"'same' needs stride 1 (stride={stride}); use an integer padding"
        )
    if not (_is_int(spec["channels"]) and spec["channels"] >= 1):
        raise ArgumentError("channels", spec["channels"], REQUIRED["conv", "channels"])
    k = spec["kernel"]
    if not (
        _is_int(k)
        and k >= 1
        or isinstance(k, Sequence)
        and len(k) == 2
        and all(_is_int(v) and v >= 1 for v in k)
    ):
        raise ArgumentError("kernel", k, REQUIRED["conv", "kernel"])
    if x.dim() != 4:
        raise ArgumentError(
            "type",
            "conv",
            f"a conv needs a [channels, height, width] input (it gets {list(x.shape[1:])})",
        )
    kh, kw = (k, k) if _is_int(k) else k
    p = 0 if pad in ("same", "valid") else pad
    if pad != "same" and (kh > x.shape[2] + 2 * p or kw > x.shape[3] + 2 * p):
        raise ArgumentError(
            "kernel",
            k,
            f"a kernel that fits the layer's input of shape "
            f"{list(x.shape[1:])} with padding {pad!r}",
        )
    conv = nn.Conv2d(
        x.shape[1],
        spec["channels"],
        k if _is_int(k) else tuple(k),
        stride=stride,
        padding=pad,
        bias=bool(spec.get("bias", True)),
    )
    return conv if act is None else nn.Sequential(conv, _activation(act))


def _fixed(spec: dict[str, Any], x: torch.Tensor) -> nn.Module:
    module = FixedFilter2d(**spec)
    kh, kw = module.kernel_size
    if x.dim() != 4 or kh > x.shape[2] or kw > x.shape[3]:
        key = "kernel" if module.kernel_name == "matrix" else "size"
        raise ArgumentError(
            key,
            spec.get(key, list(module.kernel_size)),
            f"a kernel that fits the layer's input of shape {list(x.shape[1:])} (here {kh}×{kw})",
        )
    return module


def _pool(spec: dict[str, Any], x: torch.Tensor) -> nn.Module:
    pool = spec.get("kind", "max")
    size, stride = spec.get("size", 2), spec.get("stride")
    if pool not in POOLS:
        raise ArgumentError("kind", pool, f"one of {list(POOLS)}")
    if x.dim() != 4:
        raise ArgumentError(
            "type",
            "pool",
            f"a pool needs a [channels, height, width] input (it gets {list(x.shape[1:])})",
        )
    if pool.startswith("global_"):
        return nn.AdaptiveMaxPool2d(1) if pool == "global_max" else nn.AdaptiveAvgPool2d(1)
    if pool == "cross_channel":
        if stride is not None:
            raise ArgumentError(
                "stride",
                stride,
                "null: cross_channel pooling groups channels, `size` adjacent channels at a time",
            )
        return CrossChannelPool2d(size, in_channels=x.shape[1])
    if not (_is_int(size) and size >= 1):
        raise ArgumentError("size", size, "a window size, an integer >= 1")
    if stride is not None and not (_is_int(stride) and stride >= 1):
        raise ArgumentError("stride", stride, "null (= size) or an integer >= 1")
    if pool == "max":
        return nn.MaxPool2d(size, stride=stride)
    if pool == "avg":
        return nn.AvgPool2d(size, stride=stride)
    return StochasticPool2d(size, stride=stride)


def _activation(name: Any) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ArgumentError("activation", name, f"null or one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()

"""Start a net from another run's weights, swap its head, and freeze what should not train."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from cnnlab.checkpoints import load_checkpoint
from cnnlab.errors import BadInput

FREEZE_MODES = ("none", "backbone")


def head_name(net: nn.Module) -> str:
    """Dotted name of the net's classification head (its last Linear unless it says)."""
    name = getattr(net, "head_name", None)
    if name:
        return name
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(net).__name__} has no Linear layer to use as a head")
    return linears[-1]


def init_from_checkpoint(net: nn.Module, path: str | Path) -> list[str]:
    """Copy the net's weights from a cnnlab checkpoint of another run.

    The head is taken too when its shape matches; when the number of classes (or the
    head) differs it keeps its fresh init. Any other mismatch means another
    architecture and is an error. Returns the names of the tensors left as initialised.
    """
    ckpt = load_checkpoint(path)
    state = ckpt.get("state_dict", ckpt)
    state = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")} or state
    own = net.state_dict()
    head = head_name(net) + "."
    skipped, mismatched = [], []
    for key, value in own.items():
        src = state.get(key)
        if src is not None and tuple(src.shape) == tuple(value.shape):
            own[key] = src
        elif key.startswith(head):
            skipped.append(key)
        else:
            mismatched.append(
                f"{key} {list(value.shape)} vs {'missing' if src is None else list(src.shape)}"
            )
    if mismatched:
        raise BadInput(
            f"checkpoint {path} holds another architecture than {type(net).__name__}: "
            f"{'; '.join(mismatched[:3])}{' ...' if len(mismatched) > 3 else ''}"
        )
    net.load_state_dict(own)
    return skipped


def freeze(net: nn.Module, mode: str) -> None:
    """``backbone``: only the head trains (seed 003 §4.4); ``none``: everything trains."""
    if mode not in FREEZE_MODES:
        raise ValueError(f"model.freeze={mode!r} is not one of {list(FREEZE_MODES)}")
    if mode == "none":
        return
    head = head_name(net)
    for name, param in net.named_parameters():
        param.requires_grad = name.startswith(head + ".")


def frozen_norm_layers_to_eval(net: nn.Module) -> None:
    """Keep BatchNorm statistics of a frozen backbone fixed while the head trains."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in module.parameters()
        ):
            module.eval()

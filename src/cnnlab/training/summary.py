"""A Keras-grade model summary: every layer of the net, its output shape, exact counts.

Seeds 000 and 004 are built around Keras's ``model.summary()`` (seed 004: 320 / 18,496 /
0 / 0 / 1,605,760 / 1,290 = 1,625,866) and seed 001 around per-layer output shapes; this
table lets a user check a cnnlab net against them line by line:

- one row per layer of the *network* (not the LightningModule's metrics); a container
  (``nn.Sequential``) is opened, a block deeper than ``max_depth`` is one row, a switched-off
  layer (``nn.Identity``) has none, and a parameter-free activation joins the layer it
  follows (``Conv2d+ReLU``), as a Keras ``Conv2D(activation="relu")`` is one layer;
- output shapes without the batch dimension, channels first (C × H × W), from one forward
  pass of a zero image through a CPU copy of the net (torchinfo), so the run's own net,
  its random state and its device are untouched;
- exact parameter counts with thousands separators, and exact total, trainable and
  non-trainable counts (a frozen backbone shows as non-trainable);
- a table that fits ``width`` columns: when it would not, whole columns are dropped
  (Type, then Trainable, then Output shape), never a layer name cut.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torchinfo import summary

from cnnlab.errors import Count, checked

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
DROP_ORDER = ("Type", "Trainable", "Output shape")  # the first to go when too wide


@dataclass
class Row:
    name: str
    kind: str
    shape: tuple[int, ...] | None
    params: int
    trainable: int

    @property
    def trains(self) -> str:
        if not self.params:
            return "—"
        return "yes" if self.trainable == self.params else ("no" if not self.trainable else "part")


@dataclass
class Summary:
    model: str
    input_size: tuple[int, ...] | None
    rows: list[Row]
    total: int
    trainable: int
    total_bytes: int
    trainable_bytes: int

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable


def summarize(
    net: nn.Module, input_size: Sequence[int] | None = None, max_depth: int = 2
) -> Summary:
    """The rows and counts of ``net``'s table, rows in the order the forward pass calls
    them; shapes (and that order) need ``input_size`` (C, H, W), else rows follow the
    order the modules are declared in."""
    net = copy.deepcopy(net).cpu()
    params = list({id(p): p for p in net.parameters()}.values())  # shared ones once
    names = _row_names(net, "", 1, max_depth) or {id(net): (type(net).__name__, net)}
    total = trainable = None
    if input_size is not None:
        calls, total, trainable = _forward(net, tuple(input_size))
    else:
        calls = [(module, None) for _, module in names.values()]
    rows: list[Row] = []
    seen: set[int] = set()
    for module, shape in calls:
        if id(module) not in names:
            continue
        row = _module_row(names[id(module)][0], module, shape)
        if id(module) in seen and row.params:  # called again: its weights are counted once
            row.kind, row.params, row.trainable = f"{row.kind} (shared)", 0, 0
        seen.add(id(module))
        rows.append(row)
    rows = _with_remainder(_fold(rows), params)
    total = sum(p.numel() for p in params) if total is None else total
    trainable = (
        sum(p.numel() for p in params if p.requires_grad) if trainable is None else trainable
    )
    return Summary(
        type(net).__name__,
        tuple(input_size) if input_size else None,
        rows,
        total,
        trainable,
        sum(p.numel() * p.element_size() for p in params),
        sum(p.numel() * p.element_size() for p in params if p.requires_grad),
    )


def layer_names(net: nn.Module, paths: Sequence[str], max_depth: int = 2) -> list[str]:
    """Each module path as the summary's row names it (``layers.0.0`` → ``layers.0`` for a
    Conv2d in a Sequential with its activation); a module that is no row keeps its path."""
    rows = _row_names(net, "", 1, max_depth)
    return [rows.get(id(net.get_submodule(p)), (p, None))[0] for p in paths]


def _row_names(
    module: nn.Module, prefix: str, depth: int, max_depth: int
) -> dict[int, tuple[str, nn.Module]]:
    """The modules that are rows, by id: (dotted name, module). A container is opened (one
    holding a single layer and its activation lends that layer its name: ``layers.0``
    for ``Sequential(Conv2d, ReLU)``); a block is opened down to ``max_depth``."""
    out: dict[int, tuple[str, nn.Module]] = {}
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Identity):
            continue
        if isinstance(child, CONTAINERS):
            inner = _row_names(child, full + ".", depth, max_depth)
            layers = [k for k, (_, m) in inner.items() if type(m).__name__ not in _ACTIVATIONS]
            if len(layers) == 1:
                inner[layers[0]] = (full, inner[layers[0]][1])
            out.update(inner)
        elif any(True for _ in child.children()) and depth < max_depth:
            out.update(_row_names(child, full + ".", depth + 1, max_depth))
        else:
            out[id(child)] = (full, child)
    return out


def _module_row(name: str, module: nn.Module, shape) -> Row:
    ps = {id(p): p for p in module.parameters()}.values()
    return Row(
        name,
        type(module).__name__,
        shape,
        sum(p.numel() for p in ps),
        sum(p.numel() for p in ps if p.requires_grad),
    )


def _fold(rows: list[Row]) -> list[Row]:
    """A parameter-free activation joins the row it follows (Conv2d+ReLU), as Keras's
    ``Conv2D(activation="relu")`` is one layer."""
    out: list[Row] = []
    for r in rows:
        prev = out[-1] if out else None
        if (
            prev is not None
            and r.params == 0
            and r.kind in _ACTIVATIONS
            and "+" not in prev.kind
            and r.shape == prev.shape
        ):
            prev.kind += f"+{r.kind}"
        else:
            out.append(r)
    return out


_ACTIVATIONS = {
    name
    for name, obj in vars(nn.modules.activation).items()
    if isinstance(obj, type) and obj.__module__ == nn.modules.activation.__name__
}


def _with_remainder(rows: list[Row], params) -> list[Row]:
    """Parameters held by no row (a module's own, beside its children) get a row of
    their own, so the rows add up to the total."""
    counted = sum(r.params for r in rows)
    total = sum(p.numel() for p in params)
    if counted < total:
        rest = total - counted
        rows.append(Row("(other parameters)", "", None, rest, rest))
    return rows


def _forward(net: nn.Module, input_size: tuple[int, ...]):
    """Every module call of one forward pass, in order, with its output shape (batch
    dimension dropped); and torchinfo's total and trainable parameter counts."""
    with torch.random.fork_rng(devices=[]):  # a forward pass draws nothing, but be sure
        stats = summary(
            net,
            input_data=[torch.zeros(1, *input_size)],
            depth=100,
            verbose=0,
            mode="eval",
            device="cpu",
        )
    calls = []
    for info in stats.summary_list:
        size = info.output_size
        calls.append((info.module, tuple(size[1:]) if size and isinstance(size[0], int) else None))
    return calls, stats.total_params, stats.trainable_params


def render(summary: Summary, width: int = 80) -> str:
    """The table as plain text, at most ``width`` columns wide (whole columns dropped)."""
    columns = ["Layer", "Type", "Output shape", "Param #"]
    if any(r.trains in ("no", "part") for r in summary.rows):
        columns.insert(3, "Trainable")
    cells = {
        "Layer": [r.name for r in summary.rows],
        "Type": [r.kind for r in summary.rows],
        "Output shape": [_shape(r.shape) for r in summary.rows],
        "Trainable": [r.trains for r in summary.rows],
        "Param #": [f"{r.params:,}" for r in summary.rows],
    }
    widths = {c: max([len(c)] + [len(v) for v in cells[c]]) for c in columns}

    def line_width(cols: list[str]) -> int:
        return 1 + sum(widths[c] for c in cols) + 3 * (len(cols) - 1)

    for drop in DROP_ORDER:
        if line_width(columns) <= width:
            break
        if drop in columns:
            columns.remove(drop)

    right = {"Param #", "Trainable"}

    def fmt(values: list[str]) -> str:
        return (
            " "
            + "   ".join(
                v.rjust(widths[c]) if c in right else v.ljust(widths[c])
                for c, v in zip(columns, values)
            ).rstrip()
        )

    footer = [
        f" Total params: {summary.total:,} ({_bytes(summary.total_bytes)})",
        f" Trainable params: {summary.trainable:,} ({_bytes(summary.trainable_bytes)})",
        f" Non-trainable params: {summary.non_trainable:,} "
        f"({_bytes(summary.total_bytes - summary.trainable_bytes)})",
    ]
    title = [f"Model: {summary.model}"]
    if summary.input_size:
        title.append(f"input {_shape(summary.input_size)} · shapes per image, C × H × W")
    rule_w = min(width, max(line_width(columns), *(len(x) for x in footer)))
    lines = [*(t for t in title if len(t) <= width), "─" * rule_w, fmt(columns), "═" * rule_w]
    lines += [fmt([cells[c][i] for c in columns]) for i in range(len(summary.rows))]
    lines += ["═" * rule_w, *footer, "─" * rule_w]
    return "\n".join(lines)


def _shape(shape: tuple[int, ...] | None) -> str:
    return "—" if not shape else " × ".join(str(v) for v in shape)


def _bytes(n: int) -> str:
    if n >= 1024**2:
        return f"{n / 1024**2:.2f} MB"
    return f"{n / 1024:.2f} KB" if n >= 1024 else f"{n} B"


class ModelSummary(Callback):
    """Prints the net's Keras-grade summary when fitting starts (and saves it to a file).

    ``max_depth``: how deep a block (a module with children, not a container) is opened;
    ``width``: the widest line (80: an 80-column terminal); ``save_to``: a text file for it.
    """

    @checked
    def __init__(self, max_depth: Count = 2, width: Count = 80, save_to: str | None = None) -> None:
        self.max_depth, self.width = max_depth, width
        self.save_to = Path(save_to) if save_to else None

    def on_fit_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        net = getattr(pl_module, "net", pl_module)
        try:
            text = render(
                summarize(net, getattr(net, "input_size", None), self.max_depth), self.width
            )
        except Exception as err:  # noqa: BLE001 - a summary must never stop a run
            text = render(summarize(net, None, self.max_depth), self.width) + (
                f"\n(no output shapes: a zero image through the net failed: "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
            )
        sys.stdout.write(text + "\n")  # plain text: a layer name is never markup
        sys.stdout.flush()
        if self.save_to is not None:
            self.save_to.parent.mkdir(parents=True, exist_ok=True)
            self.save_to.write_text(text + "\n")

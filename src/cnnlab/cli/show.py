"""cnnlab-show: look at what a trained net does, as PNGs.

For a checkpoint written by cnnlab-train it draws

- ``filters_<layer>.png``: the first conv layer's learned filters, each scaled to its
  own largest weight, red positive, blue negative;
- ``maps_<n>_<layer>.png``: for each conv layer, the feature maps of a few test digits
  (one row per digit, its most active channels across);
- ``fixed_<n>_<layer>.png``: for each fixed filter (seeds 000/004), each digit before and after.

They go to ``<run dir>/show/`` (the run dir holds ``checkpoints/``), or to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from cnnlab.cli import flags  # noqa: E402
from cnnlab.files import output_dir, write_figure  # noqa: E402
from cnnlab.nets.layers import FixedFilter2d  # noqa: E402

# cli.evaluate (Lightning) is imported after the flags are checked: a bad flag is answered
# at once

MAX_CHANNELS = 16  # feature-map columns per picture: more would be too small to read


@dataclass
class Capture:
    """What one layer saw and gave in a forward pass."""

    name: str
    module: nn.Module
    input: torch.Tensor
    output: torch.Tensor


def feature_maps(net: nn.Module, x: torch.Tensor) -> tuple[list[Capture], torch.Tensor]:
    """Each Conv2d's and fixed filter's input and output for ``x``, in the order they ran,
    and the net's output. Forward hooks, removed again before this returns."""
    captures: list[Capture] = []
    handles = []

    def hook(name):
        def keep(module, inputs, output):
            captures.append(Capture(name, module, inputs[0].detach(), output.detach()))

        return keep

    for name, module in net.named_modules():
        if isinstance(module, (nn.Conv2d, FixedFilter2d)):
            handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            out = net(x)
    finally:
        for h in handles:
            h.remove()
    return captures, out


def pick_digits(labels: torch.Tensor, n: int) -> list[int]:
    """Indices of the first test image of each of n different classes (then any)."""
    seen: dict[int, int] = {}
    for i, y in enumerate(labels.tolist()):
        seen.setdefault(int(y), i)
        if len(seen) == n:
            break
    picked = sorted(seen.values())
    rest = [i for i in range(len(labels)) if i not in seen.values()]
    return (picked + rest)[:n]


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_filters(weight: torch.Tensor, path: Path, title: str) -> None:
    """A grid of (out, in, kh, kw) filters, each divided by its own max |w| (in > 1: the
    mean over input channels is drawn)."""
    w = weight.detach().float().cpu()
    w = w.mean(1) if w.shape[1] > 1 else w[:, 0]
    w = w / w.flatten(1).abs().amax(1).clamp_min(1e-12)[:, None, None]
    n = w.shape[0]
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.15 * cols + 1.2, 1.15 * rows + 1.0), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        _off(ax)
        if i < n:
            im = ax.imshow(w[i], cmap="RdBu_r", vmin=-1, vmax=1)
            ax.set_title(str(i), fontsize=8)
        else:
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    bar = fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02)
    bar.set_label("weight / largest |weight| of its filter", fontsize=8)
    write_figure(fig, path)
    plt.close(fig)


def plot_maps(
    digits: torch.Tensor, maps: torch.Tensor, rows: list[str], path: Path, title: str
) -> None:
    """One row per digit: the digit, then its maps of the most varied channels (largest
    spread over digits and positions: a channel that is the same everywhere shows nothing);
    each channel (column) on one colour scale shared by the digits, white = 0."""
    maps = maps.float().cpu()
    n_ch = maps.shape[1]
    spread = maps.transpose(0, 1).flatten(1).std(1)
    chosen = spread.argsort(descending=True)[:MAX_CHANNELS].sort().values.tolist()
    cols = 1 + len(chosen)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(0.95 * cols + 0.6, 1.05 * len(rows) + 1.0), squeeze=False
    )
    for r, label in enumerate(rows):
        ax = axes[r, 0]
        ax.imshow(digits[r, 0].float().cpu(), cmap="gray")
        _off(ax)
        ax.set_ylabel(label, fontsize=8)
        if r == 0:
            ax.set_title("input", fontsize=8)
        for c, ch in enumerate(chosen, start=1):
            scale = float(maps[:, ch].abs().max().clamp_min(1e-12))
            ax = axes[r, c]
            ax.imshow(maps[r, ch], cmap="RdBu_r", vmin=-scale, vmax=scale)
            _off(ax)
            if r == 0:
                ax.set_title(f"ch {ch}", fontsize=8)
    shown = "all" if len(chosen) == n_ch else f"the {len(chosen)} most varied of"
    fig.suptitle(
        f"{title}\n{shown} {n_ch} channels, {maps.shape[2]}×{maps.shape[3]}; "
        "red > 0 > blue, one scale per column",
        fontsize=9,
    )
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)


def plot_fixed(
    before: torch.Tensor, after: torch.Tensor, rows: list[str], path: Path, title: str
) -> None:
    """Each digit before and after a fixed filter, side by side (first channel)."""
    fig, axes = plt.subplots(len(rows), 2, figsize=(4.4, 2.0 * len(rows) + 0.8), squeeze=False)
    for r, label in enumerate(rows):
        for c, (img, head) in enumerate(((before, "before"), (after, "after"))):
            ax = axes[r, c]
            ax.imshow(img[r, 0].float().cpu(), cmap="gray")
            _off(ax)
            if r == 0:
                ax.set_title(head, fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)


def _slug(name: str) -> str:
    return name.replace(".", "_") or "net"


def _describe(module: nn.Module) -> str:
    if isinstance(module, FixedFilter2d):
        kh, kw = module.kernel_size
        text = f"fixed {module.kernel_name} {kh}×{kw} filter, padding {module.padding}"
        if kh * kw <= 9:  # small enough to print
            rows = ["[" + ", ".join(f"{v:g}" for v in r) + "]" for r in module.weight.tolist()]
            text += f"\nkernel [{', '.join(rows)}]"
        return text
    kh, kw = module.kernel_size
    return f"conv {module.in_channels}→{module.out_channels}, {kh}×{kw}"


def show(
    net: nn.Module, images: torch.Tensor, shown: torch.Tensor, labels: list[int], out_dir: Path
) -> list[Path]:
    """Write the pictures for ``images`` (what the net takes) drawn as ``shown``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    net.eval()
    captures, logits = feature_maps(net, images)
    preds = logits.argmax(1).tolist() if logits.dim() == 2 else [None] * len(labels)
    rows = [f"label {y}" + ("" if p is None else f", pred {p}") for y, p in zip(labels, preds)]
    written: list[Path] = []
    convs = [c for c in captures if isinstance(c.module, nn.Conv2d)]
    if convs:
        first = convs[0]
        path = out_dir / f"filters_{_slug(first.name)}.png"
        w = first.module.weight
        plot_filters(
            w,
            path,
            f"first conv layer ({first.name}): its {w.shape[0]} learned "
            f"{w.shape[2]}×{w.shape[3]} filters"
            + (f" (mean over {w.shape[1]} inputs)" if w.shape[1] > 1 else ""),
        )
        written.append(path)
    for n, cap in enumerate(captures, start=1):
        what = _describe(cap.module)
        if isinstance(cap.module, FixedFilter2d):
            path = out_dir / f"fixed_{n:02d}_{_slug(cap.name)}.png"
            plot_fixed(
                cap.input,
                cap.output,
                rows,
                path,
                f"{cap.name}: {what}\neach image on its own grey scale",
            )
        else:
            path = out_dir / f"maps_{n:02d}_{_slug(cap.name)}.png"
            plot_maps(
                shown,
                cap.output,
                rows,
                path,
                f"layer {n}, {cap.name}: {what}; its output before any activation",
            )
        written.append(path)
    return written


def default_out_dir(ckpt: Path) -> Path:
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run_dir / "show"


@flags.command("cnnlab-show")
def main(argv: list[str] | None = None) -> int:
    parser = flags.Parser(
        prog="cnnlab-show",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from cnnlab.cli.evaluate import add_checkpoint_flags, build_from_flags

    add_checkpoint_flags(parser)
    parser.add_argument("--out", help="folder for the PNGs (default: <run dir>/show)")
    parser.add_argument(
        "--digits",
        type=flags.integer(1, 10),
        default=4,
        help="how many test digits, of different classes (1 to 10, default 4)",
    )
    args = parser.parse_args(argv)
    flags.out_dir("--out", args.out)
    model, datamodule, _ = build_from_flags(args)
    out_dir = output_dir(
        Path(args.out) if args.out else default_out_dir(Path(args.checkpoint)), "the output folder"
    )
    datamodule.check_files()
    datamodule.setup("test")
    images, labels = datamodule.splits["test"]
    idx = pick_digits(labels, args.digits)
    raw = images[idx]
    x = datamodule.prepare_batch(raw, seed=0, training=False)  # a float copy
    written = show(model.net, x, raw, labels[idx].tolist(), out_dir)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

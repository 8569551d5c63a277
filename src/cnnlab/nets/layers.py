"""Layers the seeds name that torch does not ship: stochastic and cross-channel pooling
(seed 001), and fixed, non-trained filters (seed 000's mean and Gaussian filters, seed
004's hand-written 3×3 sharpening kernel).

Each constructor checks its own arguments and raises :class:`~cnnlab.errors.ArgumentError`
naming the argument; :class:`~cnnlab.nets.convnet.ConvNet` renames it after the layer
(``layers[3].sigma``) so the user reads which layer of the config is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ArgumentError

# seed 004: np.array([[-1,-1,-1], [-1,9,-1], [-1,-1,-1]])
SHARPEN = ((-1.0, -1.0, -1.0), (-1.0, 9.0, -1.0), (-1.0, -1.0, -1.0))
NAMED_KERNELS = ("mean", "gaussian", "sharpen")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class StochasticPool2d(nn.Module):
    """Stochastic pooling (Zeiler & Fergus 2013), over ``size``×``size`` windows.

    Training: each window outputs one of its activations, drawn with probability
    ``a_i / sum(a)``; the gradient flows to the drawn element, as in max pooling.
    Evaluation: the expectation of that draw, ``sum(a_i**2) / sum(a)``, deterministic.

    It is defined on non-negative activations (put it after a ReLU). Negative inputs are
    clamped at 0 first, so they are never drawn and add nothing to the expectation; a
    window with nothing above 0 outputs 0, in training and evaluation alike.

    The draws come from torch's global RNG (that of the input's device). cnnlab reseeds
    it from (seed, epoch) at every epoch start, as for dropout, so a rerun, or a run
    resumed at an epoch boundary, draws the same windows. Pass ``generator`` to draw
    from a private stream instead (tests, notebooks).
    """

    def __init__(
        self, size: int = 2, stride: int | None = None, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if not (_is_int(size) and size >= 1):
            raise ArgumentError("size", size, "a window size, an integer >= 1")
        if stride is not None and not (_is_int(stride) and stride >= 1):
            raise ArgumentError("stride", stride, "null (= size) or an integer >= 1")
        self.size, self.stride = size, stride or size
        self.generator = generator

    def extra_repr(self) -> str:
        return f"size={self.size}, stride={self.stride}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.size, self.stride
        # (N, C, H', W', k, k) views of each window, flattened to k*k values
        windows = x.clamp_min(0).unfold(2, k, s).unfold(3, k, s)
        windows = windows.reshape(*windows.shape[:4], k * k)
        cum = windows.cumsum(-1)
        total = cum[..., -1:]
        if not self.training:
            weighted = (windows * windows).sum(-1, keepdim=True)
            out = torch.where(
                total > 0,
                weighted / total.clamp_min(torch.finfo(x.dtype).tiny),
                torch.zeros_like(total),
            )
            return out.squeeze(-1)
        # inverse CDF: u uniform in [0, total); the drawn element is the first whose running
        # sum exceeds u, so element i is drawn with probability a_i / total and an element
        # at 0 never is. u stays below total despite rounding; an all-zero window (total 0)
        # runs off the end, is clamped to its last element, and outputs that 0.
        u = torch.rand(total.shape, dtype=x.dtype, device=x.device, generator=self.generator)
        u = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
        idx = (cum <= u).sum(-1, keepdim=True).clamp_max(k * k - 1)
        return windows.gather(-1, idx.detach()).squeeze(-1)


class CrossChannelPool2d(nn.Module):
    """Max over groups of ``group`` adjacent channels, as in maxout (Goodfellow et al. 2013).

    Channels (0..group-1) give output channel 0, the next ``group`` give channel 1, and so
    on: C input channels become C / group, the spatial size is unchanged. Given
    ``in_channels``, the constructor checks that ``group`` divides it.
    """

    def __init__(self, group: int = 2, in_channels: int | None = None) -> None:
        super().__init__()
        if not (_is_int(group) and group >= 1):
            raise ArgumentError("size", group, "a channel group size, an integer >= 1")
        if in_channels is not None and in_channels % group:
            divisors = [d for d in range(1, in_channels + 1) if in_channels % d == 0]
            raise ArgumentError(
                "size",
                group,
                f"a group size that divides the {in_channels} input channels: one of {divisors}",
            )
        self.group = group

    def extra_repr(self) -> str:
        return f"group={self.group}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        return x.reshape(n, c // self.group, self.group, *x.shape[2:]).amax(2)


def named_kernel(name: str, size: Any = 3, sigma: Any = 1.0) -> torch.Tensor:
    """A (size, size) kernel: ``mean`` (all 1/size²), ``gaussian`` (σ, sums to 1),
    ``sharpen`` (seed 004's 3×3 kernel, its size fixed)."""
    if name not in NAMED_KERNELS:
        raise ArgumentError(
            "kernel",
            name,
            f"one of {list(NAMED_KERNELS)} or a matrix (a list of equal-length rows of numbers)",
        )
    if name == "sharpen":
        if size not in (None, 3):
            raise ArgumentError("size", size, "3 (the sharpening kernel of seed 004 is 3×3)")
        return torch.tensor(SHARPEN)
    if _is_int(size):
        h = w = size
    elif (
        isinstance(size, Sequence)
        and not isinstance(size, str)
        and len(size) == 2
        and all(_is_int(v) for v in size)
    ):
        h, w = size
    else:
        raise ArgumentError("size", size, "an odd integer >= 1 (a square size×size kernel)")
    if name == "mean":
        if h != w or h < 1:
            raise ArgumentError("size", size, "an integer >= 1 (a square size×size kernel)")
        return torch.full((h, h), 1.0 / (h * h))
    if name == "gaussian":
        if h != w or h < 1 or h % 2 == 0:
            raise ArgumentError(
                "size", size, "an odd integer >= 1 (a square kernel with a centre pixel)"
            )
        if not (_is_num(sigma) and math.isfinite(sigma) and sigma > 0):
            raise ArgumentError("sigma", sigma, "a standard deviation > 0, in pixels")
        r = torch.arange(h, dtype=torch.float64) - (h - 1) / 2
        g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * float(sigma) ** 2))
        return (g / g.sum()).float()
    raise AssertionError(name)


def _matrix(value: Any) -> torch.Tensor:
    rows = list(value)
    ok = rows and all(isinstance(r, Sequence) and not isinstance(r, str) for r in rows)
    ok = ok and len({len(r) for r in rows}) == 1 and len(rows[0]) >= 1
    ok = ok and all(_is_num(v) and math.isfinite(v) for r in rows for v in r)
    if not ok:
        raise ArgumentError(
            "kernel",
            value,
            f"one of {list(NAMED_KERNELS)} or a matrix "
            "(a list of equal-length rows of finite numbers)",
        )
    return torch.tensor([[float(v) for v in r] for r in rows])


class FixedFilter2d(nn.Module):
    """A convolution with a given kernel that never trains (seed 000's filters, seed 004's
    sharpening), applied to each input channel on its own: C channels in, C out.

    The kernel is a buffer, not a parameter: an optimizer gets nothing from this layer,
    ``parameters()`` counts none, freezing is unaffected, and the kernel still travels in
    the ``state_dict`` (checkpoints). As in seed 004 it is a cross-correlation (a window
    times the kernel, summed), which is what ``Conv2d`` computes; ``clip: [lo, hi]``
    clips the result as seed 004's ``np.clip(..., 0, 255)`` does.
    """

    def __init__(
        self,
        kernel: str | Sequence[Sequence[float]] = "mean",
        size: Any = None,
        sigma: Any = None,
        padding: str = "same",
        clip: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(kernel, str):
            if sigma is not None and kernel != "gaussian":
                raise ArgumentError("sigma", sigma, "only for kernel: gaussian")
            default_size = None if kernel == "sharpen" else 3
            weight = named_kernel(
                kernel, default_size if size is None else size, 1.0 if sigma is None else sigma
            )
            self.kernel_name = kernel
        else:
            if size is not None or sigma is not None:
                raise ArgumentError(
                    "size" if size is not None else "sigma",
                    size if size is not None else sigma,
                    "only for a named kernel; a matrix kernel has its own size",
                )
            weight = _matrix(kernel)
            self.kernel_name = "matrix"
        if padding not in ("same", "valid"):
            raise ArgumentError("padding", padding, "one of ['same', 'valid']")
        if clip is not None:
            clip = list(clip) if isinstance(clip, Sequence) and not isinstance(clip, str) else clip
            if not (
                isinstance(clip, list)
                and len(clip) == 2
                and all(map(_is_num, clip))
                and clip[0] < clip[1]
            ):
                raise ArgumentError(
                    "clip", clip, "null or [low, high] with low < high, e.g. [0, 255] as seed 004"
                )
            clip = (float(clip[0]), float(clip[1]))
        self.padding, self.clip = padding, clip
        self.register_buffer("weight", weight)

    @property
    def kernel_size(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    def extra_repr(self) -> str:
        return (
            f"kernel={self.kernel_name}, size={list(self.kernel_size)}, "
            f"padding={self.padding!r}, clip={self.clip}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.weight.to(x.dtype).expand(c, 1, *self.kernel_size)
        y = F.conv2d(x, weight, padding=self.padding, groups=c)
        return y if self.clip is None else y.clamp(*self.clip)

"""Per-sample random affine augmentation applied to a whole batch at once, on its device.

torchvision's v2 transforms draw one set of parameters per call, so a batched call would
rotate every digit in the batch by the same angle; here each sample draws its own angle,
shift, scale and flip, and the whole batch is warped by one ``grid_sample``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field

from cnnlab.errors import Probability, checked, require


class BatchAugment:
    """Random rotation (±degrees), translation (± fraction of size), scale and h-flip."""

    @checked
    def __init__(
        self,
        name: str = "none",
        degrees: Annotated[
            float, Field(ge=0, le=180, description=("rotation degrees in [0, 180]"))
        ] = 0.0,
        translate: Annotated[
            float, Field(ge=0, lt=1, description=("a fraction of the image size in [0, 1)"))
        ] = 0.0,
        scale: Annotated[
            Sequence[float],
            Field(min_length=2, max_length=2, description=("[low, high] with 0 < low <= high")),
        ] = (1.0, 1.0),
        hflip: Probability = 0.0,
    ) -> None:
        require(
            "scale", list(scale), lambda v: 0 < v[0] <= v[1], "[low, high] with 0 < low <= high"
        )
        self.name = name
        self.degrees = float(degrees)
        self.translate = float(translate)
        self.scale = (float(scale[0]), float(scale[1]))
        self.hflip = float(hflip)

    @property
    def active(self) -> bool:
        return bool(self.degrees or self.translate or self.hflip or self.scale != (1.0, 1.0))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Warp a float batch ``[N, C, H, W]``; zero background comes in at the borders."""
        if not self.active:
            return x
        n = x.shape[0]

        def uniform(low: float, high: float) -> torch.Tensor:
            u = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
            return low + (high - low) * u

        angle = uniform(-self.degrees, self.degrees) * (math.pi / 180.0)
        scale = uniform(*self.scale)
        tx = uniform(-self.translate, self.translate) * 2.0  # grid units span [-1, 1]
        ty = uniform(-self.translate, self.translate) * 2.0
        flip = torch.where(uniform(0.0, 1.0) < self.hflip, -1.0, 1.0).to(x.dtype)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        # theta maps output to input coordinates: inverse rotation and scale, then the flip.
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin, -tx], dim=1),
                torch.stack([sin * flip, cos, -ty], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

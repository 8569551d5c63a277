"""torchvision's resnet18 adapted to MNIST-sized grayscale input for transfer learning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import torch
import torch.nn.functional as F
import torchvision
from pydantic import Field
from torch import nn

from cnnlab.errors import Count, WeightsUnavailable, checked


class ResNet18Transfer(nn.Module):
    """resnet18 whose 1000-way fc is replaced by a ``num_classes`` head (seed 003 §4.4).

    ``weights`` is ``None`` (random init), a torchvision weights name such as
    ``IMAGENET1K_V1`` (torchvision downloads it, or takes it from its cache) or the path
    of a state-dict file. Grayscale input is repeated to 3 channels and resized to
    ``input_size`` so the ImageNet filters see images of a familiar scale.
    """

    head_name = "backbone.fc"

    @checked
    def __init__(
        self,
        num_classes: Count = 10,
        in_channels: Count = 1,
        input_size: Annotated[
            int, Field(ge=32, description=("the side in pixels that images are resized to, >= 32"))
        ] = 64,
        weights: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.backbone = torchvision.models.resnet18(weights=None)
        if weights:
            self.backbone.load_state_dict(load_resnet18_weights(str(weights)))
        self.backbone.fc = nn.Linear(self.backbone.fc.in_features, num_classes)
        self.in_channels = in_channels
        self.resize = int(input_size)
        self.input_size = (in_channels, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.resize or x.shape[-2] != self.resize:
            x = F.interpolate(
                x, size=(self.resize, self.resize), mode="bilinear", align_corners=False
            )
        return self.backbone(x)


def load_resnet18_weights(weights: str) -> dict[str, torch.Tensor]:
    """A resnet18 state dict from a torchvision weights name or a local file."""
    names = [w.name for w in torchvision.models.ResNet18_Weights]
    if weights in names:
        try:
            return torchvision.models.ResNet18_Weights[weights].get_state_dict(progress=False)
        except Exception as err:  # no network and not in torch's hub cache
            raise WeightsUnavailable(
                f"resnet18 weights {weights!r} are not in torch's cache "
                f"({torch.hub.get_dir()}/checkpoints) and could not be downloaded ({err}). "
                "Download them where there is a network, or set model.net.weights=/path/to/file.pth"
            ) from None
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"no such file, nor a torchvision weights name {names}"  # blamed on its key
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"weights file {path} is corrupt or not a torch file: {err}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    expected = torchvision.models.resnet18(weights=None).state_dict()
    missing = sorted(set(expected) - set(state))
    if missing or any(tuple(state[k].shape) != tuple(v.shape) for k, v in expected.items()):
        raise ValueError(
            f"weights file {path} is not a resnet18 state dict "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''} or shapes differ)"
        )
    return {k: state[k] for k in expected}

"""LeNet-5 (LeCun et al. 1998), the 'further reading' of seed 003, sized for 28×28 input."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from cnnlab.errors import Count, checked

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class LeNet5(nn.Module):
    """C1 6@5×5 (pad 2) → S2 avg-pool → C3 16@5×5 → S4 avg-pool → F5 120 → F6 84 → 10."""

    head_name = "fc3"

    @checked
    def __init__(
        self,
        num_classes: Count = 10,
        in_channels: Count = 1,
        activation: Literal["tanh", "relu", "sigmoid"] = "tanh",
    ) -> None:
        super().__init__()
        act = _ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            act(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            act(),
            nn.AvgPool2d(2),
        )
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.act = act()
        self.input_size = (in_channels, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.fc3(x)

"""Seed 003's MyCNN, with its two ablation switches (dropout, batchnorm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from cnnlab.errors import Count, DropoutP, checked


class MyCNN(nn.Module):
    """conv(1→32) → pool → conv(32→64) → pool → fc(3136→128) → fc(128→classes).

    ``batchnorm`` inserts BatchNorm2d after each conv, before the ReLU (seed 003 §4.3);
    ``dropout`` > 0 adds Dropout(p) after fc1 (seed 003 §4.2).
    """

    head_name = "fc2"
    input_size = (1, 28, 28)

    @checked
    def __init__(
        self,
        num_classes: Count = 10,
        in_channels: Count = 1,
        channels: Annotated[Sequence[Count], Field(min_length=2, max_length=2)] = (32, 64),
        hidden: Count = 128,
        dropout: DropoutP = 0.0,
        batchnorm: bool = False,
        seed_init: bool = True,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size=3, stride=1, padding=1)
        self.bn1 = nn.BatchNorm2d(c1) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(c2) if batchnorm else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(7 * 7 * c2, hidden)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden, num_classes)
        self.input_size = (in_channels, 28, 28)
        if seed_init:
            seed003_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        x = torch.flatten(x, 1)
        x = self.dropout(torch.relu(self.fc1(x)))
        return self.fc2(x)


def seed003_init(net: nn.Module) -> None:
    """Seed 003's init: conv weights N(0, 0.01), linear Xavier-uniform, biases 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

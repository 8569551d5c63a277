"""Seed 004's Keras model, layer for layer (1,625,866 parameters for 10 classes)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import Count, DropoutP, checked


class KerasCNN(nn.Module):
    """Conv2D(32, same) → Conv2D(64, same) → MaxPool 2 → Flatten → Dense 128 → Dense 10.

    Keras' final softmax is folded into the cross-entropy loss, as is usual in PyTorch.
    """

    head_name = "fc2"

    @checked
    def __init__(
        self,
        num_classes: Count = 10,
        in_channels: Count = 1,
        hidden: Count = 128,
        dropout: DropoutP = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, padding="same")
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding="same")
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(14 * 14 * 64, hidden)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden, num_classes)
        self.input_size = (in_channels, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.dropout(torch.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)

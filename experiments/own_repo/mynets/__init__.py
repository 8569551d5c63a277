"""A user's own network: a plain nn.Module, nothing cnnlab-specific."""

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes: int, hidden: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x):
        return self.body(x)

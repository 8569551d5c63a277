"""Figures written next to results: the confusion matrix, and the colours and saving
that cnnlab-compare's figures (analysis/figures.py) share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np

from cnnlab.files import write_figure  # noqa: E402


def save_confusion_matrix(matrix: list[list[int]], path: Path) -> Path:
    """Row-normalised confusion matrix with counts, written to ``path`` (returned)."""
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    n = m.shape[0]
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(
                    j,
                    i,
                    str(int(m[i, j])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set(
        xticks=range(n),
        yticks=range(n),
        xlabel="predicted",
        ylabel="true",
        title="test confusion matrix",
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    # the margins tight_layout finds for this fixed layout, given: it measured every label
    # again per run, ~0.1 s of a one-batch run's ~0.25 s picture
    fig.subplots_adjust(left=0.06, right=0.93, bottom=0.1, top=0.94)
    return save(fig, path)


REFERENCE_COLOR, ARM_COLOR = "#555555", "#3a78c2"
EQUIVALENT_COLOR = "#2e8b57"  # an arm read as equivalent, and the margin it is inside


def arm_styles(n: int) -> list[tuple[Any, str]]:
    """n (colour, line style) pairs that stay apart: tab10's colours, solid for the first
    ten arms, then dashed, then dotted (tab20's light/dark pairs read as one colour)."""
    cmap = plt.get_cmap("tab10")
    return [(cmap(i % 10), ("-", "--", ":")[(i // 10) % 3]) for i in range(n)]


def save(fig, path: Path, dpi: int = 110) -> Path:
    write_figure(fig, path, dpi)  # renamed into place: a planted symlink is replaced
    plt.close(fig)
    return path

"""Figures saved beside results. matplotlib is imported lazily, with the non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ferbench.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(path: str | Path, matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> Path:
    """Row-normalised confusion matrix (each cell: share of the true class, and the count)."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = 1.0 + 0.75 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path

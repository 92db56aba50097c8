"""Figures saved beside results. matplotlib is imported lazily, with the non-interactive Agg backend."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ferbench.files import atomic_path


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend: no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it as a PNG atomically (a reader never sees half an image) and close it."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    with atomic_path(Path(path)) as tmp:
        write_compact_png(Image.open(buffer), tmp)
    return Path(path)


def write_compact_png(image, path: str | Path) -> None:
    """``image`` (PIL) as the smallest lossless PNG of the same pixels: matplotlib writes RGBA, but an opaque
    figure needs no alpha and one in shades of grey (face grids) no colour: a FER2013 reconstruction grid
    shrinks from 375 to 222 KB (the repository keeps each PNG under ~300 KB)."""
    pixels = np.asarray(image.convert("RGBA"))
    if (pixels[..., 3] == 255).all():
        rgb = pixels[..., :3]
        grey = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        image = Image.fromarray(np.ascontiguousarray(rgb[..., 0]) if grey else np.ascontiguousarray(rgb))
    image.save(path, format="PNG", optimize=True)


def pareto_plot(path: str | Path, panels: dict[str, list[tuple[str, float, float]]]) -> Path:
    """One panel per title: (label, images/s, accuracy %) points, log-scale speed, the Pareto frontier."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (title, points) in zip(axes[0], panels.items()):
        points = sorted(points, key=lambda p: -p[1])
        frontier, best = [], -1.0
        for label, speed, accuracy in points:  # fastest first: a point is on the frontier if no faster one is better
            if accuracy > best:
                frontier.append((speed, accuracy))
                best = accuracy
        ax.plot(*zip(*frontier), "--", color="grey", lw=1, label="Pareto frontier")
        for label, speed, accuracy in points:
            ax.scatter(speed, accuracy)
            ax.annotate(label, (speed, accuracy), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("inference images/s (best mode)")
        ax.set_ylabel("accuracy %")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def confusion_matrix_png(path: str | Path, matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> Path:
    """Row-normalised confusion matrix (each cell: share of the true class, and the count)."""
    plt = pyplot()
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
    return save_figure(fig, path)


def time_to_accuracy_png(path: str | Path, curve: Sequence[dict], title: str) -> Path:
    """Test accuracy against training seconds (evaluation excluded), one point per evaluated epoch."""
    plt = pyplot()
    seconds = [point["train_seconds"] for point in curve]
    accuracy = [100 * point["accuracy"] for point in curve]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(seconds, accuracy, "o-", ms=3)
    for point, x, y in zip(curve, seconds, accuracy):
        ax.annotate(str(point["epoch"]), (x, y), fontsize=6, xytext=(2, -8), textcoords="offset points")
    ax.set_xlim(left=0)
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("test accuracy %")
    ax.set_title(f"{title}\nbest {max(accuracy):.1f}%, epoch numbers at the points", fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def reliability_png(path: str | Path, curves: dict[str, Sequence[dict]], title: str) -> Path:
    """Reliability diagram: accuracy against mean confidence per confidence bin, one line per curve
    (e.g. raw and temperature-scaled; bins from :func:`ferbench.calibration.reliability_bins`), with the
    share of images per bin below."""
    plt = pyplot()
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(4.8, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfectly calibrated")
    width = 1 / max(len(next(iter(curves.values()))), 1)
    for k, (label, bins) in enumerate(curves.items()):
        filled = [b for b in bins if b["count"]]
        ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o-", ms=3, label=label)
        total = max(sum(b["count"] for b in bins), 1)
        offset = (k - (len(curves) - 1) / 2) * width / len(curves)
        counts.bar([(b["low"] + b["high"]) / 2 + offset for b in bins], [b["count"] / total for b in bins],
                   width=width / len(curves), label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    counts.set_xlabel("confidence (top-class probability)")
    counts.set_ylabel("share")
    return save_figure(fig, path)


def robustness_heatmap_png(path: str | Path, record: dict) -> Path:
    """Accuracy per corruption (rows, grouped by family) and severity (columns), with the clean accuracy as
    the first column (a ``ferbench.robustness/1`` record)."""
    plt = pyplot()
    severities = record["severities"]
    names = list(dict.fromkeys(c["corruption"] for c in record["cells"]))
    accuracy = {(c["corruption"], c["severity"]): c["accuracy"] for c in record["cells"]}
    clean = record["clean"]["accuracy"]
    grid = np.array([[clean] + [accuracy.get((n, s), np.nan) for s in severities] for n in names]) * 100
    fig, ax = plt.subplots(figsize=(1.6 + 0.75 * (len(severities) + 1), 1.0 + 0.32 * len(names)))
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=max(100 * clean, 1), aspect="auto")
    ax.set_xticks(range(len(severities) + 1), ["clean"] + [str(s) for s in severities])
    families = {c["corruption"]: c["family"] for c in record["cells"]}
    ax.set_yticks(range(len(names)), [f"{n.replace('_', ' ')} ({families[n]})" for n in names], fontsize=7)
    ax.set_xlabel("severity")
    for i in range(len(names)):
        for j in range(len(severities) + 1):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7)
    summary = record["summary"]
    ax.set_title(f"{record['method']} on {record['dataset']} [{record['split']}]: accuracy %\n"
                 f"clean {100 * clean:.1f}, mean corrupted {100 * summary['mean_accuracy']:.1f}", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return save_figure(fig, path, dpi=90)

"""What a run of the Arabian GAN reports beyond accuracy: the paper's Table 2, the collapse detector, the
Frechet distance in a classifier's feature space, and the source | restyled | target image grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ferbench.data import Dataset
from ferbench.plots import pyplot, save_figure


def mean_sd(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample SD (ddof 1; 0 for a single value) in percent, with the values they come from."""
    values = [100 * v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values)}


def tpr_table(classifiers: list[dict[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """The paper's Table 2: per class, the true-positive rate before and after restyling as mean +- SD over
    ``classifiers`` (each holding ``before``/``after`` with ``per_class_tpr`` and ``accuracy``), in percent.

    Two summary rows: ``mean_tpr`` (each classifier's unweighted mean over the classes, then mean +- SD)
    and ``accuracy`` (true positives over all images, then mean +- SD), the paper's "Mean" row.
    """
    table: dict[str, Any] = {"classes": list(classes), "classifiers": [c["name"] for c in classifiers]}
    for stage in ("before", "after"):
        table[stage] = {c: mean_sd([k[stage]["per_class_tpr"][c] for k in classifiers]) for c in classes}
        table[f"mean_tpr_{stage}"] = mean_sd([
            np.mean([v for v in k[stage]["per_class_tpr"].values() if v is not None]) for k in classifiers])
        table[f"accuracy_{stage}"] = mean_sd([k[stage]["accuracy"] for k in classifiers])
    return table


def collapse_report(labels: np.ndarray, predicted: np.ndarray, classes: Sequence[str],
                    fraction: float = 0.1) -> dict[str, Any]:
    """The class distribution of predictions on restyled images, and the classes that vanished from it.

    A class *vanishes* when it is predicted for fewer than ``fraction`` times as many images as truly
    belong to it (the paper's collapse: three classes never predicted). Classes absent from ``labels``
    are not judged.
    """
    true_counts = np.bincount(labels, minlength=len(classes))
    predicted_counts = np.bincount(predicted, minlength=len(classes))
    vanished = [c for c, t, p in zip(classes, true_counts, predicted_counts) if t and p < fraction * t]
    return {
        "predicted_distribution": {c: int(k) for c, k in zip(classes, predicted_counts)},
        "true_distribution": {c: int(k) for c, k in zip(classes, true_counts)},
        "vanished": vanished,
        "collapsed": bool(vanished),
        "rule": f"predicted for fewer than {fraction:g} x its true count",
    }


def restyle_grid_png(path: Path, test: Dataset, restyled: np.ndarray, reference: Dataset, classes: Sequence[str],
                     examples: int, seed: int, title: str) -> Path:
    """One row per class: ``examples`` source test images | the same images restyled | target images."""
    plt = pyplot()
    rng = np.random.default_rng(seed)
    size = restyled.shape[1] if len(restyled) else 48

    def tile(images: np.ndarray) -> np.ndarray:
        import cv2

        rgb = np.stack([cv2.resize(np.repeat(i[..., None], 3, -1) if i.ndim == 2 else i, (size, size),
                                   interpolation=cv2.INTER_AREA) for i in images]) if len(images) else np.zeros((0, size, size, 3), np.uint8)
        padded = np.full((examples, size, size, 3), 255, np.uint8)
        padded[:len(rgb)] = rgb
        return np.concatenate(list(padded), axis=1)

    gap = np.full((size, size // 4, 3), 255, np.uint8)
    rows = []
    for label in range(len(classes)):
        chosen = np.flatnonzero(test.labels == label)
        chosen = rng.choice(chosen, size=min(examples, len(chosen)), replace=False) if len(chosen) else chosen
        target = np.flatnonzero(reference.labels == label)
        target = rng.choice(target, size=min(examples, len(target)), replace=False) if len(target) else target
        rows.append(np.concatenate([tile(test.images[chosen]), gap, tile(restyled[chosen]), gap,
                                    tile(reference.images[target])], axis=1))
    mosaic = np.concatenate(rows, axis=0)
    # About twice the faces' own pixels, unsmoothed: a larger, interpolated scale adds no detail, and its
    # PNG passed the repository's ~300 KB per image (880 KB for 6 classes at 2.5x).
    fig, ax = plt.subplots(figsize=(mosaic.shape[1] / 50 + 1.2, mosaic.shape[0] / 50 + 0.8))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([size * (i + 0.5) for i in range(len(classes))], classes)
    width = examples * size + size // 4
    ax.set_xticks([examples * size / 2, width + examples * size / 2, 2 * width + examples * size / 2],
                  ["source", "restyled", "target"])
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=100)

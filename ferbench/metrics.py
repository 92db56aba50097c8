"""Scores for a set of predictions, computed with scikit-learn so they mean what readers expect."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from ferbench.calibration import calibration_scores


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the classes present in ``labels``, per-class true-positive rate (recall),
    support, the confusion matrix (rows: true class, columns: predicted class), all over ``classes``, and the
    calibration scores (``ece``, ``nll``, ``brier``: :mod:`ferbench.calibration`)."""
    predicted = probabilities.argmax(1)
    everything = list(range(len(classes)))
    present = sorted(set(labels.tolist()))
    tpr = recall_score(labels, predicted, labels=everything, average=None, zero_division=0)
    support = np.bincount(labels, minlength=len(classes))
    return {
        "accuracy": float(accuracy_score(labels, predicted)) if len(labels) else float("nan"),
        "macro_f1": float(f1_score(labels, predicted, labels=present, average="macro", zero_division=0))
        if present else float("nan"),
        "per_class_tpr": {c: (float(t) if s else None) for c, t, s in zip(classes, tpr, support)},
        "support": {c: int(s) for c, s in zip(classes, support)},
        "predicted_distribution": {c: int(k) for c, k in zip(classes, np.bincount(predicted, minlength=len(classes)))},
        "confusion_matrix": confusion_matrix(labels, predicted, labels=everything).tolist(),
        "classes": list(classes),
        **calibration_scores(labels, probabilities),
    }


def frechet_distance(features: np.ndarray, reference: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (FID's formula, in any feature space):
    ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``, through symmetric eigendecompositions so
    that it stays real and stable for the small, rank-deficient sets FER test splits give."""
    mu1, mu2 = features.mean(0), reference.mean(0)
    s1, s2 = np.atleast_2d(np.cov(features, rowvar=False)), np.atleast_2d(np.cov(reference, rowvar=False))
    values, vectors = np.linalg.eigh(s1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    trace_root = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_root)

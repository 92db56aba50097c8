"""How far a model's confidence can be trusted: calibration scores and temperature scaling.

- expected calibration error (ECE; Naeini et al. 2015, Guo et al. 2017): the confidence (top probability)
  cut into 15 equal-width bins, the mean |accuracy - confidence| of the bins weighted by their share of
  the images;
- negative log-likelihood (NLL) of the true class, and the multi-class Brier score (squared distance of the
  probability vector from the one-hot label, summed over classes, averaged over images);
- temperature scaling (Guo et al. 2017): one scalar ``T`` fitted by minimising NLL on a validation split,
  applied as ``softmax(log p / T)``. On a single view ``log p`` is the logits up to a constant, so this is
  exactly scaling the logits; on a TTA mean it scales the mean's log. The top class never changes, so
  accuracy does not either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 15
_FLOOR = 1e-12  # log(0) guard: a probability of exactly 0 for the true class costs -log(1e-12) = 27.6 nats


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 cannot occur for a top-1.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def negative_log_likelihood(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(-np.log(np.maximum(probabilities[np.arange(len(labels)), labels], _FLOOR)).mean())


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    onehot = np.eye(probabilities.shape[1])[labels]
    return float(((probabilities - onehot) ** 2).sum(1).mean())


def calibration_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """ECE (15 bins), NLL and Brier score; NaN for an empty set."""
    if not len(labels):
        return {"ece": float("nan"), "nll": float("nan"), "brier": float("nan")}
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return {"ece": expected_calibration_error(labels, probabilities),
            "nll": negative_log_likelihood(labels, probabilities), "brier": brier_score(labels, probabilities)}


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: T > 1 softens over-confident probabilities, T < 1 sharpens them."""
    scaled = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), _FLOOR)) / temperature
    scaled -= scaled.max(1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(1, keepdims=True)


def fit_temperature(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises NLL on ``(labels, probabilities)`` (a validation split)."""
    if not len(labels):
        raise ValueError("temperature scaling needs at least one validation image")

    def nll(log_t: float) -> float:
        return negative_log_likelihood(labels, apply_temperature(probabilities, float(np.exp(log_t))))

    found = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def reliability_bins(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Per confidence bin: its range, image count, mean confidence and accuracy (None when empty)."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        rows.append({"low": b / bins, "high": (b + 1) / bins, "count": int(inside.sum()),
                     "confidence": float(confidence[inside].mean()) if inside.any() else None,
                     "accuracy": float(correct[inside].mean()) if inside.any() else None})
    return rows

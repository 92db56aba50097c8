"""Calibration scores and temperature scaling on predictors whose calibration is known by construction."""

import numpy as np
import pytest

from ferbench.calibration import (apply_temperature, calibration_scores, expected_calibration_error,
                                  fit_temperature, reliability_bins)


def sampled(confidence: np.ndarray, classes: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Predictions whose top class is right with probability ``confidence`` (perfect calibration)."""
    n = len(confidence)
    predicted = rng.integers(0, classes, n)
    probabilities = np.tile(((1 - confidence) / (classes - 1))[:, None], (1, classes))
    probabilities[np.arange(n), predicted] = confidence
    correct = rng.random(n) < confidence
    wrong = (predicted + rng.integers(1, classes, n)) % classes
    return np.where(correct, predicted, wrong), probabilities


def test_a_calibrated_predictor_has_ece_near_zero_and_an_over_confident_one_a_large_ece():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 20000)
    labels, calibrated = sampled(confidence, 7, rng)
    assert expected_calibration_error(labels, calibrated) < 0.015
    # The same right/wrong answers stated with 99% confidence: accuracy ~65%, so ECE ~ 0.34.
    over = np.full_like(calibrated, 0.01 / 6)
    over[np.arange(len(labels)), calibrated.argmax(1)] = 0.99
    assert expected_calibration_error(labels, over) > 0.25


def test_temperature_scaling_lowers_nll_of_an_over_confident_set_and_keeps_the_top_class():
    rng = np.random.default_rng(1)
    labels, calibrated = sampled(rng.uniform(0.4, 0.9, 5000), 5, rng)
    sharpened = apply_temperature(calibrated, 0.25)  # the calibrated set made over-confident by hand
    temperature = fit_temperature(labels, sharpened)
    assert 3.0 < temperature < 5.5  # about 1 / 0.25 undoes the sharpening
    before, after = calibration_scores(labels, sharpened), calibration_scores(labels, apply_temperature(sharpened, temperature))
    assert after["nll"] < before["nll"] - 0.1 and after["ece"] < before["ece"] / 2
    assert (apply_temperature(sharpened, temperature).argmax(1) == sharpened.argmax(1)).all()


def test_scores_of_a_perfect_and_an_empty_prediction():
    labels = np.array([0, 1, 2])
    perfect = np.eye(3)
    scores = calibration_scores(labels, perfect)
    assert scores["ece"] == pytest.approx(0) and scores["brier"] == pytest.approx(0) and scores["nll"] < 1e-9
    assert all(np.isnan(v) for v in calibration_scores(labels[:0], perfect[:0]).values())
    with pytest.raises(ValueError, match="at least one validation image"):
        fit_temperature(labels[:0], perfect[:0])


def test_reliability_bins_count_every_image_once():
    rng = np.random.default_rng(2)
    labels, probabilities = sampled(rng.uniform(0.2, 1.0, 1000), 4, rng)
    bins = reliability_bins(labels, probabilities)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 1000
    assert all(b["low"] <= b["confidence"] <= b["high"] for b in bins if b["count"])

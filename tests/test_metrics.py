import numpy as np

from ferbench.metrics import classification_metrics


def test_metrics_on_a_known_confusion():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    probabilities = np.eye(4)[predicted]  # a fourth class that never occurs
    m = classification_metrics(labels, probabilities, ["anger", "fear", "happiness", "sadness"])
    assert m["accuracy"] == 6 / 8
    assert m["per_class_tpr"] == {"anger": 0.75, "fear": 0.5, "happiness": 1.0, "sadness": None}
    assert m["confusion_matrix"][0] == [3, 1, 0, 0] and m["confusion_matrix"][1] == [1, 1, 0, 0]
    f1_anger, f1_fear, f1_happy = 2 * 3 / (2 * 3 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 1), 1.0
    assert abs(m["macro_f1"] - (f1_anger + f1_fear + f1_happy) / 3) < 1e-12
    assert m["predicted_distribution"] == {"anger": 4, "fear": 2, "happiness": 2, "sadness": 0}

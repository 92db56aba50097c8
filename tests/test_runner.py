"""A tiny end-to-end run: results on disk match the schema, hooks fire, bad input fails before training."""

import json
from pathlib import Path

import numpy as np
import pytest

from ferbench.errors import ConfigError, DatasetError
from ferbench.results import REQUIRED_FIELDS, RESULT_SCHEMA, validate_result
from ferbench.runner import RunRequest, evaluate, restrict_probabilities, run

TINY = {"epochs": 3, "batch_size": 8, "lr": 0.01}


def tiny_run(zoo, tmp_path, **kwargs):
    request = RunRequest(**{"method": "example-tinycnn", "dataset": "squares", "config": dict(TINY),
                            "out_dir": tmp_path, "device": "cpu", **kwargs})
    return run(zoo, request)


def test_end_to_end_run_writes_a_valid_result_png_and_model(zoo, tmp_path):
    (record,) = tiny_run(zoo, tmp_path)
    path = Path(record["_path"])
    on_disk = json.loads(path.read_text())
    assert validate_result(on_disk) == [] and on_disk["schema"] == RESULT_SCHEMA
    assert set(REQUIRED_FIELDS) <= set(on_disk)
    assert on_disk["method"] == "example-tinycnn" and on_disk["components"] == {"classifier": "example-tinycnn"}
    assert on_disk["protocol"] == "holdout" and on_disk["fold"] == "holdout" and on_disk["test_split"] == "test"
    assert on_disk["config"]["epochs"] == 3 and on_disk["device"]["type"] == "cpu"
    assert on_disk["environment"]["packages"]["torch"] and "git" in on_disk
    assert on_disk["metrics"]["accuracy"] > 0.6  # the squares are easy
    assert len(on_disk["extra"]["history"]) == 3
    assert (path.parent / on_disk["artifacts"]["confusion_matrix_png"]).read_bytes()[:4] == b"\x89PNG"
    assert (path.parent / "model" / "model.safetensors").is_file()
    assert not list(path.parent.rglob(".*.tmp"))


def test_same_seed_same_metrics_other_seed_differs(zoo, tmp_path):
    first = tiny_run(zoo, tmp_path / "a", seed=7)[0]
    second = tiny_run(zoo, tmp_path / "b", seed=7)[0]
    third = tiny_run(zoo, tmp_path / "c", seed=8)[0]
    assert first["metrics"] == second["metrics"]
    assert first["extra"]["history"][-1]["loss"] == second["extra"]["history"][-1]["loss"]
    assert first["extra"]["history"][-1]["loss"] != third["extra"]["history"][-1]["loss"]


def test_lifecycle_hooks_fire_in_order(zoo, tmp_path):
    from plugin_fixtures import squares_plugin

    squares_plugin.EVENTS.clear()
    (record,) = tiny_run(zoo, tmp_path)
    kinds = [e[0] for e in squares_plugin.EVENTS]
    assert kinds == ["start", "epoch", "epoch", "epoch", "end"]
    assert squares_plugin.EVENTS[0] == ("start", record["run_id"])
    assert squares_plugin.EVENTS[-1] == ("end", 1)


def test_kfold_writes_one_result_per_fold_and_fold_selection_works(zoo, tmp_path):
    records = tiny_run(zoo, tmp_path, dataset="squares-all", folds=3, config={**TINY, "epochs": 1})
    assert [r["fold"] for r in records] == ["fold-01", "fold-02", "fold-03"]
    assert len({r["run_id"] for r in records}) == 1
    only = tiny_run(zoo, tmp_path, dataset="squares-all", folds=3, only_folds=[2], config={**TINY, "epochs": 1})
    assert [r["fold"] for r in only] == ["fold-02"]


def test_cross_dataset_and_eval_score_over_shared_classes(zoo, tmp_path):
    (cross,) = tiny_run(zoo, tmp_path, dataset="squares-rgb", target="squares", protocol="cross-dataset")
    assert cross["train_dataset"] == "squares" and cross["dataset"] == "squares-rgb"
    model = Path(cross["_path"]).parent / "model"
    (evaluated,) = evaluate(zoo, model, "squares-rgb", device="cpu", out_dir=tmp_path)
    assert evaluated["protocol"] == "eval" and evaluated["train_dataset"] == "squares"
    assert evaluated["model"]["trained_by"]["run_id"] == cross["run_id"]
    assert validate_result(json.loads(Path(evaluated["_path"]).read_text())) == []


def test_eval_of_a_model_with_no_shared_class_is_refused(zoo, tmp_path):
    (record,) = tiny_run(zoo, tmp_path, dataset="example-stripes")  # happiness, sadness, surprise
    model = Path(record["_path"]).parent / "model"
    (scored,) = evaluate(zoo, model, "squares", device="cpu", out_dir=tmp_path)  # shares happiness, surprise
    assert scored["metrics"]["classes"] == ["happiness", "sadness", "surprise"]
    assert scored["data"]["scored_images"] < scored["data"]["test_images"]


def test_eval_in_the_shared_label_space_never_answers_a_class_the_dataset_lacks(zoo, tmp_path, monkeypatch):
    from ferbench import runner

    (record,) = tiny_run(zoo, tmp_path)  # squares: anger, happiness, surprise
    model = Path(record["_path"]).parent / "model"

    def anger_first(members, images, views):  # every other face: anger, then surprise; the rest: happiness
        probabilities = np.tile([0.2, 0.5, 0.3], (len(images), 1))
        probabilities[::2] = [0.6, 0.1, 0.3]
        return probabilities

    monkeypatch.setattr(runner, "ensemble_proba", anger_first)
    (open_set,) = evaluate(zoo, model, "example-stripes", device="cpu", out_dir=tmp_path)  # has no anger
    (shared,) = evaluate(zoo, model, "example-stripes", device="cpu", out_dir=tmp_path, label_space="shared")
    assert shared["config"]["label_space"] == "shared" and "label_space" not in open_set["config"]
    scored = open_set["data"]["scored_images"]
    assert open_set["metrics"]["predicted_distribution"] == {"anger": (scored + 1) // 2, "happiness": scored // 2,
                                                             "surprise": 0}
    assert shared["metrics"]["predicted_distribution"] == {"anger": 0, "happiness": scored // 2,
                                                           "surprise": (scored + 1) // 2}
    with pytest.raises(ConfigError, match="--label-space must be one of model, shared, got 'target'"):
        evaluate(zoo, model, "example-stripes", device="cpu", out_dir=tmp_path, label_space="target")


def test_eval_with_an_unknown_tta_mode_is_refused_before_a_run_folder_is_claimed(zoo, tmp_path):
    out = tmp_path / "results"
    with pytest.raises(ConfigError, match="--tta must be one of none, flip, .*got 'rotate'"):
        evaluate(zoo, tmp_path / "no-model", "squares", device="cpu", out_dir=out, tta="rotate")
    assert not out.exists()


def test_restricted_probabilities_renormalise_over_the_allowed_classes():
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.0, 0.9]])
    restricted = restrict_probabilities(probabilities, ["anger", "neutral", "happiness"], ["happiness", "anger"])
    np.testing.assert_allclose(restricted, [[0.5 / 0.7, 0.0, 0.2 / 0.7], [0.1, 0.0, 0.9]])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"config": {"epochs": 0}}, ConfigError, "epochs must be a positive integer, got 0"),
    ({"config": {"batch_size": 0}}, ConfigError, "batch_size must be a positive integer"),
    ({"config": {"image_size": 4}}, ConfigError, "image_size must be an integer of at least 8"),
    ({"config": {"epoch": 3}}, ConfigError, "unknown hyperparameter of example-tinycnn 'epoch'; did you mean 'epochs'"),
    ({"config": {"weights": "/no/such/file.safetensors"}}, ConfigError, "weights file /no/such/file.safetensors does not exist"),
    ({"method": "example-tinycnm"}, ConfigError, "did you mean 'example-tinycnn'"),
    ({"dataset": "/no/such/folder"}, ConfigError, "unknown dataset '/no/such/folder'"),
    ({"protocol": "cross-dataset"}, ConfigError, "needs --target"),
    ({"target": "squares"}, ConfigError, "--target is only used by a cross-dataset protocol"),
    ({"components": {"encoder": "example-tinycnn"}}, ConfigError, "has no 'encoder' component"),
    ({"device": "tpu"}, ConfigError, "--device must be auto, cpu or cuda"),
    ({"dataset": "squares-all", "protocol": "holdout"}, DatasetError, "use --protocol kfold"),
    ({"dataset": "squares-all", "only_folds": [11]}, ConfigError, "--fold 11: the protocol has folds 1..10"),
])
def test_bad_input_fails_before_any_training(zoo, tmp_path, monkeypatch, kwargs, error, message):
    from ferbench import training

    monkeypatch.setattr(training, "train_classifier", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        tiny_run(zoo, tmp_path, **kwargs)
    assert not list(tmp_path.rglob("*.json"))


def test_a_dataset_with_one_class_is_refused(zoo, tmp_path):
    with pytest.raises(DatasetError, match="fewer than two classes"):
        tiny_run(zoo, tmp_path, dataset="one-class")


def test_a_methods_own_protocol_is_the_default(zoo, tmp_path):
    from ferbench.interfaces import MethodSpec
    from ferbench.training import SUPERVISED_DEFAULTS, SupervisedMethod

    zoo.catalog.methods["cross-only"] = MethodSpec("cross-only", SupervisedMethod, defaults=SUPERVISED_DEFAULTS,
                                                   components={"classifier": "example-tinycnn"},
                                                   protocol="cross-dataset")
    zoo.catalog.owner[("methods", "cross-only")] = "ferbench_example"
    (record,) = tiny_run(zoo, tmp_path, method="cross-only", dataset="squares-rgb", target="squares")
    assert record["protocol"] == "cross-dataset" and record["train_dataset"] == "squares"
    # --protocol still wins, and a method without one keeps the dataset's default
    with pytest.raises(ConfigError, match="--target is only used by a cross-dataset protocol"):
        tiny_run(zoo, tmp_path, method="cross-only", dataset="squares-rgb", target="squares", protocol="holdout")
    assert tiny_run(zoo, tmp_path)[0]["protocol"] == "holdout"


def test_a_comma_list_from_the_command_line_is_the_same_setting_as_a_list():
    from ferbench.runner import merge_config
    from ferbench.training import SUPERVISED_DEFAULTS

    defaults = {**SUPERVISED_DEFAULTS, "guides": ["timm:a", "timm:b"]}
    assert merge_config(defaults, {"guides": "timm:c, timm:d"}, "m")["guides"] == ["timm:c", "timm:d"]
    assert merge_config(defaults, {"guides": ["timm:c"]}, "m")["guides"] == ["timm:c"]
    assert merge_config(defaults, {"optimizer": "sgd"}, "m")["optimizer"] == "sgd"  # a string default stays one


def test_validation_fits_a_temperature_and_records_calibration_and_a_reliability_diagram(zoo, tmp_path):
    (record,) = tiny_run(zoo, tmp_path, validation=0.25)
    metrics = record["metrics"]
    assert {"ece", "nll", "brier"} <= set(metrics)
    scaled = metrics["temperature_scaled"]
    assert scaled["temperature"] > 0 and scaled["fitted_on"] == "validation split"
    folder = Path(record["_path"]).parent
    assert (folder / record["artifacts"]["reliability_png"]).read_bytes()[:4] == b"\x89PNG"
    model_json = json.loads((folder / "model" / "model.json").read_text())
    assert model_json["trained_by"]["calibration"]["temperature"] == scaled["temperature"]


def test_progress_reaches_a_log_when_no_bar_can_draw():
    """Off a terminal a long stage prints a line every ``log_every`` seconds (steps, elapsed, what is left),
    and a short one prints nothing beyond its own output."""
    import io

    from rich.console import Console

    from ferbench.runner import Tracker

    ticks = iter(range(0, 1000, 50))  # each read of the clock: 50 s later
    log = io.StringIO()
    tracker = Tracker(Console(file=log, force_terminal=False, width=200), log_every=120, clock=lambda: next(ticks))
    assert list(tracker(range(10), "GAN")) == list(range(10))
    lines = log.getvalue().splitlines()
    assert lines == ["GAN 3/10 (30%), 2:30 elapsed, about 5:50 left", "GAN 6/10 (60%), 5:00 elapsed, about 3:20 left",
                     "GAN 9/10 (90%), 7:30 elapsed, about 0:50 left"]

    quiet = io.StringIO()
    list(Tracker(Console(file=quiet, force_terminal=False), log_every=120)(range(10), "epoch 1/3"))
    assert quiet.getvalue() == ""

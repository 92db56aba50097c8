"""Supervised-loop options: time-to-accuracy curves, the optimizer choice, torch.compile."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ferbench.data import InputSpec
from ferbench.errors import ConfigError
from ferbench.runner import RunRequest, run
from ferbench.training import SUPERVISED_DEFAULTS, check_config, train_classifier

TINY = {"epochs": 3, "batch_size": 8, "lr": 0.01}


def tiny_run(zoo, tmp_path, **config):
    request = RunRequest(method="example-tinycnn", dataset="squares", config={**TINY, **config}, out_dir=tmp_path,
                         device="cpu")
    return run(zoo, request)


def test_eval_every_writes_a_time_to_accuracy_curve_and_png(zoo, tmp_path):
    (record,) = tiny_run(zoo, tmp_path, eval_every=1)
    path = Path(record["_path"])
    on_disk = json.loads(path.read_text())
    curve = on_disk["time_to_accuracy"]
    assert [point["epoch"] for point in curve] == [1, 2, 3]
    history = on_disk["extra"]["history"]
    assert [point["train_seconds"] for point in curve] == [entry["train_seconds"] for entry in history]
    assert curve[-1]["train_seconds"] == pytest.approx(sum(entry["seconds"] for entry in history))
    # The last point scores the final model: the same number as the result itself.
    assert curve[-1]["accuracy"] == on_disk["metrics"]["accuracy"]
    assert (path.parent / on_disk["artifacts"]["time_to_accuracy_png"]).read_bytes()[:4] == b"\x89PNG"


def test_eval_every_n_scores_every_nth_and_the_last_epoch(zoo, tmp_path):
    (record,) = tiny_run(zoo, tmp_path, eval_every=2)
    assert [point["epoch"] for point in record["time_to_accuracy"]] == [2, 3]


def test_curves_are_off_by_default(zoo, tmp_path):
    (record,) = tiny_run(zoo, tmp_path)
    assert "time_to_accuracy" not in record and "time_to_accuracy_png" not in record["artifacts"]
    assert all("test_accuracy" not in entry for entry in record["extra"]["history"])
    assert not list(Path(record["_path"]).parent.glob("time-to-accuracy-*.png"))


def test_evaluation_time_is_not_training_time(squares):
    """A fake clock: every reading advances it one second, and each evaluation a hundred."""
    clock = SimpleNamespace(now=0.0)

    def perf_counter():
        clock.now += 1.0
        return clock.now

    def evaluate():
        clock.now += 100.0
        return {"test": 0.5}

    data = squares()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 3))
    config = {**SUPERVISED_DEFAULTS, **TINY, "augment": False, "eval_every": 1}
    history = train_classifier(model, data, InputSpec.fit(data.images, 1, 16), config, torch.device("cpu"), 0,
                               evaluate=evaluate, clock=perf_counter)
    assert [entry["seconds"] for entry in history] == [1.0, 1.0, 1.0]
    assert [entry["train_seconds"] for entry in history] == [1.0, 2.0, 3.0]
    assert all(entry["test_accuracy"] == {"test": 0.5} for entry in history)


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_a_bad_eval_every_is_refused_by_name(value):
    with pytest.raises(ConfigError, match="eval_every"):
        check_config({**SUPERVISED_DEFAULTS, "eval_every": value})


def test_sgd_is_nesterov_momentum_and_trains(zoo, tmp_path):
    from ferbench.training import make_optimizer

    optimizer = make_optimizer(torch.nn.Linear(2, 2), {**SUPERVISED_DEFAULTS, "optimizer": "sgd", "lr": 0.05})
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9
    assert isinstance(make_optimizer(torch.nn.Linear(2, 2), SUPERVISED_DEFAULTS), torch.optim.AdamW)
    (record,) = tiny_run(zoo, tmp_path, optimizer="sgd", lr=0.05)
    assert record["config"]["optimizer"] == "sgd"
    assert record["metrics"]["accuracy"] > 0.6  # the squares are easy


@pytest.mark.parametrize("key, value", [("optimizer", "adam"), ("optimizer", None), ("compile", "yes")])
def test_a_bad_optimizer_or_compile_value_is_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=key):
        check_config({**SUPERVISED_DEFAULTS, key: value})


def test_compile_wraps_the_training_forward(zoo, tmp_path, monkeypatch):
    """The wiring, with torch.compile's eager backend (inductor's C++ build is the slow test below)."""
    compiled = []
    real_compile = torch.compile

    def eager_compile(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    (record,) = tiny_run(zoo, tmp_path, compile=True)
    assert len(compiled) == 1 and record["config"]["compile"] is True
    assert record["metrics"]["accuracy"] > 0.6
    assert (Path(record["_path"]).parent / "model" / "model.safetensors").is_file()  # the plain model's weights


def test_compile_on_a_cpu_without_a_compiler_is_refused_before_training(zoo, tmp_path, no_cpp_compiler):
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        tiny_run(zoo, tmp_path / "results", compile=True)
    assert not (tmp_path / "results").exists()  # nothing written


@pytest.mark.slow
def test_compile_with_inductor_on_the_cpu(zoo, tmp_path):
    (record,) = tiny_run(zoo, tmp_path, compile=True, epochs=1)
    assert record["status"] == "ok" and len(record["extra"]["history"]) == 1


def test_a_resumed_loop_keeps_its_curve_and_training_clock(squares, tmp_path):
    from ferbench.checkpoint import TrainingCheckpoint

    data = squares()
    config = {**SUPERVISED_DEFAULTS, **TINY, "augment": False, "eval_every": 1}
    spec = InputSpec.fit(data.images, 1, 16)
    scores = iter([0.4, 0.5, 0.6])

    def train(**kwargs):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 3))
        return train_classifier(model, data, spec, config, torch.device("cpu"), 0,
                                checkpoint=TrainingCheckpoint(tmp_path / "checkpoint.pt"),
                                evaluate=lambda: {"test": next(scores)}, **kwargs)

    def stop_after_epoch_2(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(epoch_end=stop_after_epoch_2)
    history = train()
    assert [entry["test_accuracy"]["test"] for entry in history] == [0.4, 0.5, 0.6]
    assert history[-1]["train_seconds"] == pytest.approx(sum(entry["seconds"] for entry in history))


def test_evaluating_between_epochs_leaves_the_training_unchanged(zoo, tmp_path):
    (plain,) = tiny_run(zoo, tmp_path / "plain")
    (curved,) = tiny_run(zoo, tmp_path / "curved", eval_every=1)
    assert [e["loss"] for e in plain["extra"]["history"]] == [e["loss"] for e in curved["extra"]["history"]]
    assert plain["metrics"] == curved["metrics"]

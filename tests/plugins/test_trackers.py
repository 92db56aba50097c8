"""The MLflow and TensorBoard plugins: a tiny real run with --track, read back with MLflow's own client
and TensorBoard's own event reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferbench.cli import app
from ferbench.errors import ConfigError
from ferbench.interfaces import TrackerSpec
from ferbench.runner import RunRequest, run

runner = CliRunner()
CONFIG = {"epochs": 3, "batch_size": 8, "lr": 0.01}


def tiny_tracked_run(zoo, out: Path, *track: str, **kwargs):
    return run(zoo, RunRequest("example-tinycnn", "squares", config=dict(CONFIG), out_dir=out, device="cpu",
                               track=list(track), **kwargs))


def test_mlflow_gets_params_epoch_metrics_final_metrics_and_artifacts(zoo, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'ferbench[tracking]')")
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default store is ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (record,) = tiny_tracked_run(zoo, tmp_path / "results", "mlflow")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("ferbench").experiment_id])
    assert found.info.run_name == record["run_id"] and found.info.status == "FINISHED"
    params = found.data.params
    assert params["method"] == "example-tinycnn" and params["config.epochs"] == "3" and params["seed"] == "0"
    losses = client.get_metric_history(found.info.run_id, "holdout/loss")
    assert [m.step for m in losses] == [1, 2, 3]
    assert found.data.metrics["holdout/test/accuracy"] == pytest.approx(record["metrics"]["accuracy"])
    assert found.data.metrics["test/accuracy"] == pytest.approx(record["metrics"]["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "results/holdout")}
    assert {"results/holdout/result-test.json", "results/holdout/confusion-test.png",
            "results/holdout/model"} <= artifacts
    logged = json.loads(Path(client.download_artifacts(found.info.run_id, "results/holdout/result-test.json",
                                                       str(tmp_path / "download"))).read_text())
    assert logged["run_id"] == record["run_id"]


def test_tensorboard_gets_epoch_scalars_final_metrics_and_the_confusion_matrix(zoo, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'ferbench[tracking]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("FERBENCH_TENSORBOARD_DIR", str(tmp_path / "tb"))
    (record,) = tiny_tracked_run(zoo, tmp_path / "results", "tensorboard")
    events = EventAccumulator(str(tmp_path / "tb" / record["run_id"]), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("holdout/loss")] == [1, 2, 3]
    (final,) = events.Scalars("holdout/test/accuracy")
    assert final.value == pytest.approx(record["metrics"]["accuracy"])
    (image,) = events.Images("holdout/test/confusion_matrix")
    assert image.width > 100 and image.height > 100
    assert any("config" in tag for tag in tags.get("tensors", []))


def test_an_unknown_or_unavailable_tracker_fails_before_training(zoo, tmp_path, monkeypatch):
    from ferbench import training

    monkeypatch.setattr(training, "train_classifier", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ConfigError, match="tracker .*'wandb'"):
        tiny_tracked_run(zoo, tmp_path, "wandb")
    import ferbench_mlflow

    def missing():
        raise ConfigError("--track mlflow needs MLflow")

    monkeypatch.setitem(zoo.catalog.trackers, "mlflow", TrackerSpec("mlflow", missing))
    with pytest.raises(ConfigError, match="needs MLflow"):
        tiny_tracked_run(zoo, tmp_path, "mlflow")
    assert ferbench_mlflow._runs == {}


def test_track_on_the_command_line_and_from_the_environment(test_plugins, write_registry, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.setenv("FERBENCH_REGISTRY", str(write_registry({"version": 1})))
    monkeypatch.setenv("FERBENCH_TENSORBOARD_DIR", str(tmp_path / "tb"))
    monkeypatch.setenv("FERBENCH_TRACK", "tensorboard")
    done = runner.invoke(app, ["run", "--method", "example-tinycnn", "--dataset", "squares", "--epochs", "1",
                               "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path / "r")],
                         catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert len(list((tmp_path / "tb").iterdir())) == 1

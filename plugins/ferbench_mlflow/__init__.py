"""Log ferbench runs to MLflow: ``ferbench run ... --track mlflow`` (or ``FERBENCH_TRACK=mlflow``).

Through the lifecycle hooks, one MLflow run per ferbench run (named by its run id, in the experiment
``$MLFLOW_EXPERIMENT_NAME`` or ``ferbench``): the resolved config, method, components, dataset, protocol and
seed as params; every epoch's loss, train accuracy, learning rate and seconds as metrics (``<fold>/loss``,
step = epoch; with ``eval_every`` also ``<fold>/<split>/test_accuracy``); at the end each fold's and split's
accuracy and macro-F1 and their mean over folds (``<split>/accuracy``), and the run folder (result JSONs,
PNGs, the saved model) as artifacts under ``results/``. A run whose training failed ends ``FAILED``.

Where: ``$MLFLOW_TRACKING_URI`` if set (a server, ``sqlite:///...`` with a full MLflow, ...), else a local
file store ``./mlruns`` (``mlflow ui`` reads it); MLflow 3 keeps the file store in maintenance mode and asks
for ``MLFLOW_ALLOW_FILE_STORE=true`` to use it, which this plugin sets for its default store only. The
client (``MlflowClient``) is used with explicit run ids, so nothing depends on MLflow's global active run.
Needs ``pip install 'ferbench[tracking]'`` (mlflow-skinny).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ferbench import hookimpl
from ferbench.errors import ConfigError
from ferbench.interfaces import TrackerSpec

NAME = "mlflow"
DEFAULT_STORE = "mlruns"
_runs: dict[str, tuple[Any, str]] = {}  # ferbench run id -> (its MlflowClient, the MLflow run id)


def check() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError as error:
        raise ConfigError("--track mlflow needs MLflow: pip install 'ferbench[tracking]' (or mlflow-skinny)") \
            from error


def client():
    from mlflow import MlflowClient

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = Path(DEFAULT_STORE).resolve().as_uri()
    return MlflowClient(tracking_uri=uri)


def _on(run: dict[str, Any]) -> bool:
    return NAME in (run.get("track") or [])


@hookimpl
def ferbench_register_trackers():
    return [TrackerSpec(NAME, check, "MLflow: params, per-epoch metrics, final metrics, the run folder as "
                                     "artifacts ($MLFLOW_TRACKING_URI, else ./mlruns)")]


@hookimpl
def ferbench_run_start(run):
    if not _on(run):
        return
    from mlflow.entities import Param

    tracker = client()
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "ferbench"
    experiment = tracker.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else tracker.create_experiment(name)
    tags = {"ferbench.run_id": run["run_id"], "ferbench.method": run["method"], "ferbench.dataset": run["dataset"],
            "ferbench.protocol": run["protocol"], "mlflow.runName": run["run_id"]}
    created = tracker.create_run(experiment_id, tags=tags, run_name=run["run_id"])
    _runs[run["run_id"]] = tracker, created.info.run_id
    params = {**{f"config.{k}": v for k, v in run["config"].items()},
              **{f"component.{role}": name for role, name in run["components"].items()},
              "method": run["method"], "dataset": run["dataset"], "protocol": run["protocol"], "seed": run["seed"],
              "target": run.get("target"), "device": run["device"]}
    tracker.log_batch(created.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])


@hookimpl
def ferbench_epoch_end(run, fold, epoch, metrics):
    if not _on(run) or run["run_id"] not in _runs:
        return
    values = {f"{fold}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    values.update({f"{fold}/{split}/test_accuracy": v for split, v in (metrics.get("test_accuracy") or {}).items()})
    _log(*_runs[run["run_id"]], values, step=epoch)


@hookimpl
def ferbench_run_end(run, results):
    if not _on(run) or run["run_id"] not in _runs:
        return
    tracker, mlflow_run = _runs.pop(run["run_id"])
    finals: dict[str, float] = {}
    per_split: dict[str, list[dict[str, float]]] = {}
    for record in results:
        if record.get("status") != "ok":
            continue
        metrics = record["metrics"]
        for key in ("accuracy", "macro_f1"):
            finals[f"{record['fold']}/{record['test_split']}/{key}"] = metrics[key]
        per_split.setdefault(record["test_split"], []).append(metrics)
    for split, group in per_split.items():
        for key in ("accuracy", "macro_f1"):
            finals[f"{split}/{key}"] = sum(m[key] for m in group) / len(group)
    _log(tracker, mlflow_run, finals, step=0)
    tracker.log_artifacts(mlflow_run, run["out_dir"], artifact_path="results")
    failed = any(record.get("status") != "ok" for record in results) or not results
    tracker.set_terminated(mlflow_run, status="FAILED" if failed else "FINISHED")


def _log(tracker, mlflow_run: str, values: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
    if metrics:
        tracker.log_batch(mlflow_run, metrics=metrics)

"""One reproducible experiment: a method on a dataset under a protocol, from names alone.

``run`` resolves and checks everything before any training starts (names, hyperparameters, the data,
the protocol's folds), then fits the method on each fold, scores it on each test split and writes one
result record per fold and split, a confusion-matrix PNG and the trained model. ``evaluate`` scores a
saved model on any dataset ferbench can load.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ferbench.checkpoint import load_model
from ferbench.data import Dataset
from ferbench.errors import ConfigError, DatasetError, unknown_name
from ferbench.interfaces import ProtocolOptions, RunContext
from ferbench.metrics import classification_metrics
from ferbench.plots import confusion_matrix_png
from ferbench.protocols import TRAIN_SPLIT, evaluation_splits
from ferbench.registry import Zoo
from ferbench.tables import result_table
from ferbench.results import device_info, environment, git_info, new_run_id, now_iso, slug, write_result
from ferbench.training import check_config, predict_proba, seed_everything


@dataclass
class RunRequest:
    """Everything ``ferbench run`` takes; ``config`` and ``components`` override the method's defaults."""

    method: str
    dataset: str
    protocol: str | None = None
    target: str | None = None
    seed: int = 0
    folds: int | None = None
    only_folds: list[int] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    components: dict[str, str] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    out_dir: Path = Path("results")
    save_model: bool = True


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available here (use --device cpu)")
    return torch.device(name)


def merge_config(defaults: dict[str, Any], overrides: dict[str, Any], method: str) -> dict[str, Any]:
    unknown = [k for k in overrides if k not in defaults]
    if unknown:
        raise unknown_name(f"hyperparameter of {method}", unknown[0], defaults)
    config = {**defaults, **overrides}
    check_config(config)
    return config


class Tracker:
    """Rich progress bars for long work; quiet when the console is not a terminal (CI, logs)."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                                 disable=not console.is_terminal)

    def __call__(self, iterable: Iterable, description: str, total: int | None = None) -> Iterator:
        task = self.progress.add_task(description, total=total if total is not None else _length(iterable))
        try:
            for item in iterable:
                yield item
                self.progress.advance(task)
        finally:
            self.progress.remove_task(task)


def _length(iterable: Iterable) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def run(zoo: Zoo, request: RunRequest, console: Console | None = None) -> list[dict[str, Any]]:
    """Run ``request`` and return the result records written."""
    console = console or Console()
    method = zoo.method(request.method)
    config = merge_config(method.defaults, request.config, method.name)
    components = dict(method.components)
    for role, name in request.components.items():
        if role not in components:
            raise ConfigError(f"--component {role}=...: {method.name} has no {role!r} component "
                              f"(roles: {', '.join(components) or 'none'})")
        zoo.catalog.component(name)
        components[role] = name
    device = resolve_device(request.device)
    source = zoo.dataset(request.dataset).with_options(request.data_options)
    protocol_name = request.protocol or method.spec.protocol or source.protocol
    protocol, protocol_options = zoo.protocol(protocol_name)
    if protocol.needs_target and not request.target:
        raise ConfigError(f"--protocol {protocol_name} needs --target (the dataset to train on)")
    if request.target and not protocol.needs_target:
        raise ConfigError(f"--target is only used by a cross-dataset protocol, not {protocol_name!r}")
    target = zoo.dataset(request.target).with_options(request.data_options) if request.target else None

    with console.status(f"loading {source.name}" + (f" and {target.name}" if target else "")):
        dataset = source.load()
        target_data = target.load() if target else None
    for data in filter(None, (dataset, target_data)):
        if len(data.class_counts()) < 2 or sum(1 for k in data.class_counts().values() if k) < 2:
            raise DatasetError(f"dataset {data.name!r} has fewer than two classes with images; nothing to classify")
    folds_wanted = request.folds or int(protocol_options.get("folds", 10))
    folds = list(protocol.folds(dataset, ProtocolOptions(seed=request.seed, folds=folds_wanted, target=target_data)))
    if request.only_folds:
        bad = [k for k in request.only_folds if not 1 <= k <= len(folds)]
        if bad:
            raise ConfigError(f"--fold {bad[0]}: the protocol has folds 1..{len(folds)}")
        folds = [folds[k - 1] for k in request.only_folds]

    run_id = new_run_id(method.name, dataset.name, protocol_name, request.seed)
    run_dir = Path(request.out_dir) / run_id
    if request.data_options:
        config = {**config, "data_options": request.data_options}
    info = {"run_id": run_id, "method": method.name, "components": components, "dataset": dataset.name,
            "target": target_data.name if target_data else None, "protocol": protocol_name,
            "seed": request.seed, "config": config, "out_dir": str(run_dir), "device": str(device)}
    plugins = zoo.plugins
    plugins.notify("ferbench_run_start", run=info)
    console.print(f"[bold]{method.name}[/] on [bold]{dataset.name}[/]"
                  + (f" (trained on {target_data.name})" if target_data else "")
                  + f", protocol {protocol_name}, {len(folds)} fold(s), seed {request.seed}, device {device}")

    common = {
        "schema": "ferbench.result/1", "run_id": run_id, "method": method.name, "method_plugin": method.plugin,
        "components": components, "dataset": dataset.name,
        "train_dataset": target_data.name if target_data else dataset.name, "protocol": protocol_name,
        "seed": request.seed, "config": config, "device": device_info(device), "git": git_info(),
        "environment": environment({n: p.version for n, p in plugins.plugins.items()}),
        "paper": method.paper and {k: method.paper[k] for k in ("title", "authors", "year") if k in method.paper},
    }
    tracker = Tracker(console)
    records: list[dict[str, Any]] = []
    with tracker.progress:
        for fold in folds:
            records += _run_fold(zoo, method, fold, config, components, request, device, run_dir, common,
                                 tracker, info)
    plugins.notify("ferbench_run_end", run=info, results=records)
    return records


def _run_fold(zoo, method, fold, config, components, request, device, run_dir, common, tracker, info) -> list[dict]:
    seed_everything(request.seed)
    fold_dir = run_dir / slug(fold.name)
    fold_dir.mkdir(parents=True, exist_ok=True)

    def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        zoo.plugins.notify("ferbench_epoch_end", run=info, fold=fold.name, epoch=epoch, metrics=metrics)

    ctx = RunContext(config=config, components=components, seed=request.seed, device=device, out_dir=fold_dir,
                     build=zoo.catalog.build, track=tracker, epoch_end=epoch_end, adaptation=fold.adaptation)
    model = method.spec.build()
    started = time.perf_counter()
    model.fit(fold.train, ctx)
    fit_seconds = time.perf_counter() - started
    saved = None
    if request.save_model:
        model.save(fold_dir / "model", trained_by={"run_id": common["run_id"], "method": method.name,
                                                   "dataset": common["train_dataset"], "fold": fold.name,
                                                   "seed": request.seed})
        saved = fold_dir / "model" if (fold_dir / "model").exists() else None
    records = []
    for split, test in fold.tests.items():
        aligned = test.restricted_to(model.classes)
        started = time.perf_counter()
        probabilities = model.predict(aligned)
        predict_seconds = time.perf_counter() - started
        extra = model.report(aligned, ctx)
        record = _record(common, fold.name, split, fold.train, test, aligned, model.classes, probabilities, extra,
                         {"fit_s": fit_seconds, "predict_s": predict_seconds,
                          "predict_images_per_s": len(aligned) / max(predict_seconds, 1e-9)},
                         fold_dir, saved)
        records.append(record)
        _print_summary(tracker.console, record)
    return records


def _record(common, fold, split, train: Dataset | None, test: Dataset, aligned: Dataset, classes, probabilities,
            extra, timings, fold_dir: Path, saved: Path | None) -> dict[str, Any]:
    """Score ``probabilities`` against ``aligned``, draw the confusion matrix, write the record."""
    metrics = classification_metrics(aligned.labels, probabilities, classes)
    png = confusion_matrix_png(fold_dir / f"confusion-{slug(split)}.png", metrics["confusion_matrix"], classes,
                               f"{common['method']} on {common['dataset']} [{split}], {fold}: "
                               f"accuracy {metrics['accuracy']:.1%}")
    artifacts = {"confusion_matrix_png": png.name}
    if saved is not None:
        artifacts["model"] = saved.name
    record = {
        **common, "created": now_iso(), "fold": fold, "test_split": split,
        "data": {"train_images": len(train) if train is not None else None, "test_images": len(test),
                 "scored_images": len(aligned), "excluded_classes": [c for c in test.classes if c not in classes],
                 "train_class_counts": train.class_counts() if train is not None else None,
                 "classes": list(classes)},
        "metrics": metrics, "extra": extra, "timings": timings, "artifacts": artifacts, "status": "ok",
    }
    write_result(fold_dir / f"result-{slug(split)}.json", record)
    record["_path"] = str(fold_dir / f"result-{slug(split)}.json")
    return record


def evaluate(zoo: Zoo, model_path: str | Path, dataset_name: str, split: str | None = None, device: str = "auto",
             out_dir: Path = Path("results"), batch_size: int = 256,
             console: Console | None = None) -> list[dict[str, Any]]:
    """Score a model saved by ``ferbench run`` on a dataset, over the classes the two share."""
    console = console or Console()
    torch_device = resolve_device(device)
    model, input_spec, model_record = load_model(model_path, zoo.catalog.build)
    classes = tuple(model_record["classes"])
    source = zoo.dataset(dataset_name)
    with console.status(f"loading {source.name}"):
        dataset = source.load()
    if split == "all":
        tests = {"all": dataset}
    elif split:
        tests = {split: dataset.split(split)}
    elif TRAIN_SPLIT in dataset.split_names and evaluation_splits(dataset):
        tests = {s: dataset.split(s) for s in evaluation_splits(dataset)}
    else:
        tests = {"all": dataset}
    trained_by = model_record.get("trained_by") or {}
    method_name = trained_by.get("method") or model_record["component"]
    run_id = new_run_id(method_name, dataset.name, "eval", int(trained_by.get("seed", 0)))
    fold_dir = Path(out_dir) / run_id / "eval"
    fold_dir.mkdir(parents=True, exist_ok=True)
    common = {
        "schema": "ferbench.result/1", "run_id": run_id, "method": method_name,
        "components": {"classifier": model_record["component"]}, "dataset": dataset.name,
        "train_dataset": trained_by.get("dataset", "?"), "protocol": "eval", "seed": int(trained_by.get("seed", 0)),
        "config": {"model": str(Path(model_path)), "batch_size": batch_size}, "device": device_info(torch_device),
        "git": git_info(), "environment": environment({n: p.version for n, p in zoo.plugins.plugins.items()}),
        "model": {"path": str(Path(model_path)), "trained_by": trained_by},
    }
    console.print(f"[bold]{method_name}[/] (trained on {common['train_dataset']}) evaluated on [bold]{dataset.name}[/]")
    records = []
    for name, test in tests.items():
        aligned = test.restricted_to(classes)
        if len(aligned) == 0:
            raise DatasetError(f"{dataset.name} [{name}] has no images of the model's classes {list(classes)}")
        started = time.perf_counter()
        probabilities = predict_proba(model, aligned.images, input_spec, torch_device, batch_size)
        seconds = time.perf_counter() - started
        record = _record(common, "eval", name, None, test, aligned, classes, probabilities, {},
                         {"predict_s": seconds, "predict_images_per_s": len(aligned) / max(seconds, 1e-9)},
                         fold_dir, None)
        records.append(record)
        _print_summary(console, record)
    return records


def _print_summary(console: Console, record: dict[str, Any]) -> None:
    console.print(result_table(record))

"""One reproducible experiment: a method on a dataset under a protocol, from names alone.

``run`` resolves and checks everything before any training starts (names, hyperparameters, the data,
the protocol's folds), then fits the method on each fold, scores it on each test split and writes one
result record per fold and split, a confusion-matrix PNG and the trained model. ``evaluate`` scores a
saved model on any dataset ferbench can load.

Faults: the run folder's ``run.json`` records how the run was asked for; each fold's training state is
checkpointed every epoch; Ctrl-C and SIGTERM stop with the command that resumes (``--resume``: finished
folds are kept, the interrupted one continues from its checkpoint); a fold whose training diverges gets
result records with ``status: failed`` and the error, and the run goes on with the next fold.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ferbench import distributed, robustness, threads
from ferbench.calibration import apply_temperature, calibration_scores, fit_temperature, reliability_bins
from ferbench.checkpoint import TrainingCheckpoint
from ferbench.data import Dataset
from ferbench.errors import ConfigError, DatasetError, RunInterrupted, TrainingDiverged, unknown_name
from ferbench.files import jsonable, write_json
from ferbench.interfaces import ProtocolOptions, RunContext
from ferbench.metrics import classification_metrics
from ferbench.plots import confusion_matrix_png, reliability_png, time_to_accuracy_png
from ferbench.protocols import TRAIN_SPLIT, carve_validation, evaluation_splits
from ferbench.registry import Zoo
from ferbench.tables import result_table
from ferbench.plugins import PLUGINS_ENV
from ferbench.results import (RUN_MANIFEST, RUN_SCHEMA, claim_run_dir, command_line, device_info, environment,
                              git_info, now_iso, read_run_manifest, slug, validate_result, write_result)
from ferbench.training import check_config, check_tta, seed_everything


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
    resume: Path | None = None  # a run folder to continue (its run.json must agree with the rest)
    # A fraction of each fold's training data held out to fit temperature scaling on (None: no scaling).
    validation: float | None = None
    robustness: bool = False  # after scoring, score each test split under every corruption x severity
    track: list[str] = field(default_factory=list)  # experiment trackers to log to (ferbench list trackers)


CHECKPOINT_FILE = "checkpoint.pt"
LABEL_SPACES = ("model", "shared")  # ferbench eval: pick the answer among the model's classes, or those it shares
REQUEST_FIELDS = ("method", "dataset", "protocol", "target", "seed", "folds", "only_folds", "config", "components",
                  "data_options", "device", "save_model", "validation", "robustness", "track")


def resume_request(run_dir: str | Path, given: dict[str, Any]) -> RunRequest:
    """The request ``run_dir`` was started with, with the values given again (not None) on top; ``run``
    then checks that they resolve to the same run."""
    recorded = read_run_manifest(run_dir)["request"]
    merged = {key: recorded.get(key) for key in REQUEST_FIELDS}
    for key, value in given.items():
        if value is not None:
            merged[key] = {**(merged[key] or {}), **value} if isinstance(value, dict) else value
    return RunRequest(**{k: v for k, v in merged.items() if v is not None}, out_dir=Path(run_dir).parent,
                      resume=Path(run_dir))


def resolve_device(name: str) -> torch.device:
    threads.apply()  # every command that computes comes through here
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
    # `--set key=a,b` for a list-valued hyperparameter is that list, so a run records (and the leaderboard
    # groups) the same setting whether it came from registry.yaml or the command line.
    overrides = {k: [item.strip() for item in v.split(",") if item.strip()]
                 if isinstance(v, str) and isinstance(defaults[k], list) else v for k, v in overrides.items()}
    config = {**defaults, **overrides}
    check_config(config)
    return config


class Tracker:
    """Rich progress bars for long work on a terminal. Elsewhere (CI, nohup, SLURM logs) a bar cannot draw,
    so a stage still running after ``log_every`` seconds prints a line then and every ``log_every`` seconds
    after (steps done, elapsed, an estimate of what is left): a GAN stage of many minutes is not silent."""

    def __init__(self, console: Console, log_every: float = 120.0, clock: Callable[[], float] = time.monotonic):
        self.console, self.log_every, self.clock = console, log_every, clock
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                                 disable=not console.is_terminal)

    def __call__(self, iterable: Iterable, description: str, total: int | None = None) -> Iterator:
        total = total if total is not None else _length(iterable)
        task = self.progress.add_task(description, total=total)
        started = self.clock()
        next_line = started + self.log_every
        to_log = not self.console.is_terminal  # asked once: rich checks the stream on every call
        try:
            for done, item in enumerate(iterable, 1):
                yield item
                self.progress.advance(task)
                now = self.clock()
                if to_log and now >= next_line:
                    self.console.print(progress_line(description, done, total, now - started), highlight=False)
                    next_line = now + self.log_every
        finally:
            self.progress.remove_task(task)


def progress_line(description: str, done: int, total: int | None, elapsed: float) -> str:
    """``GAN 412/1000 (41%), 2:00 elapsed, about 2:51 left``: a log's view of a progress bar."""
    def clock(seconds: float) -> str:
        minutes, seconds = divmod(round(seconds), 60)
        return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"

    if not total:
        return f"{description} {done} done, {clock(elapsed)} elapsed"
    return (f"{description} {done}/{total} ({done / total:.0%}), {clock(elapsed)} elapsed, "
            f"about {clock(elapsed * (total - done) / done)} left")


def epoch_line(fold: str, epoch: int, metrics: dict[str, Any]) -> str:
    """One line per epoch, so a log (CI, nohup, SLURM) shows progress the progress bar cannot."""
    parts = [f"{fold} epoch {epoch}"]
    for key, spec in (("loss", ".4f"), ("train_accuracy", ".2%"), ("lr", ".2e"), ("seconds", ".1f")):
        if isinstance(metrics.get(key), (int, float)):
            parts.append(f"{key.replace('_', ' ')} {format(metrics[key], spec)}")
    parts += [f"{split} {accuracy:.2%}" for split, accuracy in (metrics.get("test_accuracy") or {}).items()]
    return ", ".join(parts)


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
    device = distributed.setup(resolve_device(request.device))
    if not distributed.is_main():  # under torchrun, rank 0 alone reports and writes
        console = Console(quiet=True)
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
    load_reports = _load_reports(console, (dataset, target_data))
    for data in filter(None, (dataset, target_data)):
        if len(data.class_counts()) < 2 or sum(1 for k in data.class_counts().values() if k) < 2:
            raise DatasetError(f"dataset {data.name!r} has fewer than two classes with images; nothing to classify")
    if request.folds is not None and request.folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {request.folds}")
    folds_wanted = request.folds or int(protocol_options.get("folds", 10))
    folds = list(protocol.folds(dataset, ProtocolOptions(seed=request.seed, folds=folds_wanted, target=target_data)))
    if request.only_folds:
        bad = [k for k in request.only_folds if not 1 <= k <= len(folds)]
        if bad:
            raise ConfigError(f"--fold {bad[0]}: the protocol has folds 1..{len(folds)}")
        folds = [folds[k - 1] for k in request.only_folds]
    if request.validation is not None:
        folds = [carve_validation(fold, float(request.validation), request.seed) for fold in folds]

    if request.data_options:
        config = {**config, "data_options": request.data_options}
    resolved = _plain({"method": method.name, "components": components, "dataset": dataset.name,
                       "target": target_data.name if target_data else None, "protocol": protocol_name,
                       "seed": request.seed, "config": config, "folds": [f.name for f in folds],
                       "validation": request.validation, "robustness": request.robustness or None})
    if request.robustness:
        robustness.select(zoo.catalog.corruptions, None, None)  # no corruptions: say so before training
    for name in request.track:  # a tracker that cannot log fails the run now, not after training
        if name not in zoo.catalog.trackers:
            raise unknown_name("tracker (--track)", name, zoo.catalog.trackers)
        zoo.catalog.trackers[name].check()
    _dry_run(zoo, method, folds[0], config, components, request, device)

    if request.resume:
        run_dir = Path(request.resume)
        manifest = read_run_manifest(run_dir)
        _check_same_run(manifest["resolved"], resolved, run_dir)
        run_id = manifest["run_id"]
        manifest["resumes"] = [*manifest.get("resumes", []), {"at": now_iso(), "argv": list(sys.argv)}]
    else:
        run_id, run_dir = distributed.from_main(
            claim_run_dir(request.out_dir, method.name, dataset.name, protocol_name, request.seed)
            if distributed.is_main() else None)
        manifest = {"schema": RUN_SCHEMA, "run_id": run_id, "created": now_iso(), "argv": list(sys.argv),
                    "cwd": os.getcwd(), "registry": str(zoo.registry.path) if zoo.registry.path else None,
                    "request": _plain({k: getattr(request, k) for k in REQUEST_FIELDS}), "resolved": resolved,
                    "threads": torch.get_num_threads()}  # what `--resume` runs with again (ferbench.threads)
    if distributed.is_main():
        write_json(run_dir / RUN_MANIFEST, manifest)
    info = {"run_id": run_id, "method": method.name, "components": components, "dataset": dataset.name,
            "target": target_data.name if target_data else None, "protocol": protocol_name,
            "seed": request.seed, "config": config, "out_dir": str(run_dir), "device": str(device),
            "track": list(request.track)}
    plugins = zoo.plugins
    # Hooks fire once per run: in rank 0 under torchrun.
    notify = plugins.notify if distributed.is_main() else lambda *args, **kwargs: None
    notify("ferbench_run_start", run=info)
    console.print(f"[bold]{method.name}[/] on [bold]{dataset.name}[/]"
                  + (f" (trained on {target_data.name})" if target_data else "")
                  + f", protocol {protocol_name}, {len(folds)} fold(s), seed {request.seed}, device {device}"
                  + (f", resuming {run_dir}" if request.resume else ""))

    common = {
        "schema": "ferbench.result/1", "run_id": run_id, "method": method.name, "method_plugin": method.plugin,
        "components": components, "dataset": dataset.name,
        "train_dataset": target_data.name if target_data else dataset.name, "protocol": protocol_name,
        "seed": request.seed, "config": config, "device": {**device_info(device), **distributed.describe()},
        **({"validation": request.validation} if request.validation is not None else {}),
        "git": git_info(),
        "environment": environment({n: p.version for n, p in plugins.plugins.items()}),
        "paper": method.paper and {k: method.paper[k] for k in ("title", "authors", "year") if k in method.paper},
        # How to rerun it: the command that started the run (and any that resumed it), from where.
        "command": {"argv": manifest["argv"], "line": command_line(manifest["argv"]), "cwd": manifest["cwd"],
                    "resumed_by": manifest.get("resumes", [])},
    }
    if load_reports:
        common["load_reports"] = load_reports
    tracker = Tracker(console)
    records: list[dict[str, Any]] = []
    checkpoint = TrainingCheckpoint()
    received: list[int] = []  # the signals that stopped the run
    try:
        with tracker.progress, _sigterm_stops_like_ctrl_c(received):
            for fold in folds:
                fold_dir = run_dir / slug(fold.name)
                finished = _finished_records(fold_dir, fold) if request.resume else None
                if finished is not None:
                    console.print(f"{fold.name}: finished before the interruption; kept")
                    records += finished
                    continue
                checkpoint = TrainingCheckpoint(fold_dir / CHECKPOINT_FILE, writable=distributed.is_main())
                records += _run_fold(zoo, method, fold, config, components, request, device, fold_dir, common,
                                     tracker, info, checkpoint)
    except KeyboardInterrupt:
        signum = received[0] if received else signal.SIGINT
        how = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
        raise RunInterrupted(_stopped_message(f"stopped by {how}", run_dir, checkpoint),
                             128 + signum) from None
    except Exception as error:
        if isinstance(error, ConfigError) and not request.resume and distributed.is_main() and _holds_nothing(run_dir):
            # Bad input that only the method could see, before anything was trained: no folder to leave.
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        console.print(f"[red]{escape(_stopped_message(f'stopped by {type(error).__name__}', run_dir, checkpoint))}[/]")
        raise
    notify("ferbench_run_end", run=info, results=records)
    return records


def _holds_nothing(run_dir: Path) -> bool:
    """True when ``run_dir`` has only its run.json and empty fold folders."""
    return all(path.name == RUN_MANIFEST or path.is_dir() for path in run_dir.rglob("*"))


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON, so a recorded run compares equal to a resolved one."""
    return json.loads(json.dumps(value, default=jsonable))


def _check_same_run(recorded: dict[str, Any], resolved: dict[str, Any], run_dir: Path) -> None:
    for key in sorted(set(recorded) | set(resolved)):
        old, new = recorded.get(key), resolved.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differing = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
            key, old, new = (f"{key}.{differing[0]}", old.get(differing[0]), new.get(differing[0])) if differing \
                else (key, old, new)
        if old != new:
            raise ConfigError(f"--resume {run_dir}: the run was started with {key} = {old!r}, this command gives "
                              f"{new!r}; resume with the run's own settings (ferbench run --resume {run_dir}) "
                              "or start a new run")


def _dry_run(zoo, method, fold, config, components, request, device) -> None:
    """Let the method refuse settings it cannot train with (an image size its networks cannot take, say)
    before any fold trains and before the run folder exists."""
    ctx = RunContext(config=config, components=components, seed=request.seed, device=device,
                     out_dir=Path(request.out_dir) / "(dry run)", build=zoo.catalog.build,
                     track=lambda iterable, *a, **k: iterable, epoch_end=lambda epoch, metrics: None,
                     adaptation=fold.adaptation, validation=fold.validation)
    built = method.spec.build()
    if distributed.world_size() > 1 and not built.distributed:
        raise ConfigError(f"{method.name} cannot train across {distributed.world_size()} torchrun processes "
                          "(only supervised classifiers can); run it as one process")
    built.check(fold.train, ctx)


@contextmanager
def _sigterm_stops_like_ctrl_c(received: list[int]) -> Iterator[None]:
    """While training, SIGTERM (what ``kill``, schedulers and container runtimes send) raises
    KeyboardInterrupt like Ctrl-C, so temporary files are cleaned up and the run says how to resume.
    The signals are appended to ``received``."""

    def on_sigterm(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    try:
        yield
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def resume_command(run_dir: Path) -> str:
    """The exact command that resumes ``run_dir`` (plugins named by the environment must be named again:
    a results folder never decides which code is loaded)."""
    env = f"{PLUGINS_ENV}={shlex.quote(os.environ[PLUGINS_ENV])} " if os.environ.get(PLUGINS_ENV) else ""
    return f"{env}ferbench run --resume {shlex.quote(str(run_dir))}"


def _stopped_message(what: str, run_dir: Path, checkpoint: TrainingCheckpoint) -> str:
    stages = sorted(checkpoint.path.parent.glob(f"{checkpoint.path.stem}.*{checkpoint.path.suffix}")) \
        if checkpoint.path is not None else []
    if checkpoint.path is not None and checkpoint.path.is_file():
        where = f"last checkpoint: {checkpoint.path} (after epoch {checkpoint.epoch})"
    elif stages:  # a method that trains several networks in turn checkpoints each stage on its own
        where = f"stage checkpoints of {checkpoint.path.parent.name}: {', '.join(p.name for p in stages)}"
    elif checkpoint.path is not None:
        where = f"no epoch of {checkpoint.path.parent.name} had finished, so that fold will start over"
    else:
        where = "no fold had started training"
    return (f"{what}\n  {where}\n  finished folds are kept in {run_dir}\n"
            f"  resume with: {resume_command(run_dir)}")


def _finished_records(fold_dir: Path, fold) -> list[dict[str, Any]] | None:
    """The fold's result records when every test split has one (ok or failed); None otherwise."""
    records = []
    for split in fold.tests:
        path = fold_dir / f"result-{slug(split)}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if validate_result(record):
            return None
        record["_path"] = str(path)
        records.append(record)
    return records


def _run_fold(zoo, method, fold, config, components, request, device, fold_dir, common, tracker, info,
              checkpoint: TrainingCheckpoint) -> list[dict]:
    seed_everything(request.seed)
    if distributed.is_main():
        fold_dir.mkdir(parents=True, exist_ok=True)

    def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        if distributed.is_main():
            tracker.console.print(epoch_line(fold.name, epoch, metrics), highlight=False)
            zoo.plugins.notify("ferbench_epoch_end", run=info, fold=fold.name, epoch=epoch, metrics=metrics)

    def note(line: str) -> None:
        if distributed.is_main():
            tracker.console.print(line, highlight=False)

    def evaluate(method) -> dict[str, float]:  # for time-to-accuracy curves (eval_every)
        accuracies = {}
        for split, test in fold.tests.items():
            aligned = test.restricted_to(method.classes)
            accuracies[split] = classification_metrics(aligned.labels, method.predict(aligned),
                                                       method.classes)["accuracy"]
        return accuracies

    ctx = RunContext(config=config, components=components, seed=request.seed, device=device, out_dir=fold_dir,
                     build=zoo.catalog.build, track=tracker, epoch_end=epoch_end, adaptation=fold.adaptation,
                     validation=fold.validation,
                     # Every rank evaluates (rank 0 alone records it): ranks that skipped it would wait in the
                     # next step's all-reduce meanwhile, long enough on a big test set for NCCL's watchdog.
                     checkpoint=checkpoint, evaluate=evaluate, note=note)
    model = method.spec.build()
    started = time.perf_counter()
    try:
        model.fit(fold.train, ctx)
    except TrainingDiverged as error:
        if not distributed.is_main():
            return []
        return _failed_records(common, fold, error, checkpoint, fold_dir, time.perf_counter() - started,
                               tracker.console)
    fit_seconds = time.perf_counter() - started
    if not distributed.is_main():  # the other ranks trained; rank 0 scores, saves and writes
        return []
    resumed_from = checkpoint.resumed_from
    calibration = fit_calibration(model, fold.validation) if fold.validation is not None else None
    saved = None
    if request.save_model:
        # The training images' size and face pipeline let `ferbench predict` crop new photos the same way.
        model.save(fold_dir / "model", trained_by={"run_id": common["run_id"], "method": method.name,
                                                   "dataset": common["train_dataset"], "fold": fold.name,
                                                   "seed": request.seed, "image_size": list(fold.train.image_size),
                                                   "face_pipeline": fold.train.load_report.get("face_pipeline"),
                                                   **({"calibration": calibration} if calibration else {})})
        saved = fold_dir / "model" if (fold_dir / "model").exists() else None
    records = []
    for split, test in fold.tests.items():
        aligned = test.restricted_to(model.classes)
        started = time.perf_counter()
        probabilities = model.predict(aligned)
        predict_seconds = time.perf_counter() - started
        extra = model.report(aligned, ctx)
        timings = {"fit_s": fit_seconds, "predict_s": predict_seconds,
                   "predict_images_per_s": len(aligned) / max(predict_seconds, 1e-9)}
        if resumed_from:
            timings["resumed_after_epoch"] = resumed_from  # fit_s counts only the epochs trained after it
        record = _record(common, fold.name, split, fold.train, test, aligned, model.classes, probabilities, extra,
                         timings, fold_dir, saved, calibration)
        records.append(record)
        _print_summary(tracker.console, record)
        if request.robustness:
            header = {key: common[key] for key in ("run_id", "method", "components", "dataset", "train_dataset",
                                                   "device", "git", "environment", "command")}
            header.update(fold=fold.name, split=split, tta=config.get("tta"), training_config=config,
                          model={"path": str(saved) if saved else None, "trained_by": {"method": method.name}})
            corruptions = robustness.select(zoo.catalog.corruptions, None, None)[0]
            robustness.in_run(model, test, model.classes, header, zoo.registry, corruptions, request.seed,
                              fold_dir / f"robustness-{slug(split)}.json", tracker.console)
    checkpoint.remove()  # the results and the model are written; the training state is no longer needed
    return records


def _failed_records(common, fold, error: TrainingDiverged, checkpoint: TrainingCheckpoint, fold_dir: Path,
                    fit_seconds: float, console: Console) -> list[dict[str, Any]]:
    """One record per test split saying the fold failed, why, and which checkpoint is the last good one."""
    kept = checkpoint.path if checkpoint.path is not None and checkpoint.path.is_file() else None
    message = str(error) + (f"; the last good checkpoint is {kept} (after epoch {checkpoint.epoch})" if kept
                            else "; no epoch had finished, so there is no checkpoint")
    console.print(f"[bold red]{escape(fold.name)} failed:[/] {escape(message)}")
    records = []
    for split, test in fold.tests.items():
        path = fold_dir / f"result-{slug(split)}.json"
        record = {
            **common, "created": now_iso(), "fold": fold.name, "test_split": split,
            "data": {"train_images": len(fold.train), "test_images": len(test)},
            "metrics": None, "extra": {}, "timings": {"fit_s": fit_seconds},
            "artifacts": {"checkpoint": kept.name} if kept else {}, "status": "failed",
            "error": {"type": "diverged", "message": message, "epoch": error.epoch, "step": error.step,
                      "component": error.component, "value": repr(error.value),
                      "checkpoint_epoch": checkpoint.epoch if kept else None},
        }
        write_result(path, record)
        record["_path"] = str(path)
        records.append(record)
    return records


def fit_calibration(model, validation: Dataset) -> dict[str, Any]:
    """Temperature scaling fitted on the fold's validation split (carved from its training data)."""
    aligned = validation.restricted_to(model.classes)
    temperature = fit_temperature(aligned.labels, model.predict(aligned))
    return {"temperature": temperature, "validation_images": len(aligned), "fitted_on": "validation split"}


def _record(common, fold, split, train: Dataset | None, test: Dataset, aligned: Dataset, classes, probabilities,
            extra, timings, fold_dir: Path, saved: Path | None,
            calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score ``probabilities`` against ``aligned``, draw the confusion matrix, the reliability diagram (and
    the time-to-accuracy curve when the method's history has one), write the record. With ``calibration``
    (a fitted temperature) the temperature-scaled calibration scores are recorded under
    ``metrics.temperature_scaled``."""
    metrics = classification_metrics(aligned.labels, probabilities, classes)
    title = f"{common['method']} on {common['dataset']} [{split}], {fold}"
    png = confusion_matrix_png(fold_dir / f"confusion-{slug(split)}.png", metrics["confusion_matrix"], classes,
                               f"{title}: accuracy {metrics['accuracy']:.1%}")
    artifacts = {"confusion_matrix_png": png.name}
    curves = {f"raw (ECE {metrics['ece']:.1%})": reliability_bins(aligned.labels, probabilities)}
    if calibration:
        scaled = apply_temperature(probabilities, calibration["temperature"])
        metrics["temperature_scaled"] = {**calibration, **calibration_scores(aligned.labels, scaled)}
        curves[f"T = {calibration['temperature']:.2f} (ECE {metrics['temperature_scaled']['ece']:.1%})"] = \
            reliability_bins(aligned.labels, scaled)
    if len(aligned):
        artifacts["reliability_png"] = reliability_png(fold_dir / f"reliability-{slug(split)}.png", curves,
                                                       f"{title}: reliability").name
    curve = [{"epoch": entry["epoch"], "train_seconds": entry["train_seconds"],
              "accuracy": entry["test_accuracy"][split]}
             for entry in (extra.get("history") or []) if isinstance(entry, dict)
             and split in (entry.get("test_accuracy") or {})]
    if curve:
        artifacts["time_to_accuracy_png"] = time_to_accuracy_png(
            fold_dir / f"time-to-accuracy-{slug(split)}.png", curve, title).name
    if saved is not None:
        artifacts["model"] = saved.name
    record = {
        **common, "created": now_iso(), "fold": fold, "test_split": split,
        "data": {"train_images": len(train) if train is not None else None, "test_images": len(test),
                 "scored_images": len(aligned), "excluded_classes": [c for c in test.classes if c not in classes],
                 "train_class_counts": train.class_counts() if train is not None else None,
                 "classes": list(classes),
                 "fingerprints": {"train": train.fingerprint() if train is not None else None,
                                  "scored": aligned.fingerprint()}},
        "metrics": metrics, "extra": extra, "timings": timings, "artifacts": artifacts, "status": "ok",
    }
    if curve:
        record["time_to_accuracy"] = curve
    write_result(fold_dir / f"result-{slug(split)}.json", record)
    record["_path"] = str(fold_dir / f"result-{slug(split)}.json")
    return record


def evaluate(zoo: Zoo, model_path: str | Path | Sequence[str | Path], dataset_name: str, split: str | None = None,
             device: str = "auto", out_dir: Path = Path("results"), batch_size: int = 256, tta: str | None = None,
             label_space: str = "model", console: Console | None = None) -> list[dict[str, Any]]:
    """Score a model saved by ``ferbench run`` (or a ``.onnx`` file from ``ferbench export``, labelled
    ``int8:<method>`` when quantised) on a dataset, over the classes the two share.

    Several models are an ensemble: their probabilities are averaged (every member must have the same
    classes), and the record's method is labelled ``ensemble[N]:<method>``. ``tta``: the test-time
    augmentation (default: each model's own, as trained; see ``ferbench.training.TTA_MODES``).
    ``label_space``: ``model`` picks the answer among all the model's classes (a FER2013 model that calls a
    CK+ face neutral is wrong, as CK+ has no neutral); ``shared`` picks it among the classes the model and
    the dataset share, as a model told the dataset's label set would (recorded in the config, so its rows
    never mix with the other's on the leaderboard).
    """
    if label_space not in LABEL_SPACES:
        raise ConfigError(f"--label-space must be one of {', '.join(LABEL_SPACES)}, got {label_space!r}")
    if tta is not None:  # before a run folder is claimed; ONNX models never check it
        check_tta(tta, "--tta")
    console = console or Console()
    paths = [Path(model_path)] if isinstance(model_path, (str, Path)) else [Path(p) for p in model_path]
    if not paths:
        raise ConfigError("ferbench eval needs at least one --model")
    from ferbench.predict import load_classifier  # OpenCV and the face pipeline load only for eval

    torch_device = resolve_device(device)
    members = [(path, load_classifier(path, zoo.catalog.build, torch_device, batch_size=batch_size)) for path in paths]
    classes = members[0][1].classes
    for path, member in members[1:]:
        if member.classes != classes:
            raise ConfigError(f"--model {path}: an ensemble's models must share their classes; it has "
                              f"{list(member.classes)}, {paths[0]} has {list(classes)}")
    source = zoo.dataset(dataset_name)
    with console.status(f"loading {source.name}"):
        dataset = source.load()
    load_reports = _load_reports(console, (dataset,))
    if split == "all":
        tests = {"all": dataset}
    elif split:
        tests = {split: dataset.split(split)}
    elif TRAIN_SPLIT in dataset.split_names and evaluation_splits(dataset):
        tests = {s: dataset.split(s) for s in evaluation_splits(dataset)}
    else:
        tests = {"all": dataset}
    trained_by = members[0][1].record.get("trained_by") or {}
    views = [tta or (member.record.get("trained_by") or {}).get("tta") or "none" for _, member in members]
    # An int8 graph is another model than its fp32 source: labelled so, never averaged into its rows.
    names = [("int8:" if member.int8 else "") + ((member.record.get("trained_by") or {}).get("method")
                                                 or member.record["component"]) for _, member in members]
    runs_on = [{"backend": member.backend, **({"int8": member.int8} if member.int8 else {})} for _, member in members]
    method_name = names[0]
    if len(members) > 1:
        method_name = f"ensemble[{len(members)}]:" + ("+".join(sorted(set(names))))
    run_id, run_dir = claim_run_dir(out_dir, method_name, dataset.name, "eval", int(trained_by.get("seed", 0)))
    fold_dir = run_dir / "eval"
    fold_dir.mkdir()
    config: dict[str, Any] = {"model": str(paths[0]), "batch_size": batch_size, "tta": views[0]}
    if len(members) > 1:
        config.update(model=[str(p) for p in paths], tta=views)
    if label_space != "model":
        config["label_space"] = label_space
    common = {
        "schema": "ferbench.result/1", "run_id": run_id, "method": method_name,
        "components": {"classifier": members[0][1].record["component"]}, "dataset": dataset.name,
        "train_dataset": trained_by.get("dataset", "?"), "protocol": "eval", "seed": int(trained_by.get("seed", 0)),
        "config": config, "device": device_info(torch_device),
        "git": git_info(), "environment": environment({n: p.version for n, p in zoo.plugins.plugins.items()}),
        "model": {"path": str(paths[0]), "trained_by": trained_by, **runs_on[0]},
        "command": {"argv": list(sys.argv), "line": command_line(sys.argv), "cwd": os.getcwd()},
    }
    if len(members) > 1:
        common["ensemble"] = [{"path": str(path), "trained_by": member.record.get("trained_by") or {}, "tta": view, **runs}
                              for (path, member), view, runs in zip(members, views, runs_on)]
    if load_reports:
        common["load_reports"] = load_reports
    console.print(f"[bold]{method_name}[/] (trained on {common['train_dataset']}) evaluated on [bold]{dataset.name}[/]")
    records = []
    for name, test in tests.items():
        aligned = test.restricted_to(classes)
        if len(aligned) == 0:
            raise DatasetError(f"{dataset.name} [{name}] has no images of the model's classes {list(classes)}")
        started = time.perf_counter()
        probabilities = ensemble_proba([member.probabilities for _, member in members], aligned.images, views)
        if label_space == "shared":
            probabilities = restrict_probabilities(probabilities, classes, test.classes)
        seconds = time.perf_counter() - started
        record = _record(common, "eval", name, None, test, aligned, classes, probabilities, {},
                         {"predict_s": seconds, "predict_images_per_s": len(aligned) / max(seconds, 1e-9)},
                         fold_dir, None)
        records.append(record)
        _print_summary(console, record)
    return records


def restrict_probabilities(probabilities: np.ndarray, classes: Sequence[str], allowed: Sequence[str]) -> np.ndarray:
    """``probabilities`` over ``classes`` with every class not in ``allowed`` set to 0 and each row renormalised."""
    keep = np.isin(np.asarray(classes), np.asarray(allowed))
    kept = probabilities * keep
    return kept / np.maximum(kept.sum(axis=1, keepdims=True), np.finfo(kept.dtype).tiny)


def ensemble_proba(members: Sequence[Callable[[np.ndarray, str], np.ndarray]], images: np.ndarray,
                   tta: Sequence[str]) -> np.ndarray:
    """The mean of the members' class probabilities (each scorer with its own TTA views)."""
    return np.mean([score(images, view) for score, view in zip(members, tta)], axis=0)


def _load_reports(console: Console, datasets: Iterable[Dataset | None]) -> dict[str, Any]:
    """What each loader reported (face pipeline, cache, skipped files), shown now and kept in every result."""
    reports = {}
    for data in datasets:
        if data is None or not data.load_report:
            continue
        reports[data.name] = dict(data.load_report)
        cache = data.load_report.get("cache")
        if cache:
            console.print(f"{data.name}: preprocessed images {'reused from' if cache['reused'] else 'cached in'} "
                          f"{cache['file']}")
        skipped = {reason: count for reason, count in (data.load_report.get("excluded_counts") or {}).items() if count}
        if skipped:
            listed = [name for names in (data.load_report.get("excluded") or {}).values() for name in names]
            console.print(f"[yellow]warning:[/] {data.name}: skipped "
                          + ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in skipped.items())
                          + f" image(s) ({', '.join(listed[:5])}{', ...' if len(listed) > 5 else ''}); "
                          "every one is listed under load_reports in the result records", highlight=False)
    return reports


def _print_summary(console: Console, record: dict[str, Any]) -> None:
    console.print(result_table(record))

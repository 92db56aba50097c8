"""``ferbench robustness``: a saved model scored on every corruption x severity of a test split.

Corruptions come from plugins (:class:`~ferbench.interfaces.CorruptionSpec`, hook
``ferbench_register_corruptions``); each is applied at severities 1-5 with a generator seeded by the run's
seed and the corruption's name, the same for every severity, so a cell is reproducible on its own and the
severities are one corruption at five strengths.

One ``ferbench.robustness/1`` record per model and test split holds, per cell, the accuracy, macro-F1,
per-class TPR and ECE; the clean scores; and a summary: the mean corruption accuracy (over all cells and
per severity), the drop from clean (in points and relative to clean), the worst corruption, per-family
means, and the corruption error normalised to the reference model that registry.yaml's
``robustness_references`` names for the dataset (as ImageNet-C's mCE is to AlexNet's, Hendrycks and
Dietterich 2019):

    CE_c = sum_s err(model, c, s) / sum_s err(reference, c, s),  mCE = mean_c CE_c

and the relative mCE, the same over errors minus each model's clean error. A heat map (corruption x
severity) is drawn beside the record. Each corruption's cells are written as soon as they are scored
(``partial/``), so an interrupted pass restarts where it stopped (``--resume``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ferbench.data import Dataset
from ferbench.errors import ConfigError, DatasetError, PluginError, unknown_name
from ferbench.files import write_json
from ferbench.interfaces import CorruptionSpec
from ferbench.metrics import classification_metrics

ROBUSTNESS_SCHEMA = "ferbench.robustness/1"
SEVERITIES = (1, 2, 3, 4, 5)
CELL_METRICS = ("accuracy", "macro_f1", "per_class_tpr", "ece")
PARTIAL_DIR = "partial"

Predict = Callable[[np.ndarray], np.ndarray]  # uint8 images -> class probabilities (N, classes)


def select(catalog_corruptions: dict[str, CorruptionSpec], names: Sequence[str] | None,
           severities: Sequence[int] | None) -> tuple[list[CorruptionSpec], list[int]]:
    """The corruptions and severities a pass scores (default: all), checked before any work is done."""
    if not catalog_corruptions:
        raise ConfigError("no corruptions are registered: is the ferbench_corruptions plugin installed? "
                          "(ferbench plugins lists what loaded)")
    for name in names or ():
        if name not in catalog_corruptions:
            raise unknown_name("corruption", name, catalog_corruptions, where="--corruption")
    for severity in severities or ():
        if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
            raise ConfigError(f"--severity must be an integer from 1 to 5, got {severity!r}")
    chosen = [catalog_corruptions[n] for n in (names or sorted(catalog_corruptions,
                                                               key=lambda n: (catalog_corruptions[n].family, n)))]
    return list(dict.fromkeys(chosen)), sorted(set(severities or SEVERITIES))


def corrupt(spec: CorruptionSpec, images: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` under ``spec`` at ``severity``, from a generator seeded by ``seed`` and the corruption's name."""
    rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
    out = spec.apply(images, severity, rng)
    if not isinstance(out, np.ndarray) or out.shape != images.shape or out.dtype != np.uint8:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise PluginError(f"corruption {spec.name!r} returned {got}, not uint8 {images.shape}")
    return out


def cell_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    metrics = classification_metrics(labels, probabilities, classes)
    return {key: metrics[key] for key in CELL_METRICS}


def score(predict: Predict, test: Dataset, classes: Sequence[str], corruptions: Sequence[CorruptionSpec],
          severities: Sequence[int], seed: int, partial: Path | None = None,
          console: Console | None = None) -> dict[str, Any]:
    """The clean scores and every cell of ``test`` (already restricted to ``classes``). With ``partial`` (a
    folder), each corruption's cells are saved there as it finishes, and cells found there are reused."""
    if len(test) == 0:
        raise DatasetError(f"{test.name} has no images of the model's classes {list(classes)}")
    console = console or Console(stderr=True)
    started = time.perf_counter()
    probabilities = predict(test.images)
    clean = classification_metrics(test.labels, probabilities, classes)
    clean = {key: clean[key] for key in (*CELL_METRICS, "nll", "brier")}
    cells: list[dict[str, Any]] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("corruptions", total=len(corruptions) * len(severities))
        for spec in corruptions:
            saved = partial / f"{spec.name}.json" if partial else None
            if saved and saved.is_file():
                done = json.loads(saved.read_text())
                if done.get("severities") == list(severities) and done.get("images") == len(test):
                    cells.extend(done["cells"])
                    progress.advance(task, len(severities))
                    continue
            own = []
            for severity in severities:
                progress.update(task, description=f"{spec.name} {severity}/5")
                corrupted = corrupt(spec, test.images, severity, seed)
                metrics = cell_metrics(test.labels, predict(corrupted), classes)
                own.append({"corruption": spec.name, "family": spec.family, "severity": severity, **metrics})
                progress.advance(task)
            cells.extend(own)
            if saved:
                write_json(saved, {"severities": list(severities), "images": len(test), "cells": own})
            if not console.is_terminal:  # a log file gets one line per corruption instead of a bar
                console.print(f"{spec.name}: " + " ".join(f"{c['accuracy']:.1%}" for c in own), highlight=False)
    seconds = time.perf_counter() - started
    scored = len(test) * (1 + len(cells))
    return {"clean": clean, "cells": cells,
            "timings": {"seconds": seconds, "images_scored": scored, "images_per_s": scored / max(seconds, 1e-9)}}


def summarise(clean: dict[str, Any], cells: list[dict[str, Any]], reference: dict[str, Any] | None = None,
              reference_path: str | None = None) -> dict[str, Any]:
    """Mean corruption accuracy, drops from clean, worst corruption, per-family and per-severity means, and
    (given a reference record of the same dataset and split) the normalised corruption errors."""
    accuracy = {(c["corruption"], c["severity"]): c["accuracy"] for c in cells}
    names = list(dict.fromkeys(c["corruption"] for c in cells))
    families = {c["corruption"]: c["family"] for c in cells}
    per_corruption = {n: float(np.mean([a for (m, _), a in accuracy.items() if m == n])) for n in names}
    by_severity = {s: float(np.mean([a for (_, t), a in accuracy.items() if t == s]))
                   for s in sorted({c["severity"] for c in cells})}
    mean = float(np.mean(list(accuracy.values())))
    worst = min(per_corruption, key=per_corruption.get)
    summary = {
        "clean_accuracy": clean["accuracy"], "mean_accuracy": mean, "mean_drop": clean["accuracy"] - mean,
        "relative_drop": (clean["accuracy"] - mean) / clean["accuracy"] if clean["accuracy"] else None,
        "mean_accuracy_by_severity": {str(s): a for s, a in by_severity.items()},
        "drop_at_severity_3": clean["accuracy"] - by_severity[3] if 3 in by_severity else None,
        "worst_corruption": {"name": worst, "mean_accuracy": per_corruption[worst]},
        "per_corruption": {n: {"family": families[n], "mean_accuracy": a} for n, a in per_corruption.items()},
        "by_family": {f: float(np.mean([per_corruption[n] for n in names if families[n] == f]))
                      for f in dict.fromkeys(families.values())},
        "corruption_error": None,
    }
    if reference is not None:
        summary["corruption_error"] = corruption_error(clean, accuracy, reference, reference_path)
    return summary


def corruption_error(clean: dict[str, Any], accuracy: dict[tuple[str, int], float], reference: dict[str, Any],
                     reference_path: str | None) -> dict[str, Any] | None:
    theirs = {(c["corruption"], c["severity"]): c["accuracy"] for c in reference["cells"]}
    shared = sorted({n for n, _ in accuracy} & {n for n, _ in theirs})
    if not shared:
        return None
    per, relative = {}, {}
    for name in shared:
        severities = [s for (n, s) in accuracy if n == name and (n, s) in theirs]
        error = sum(1 - accuracy[name, s] for s in severities)
        base = sum(1 - theirs[name, s] for s in severities)
        per[name] = error / base if base else None
        own_gap = sum(clean["accuracy"] - accuracy[name, s] for s in severities)
        ref_gap = sum(reference["clean"]["accuracy"] - theirs[name, s] for s in severities)
        relative[name] = own_gap / ref_gap if ref_gap > 0 else None
    finite = [v for v in per.values() if v is not None]
    finite_relative = [v for v in relative.values() if v is not None]
    return {"reference": reference_path, "reference_method": reference.get("method"),
            "mce": float(np.mean(finite)) if finite else None,
            "relative_mce": float(np.mean(finite_relative)) if finite_relative else None,
            "per_corruption": per, "relative_per_corruption": relative}


def reference_for(registry, dataset: str, split: str) -> tuple[dict[str, Any] | None, str | None]:
    """The reference robustness record registry.yaml names for ``dataset`` (None when it names none)."""
    named = (registry.robustness_references or {}).get(dataset)
    if not named:
        return None, None
    path = Path(named) if Path(named).is_absolute() else (registry.path.parent / named if registry.path else Path(named))
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"registry robustness_references.{dataset}: cannot read {path}: {error}") from error
    if record.get("schema") != ROBUSTNESS_SCHEMA:
        raise ConfigError(f"registry robustness_references.{dataset}: {path} is not a {ROBUSTNESS_SCHEMA} record")
    if record.get("split") != split:
        return None, None  # a reference for another split says nothing about this one
    return record, named


def assemble(header: dict[str, Any], scored: dict[str, Any], registry, corruptions, severities,
             seed: int) -> dict[str, Any]:
    """The complete record: ``header`` (who, what, where) + the scores + the summary."""
    reference, named = reference_for(registry, header["dataset"], header["split"])
    return {"schema": ROBUSTNESS_SCHEMA, **header, "seed": seed,
            "corruptions": {spec.name: {"family": spec.family, "summary": spec.summary} for spec in corruptions},
            "severities": list(severities), "clean": scored["clean"],
            "summary": summarise(scored["clean"], scored["cells"], reference, named),
            "cells": scored["cells"], "timings": scored["timings"]}


def write(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` and its heat map (``<stem>.png``) beside it; returns the record with ``_path``."""
    from ferbench.plots import robustness_heatmap_png

    png = robustness_heatmap_png(path.with_suffix(".png"), record)
    record = {**record, "artifacts": {"heatmap_png": png.name}}
    write_json(path, record)
    return {**record, "_path": os.fspath(path)}


def for_model(predict: Predict, test: Dataset, classes: Sequence[str], header: dict[str, Any], registry,
              corruptions, severities, seed: int, path: Path, console: Console) -> dict[str, Any]:
    """Score one model on ``test``, write ``path`` and its heat map, and return the record."""
    aligned = test.restricted_to(classes)
    partial = path.parent / PARTIAL_DIR / path.stem
    partial.mkdir(parents=True, exist_ok=True)
    scored = score(predict, aligned, classes, corruptions, severities, seed, partial, console)
    record = write(path, assemble({**header, "images": len(aligned)}, scored, registry, corruptions, severities, seed))
    for leftover in partial.glob("*.json"):
        leftover.unlink()
    partial.rmdir()
    if not any(partial.parent.iterdir()):
        partial.parent.rmdir()
    print_summary(console, record)
    return record


def print_summary(console: Console, record: dict[str, Any]) -> None:
    summary = record["summary"]
    worst = summary["worst_corruption"]
    line = (f"{record['method']} on {record['dataset']} \\[{record['split']}]: clean {summary['clean_accuracy']:.2%}, "
            f"mean corrupted {summary['mean_accuracy']:.2%} (drop {summary['mean_drop'] * 100:.1f} points"
            + (f", {summary['drop_at_severity_3'] * 100:.1f} at severity 3" if summary["drop_at_severity_3"] is not None else "")
            + f"), worst {worst['name']} {worst['mean_accuracy']:.2%}")
    error = summary.get("corruption_error")
    if error and error.get("mce") is not None:
        line += f", mCE {error['mce']:.1%} of {error['reference_method']}"
    console.print(line + f"; {record['timings']['seconds']:.0f} s", highlight=False)


def command(zoo, model_path: Path | None, dataset_name: str | None, split: str | None,
            corruption_names: Sequence[str] | None, severities: Sequence[int] | None, device: str,
            out_dir: Path, batch_size: int, tta: str | None, seed: int, resume: Path | None,
            console: Console) -> dict[str, Any]:
    """``ferbench robustness``: load the model and dataset, score, write ``<run>/robustness.json``."""
    from ferbench.checkpoint import load_model
    from ferbench.protocols import TRAIN_SPLIT
    from ferbench.results import claim_run_dir, command_line, device_info, environment, git_info
    from ferbench.runner import resolve_device
    from ferbench.training import check_tta, predict_proba

    if resume is not None:
        request_file = Path(resume) / PARTIAL_DIR / "request.json"
        if not request_file.is_file():
            raise ConfigError(f"--resume {resume}: no unfinished robustness pass there ({request_file} is missing)")
        recorded = json.loads(request_file.read_text())
        for key, given in (("model", model_path and str(model_path)), ("dataset", dataset_name), ("split", split)):
            if given is not None and given != recorded[key]:
                raise ConfigError(f"--resume {resume}: the pass was started with --{key} {recorded[key]}, not {given}")
        model_path, dataset_name, split = Path(recorded["model"]), recorded["dataset"], recorded["split"]
        corruption_names, severities = recorded["corruptions"], recorded["severities"]
        seed, tta, batch_size = recorded["seed"], recorded["tta"], recorded["batch_size"]
    if model_path is None or dataset_name is None:
        raise ConfigError("ferbench robustness needs --model and --dataset (or --resume)")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size}")
    if tta is not None:
        check_tta(tta, "--tta")
    corruptions, severities = select(zoo.catalog.corruptions, corruption_names, severities)
    torch_device = resolve_device(device)
    model, input_spec, model_record = load_model(model_path, zoo.catalog.build)
    classes = tuple(model_record["classes"])
    trained_by = model_record.get("trained_by") or {}
    views = tta or trained_by.get("tta") or "none"
    source = zoo.dataset(dataset_name)
    with console.status(f"loading {source.name}"):
        dataset = source.load()
    if split is None:
        tests = [s for s in dataset.split_names if s != TRAIN_SPLIT]
        split = "private_test" if "private_test" in tests else (tests[-1] if tests else "all")
    test = dataset if split == "all" else dataset.split(split)
    method = trained_by.get("method") or model_record["component"]
    if resume is not None:
        run_id, run_dir = Path(resume).name, Path(resume)
    else:
        run_id, run_dir = claim_run_dir(out_dir, method, dataset.name, "robustness", int(trained_by.get("seed", 0)))
        write_json(run_dir / PARTIAL_DIR / "request.json", {
            "model": str(model_path), "dataset": dataset_name, "split": split, "corruptions": [c.name for c in corruptions],
            "severities": severities, "seed": seed, "tta": views, "batch_size": batch_size})
    # The run that trained the model (results/<run>/<fold>/model): its settings name the recipe in tables.
    manifest = Path(model_path).resolve().parent.parent / "run.json"
    training = json.loads(manifest.read_text()).get("resolved", {}).get("config") if manifest.is_file() else None
    header = {"run_id": run_id, "method": method, "components": {"classifier": model_record["component"]},
              "training_config": training,
              "dataset": dataset.name, "split": split, "train_dataset": trained_by.get("dataset", "?"),
              "model": {"path": str(model_path), "trained_by": trained_by}, "tta": views,
              "device": device_info(torch_device), "git": git_info(),
              "environment": environment({n: p.version for n, p in zoo.plugins.plugins.items()}),
              "command": {"argv": list(sys.argv), "line": command_line(sys.argv), "cwd": os.getcwd()}}
    console.print(f"[bold]{method}[/] (trained on {header['train_dataset']}) under {len(corruptions)} corruptions x "
                  f"{len(severities)} severities on [bold]{dataset.name}[/] \\[{split}], {len(test):,} images")
    predict = lambda images: predict_proba(model, images, input_spec, torch_device, batch_size, views)  # noqa: E731
    record = for_model(predict, test, classes, header, zoo.registry, corruptions, severities, seed,
                       run_dir / "robustness.json", console)
    (run_dir / PARTIAL_DIR / "request.json").unlink(missing_ok=True)
    if (run_dir / PARTIAL_DIR).is_dir() and not any((run_dir / PARTIAL_DIR).iterdir()):
        (run_dir / PARTIAL_DIR).rmdir()
    return record


def in_run(model, test: Dataset, classes: Sequence[str], header: dict[str, Any], registry,
           corruptions, seed: int, path: Path, console: Console) -> dict[str, Any]:
    """The robustness pass at the end of ``ferbench run --robustness``, with the model just trained."""
    aligned = test.restricted_to(classes)
    predict = lambda images: model.predict(replace(aligned, images=images))  # noqa: E731
    return for_model(predict, test, classes, header, registry, corruptions, SEVERITIES, seed, path, console)


def load_records(root: str | Path) -> list[dict[str, Any]]:
    """Every robustness record under ``root`` (for the leaderboard)."""
    records = []
    for path in sorted(Path(root).rglob("robustness*.json")):
        if PARTIAL_DIR in path.parts:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("schema") == ROBUSTNESS_SCHEMA and _readable(record):
            records.append({**record, "_path": os.fspath(path)})
    return records


def _readable(record: dict[str, Any]) -> bool:
    """Whether ``record`` has every field the leaderboard reads (a hand-edited or truncated one is left out)."""
    summary, cells = record.get("summary"), record.get("cells")
    try:
        return (all(isinstance(record.get(k), str) for k in ("method", "dataset", "split"))
                and isinstance(record["clean"]["accuracy"], (int, float))
                and all(isinstance(summary[k], (int, float)) for k in ("clean_accuracy", "mean_accuracy", "mean_drop"))
                and isinstance(summary["worst_corruption"]["name"], str)
                and isinstance(cells, list) and all(isinstance(c["accuracy"], (int, float)) for c in cells))
    except (KeyError, TypeError):
        return False

"""The ``ferbench`` command line: run, eval, robustness, predict, leaderboard, bench, list, plugins."""
# ruff: noqa: E402  (ferbench.threads must configure OpenMP before the imports below load torch)

from __future__ import annotations

import os
import sys

from ferbench import threads

try:  # before anything below imports torch: OpenMP reads its wait policy once, when torch loads it
    threads.configure()
except ValueError as _error:
    sys.exit(f"error: {_error}")

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ferbench import precision
from ferbench.errors import ConfigError, FerbenchError, RunInterrupted
from ferbench.plugins import PluginManager
from ferbench.registry import REGISTRY_ENV, Zoo
from ferbench.results import ALLOW_DIRTY_ENV, check_clean_tree, read_run_manifest

app = typer.Typer(
    help="ferbench: a plugin-based model zoo and benchmark harness for facial emotion recognition.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
# Logs and CI are not terminals; without a width rich would squeeze tables into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

RegistryOption = Annotated[Optional[Path], typer.Option(
    "--registry", envvar=REGISTRY_ENV, help="Registry file (default: the registry.yaml of the ferbench checkout).")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
OutOption = Annotated[Path, typer.Option("--out", help="Folder results are written into.")]
TtaOption = Annotated[Optional[str], typer.Option(
    help="Test-time augmentation: none, flip, flip-shift or flip-shift-zoom (default: as each model was trained).")]
PrecisionOption = Annotated[Optional[str], typer.Option(
    "--precision", help="auto (bf16 autocast on CUDA, fp32 on a CPU), fp32, or bf16 (also on a CPU with AVX512-BF16/AMX: the CPU recipe).")]
AllowDirtyOption = Annotated[bool, typer.Option(
    "--allow-dirty", envvar=ALLOW_DIRTY_ENV,
    help="Write records even though the ferbench checkout has uncommitted changes (they are marked git.dirty).")]
TRACK_ENV = "FERBENCH_TRACK"  # comma-separated tracker names, for --track
# Read from the command line by ferbench.threads before torch loads (see there); declared here for --help.
ThreadsOption = Annotated[Optional[int], typer.Option(
    "--threads", envvar=threads.THREADS_ENV, min=1,
    help="CPU threads for torch (default: every core this process may use, less those other processes keep busy at start; OpenMP threads wait passively).")]


def check_provenance(allow_dirty: bool) -> None:
    """Before a command writes records: refuse a dirty checkout, or say loudly that its records are marked so."""
    info = check_clean_tree(allow_dirty)
    if info["dirty"]:
        errors.print(f"[bold yellow]warning:[/] --allow-dirty: the checkout has uncommitted changes "
                     f"({', '.join(info['changed'][:5])}); these records say git.dirty=true and cannot be "
                     f"reproduced from commit {info['commit'][:12]}", highlight=False, soft_wrap=True)


def load_zoo(registry: Path | None) -> Zoo:
    plugins = PluginManager()
    for name, problems in plugins.failures.items():
        for problem in problems:
            errors.print(f"[yellow]warning:[/] plugin {name!r}: {problem}")
    return Zoo(plugins, registry)


def parse_value(text: str) -> Any:
    """``--set`` values: integers, floats, true/false, null/none, else the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} takes KEY=VALUE, got {pair!r}")
        parsed[key.strip()] = value.strip()
    return parsed


@app.command()
def run(
    ctx: typer.Context,
    method: Annotated[Optional[str], typer.Option(help="Method or classifier, e.g. timm:resnet18.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, or a folder in a supported format.")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="holdout, kfold (subject-independent), image-kfold, cross-dataset (default: the method's if it names one, else the dataset's).")] = None,
    target: Annotated[Optional[str], typer.Option(help="Cross-dataset: the dataset models are trained on.")] = None,
    suite: Annotated[Optional[str], typer.Option(help="Run every run of a registry suite instead.")] = None,
    index: Annotated[Optional[int], typer.Option(help="With --suite: run only run number INDEX (0-based), e.g. $SLURM_ARRAY_TASK_ID.")] = None,
    list_runs: Annotated[bool, typer.Option("--list", help="With --suite: print its numbered runs and exit.")] = False,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Training batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Model input size (default: the dataset's).")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Local weights to start from (safetensors or a weights-only .pt).")] = None,
    time_budget: Annotated[Optional[str], typer.Option(help="Train for this long (e.g. 30m, 1.5h, 900s): the epochs that fit at the measured step rate, stopping on time.")] = None,
    seed: Annotated[Optional[list[int]], typer.Option(help="Seed; repeat for several runs.")] = None,
    folds: Annotated[Optional[int], typer.Option(help="Number of folds for k-fold protocols.")] = None,
    fold: Annotated[Optional[list[int]], typer.Option(help="Run only fold k (1-based); repeatable.")] = None,
    component: Annotated[Optional[list[str]], typer.Option(help="ROLE=NAME: swap a component, e.g. classifier=timm:vgg11.")] = None,
    data_option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE: a dataset loader option, e.g. limit=2000.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE: any hyperparameter of the method.")] = None,
    device: DeviceOption = "auto",
    out: OutOption = Path("results"),
    save_model: Annotated[bool, typer.Option(help="Save the trained model beside the results.")] = True,
    validation: Annotated[Optional[float], typer.Option(help="Hold out this fraction of each fold's training data (stratified; whole subjects where known) and fit temperature scaling on it.")] = None,
    robustness: Annotated[bool, typer.Option("--robustness", help="End with a robustness pass on each test split (ferbench robustness) with the model just trained.")] = False,
    track: Annotated[Optional[list[str]], typer.Option("--track", help="Log the run to an experiment tracker (ferbench list trackers: mlflow, tensorboard); repeatable, or FERBENCH_TRACK=mlflow,tensorboard.")] = None,
    registry: RegistryOption = None,
    allow_dirty: AllowDirtyOption = False,
    threads_: ThreadsOption = None,
    precision_: PrecisionOption = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run from its folder (results/<run_id>); other options default to the run's own and must agree with them.")] = None,
) -> None:
    """Train and evaluate a method on a dataset under a protocol; write one result JSON per fold and split."""
    precision.choose(precision_)
    from ferbench.runner import RunRequest, resume_request, run as run_experiment

    if resume is not None and registry is None:
        recorded = read_run_manifest(resume).get("registry")  # the run's registry, unless one is given
        registry = Path(recorded) if recorded and Path(recorded).is_file() else None
    zoo = load_zoo(registry)
    trackers = [name.strip() for value in track or [os.environ.get(TRACK_ENV, "")]
                for name in value.split(",") if name.strip()]
    overrides = {k: parse_value(v) for k, v in parse_pairs(set_ or [], "--set").items()}
    data_options = {k: parse_value(v) for k, v in parse_pairs(data_option or [], "--data-option").items()}
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("image_size", image_size),
                       ("weights", str(weights) if weights else None), ("time_budget", time_budget)):
        if value is not None:
            overrides[key] = value
    if resume is not None:
        if suite or len(seed or []) > 1:
            raise ConfigError("--resume continues one run: give it without --suite and with at most one --seed")
        # Options left at their defaults come from the run (typer's ParameterSource: compare by name).
        given = lambda name, value: None if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") == "DEFAULT" \
            else value
        if given("out", out) is not None and Path(out).resolve() != resume.resolve().parent:
            raise ConfigError(f"--resume writes into the run's own folder {resume}; leave out --out {out}")
        requests = [resume_request(resume, {
            "method": method, "dataset": dataset, "protocol": protocol, "target": target,
            "seed": seed[0] if seed else None, "folds": folds, "only_folds": fold, "config": overrides or None,
            "components": parse_pairs(component or [], "--component") or None, "data_options": data_options or None,
            "device": given("device", device), "save_model": given("save_model", save_model),
            "validation": validation, "robustness": robustness or None, "track": trackers or None})]
    elif suite:
        if method or dataset:
            raise ConfigError("give either --suite or --method/--dataset, not both")
        requests = []
        for entry in zoo.suite(suite):
            for s in seed or entry.get("seeds") or [0]:
                requests.append(RunRequest(
                    method=entry["method"], dataset=entry["dataset"], protocol=protocol or entry.get("protocol"),
                    target=entry.get("target"), seed=s, folds=folds, only_folds=fold,
                    config={**(entry.get("config") or {}), **overrides},
                    components={**(entry.get("components") or {}), **parse_pairs(component or [], "--component")},
                    data_options=data_options, device=device, out_dir=out, save_model=save_model,
                    validation=validation, robustness=robustness, track=trackers))
        if list_runs:
            for number, r in enumerate(requests):
                typer.echo(f"{number}\t{r.method} on {r.dataset}" + (f" (trained on {r.target})" if r.target else "")
                           + f", {r.protocol or 'default protocol'}, seed {r.seed}")
            return
        if index is not None:
            if not 0 <= index < len(requests):
                raise ConfigError(f"--index {index}: suite {suite!r} has runs 0..{len(requests) - 1}")
            requests = [requests[index]]
    else:
        if not method or not dataset:
            raise ConfigError("ferbench run needs --method and --dataset (or --suite)")
        if index is not None or list_runs:
            raise ConfigError("--index and --list go with --suite")
        requests = [RunRequest(method=method, dataset=dataset, protocol=protocol, target=target, seed=s, folds=folds,
                               only_folds=fold, config=overrides,
                               components=parse_pairs(component or [], "--component"), data_options=data_options,
                               device=device, out_dir=out, save_model=save_model, validation=validation,
                               robustness=robustness, track=trackers) for s in seed or [0]]
    check_provenance(allow_dirty)
    failed = []
    for request in requests:
        try:
            records = run_experiment(zoo, request, console)
        except RunInterrupted as interrupted:  # typer would turn it into a bare exit 130
            errors.print(f"[bold yellow]interrupted:[/] {interrupted.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=interrupted.exit_code) from None
        if records:
            console.print(f"results: [bold]{Path(records[0]['_path']).parent.parent}[/]")
        failed += [r for r in records if r.get("status") == "failed"]
    if failed:
        errors.print(f"[bold red]error:[/] training failed in {len({(r['run_id'], r['fold']) for r in failed})} "
                     "fold(s); their result records say why:", highlight=False)
        for record in failed:
            errors.print(f"  {record['_path']}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=3)  # 2 is for bad input found before training; 3: training itself failed


@app.command()
def reproduce(
    record: Annotated[Path, typer.Argument(help="A result record (result-*.json), fold folder or run folder of ferbench run.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the re-run (default: a new temporary folder).")] = None,
    tolerance: Annotated[Optional[float], typer.Option(help="Largest accepted difference, in percentage points (default: 0 for a CPU record, 1 for a GPU one).")] = None,
    allow_dirty: AllowDirtyOption = False,
) -> None:
    """Run a recorded experiment again from its run.json and compare each metric with the original's.
    Exit status 0: every metric within the tolerance; 1: one or more are not."""
    from ferbench.reproduce import reproduce as reproduce_run

    check_provenance(allow_dirty)
    report = reproduce_run(record, out, tolerance, allow_dirty,
                           echo=lambda text: errors.print(text, highlight=False, soft_wrap=True))
    table = _table(f"{Path(report['original']).name}: original vs reproduced "
                   f"(tolerance {report['tolerance_points']:g} points)",
                   "fold", "split", "metric", "original %", "reproduced %", "Δ points", "same data", "")
    for row in report["rows"]:
        table.add_row(row["fold"], row["split"], row["metric"], _num(row["original"], ".2f"),
                      _num(row["reproduced"], ".2f"), _num(row["delta"], "+.2f"),
                      {True: "yes", False: "NO", None: "-"}[row["same_data"]],
                      "[green]ok[/]" if row["ok"] else "[bold red]differs[/]")
    console.print(table)
    console.print(f"reproduction: [bold]{Path(report['reproduced']).parent / 'reproduction.json'}[/]")
    if not report["ok"]:
        raise typer.Exit(code=1)


@app.command("eval")
def eval_(
    model: Annotated[list[Path], typer.Option(help="A saved model folder (or its model.json) written by ferbench run, or a .onnx file (int8 too) written by ferbench export; repeat for an ensemble (mean of the probabilities).")],
    dataset: Annotated[str, typer.Option(help="Dataset name, or a folder in a supported format.")],
    split: Annotated[Optional[str], typer.Option(help="Split to score, or 'all' (default: every test split).")] = None,
    batch_size: Annotated[int, typer.Option(help="Inference batch size.")] = 256,
    tta: TtaOption = None,
    label_space: Annotated[str, typer.Option(help="model: the answer is any of the model's classes; shared: only those the dataset has too (a FER2013 model on CK+, which has no neutral).")] = "model",
    device: DeviceOption = "auto",
    out: OutOption = Path("results"),
    registry: RegistryOption = None,
    allow_dirty: AllowDirtyOption = False,
    threads_: ThreadsOption = None,
    precision_: PrecisionOption = None,
) -> None:
    """Score a saved model (or an ensemble of them) on any dataset, over the classes they share."""
    precision.choose(precision_)
    check_provenance(allow_dirty)
    from ferbench.runner import evaluate

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size}")
    records = evaluate(load_zoo(registry), model, dataset, split=split, device=device, out_dir=out,
                       batch_size=batch_size, tta=tta, label_space=label_space, console=console)
    console.print(f"results: [bold]{Path(records[0]['_path']).parent.parent}[/]")


@app.command()
def robustness(
    model: Annotated[Optional[Path], typer.Option(help="A saved model folder (or its model.json) written by ferbench run.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, or a folder in a supported format.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split to corrupt, or 'all' (default: private_test where there is one, else the last test split).")] = None,
    corruption: Annotated[Optional[list[str]], typer.Option(help="Only this corruption; repeatable (default: all; ferbench list corruptions).")] = None,
    severity: Annotated[Optional[list[int]], typer.Option(help="Only this severity (1-5); repeatable (default: all five).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the corruptions' random draws.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Inference batch size.")] = 512,
    tta: TtaOption = None,
    resume: Annotated[Optional[Path], typer.Option(help="Finish an interrupted pass in its folder (results/<run_id>), reusing the corruptions it scored.")] = None,
    device: DeviceOption = "auto",
    out: OutOption = Path("results"),
    registry: RegistryOption = None,
    allow_dirty: AllowDirtyOption = False,
    threads_: ThreadsOption = None,
    precision_: PrecisionOption = None,
) -> None:
    """Score a saved model on every corruption x severity of a test split: one robustness record and a heat map."""
    precision.choose(precision_)
    check_provenance(allow_dirty)
    from ferbench.robustness import command

    record = command(load_zoo(registry), model, dataset, split, corruption, severity, device, out, batch_size, tta,
                     seed, resume, console)
    console.print(f"results: [bold]{record['_path']}[/]")


@app.command()
def predict(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Image and video files or folders (searched recursively).", show_default=False)] = None,
    model: Annotated[Path, typer.Option(help="A saved model folder (or its model.json) written by ferbench run, or a .onnx file written by ferbench export.")] = ...,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the table here (default: standard output).")] = None,
    format_: Annotated[Optional[str], typer.Option("--format", help="csv or json (default: from --output's suffix, else csv).")] = None,
    annotate: Annotated[Optional[Path], typer.Option(help="Folder for copies of the photos and videos with each face boxed and labelled.")] = None,
    detector: Annotated[Optional[str], typer.Option("--detector", "--detect", help="Face detector (ferbench list detectors), auto, or none for images that are face crops already (default: the training photos' detector, else auto).")] = None,
    margin: Annotated[Optional[float], typer.Option(help="Crop margin around the face, a fraction of its side (default: the detector's calibrated margin, or the training photos' margin).")] = None,
    mask: Annotated[Optional[bool], typer.Option("--mask/--no-mask", help="Black out the background outside the face ellipse (default: as in training).")] = None,
    backend: Annotated[str, typer.Option(help="torch, or onnxruntime (the model folder's model.onnx from ferbench export).")] = "torch",
    fps: Annotated[Optional[float], typer.Option(help="Videos and cameras: sample this many frames per second (default: every frame).")] = None,
    smooth: Annotated[float, typer.Option(help="Videos: weight of the newest frame in each face's moving average of probabilities (1: no smoothing).")] = 0.5,
    camera: Annotated[Optional[int], typer.Option(help="Also read this camera (OpenCV index, e.g. 0) until --frames or Ctrl-C.")] = None,
    frames: Annotated[Optional[int], typer.Option(min=1, help="Videos and cameras: stop after this many sampled frames each.")] = None,
    batch_size: Annotated[int, typer.Option(help="Inference batch size.")] = 64,
    workers: Annotated[Optional[int], typer.Option(help="Processes that read photos and find their faces (default: one per core once there are 64 photos per process; 1: in this process).")] = None,
    device: DeviceOption = "auto",
    registry: RegistryOption = None,
    threads_: ThreadsOption = None,
    precision_: PrecisionOption = None,
) -> None:
    """Find the faces in photos and videos and classify their expression: one row per face (file, box, class, probabilities; frame, time and track in videos)."""
    precision.choose(precision_)
    from ferbench.predict import predict as predict_faces, write_predictions
    from ferbench.runner import resolve_device

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size}")
    if not inputs and camera is None:
        raise ConfigError("give image or video files or folders, or --camera N")
    result = predict_faces(model, list(inputs or []), load_zoo(registry).catalog.build, resolve_device(device),
                           batch_size, detect=detector, margin=margin, mask=mask, annotate=annotate,
                           backend=backend, fps=fps, smooth=smooth, camera=camera, frames=frames, workers=workers)
    text = write_predictions(result, output, format_)
    if output is None:
        sys.stdout.write(text)
    files = len({row["file"] for row in result.faces})
    errors.print(f"{len(result.faces)} face(s) in {files} file(s) ({result.face_pipeline['detect']} detector, "
                 f"{result.backend})" + (f", written to {output}" if output else "")
                 + (f"; annotated copies in {annotate}" if annotate else ""), highlight=False)
    for video in result.videos:
        errors.print(f"{video['file']}: {video['sampled_frames']} frame(s), {video['faces']} face(s), "
                     f"{video['frames_per_s'] or 0:.1f} frames/s", highlight=False)
    for reason, names in (("no face found", result.no_face), ("unreadable", result.unreadable)):
        if names:
            errors.print(f"[yellow]{reason}[/] ({len(names)}): {', '.join(names)}", highlight=False)


@app.command()
def export(
    model: Annotated[Path, typer.Option(help="A saved model folder (or its model.json) written by ferbench run.")],
    format_: Annotated[str, typer.Option("--format", help="onnx (the only format so far).")] = "onnx",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File to write (default: model.onnx, or model-int8.onnx with --int8, in the model folder).")] = None,
    tolerance: Annotated[float, typer.Option(help="Largest difference from PyTorch's probabilities allowed on the check crops.")] = 1e-4,
    int8: Annotated[bool, typer.Option("--int8", help="Write the int8 graph (ONNX Runtime static quantisation), calibrated and checked on real faces.")] = False,
    calibration_dataset: Annotated[Optional[str], typer.Option(help="With --int8: the dataset whose training faces calibrate it (default: the model's training set).")] = None,
    calibration_images: Annotated[int, typer.Option(help="With --int8: faces drawn (seeded) from it; half calibrate, half check.")] = 1024,
    min_agreement: Annotated[float, typer.Option(help="With --int8: least share of the check faces on which int8 must pick fp32's class.")] = 0.95,
    registry: RegistryOption = None,
) -> None:
    """Export a saved model to ONNX (uint8 face crops in, probabilities out, preprocessing in metadata), checked against PyTorch."""
    from ferbench.export import calibration_faces, export_onnx

    if format_ != "onnx":
        raise ConfigError(f"--format {format_}: only onnx is supported")
    if calibration_images < 2:
        raise ConfigError(f"--calibration-images must be at least 2, got {calibration_images}")
    if not 0 <= min_agreement <= 1:
        raise ConfigError(f"--min-agreement must be between 0 and 1, got {min_agreement}")
    zoo = load_zoo(registry)
    faces, source = None, None
    if int8:
        with console.status("loading faces for int8 calibration"):
            faces, source = calibration_faces(zoo, model, calibration_dataset, calibration_images)
    report = export_onnx(model, zoo.catalog.build, output, tolerance=tolerance, int8_faces=faces,
                         int8_source=source, min_agreement=min_agreement)
    console.print(f"wrote [bold]{report['path']}[/] ({report['bytes'] / 1e6:.2f} MB): fp32 graph checked on "
                  f"{report['crops']} crops, largest difference from PyTorch {report['max_abs_difference']:.1e}, "
                  f"same class on {report['argmax_agreement']:.0%}", highlight=False)
    if int8:
        quantized = report["int8"]
        console.print(f"int8: calibrated on {quantized['calibration_faces']} {quantized['dataset']} faces, same "
                      f"class as fp32 on {quantized['argmax_agreement']:.1%} of {quantized['checked_faces']} others; "
                      f"its accuracy: `ferbench eval --model {report['path']} --dataset D`", highlight=False)


@app.command()
def leaderboard(
    results: Annotated[Path, typer.Option(help="Folder of result records.")] = Path("results"),
    output: Annotated[Optional[Path], typer.Option(help="Markdown file (default: RESULTS/LEADERBOARD.md).")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a static site (index.html, sortable and filterable, per-run pictures) into this folder.")] = None,
    registry: RegistryOption = None,
) -> None:
    """Aggregate every result into a table (mean ± SD over seeds and folds) beside the papers' numbers."""
    from ferbench.leaderboard import build, write_markdown

    if not results.is_dir():
        raise ConfigError(f"--results {results}: no such folder")
    zoo = load_zoo(registry)
    board = build(results, zoo.paper_numbers(), plugins=zoo.plugins, registry=zoo.registry)
    path = write_markdown(board, output)
    if html is not None:
        from ferbench.site import write_site

        console.print(f"site: [bold]{write_site(board, html)}[/]")
    rich_table = Table(title=f"ferbench leaderboard ({path})", title_justify="left")
    for column in board.table.columns:
        rich_table.add_column(column, justify="right" if "%" in column or column == "Runs" else "left")
    for row in board.table.itertuples(index=False):
        rich_table.add_row(*map(str, row))
    console.print(rich_table)
    for file, reason in board.skipped:
        errors.print(f"[yellow]skipped[/] {file}: {reason}")


@app.command()
def bench(
    model: Annotated[list[str], typer.Option(help="Classifier or component name, method, or saved model folder; repeatable.")],
    mode: Annotated[Optional[list[str]], typer.Option(help="Execution mode; repeatable (default: the device's set).")] = None,
    batch_size: Annotated[Optional[list[int]], typer.Option(help="Batch size; repeatable for a sweep.")] = None,
    image_size: Annotated[Optional[list[int]], typer.Option(help="Input size; repeatable (default 48).")] = None,
    in_chans: Annotated[int, typer.Option(help="Input channels.")] = 1,
    num_classes: Annotated[int, typer.Option(help="Classes of a classifier.")] = 7,
    phase: Annotated[str, typer.Option(help="inference, training (a bare step), harness (a step of the training engine), both (inference and training) or all.")] = "both",
    busy_cores: Annotated[int, typer.Option(help="Keep this many cores busy with spinning processes while measuring (a shared machine).")] = 0,
    warmup: Annotated[int, typer.Option(help="Untimed steps first.")] = 3,
    reps: Annotated[int, typer.Option(help="Timed steps; the median is reported.")] = 10,
    peak_tflops: Annotated[Optional[float], typer.Option(help="Peak TFLOP/s to compare every mode with (default: a matmul measured here in each mode's arithmetic, fp32 and bf16).")] = None,
    pipeline: Annotated[bool, typer.Option("--pipeline", help="Also time `ferbench predict` for each saved model: classifier crops/s per backend, photos/s end to end, frames/s on a 640x480 video.")] = False,
    pipeline_size: Annotated[Optional[list[int]], typer.Option(help="Photo sizes for --pipeline; repeatable (default 192 and 512; implies --pipeline).")] = None,
    pipeline_images: Annotated[int, typer.Option(help="Photos (and crops) for --pipeline.")] = 128,
    pipeline_dataset: Annotated[str, typer.Option(help="Dataset whose test images, upscaled, are the photos for --pipeline.")] = "synthetic",
    detector: Annotated[str, typer.Option("--detector", help="Face detector for --pipeline (ferbench list detectors).")] = "auto",
    pipeline_workers: Annotated[Optional[list[int]], typer.Option(min=1, help="Photo worker processes for --pipeline's photos/s (predict --workers); repeatable (default 1 and one per core, side by side).")] = None,
    device: DeviceOption = "auto",
    out: Annotated[Path, typer.Option("--out", help="Folder for the JSON record.")] = Path("results/bench"),
    registry: RegistryOption = None,
    allow_dirty: AllowDirtyOption = False,
    threads_: ThreadsOption = None,
    precision_: PrecisionOption = None,
) -> None:
    """Measure inference and training throughput in several execution modes, side by side."""
    precision.choose(precision_)
    check_provenance(allow_dirty)
    from ferbench import bench as benchmarks
    from ferbench.runner import Tracker, resolve_device

    torch_device = resolve_device(device)
    config = benchmarks.BenchConfig(
        models=model, device=torch_device, modes=mode or benchmarks.DEFAULT_MODES[torch_device.type],
        batch_sizes=batch_size or benchmarks.DEFAULT_BATCH_SIZES[torch_device.type], image_sizes=image_size or [48],
        in_chans=in_chans, num_classes=num_classes,
        phases={"both": ("inference", "training"), "all": benchmarks.PHASES}.get(phase, (phase,)), warmup=warmup,
        reps=reps, busy_cores=busy_cores)
    benchmarks.check_config(config)
    pipeline = pipeline or pipeline_size is not None
    if pipeline:
        pipeline_size = pipeline_size or [192, 512]
        if min(pipeline_size) < 8 or pipeline_images < 1:
            raise ConfigError(f"--pipeline-size must be at least 8 and --pipeline-images positive, got "
                              f"{pipeline_size} and {pipeline_images}")
        if not all(benchmarks.is_saved_model(name) for name in model):
            raise ConfigError("--pipeline times `ferbench predict`, which needs a trained model: give saved "
                              "model folders (results/<run>/<fold>/model) as --model")
        config.extra["pipeline"] = {"sizes": pipeline_size, "images": pipeline_images, "dataset": pipeline_dataset,
                                    "detector": detector, "workers": pipeline_workers}
    zoo = load_zoo(registry)
    builders = {name: benchmarks.bench_target(zoo, name, config) for name in model}
    peak, source = ({d: peak_tflops for d in benchmarks.mode_dtypes(config.modes)}, "given") if peak_tflops else \
        (benchmarks.measure_matmul_peaks(torch_device, config.modes), "measured matmul")
    tracker = Tracker(console)
    rows = []
    with tracker.progress, benchmarks.busy_cores(busy_cores):
        for name, build in builders.items():
            rows += benchmarks.bench_module(name, build, config, peak, tracker)
            if pipeline:
                with console.status(f"timing ferbench predict on {pipeline_images} photos and a video"):
                    rows += benchmarks.bench_pipeline(zoo, name, pipeline_dataset, pipeline_images, pipeline_size,
                                                      config, detector, workers=pipeline_workers)
    path = benchmarks.write_bench(out, config, rows, peak, source, sys.argv)
    peaks = ", ".join(f"{dtype} {value:.2f}" for dtype, value in peak.items())
    table = _table(f"Throughput on {torch_device} (peak TFLOP/s {peaks}, {source})", "model", "mode", "phase",
                   "batch", "size", "img/s", "x eager", "x bare", "ms/step", "GFLOP/img", "TFLOP/s", "% peak", "MiB", "note / error")
    # phases "pipeline"/"video": img/s are photos/frames through `ferbench predict`; ms/step is one whole call
    for r in rows:
        table.add_row(r.model, r.mode, r.phase, str(r.batch_size), str(r.image_size), _num(r.images_per_s, ",.0f"),
                      _num(r.speedup_vs_eager, ".2f"), _num(r.fraction_of_bare, ".2f"), _num(r.median_ms, ".2f"), _num(r.forward_gflops_per_image, ".3f"),
                      _num(r.achieved_tflops, ".3f"), _num(r.fraction_of_peak and 100 * r.fraction_of_peak, ".1f"),
                      _num(r.peak_memory_mb, ",.0f"),
                      r.error or (f"{r.faces_found} faces found ({r.detector})" if r.faces_found is not None else "")
                      + (f", {r.accuracy:.1%} right" if r.accuracy is not None else "")
                      + (f", {r.workers} photo worker(s)" if r.workers is not None else ""))
    console.print(table)
    console.print(f"record: [bold]{path}[/]")


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="methods, components, datasets, protocols, corruptions, detectors, trackers, suites or all.")] = "all",
    registry: RegistryOption = None,
) -> None:
    """Show the methods, components, datasets, protocols, corruptions, face detectors and suites ferbench knows."""
    sections = ("methods", "components", "datasets", "protocols", "corruptions", "detectors", "trackers", "suites")
    if what != "all" and what not in sections:
        raise ConfigError(f"ferbench list {what}: choose one of {', '.join(sections)} or all")
    zoo = load_zoo(registry)
    cat, reg = zoo.catalog, zoo.registry
    show = sections if what == "all" else (what,)
    if "methods" in show:
        table = _table("Methods", "name", "plugin", "components", "paper", "summary")
        for name in zoo.method_names():
            if f"methods.{name}" in zoo.unavailable:
                table.add_row(name, reg.methods[name]["plugin"], "", "", f"[red]{zoo.unavailable[f'methods.{name}']}")
                continue
            method = zoo.method(name)
            paper = (method.paper or {}).get("title", "")
            table.add_row(name, method.plugin, ", ".join(f"{r}={c}" for r, c in method.components.items()),
                          paper[:40], reg.methods.get(name, {}).get("summary") or method.spec.summary)
        table.caption = "Any classifier (below) is also a method: supervised training, e.g. --method timm:resnet18."
        console.print(table)
    if "components" in show:
        table = _table("Components", "kind", "name", "plugin", "summary")
        for name, spec in sorted(cat.components.items(), key=lambda item: (item[1].kind, item[0])):
            label = f"{name}<name> ({len(cat._members(name)):,} names)" if spec.members else name
            table.add_row(spec.kind, label, cat.owner[("components", name)], spec.summary)
        console.print(table)
    if "datasets" in show:
        table = _table("Datasets", "name", "loader", "plugin", "protocol", "summary")
        for name in zoo.dataset_names():
            entry = reg.datasets.get(name)
            if f"datasets.{name}" in zoo.unavailable:
                table.add_row(name, "", entry["plugin"], "", f"[red]{zoo.unavailable[f'datasets.{name}']}")
                continue
            spec = cat.datasets[entry.get("loader", name)] if entry else cat.datasets[name]
            plugin = entry["plugin"] if entry else cat.owner[("datasets", name)]
            table.add_row(name, spec.name, plugin, (entry or {}).get("protocol", spec.protocol),
                          (entry or {}).get("summary") or spec.summary)
        console.print(table)
    if "protocols" in show:
        table = _table("Protocols", "name", "plugin", "summary")
        for name, spec in sorted(cat.protocols.items()):
            table.add_row(name, cat.owner[("protocols", name)], spec.summary)
        console.print(table)
    if "corruptions" in show:
        table = _table("Corruptions", "name", "family", "plugin", "summary")
        for name, spec in sorted(cat.corruptions.items(), key=lambda item: (item[1].family, item[0])):
            table.add_row(name, spec.family, cat.owner[("corruptions", name)], spec.summary)
        console.print(table)
    if "detectors" in show:
        from ferbench.faces import load_detector

        table = _table("Face detectors", "name", "plugin", "priority", "margin", "status", "summary")
        for name, spec in sorted(cat.detectors.items(), key=lambda item: -item[1].priority):
            try:
                load_detector(name)
                status = "[green]ok"
            except ConfigError as error:
                status = f"[red]{error}"
            table.add_row(name, cat.owner[("detectors", name)], str(spec.priority), f"{spec.margin:.2f}", status,
                          spec.summary)
        table.caption = "detect=auto takes the highest-priority detector that loads; detect=none: the images are faces."
        console.print(table)
    if "trackers" in show:
        table = _table("Experiment trackers (ferbench run --track NAME)", "name", "plugin", "status", "summary")
        for name, spec in sorted(cat.trackers.items()):
            try:
                spec.check()
                status = "[green]ok"
            except ConfigError as error:
                status = f"[red]{error}"
            table.add_row(name, cat.owner[("trackers", name)], status, spec.summary)
        console.print(table)
    if "suites" in show:
        table = _table("Suites", "name", "runs", "summary")
        for name, entry in sorted(reg.suites.items()):
            runs = "; ".join(f"{r['method']} on {r['dataset']}" + (f" ({r['protocol']})" if "protocol" in r else "")
                             for r in entry["runs"])
            table.add_row(name, runs, entry.get("summary", ""))
        console.print(table)


@app.command("calibrate-detectors")
def calibrate_detectors(
    dataset: Annotated[str, typer.Option(help="Dataset of face crops (a registered name), e.g. fer2013 or ckplus48.")],
    detector: Annotated[Optional[list[str]], typer.Option(help="Only this detector; repeatable (default: every one that loads).")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only the images of this split (default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many images, evenly spaced.")] = 1500,
    upscale: Annotated[int, typer.Option(min=1, help="Upscale the crops this many times (48 px -> 192 px).")] = 4,
    out: OutOption = Path("results/detectors"),
    registry: RegistryOption = None,
) -> None:
    """Measure each face detector on a dataset's crops, alone and inside a larger frame: faces found, box
    size and the crop margin that makes its crops of photos match the dataset's, time per photo."""
    import cv2
    import numpy as np

    from ferbench.faces import load_detector, measure_detector
    from ferbench.files import write_json
    from ferbench.results import environment, git_info, now_iso

    zoo = load_zoo(registry)
    names = detector or sorted(zoo.catalog.detectors)
    usable = []
    for name in names:
        try:
            load_detector(name)
            usable.append(name)
        except ConfigError as error:
            if detector:
                raise
            errors.print(f"[yellow]skipped[/] {name}: {error}")
    data = zoo.dataset(dataset).load()
    images = data.images if split is None else data.images[data.splits == split]
    if not len(images):
        raise ConfigError(f"--split {split}: dataset {dataset} has no images in it "
                          f"(splits: {', '.join(sorted(set(data.splits.tolist())))})")
    images = images[np.linspace(0, len(images) - 1, min(limit, len(images))).astype(int)]
    if images.ndim == 4:
        images = np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in images])
    border = images.shape[1] * upscale // 4  # a 48-pixel border around a 192-pixel face: a 288-pixel photo
    rows = [measure_detector(name, images, upscale, frame) for name in usable for frame in (0, border)]
    table = _table(f"Face detectors on {dataset} {split or ''} ({len(images)} crops, {upscale}x)", "detector", "photo",
                   "found", "box side", "margin", "ms/photo")
    for row in rows:
        size = images.shape[1] * upscale + 2 * row["border"]
        table.add_row(row["detector"], f"{size} px" + (" (framed)" if row["border"] else ""), f"{row['found']:.1%}",
                      f"{row['box_side']:.3f}", f"{row['margin']:.3f}" if row["margin"] is not None else "-",
                      f"{row['ms_per_photo']:.1f}")
    console.print(table)
    path = out / f"{now_iso().replace(':', '').replace('-', '')[:15]}Z-detectors-{dataset}{'-' + split if split else ''}.json"
    write_json(path, {"schema": "ferbench.detectors/1", "created": now_iso(), "command": sys.argv, "dataset": dataset,
                      "split": split, "images": len(images), "upscale": upscale, "git": git_info(),
                      "environment": environment(), "rows": rows})
    console.print(f"record: [bold]{path}[/]")


@app.command()
def plugins() -> None:
    """List every plugin: version, where it came from, what it registers, and any error."""
    manager = PluginManager()
    manager.catalog  # noqa: B018 - collecting registrations records hook errors
    table = _table("Plugins", "name", "version", "source", "registers", "status")
    for info in manager.plugins.values():
        provides = "\n".join(f"{section}: {', '.join(names)}" for section, names in info.provides.items())
        status = "[red]" + "\n".join(info.errors) if info.errors else "[green]ok"
        table.add_row(info.name, info.version, info.source, provides or "-", status)
    console.print(table)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def register_plugin_commands() -> None:
    """Let plugins add subcommands; one that fails is reported and the rest of the CLI works."""
    manager = PluginManager()
    manager.notify("ferbench_register_commands", app=app)


def main() -> None:
    try:
        register_plugin_commands()
        app()
    except FerbenchError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()

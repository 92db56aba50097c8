"""Throughput benchmarks: images per second for inference and training, in several execution modes.

Every mode of a model is measured in the same process and reported as a ratio to the eager fp32 NCHW
baseline (what a user would write first). Step times are medians over timed repetitions after warm-up,
read with CUDA events on a GPU and a monotonic clock on the CPU. FLOPs come from
``torch.utils.flop_counter`` (a forward pass on one image; a training step is counted as three forward
passes, the usual estimate), and achieved TFLOP/s is set against a peak the user gives or a matmul peak
measured here.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ferbench import precision, threads
from ferbench.errors import ConfigError
from ferbench.files import write_json
from ferbench.interfaces import Generator
from ferbench.registry import accepted_keywords
from ferbench.results import device_info, environment, git_info, now_iso, slug

BENCH_SCHEMA = "ferbench.bench/1"


@dataclass(frozen=True)
class Mode:
    """How a model is executed. ``dtype`` is the autocast dtype (None: plain fp32)."""

    name: str
    summary: str
    channels_last: bool = False
    dtype: torch.dtype | None = None
    compile: str | None = None  # a torch.compile mode: "default", "reduce-overhead" (CUDA graphs)
    quantize: bool = False  # int8 dynamic quantisation of Linear layers (CPU inference)
    onnxruntime: bool = False  # export to ONNX and run with ONNX Runtime (CPU inference)
    onnx_int8: bool = False  # ... after ONNX Runtime's int8 static quantisation (QDQ)
    devices: tuple[str, ...] = ("cpu", "cuda")
    phases: tuple[str, ...] = ("inference", "training")


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("eager-fp32", "fp32, NCHW, no compilation: the baseline a user writes first"),
    # The training engine's own device policy (ferbench.training): fp32 + channels_last on a CPU, bf16 autocast
    # + channels_last on CUDA; so these two modes also time the "harness" phase, the engine itself.
    Mode("fp32-cl", "fp32, channels_last", channels_last=True, phases=("inference", "training", "harness")),
    Mode("bf16-cl", "bf16 autocast, channels_last", channels_last=True, dtype=torch.bfloat16,
         phases=("inference", "training", "harness")),
    Mode("bf16-cl-compile", "bf16 autocast, channels_last, torch.compile", channels_last=True,
         dtype=torch.bfloat16, compile="default"),
    Mode("bf16-cl-cudagraphs", "bf16 autocast, channels_last, torch.compile with CUDA graphs", channels_last=True,
         dtype=torch.bfloat16, compile="reduce-overhead", devices=("cuda",)),
    Mode("fp32-cl-compile", "fp32, channels_last, torch.compile", channels_last=True, compile="default"),
    Mode("int8-dynamic", "int8 dynamic quantisation of Linear layers, channels_last", channels_last=True,
         quantize=True, devices=("cpu",), phases=("inference",)),
    Mode("onnxruntime", "exported to ONNX, run by ONNX Runtime", onnxruntime=True, devices=("cpu",),
         phases=("inference",)),
    # Convolutions too (int8-dynamic quantises Linear layers only, which a conv net barely has); calibrated
    # on the example batch, so the row measures speed, not accuracy.
    Mode("onnxruntime-int8", "exported to ONNX, int8 static quantisation (QDQ), run by ONNX Runtime",
         onnxruntime=True, onnx_int8=True, devices=("cpu",), phases=("inference",)),
)}
DEFAULT_MODES = {"cuda": ["eager-fp32", "bf16-cl", "bf16-cl-compile", "bf16-cl-cudagraphs"],
                 "cpu": ["eager-fp32", "fp32-cl", "int8-dynamic"]}
DEFAULT_BATCH_SIZES = {"cuda": [256, 1024], "cpu": [256]}


@dataclass
class BenchRow:
    model: str
    mode: str
    phase: str
    batch_size: int
    image_size: int
    in_chans: int
    params: int
    forward_gflops_per_image: float | None
    median_ms: float | None = None
    images_per_s: float | None = None
    achieved_tflops: float | None = None
    fraction_of_peak: float | None = None
    peak_memory_mb: float | None = None
    speedup_vs_eager: float | None = None
    error: str | None = None
    faces_found: int | None = None  # phases "pipeline" and "video": faces the detector found
    detector: str | None = None  # phases "pipeline" and "video": the face detector predict ran
    accuracy: float | None = None  # phase "pipeline": photos whose largest face got the dataset's label
    workers: int | None = None  # phase "pipeline": processes that read the photos and found their faces
    fraction_of_bare: float | None = None  # phase "harness": its img/s over the bare training step's, same mode


@dataclass
class BenchConfig:
    models: list[str]
    device: torch.device
    modes: list[str]
    batch_sizes: list[int]
    image_sizes: list[int]
    in_chans: int = 1
    num_classes: int = 7
    phases: tuple[str, ...] = ("inference", "training")
    warmup: int = 3
    reps: int = 10
    peak_tflops: float | None = None
    busy_cores: int = 0  # processes that each keep one core busy while measuring (a shared machine)
    extra: dict[str, Any] = field(default_factory=dict)


def check_config(config: BenchConfig) -> None:
    for name in config.modes:
        if name not in MODES:
            raise ConfigError(f"unknown --mode {name!r}; modes: {', '.join(MODES)}")
        if config.device.type not in MODES[name].devices:
            raise ConfigError(f"--mode {name} runs on {' or '.join(MODES[name].devices)}, not {config.device.type}")
    for key, values in (("--batch-size", config.batch_sizes), ("--image-size", config.image_sizes)):
        if not values or any(v < 1 for v in values):
            raise ConfigError(f"{key} must be positive integers, got {values}")
    if config.warmup < 0 or config.reps < 1:
        raise ConfigError(f"--warmup must be >= 0 and --reps >= 1, got {config.warmup} and {config.reps}")
    for phase in config.phases:
        if phase not in PHASES:
            raise ConfigError(f"--phase must be one of {', '.join(PHASES)}, both or all, got {phase!r}")
    if config.busy_cores < 0:
        raise ConfigError(f"--busy-cores must be 0 or more, got {config.busy_cores}")


PHASES = ("inference", "training", "harness")
"""inference: a forward pass; training: a bare forward/backward/AdamW step; harness: a step of
:func:`ferbench.training.train_classifier` (augmentation, label smoothing, divergence guard, schedule)."""


def forward_flops(model: nn.Module, example: torch.Tensor) -> float | None:
    """FLOPs of one forward pass per image (matmuls and convolutions; 2 per multiply-add)."""
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example[:1])
        return counter.get_total_flops() / 1e9
    except Exception:
        return None


def mode_dtype(mode: Mode) -> str:
    """The arithmetic a mode's matmuls run in, the key of its peak: ``bf16`` or ``fp32`` (TF32 on CUDA
    where ``torch.backends.cuda.matmul.allow_tf32`` is on: the peak is measured under the same setting)."""
    return "bf16" if mode.dtype == torch.bfloat16 else "fp32"


def mode_dtypes(modes: list[str]) -> list[str]:
    """The arithmetics the named modes use, each once."""
    return sorted({mode_dtype(MODES[m]) for m in modes})


def measure_matmul_peaks(device: torch.device, modes: list[str]) -> dict[str, float]:
    """TFLOP/s of a large matmul in each arithmetic the ``modes`` use: the ceilings their rows are set
    against (an fp32 row divided by a bf16 peak would look several times worse than it is)."""
    return {dtype: measure_matmul_peak(device, dtype) for dtype in mode_dtypes(modes)}


def measure_matmul_peak(device: torch.device, dtype_name: str = "fp32") -> float:
    """TFLOP/s of a large matmul in ``dtype_name`` (``fp32`` or ``bf16``) on ``device``."""
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = _median_seconds(lambda: a @ b, device, warmup=3, reps=10)
    return 2 * n**3 / seconds / 1e12


def _median_seconds(step: Callable[[], Any], device: torch.device, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(reps):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def _prepare(model: nn.Module, mode: Mode, device: torch.device, example: torch.Tensor, training: bool):
    """The model and input as ``mode`` runs them, and a callable that runs one step."""
    model = model.to(device)
    x = example.to(device)
    if mode.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if mode.quantize:
        import warnings

        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8)
    if mode.onnxruntime:
        return _onnxruntime_step(model.eval(), example, mode.onnx_int8)
    if mode.compile:
        # Every timm model shares one forward frame: without a reset a batch sweep passes dynamo's
        # recompile limit and silently falls back to eager.
        torch._dynamo.reset()
    runnable = torch.compile(model, mode=mode.compile) if mode.compile else model
    autocast = (lambda: torch.autocast(device.type, dtype=mode.dtype)) if mode.dtype else contextlib.nullcontext
    if not training:
        model.eval()

        def infer():
            with torch.inference_mode(), autocast():
                return runnable(x)

        return infer
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda" or None)

    def train_step():
        with autocast():
            # A loss that fits any output shape (logits, images, latents): the step costs the same.
            loss = runnable(x).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


def harness_step_seconds(model: nn.Module, example: torch.Tensor, config: BenchConfig, mode: Mode) -> float:
    """Seconds per step of the training engine itself on ``example``-shaped random faces: two epochs of
    ``max(reps, 20)`` steps with the supervised defaults (augmentation on); the second epoch is timed, so
    warm-up is excluded and the per-epoch work (drawing augmentations, the divergence check) included."""
    from ferbench.data import InputSpec
    from ferbench.training import SUPERVISED_DEFAULTS, TrainingSet, train_classifier

    batch, in_chans, size = example.shape[0], example.shape[1], example.shape[-1]
    steps = max(config.reps, 20)
    generator = np.random.default_rng(0)
    shape = (batch * steps, size, size) if in_chans == 1 else (batch * steps, size, size, 3)
    images = generator.integers(0, 256, shape, dtype=np.uint8)
    labels = generator.integers(0, config.num_classes, batch * steps)
    data = TrainingSet.of_arrays(images, labels, config.device)
    run_config = {**SUPERVISED_DEFAULTS, "epochs": 2, "batch_size": batch}
    # The engine follows the process's precision policy; time it in the mode's own, beside that mode's bare step.
    with precision.using("bf16" if mode.dtype == torch.bfloat16 else "fp32"):
        history = train_classifier(model, data, InputSpec.fit(images, in_chans, size), run_config, config.device, 0)
    return history[-1]["seconds"] / steps


@contextlib.contextmanager
def busy_cores(count: int):
    """``count`` processes that each spin on one core for the block: the shared machine of a real user."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _onnxruntime_step(model: nn.Module, example: torch.Tensor, int8: bool = False):
    from ferbench.export import inference_session, quantize_int8, to_onnx

    graph = to_onnx(model, example, "images", "logits")
    feed = {"images": example.numpy()}
    session = inference_session(quantize_int8(graph, [feed]) if int8 else graph)
    return lambda: session.run(None, feed)


def example_input(model: nn.Module, batch: int, size: int, in_chans: int) -> torch.Tensor:
    """Random input of the shape ``model`` takes: latents for a generator, images for everything else."""
    latent_dim = getattr(model, "latent_dim", None)
    if isinstance(model, Generator) and latent_dim:
        return torch.randn(batch, latent_dim)
    return torch.randn(batch, in_chans, size, size)


def bench_module(name: str, build: Callable[[int], nn.Module], config: BenchConfig, peak: dict[str, float] | None,
                 track: Callable = lambda it, *a, **k: it) -> list[BenchRow]:
    """Every mode x phase x batch size x image size of one model (``build(image_size)``); a mode that fails
    is recorded with its error, not raised."""
    rows: list[BenchRow] = []
    cases = [(size, batch, phase, mode) for size in config.image_sizes for batch in config.batch_sizes
             for phase in config.phases for mode in config.modes if phase in MODES[mode].phases]
    for size, batch, phase, mode_name in track(cases, f"bench {name}", total=len(cases)):
        mode = MODES[mode_name]
        model = build(size)
        in_chans = int(getattr(model, "in_chans", config.in_chans))  # a saved model's own, else --in-chans
        example = example_input(model, batch, size, in_chans)
        params = sum(p.numel() for p in model.parameters())
        row = BenchRow(name, mode_name, phase, batch, size, in_chans, params, forward_flops(model.eval(), example))
        try:
            if config.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(config.device)
            if phase == "harness":
                seconds = harness_step_seconds(model, example, config, mode)
            else:
                step = _prepare(model, mode, config.device, example, training=phase == "training")
                seconds = _median_seconds(step, config.device, config.warmup, config.reps)
                del step
        except Exception as error:  # a mode that does not apply to this model is a finding, not a crash
            row.error = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
            rows.append(row)
            continue
        row.median_ms = seconds * 1e3
        row.images_per_s = batch / seconds
        if row.forward_gflops_per_image is not None:
            flops = row.forward_gflops_per_image * (1 if phase == "inference" else 3)
            row.achieved_tflops = flops * row.images_per_s / 1e3
            ceiling = (peak or {}).get(mode_dtype(mode))
            row.fraction_of_peak = row.achieved_tflops / ceiling if ceiling else None
        if config.device.type == "cuda":
            row.peak_memory_mb = torch.cuda.max_memory_allocated(config.device) / 2**20
        rows.append(row)
        del model
    bare = {(r.mode, r.batch_size, r.image_size): r.images_per_s for r in rows
            if r.phase == "training" and r.images_per_s}
    for r in rows:
        if r.phase == "harness" and r.images_per_s and bare.get((r.mode, r.batch_size, r.image_size)):
            r.fraction_of_bare = r.images_per_s / bare[(r.mode, r.batch_size, r.image_size)]
    baseline = {(r.phase, r.batch_size, r.image_size): r.images_per_s for r in rows
                if r.mode == "eager-fp32" and r.images_per_s}
    for r in rows:
        base = baseline.get((r.phase, r.batch_size, r.image_size))
        r.speedup_vs_eager = r.images_per_s / base if r.images_per_s and base else None
    return rows


def pipeline_faces(zoo, dataset: str, count: int, data_options: dict[str, Any] | None = None):
    """``count`` face images of ``dataset`` and their class names (its last split other than ``train`` in
    name order, repeated as needed): what the pipeline rows turn into photos, crops and video frames."""
    data = zoo.dataset(dataset).with_options(data_options or {}).load()
    test = [s for s in data.split_names if s != "train"]
    part = data.split(test[-1]) if test else data
    if len(part.images) == 0:
        raise ConfigError(f"--pipeline-dataset {dataset}: no images to make photos from")
    chosen = np.resize(np.arange(len(part.images)), count)
    return part.images[chosen], [part.classes[label] for label in part.labels[chosen]]


def pipeline_photo(face: np.ndarray, side: int) -> np.ndarray:
    """A ``side`` x ``side`` photo with ``face`` upscaled (bicubic) to two thirds of it, centred on black: a
    face inside a larger frame, as a detector meets it in a photo (at 288 px, a 4x FER2013 face with the
    48-pixel border of ``ferbench calibrate-detectors``)."""
    import cv2

    inner = round(side * 2 / 3)
    border = (side - inner) // 2
    photo = cv2.resize(face, (inner, inner), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(photo, border, side - inner - border, border, side - inner - border,
                              cv2.BORDER_CONSTANT, value=0)


def bench_pipeline(zoo, model_path: str | Path, dataset: str, count: int, sizes: list[int], config: BenchConfig,
                   detector: str = "auto", batch_size: int = 64, video_frames: int = 60,
                   data_options: dict[str, Any] | None = None, workers: list[int] | None = None) -> list[BenchRow]:
    """``ferbench predict`` as a user runs it, per backend (torch, and onnxruntime where installed, and the
    model folder's int8 graph where ``ferbench export --int8`` wrote one):

    - phase ``classifier``: face crops/s of the classifier alone (the dataset's faces at the model's size,
      ``config.batch_sizes[0]`` per call);
    - phase ``pipeline``: photos/s of one whole ``predict`` call (load the model, read, detect, crop,
      classify) on ``count`` photos of each size in ``sizes`` (:func:`pipeline_photo`, written as PNG to a
      temporary folder), the faces found, and ``accuracy``: the share of photos whose largest face is
      classified as the dataset's label (a photo with no face found counts as wrong); once per count of
      photo ``workers`` (default: 1 and one per core, side by side);
    - phase ``video``: frames/s of ``predict`` on a 640 x 480 clip of ``video_frames`` frames with one
      face (200 px) drifting across it, every frame sampled, tracked and smoothed.
    Each row names the detector used."""
    import tempfile

    import cv2

    from ferbench.checkpoint import read_model_record
    from ferbench.faces import resolve_detector, to_color
    from ferbench.predict import load_classifier, predict

    directory, record = read_model_record(model_path)
    workers = sorted(set(workers or [1, threads.available_cores()]))
    faces, labels = pipeline_faces(zoo, dataset, count, data_options)
    detector_name = resolve_detector(detector)[0]
    in_chans, size = int(record["input"]["in_chans"]), int(record["input"]["image_size"])
    params = sum(p.numel() for p in zoo.catalog.build(record["kind"], record["component"], **record["build"]).parameters())
    rows: list[BenchRow] = []

    def timed(row: BenchRow, call: Callable[[], Any], items: int) -> BenchRow:
        try:
            row.median_ms = 1e3 * _median_seconds(call, config.device, min(config.warmup, 1), min(config.reps, 3))
            row.images_per_s = items / (row.median_ms / 1e3)
        except Exception as error:
            row.error = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        rows.append(row)
        return row

    with tempfile.TemporaryDirectory(prefix="ferbench-pipeline-") as folder:
        # Row label -> (model file or folder, predict backend).
        models = {"torch": (Path(model_path), "torch")}
        try:
            from ferbench.export import INT8_FILE, export_onnx

            exported = export_onnx(model_path, zoo.catalog.build, Path(folder) / "model.onnx")
            models["onnxruntime"] = (Path(exported["path"]), "onnxruntime")
            if (directory / INT8_FILE).is_file():  # written by `ferbench export --int8`, calibrated on real faces
                models["onnxruntime-int8"] = (directory / INT8_FILE, "onnxruntime")
        except ConfigError as error:  # onnxruntime not installed: the torch rows still come
            rows.append(BenchRow(str(model_path), "onnxruntime", "classifier", config.batch_sizes[0], size, in_chans,
                                 params, None, error=str(error)[:200], detector=detector_name))
        colour = "grey" if in_chans == 1 else "rgb"
        crops = np.stack([to_color(cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA), colour)
                          for face in faces])
        for label, (path, backend) in models.items():
            classifier = load_classifier(path, zoo.catalog.build, config.device, backend, config.batch_sizes[0])
            timed(BenchRow(str(model_path), label, "classifier", config.batch_sizes[0], size, in_chans, params, None,
                           detector=None), lambda: classifier.probabilities(crops), len(crops))
        for side in sizes:
            photos = Path(folder) / f"photos-{side}"
            photos.mkdir()
            for index, face in enumerate(faces):
                photo = pipeline_photo(face, side)
                cv2.imwrite(str(photos / f"{index:05d}.png"), photo[..., ::-1] if photo.ndim == 3 else photo)
            for (label, (path, backend)), processes in itertools.product(models.items(), workers):
                results: list[Any] = []
                row = timed(BenchRow(str(model_path), f"predict-{label}", "pipeline", batch_size, side, in_chans,
                                     params, None, detector=detector_name, workers=processes),
                            lambda: results.append(predict(path, [photos], zoo.catalog.build, config.device,
                                                           batch_size, detect=detector, backend=backend,
                                                           workers=processes)),
                            len(faces))
                if results:
                    row.faces_found = len(results[-1].faces)
                    largest = {int(Path(r["file"]).stem): r["predicted"] for r in results[-1].faces if r["face"] == 0}
                    row.accuracy = float(np.mean([largest.get(i) == label for i, label in enumerate(labels)]))
        clip = write_face_clip(Path(folder) / "clip.avi", faces[0], video_frames)
        for label, (path, backend) in models.items():
            found = []
            row = timed(BenchRow(str(model_path), f"predict-{label}", "video", batch_size, 640, in_chans, params,
                                 None, detector=detector_name),
                        lambda: found.append(len(predict(path, [clip], zoo.catalog.build, config.device, batch_size,
                                                         detect=detector, backend=backend).faces)),
                        video_frames)
            row.faces_found = found[-1] if found else None
    return rows


def write_face_clip(path: Path, face, frames: int, size: tuple[int, int] = (640, 480), side: int = 200) -> Path:
    """A ``size`` clip (MJPG) of ``frames`` frames: ``face`` upscaled to ``side`` pixels drifting right
    on a grey gradient, one face per frame as a webcam shows it."""
    import cv2

    width, height = size
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    face = face if face.ndim == 3 else cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    background = np.broadcast_to(np.linspace(70, 150, width, dtype=np.uint8)[None, :, None], (height, width, 3))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    if not writer.isOpened():
        raise ConfigError(f"OpenCV cannot write the benchmark clip {path} (MJPG)")
    try:
        for index in range(frames):
            frame = background.copy()
            x = 40 + (index * 4) % (width - side - 80)
            frame[140:140 + side, x:x + side] = face
            writer.write(frame[..., ::-1])
    finally:
        writer.release()
    return path


def write_bench(out_dir: str | Path, config: BenchConfig, rows: list[BenchRow], peak: dict[str, float] | None,
                peak_source: str, command: list[str]) -> Path:
    device = device_info(config.device)
    record = {
        "schema": BENCH_SCHEMA, "created": now_iso(), "device": device, "environment": environment(),
        "git": git_info(), "command": command,
        "config": {"models": config.models, "modes": config.modes, "batch_sizes": config.batch_sizes,
                   "image_sizes": config.image_sizes, "in_chans": config.in_chans, "num_classes": config.num_classes,
                   "phases": list(config.phases), "warmup": config.warmup, "reps": config.reps,
                   "busy_cores": config.busy_cores, **config.extra},
        "peak_tflops": peak, "peak_source": peak_source, "rows": [asdict(r) for r in rows],
    }
    stamp = record["created"].replace(":", "").replace("-", "")[:15]
    path = Path(out_dir) / f"{stamp}-{slug(device['name'].split(' (')[0])}-{slug('+'.join(config.models))[:60]}.json"
    return write_json(path, record)


def load_bench(root: str | Path) -> list[dict[str, Any]]:
    """Every benchmark row under ``root`` with its device name (rows that failed are left out)."""
    import json

    rows = []
    for path in sorted(Path(root).rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("schema") != BENCH_SCHEMA:
            continue
        device = record.get("device", {})
        name = device.get("name", "?") if device.get("type") == "cuda" else "cpu"
        rows += [{**r, "device": name} for r in record.get("rows", []) if r.get("images_per_s")]
    return rows


def bench_target(zoo, name: str, config: BenchConfig) -> Callable[[int], nn.Module]:
    """``build(image_size)`` for a classifier or component name, a method exposing its inference path, or
    a saved model folder (its architecture; the weights do not change the speed)."""
    from ferbench.checkpoint import read_model_record

    standard = {"num_classes": config.num_classes, "in_chans": config.in_chans}
    path = Path(name).expanduser()
    if is_saved_model(name):
        _, record = read_model_record(path)
        return lambda size: zoo.catalog.build(record["kind"], record["component"], **{**record["build"], "image_size": size})
    if zoo.catalog.is_component(name, "classifier"):
        return lambda size: zoo.catalog.build("classifier", name, image_size=size, **standard)
    if name in zoo.catalog.methods:
        spec = zoo.catalog.methods[name]
        if spec.inference is None:
            raise ConfigError(f"method {name!r} does not expose its inference path (MethodSpec.inference), "
                              "so it cannot be benchmarked as a whole; bench its components instead")
        return lambda size: spec.inference(image_size=size, **standard)
    spec, _ = zoo.catalog.component(name)  # raises with suggestions for an unknown name
    accepted = accepted_keywords(spec.build)
    return lambda size: zoo.catalog.build(spec.kind, name, **{k: v for k, v in {**standard, "image_size": size}.items()
                                                             if accepted is None or k in accepted})


def is_saved_model(name: str) -> bool:
    path = Path(name).expanduser()
    return path.name == "model.json" or (path / "model.json").is_file()


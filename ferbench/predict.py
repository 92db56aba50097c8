"""``ferbench predict``: a trained model on new photos and videos, one row per detected face.

The photos go through :class:`ferbench.faces.FacePipeline` (every face the detector finds, not only the
largest) and the model saved by ``ferbench run`` (``model.json`` + ``model.safetensors``), or its ONNX
export (``--backend onnxruntime``, or a ``.onnx`` file as the model). The crops are made as the model's
training images were: its ``model.json`` records their size and face pipeline (margin, mask); grey or
colour follows the model's input channels. Every face of every photo is classified in one batched call.
Files that cannot be decoded and photos with no detected face are reported by name, never silently
dropped.

Videos (and cameras) are sampled at ``fps``; each face is tracked across sampled frames by IoU
(:mod:`ferbench.video`) and its probabilities are smoothed over time per track (an exponential moving
average, ``smooth`` = the weight of the newest frame), one row per face per sampled frame.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch

from ferbench import threads
from ferbench.checkpoint import load_model, read_model_record
from ferbench.errors import ConfigError
from ferbench.export import ONNX_FILE, OnnxClassifier
from ferbench.faces import IMAGE_SUFFIXES, Box, FacePipeline, image_files, read_image
from ferbench.files import atomic_path, write_text
from ferbench.training import predict_proba
from ferbench.video import (
    VIDEO_SUFFIXES,
    AnnotatedVideoWriter,
    IouTracker,
    ProbabilitySmoother,
    draw_faces,
    is_video,
    read_frames,
)

FORMATS = ("csv", "json")
BACKENDS = ("torch", "onnxruntime")
FRAMES_PER_BATCH = 32  # video frames whose faces are classified in one call
CLASSIFY_CHUNK = 256  # photo faces classified in one call, while the workers search the next photos
PHOTOS_PER_WORKER = 64  # fewer photos than this per process do not repay starting it
PhotoFaces = tuple[str, list[Box], list[np.ndarray]]
ANNOTATION_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class Predictions:
    """What ``predict`` found: one entry per face, and the files it could not use."""

    model: str
    classes: tuple[str, ...]
    face_pipeline: dict[str, Any]
    backend: str = "torch"
    faces: list[dict[str, Any]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)  # per video: frames read, sampled, frames/s
    workers: int = 1  # processes that read the photos and found their faces

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "backend": self.backend, "classes": list(self.classes),
                           "face_pipeline": self.face_pipeline, "workers": self.workers, "faces": self.faces,
                           "no_face": self.no_face, "unreadable": self.unreadable, "videos": self.videos},
                          indent=2) + "\n"

    def to_csv(self) -> str:
        """One row per face (status ``face``), then one per file without a usable face (``no_face``,
        ``unreadable``), so the table alone accounts for every input file. Faces in videos also have their
        frame number, time (s) and track id."""
        columns = ["file", "status", "frame", "time", "track", "face", "x", "y", "w", "h", "predicted",
                   "confidence", *(f"p_{c}" for c in self.classes)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.faces:
            box = dict(zip("xywh", row["box"]))
            video = {k: row[k] for k in ("frame", "track") if k in row}
            if "time" in row:
                video["time"] = f"{row['time']:.3f}"
            writer.writerow({"file": row["file"], "status": "face", **video, "face": row["face"], **box,
                             "predicted": row["predicted"], "confidence": f"{row['confidence']:.6f}",
                             **{f"p_{c}": f"{p:.6f}" for c, p in row["probabilities"].items()}})
        for status, files in (("no_face", self.no_face), ("unreadable", self.unreadable)):
            for file in files:
                writer.writerow({"file": file, "status": status})
        return buffer.getvalue()


def input_files(paths: list[Path]) -> list[tuple[Path, str, Path]]:
    """(file, name to report it by, name of its annotated copy): files as given, and the images and
    videos in folders, searched recursively (reported and annotated by their path from the folder's parent)."""
    found = []
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            videos = [p for p in path.rglob("*") if p.is_file() and is_video(p)]
            found += [(file, file.relative_to(path.parent).as_posix(), file.relative_to(path.parent))
                      for file in sorted([*image_files(path), *videos])]
        elif path.is_file():
            found.append((path, str(path), Path(path.name)))
        else:
            raise ConfigError(f"{path}: no such file or folder")
    if not found:
        raise ConfigError(f"no image or video files ({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}) in "
                          f"{', '.join(map(str, paths))}")
    return found


def model_pipeline(record: dict[str, Any], detect: str | None = None, margin: float | None = None,
                   mask: bool | None = None) -> FacePipeline:
    """The face pipeline that crops new photos like the model's training images (overridable): the
    training images' own detector and margin where they were photos, else (face crops such as FER2013)
    the best detector here with its calibrated margin."""
    trained = record.get("trained_by") or {}
    training = trained.get("face_pipeline") or {}
    image_size = trained.get("image_size") or [record["input"]["image_size"]]
    trained_detector = training.get("detect") if training.get("detect") not in (None, "none") else None
    detect = detect or trained_detector or "auto"
    if margin is None and detect == trained_detector:
        margin = training.get("margin")
    return FacePipeline(
        detect=detect,
        margin=margin,
        mask=bool(training.get("mask", False)) if mask is None else mask,
        color="grey" if int(record["input"]["in_chans"]) == 1 else "rgb",
        size=int(max(image_size)),
    )


@dataclass
class FaceClassifier:
    """A saved model ready to classify uint8 face crops made at its input size, in one backend."""

    record: dict[str, Any]
    backend: str
    probabilities: Callable[..., np.ndarray]  # (uint8 crops, tta="none") -> (N, classes)
    int8: dict[str, Any] | None = None  # how the graph was quantised (``ferbench export --int8``), if it was

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.record["classes"])


def load_classifier(model_path: Path, build: Callable[..., Any], device: torch.device, backend: str = "torch",
                    batch_size: int = 64) -> FaceClassifier:
    """The model at ``model_path`` (a saved model folder or model.json, or a ``.onnx`` export) in
    ``backend``: ``torch``, or ``onnxruntime`` (the folder's ``model.onnx``, written by ``ferbench export``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    path = Path(model_path).expanduser()
    if path.suffix == ".onnx":  # the file alone: its metadata holds the model's record
        if not path.is_file():
            raise ConfigError(f"--model {path}: no such file")
        onnx = OnnxClassifier(path)
    elif backend == "onnxruntime":
        directory, record = read_model_record(path)
        if not (directory / ONNX_FILE).is_file():
            raise ConfigError(f"--backend onnxruntime: {directory} has no {ONNX_FILE}; write it with "
                              f"`ferbench export --model {directory}`")
        onnx = OnnxClassifier(directory / ONNX_FILE)
        if onnx.record != record:
            raise ConfigError(f"{directory / ONNX_FILE} was exported from another model than {directory / 'model.json'}; "
                              f"export it again with `ferbench export --model {directory}`")
    else:
        model, input_spec, record = load_model(path, build)
        return FaceClassifier(record, "torch", lambda crops, tta="none": predict_proba(model, crops, input_spec, device,
                                                                                       batch_size, tta))
    return FaceClassifier(onnx.record, "onnxruntime", lambda crops, tta="none": onnx(crops, batch_size, tta),
                          onnx.metadata.get("int8"))


def predict(model_path: Path, paths: list[Path], build: Callable[..., Any], device: torch.device,
            batch_size: int = 64, detect: str | None = None, margin: float | None = None, mask: bool | None = None,
            annotate: Path | None = None, backend: str = "torch", fps: float | None = None, smooth: float = 0.5,
            camera: int | None = None, frames: int | None = None, workers: int | None = None) -> Predictions:
    """Detect every face in the photos and videos ``paths`` (and on ``camera``) and classify it with the
    saved model at ``model_path``. Photos are read and searched in ``workers`` processes
    (:func:`photo_workers`)."""
    classifier = load_classifier(model_path, build, device, backend, batch_size)
    pipeline = model_pipeline(classifier.record, detect, margin, mask)
    result = Predictions(model=str(model_path), classes=classifier.classes, face_pipeline=pipeline.settings(),
                         backend=classifier.backend)
    files = input_files(paths) if paths or camera is None else []
    photos = [f for f in files if not is_video(f[0])]
    sources = [f for f in files if is_video(f[0])]
    crops, owners = [], []

    def classify() -> None:
        if crops:
            result.faces.extend(face_rows(owners, classifier.probabilities(np.stack(crops)), classifier.classes))
            crops.clear()
            owners.clear()

    result.workers = photo_workers(workers, len(photos))
    for (_, name, _), (status, boxes, faces) in zip(photos, find_faces(pipeline, [p for p, _, _ in photos],
                                                                         result.workers)):
        if status == "unreadable":
            result.unreadable.append(name)
        elif status == "no_face":
            result.no_face.append(name)
        for index, (box, face) in enumerate(zip(boxes, faces)):
            crops.append(face)
            owners.append({"file": name, "face": index, "box": box.as_list()})
        if len(crops) >= CLASSIFY_CHUNK:  # classified while the workers look for the next photos' faces
            classify()
    classify()
    if annotate is not None:
        write_annotated(annotate, photos, result)
    if camera is not None:
        sources.append((camera, f"camera {camera}", Path(f"camera-{camera}.mp4")))
    for source, name, relative in sources:
        target = None if annotate is None else annotate / relative.with_suffix(".mp4")
        result.videos.append(predict_video(source, name, classifier, pipeline, result, fps, smooth, frames, target))
    return result


def photo_workers(workers: int | None, photos: int) -> int:
    """Processes that read photos and find their faces: ``workers`` if given, else one per core this
    process may use once there are enough photos to repay starting them (``PHOTOS_PER_WORKER`` each)."""
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
        return workers
    return max(1, min(threads.available_cores(), photos // PHOTOS_PER_WORKER))


def find_faces(pipeline: FacePipeline, paths: list[Path], workers: int = 1) -> Iterator[PhotoFaces]:
    """Each photo's (status, boxes, crops) in order: status ``face``, ``no_face`` or ``unreadable``.

    With ``workers`` > 1 the photos are decoded, searched and cropped in that many processes, while this one
    classifies the faces found so far: YuNet and OpenCV's decoders hold the GIL, so threads would take
    turns. The processes are forked where the platform can, so each inherits the detector this process
    loaded instead of importing torch and the plugins again; elsewhere they are spawned. Meanwhile torch
    runs on one thread here: the workers hold the cores, and YuNet's OpenMP loops run on torch's OpenMP
    runtime, whose thread pool a forked process cannot use (it hangs) unless the parent forked with one
    thread."""
    if workers <= 1 or len(paths) <= 1:
        yield from map(functools.partial(_photo_faces, pipeline), paths)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    chunk = max(1, min(32, len(paths) // (4 * workers)))
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            with warnings.catch_warnings():  # map submits every chunk now, which forks the workers
                # Python 3.12+ warns about forking a process with threads (torch's); the children never use them.
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
                found = pool.map(functools.partial(_photo_faces, pipeline), paths, chunksize=chunk)
            yield from found
    finally:
        torch.set_num_threads(torch_threads)


def _photo_faces(pipeline: FacePipeline, path: Path) -> PhotoFaces:
    image = read_image(path)
    if image is None:
        return "unreadable", [], []
    boxes = pipeline.faces(image)
    return ("face" if boxes else "no_face"), boxes, [pipeline.crop(image, box) for box in boxes]


def face_rows(owners: list[dict[str, Any]], probabilities: np.ndarray, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows of classified faces: each owner's fields with the predicted class and probabilities."""
    rows = []
    for owner, row in zip(owners, probabilities):
        best = int(row.argmax())
        rows.append({**owner, "predicted": classes[best], "confidence": float(row[best]),
                     "probabilities": {c: float(p) for c, p in zip(classes, row)}})
    return rows


def predict_video(source: Path | int, name: str, classifier: FaceClassifier, pipeline: FacePipeline,
                  result: Predictions, fps: float | None, smooth: float, limit: int | None,
                  annotate: Path | None) -> dict[str, Any]:
    """Faces of one video or camera, tracked and smoothed, appended to ``result``; returns its summary."""
    tracker, smoother = IouTracker(), ProbabilitySmoother(smooth)
    started, sampled, faces, writer = time.perf_counter(), 0, 0, None
    frames = read_frames(source, fps, limit)

    def next_chunk() -> list:
        try:
            return [frame for _, frame in zip(range(FRAMES_PER_BATCH), frames)]
        except KeyboardInterrupt:
            if isinstance(source, int):
                return []  # Ctrl-C ends a camera stream; what it saw so far is kept
            raise

    with contextlib.ExitStack() as stack:  # the annotated video is kept only if every frame got through
        while chunk := next_chunk():
            crops, owners = [], []
            for frame in chunk:
                boxes = pipeline.faces(frame.image)
                for index, (box, track) in enumerate(zip(boxes, tracker.update(boxes))):
                    crops.append(pipeline.crop(frame.image, box))
                    owners.append({"file": name, "frame": frame.index, "time": frame.time, "track": track,
                                   "face": index, "box": box.as_list()})
            probabilities = classifier.probabilities(np.stack(crops)) if crops else []
            labels: dict[int, list[tuple[Box, str]]] = {}
            for owner, row in zip(owners, probabilities):
                (face,) = face_rows([owner], smoother.update(owner["track"], row)[None], classifier.classes)
                result.faces.append(face)
                labels.setdefault(face["frame"], []).append(
                    (Box(*face["box"]), f"#{face['track']} {face['predicted']} {face['confidence']:.0%}"))
            smoother.forget(tracker.live_ids())
            sampled, faces = sampled + len(chunk), faces + len(owners)
            if annotate is not None:
                if writer is None:
                    rate = 1 / (chunk[1].time - chunk[0].time) if len(chunk) > 1 else (fps or 30.0)
                    height, width = chunk[0].image.shape[:2]
                    writer = stack.enter_context(AnnotatedVideoWriter(annotate, rate, (width, height)))
                for frame in chunk:
                    writer.write(draw_faces(frame.image, labels.get(frame.index, [])))
    seconds = time.perf_counter() - started
    if not faces:
        result.no_face.append(name)
    return {"file": name, "sampled_frames": sampled, "faces": faces, "seconds": seconds,
            "frames_per_s": sampled / seconds if seconds else None, "fps": fps, "smooth": smooth,
            "annotated": str(annotate) if writer is not None else None}


def write_annotated(folder: Path, files: list[tuple[Path, str, Path]], result: Predictions) -> None:
    """Copies of the photos with a face found, each face boxed and labelled with its predicted class."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for row in result.faces:
        by_file.setdefault(row["file"], []).append(row)
    for path, name, relative in files:
        if name not in by_file:
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        image = draw_faces(image, [(Box(*row["box"]), f"{row['predicted']} {row['confidence']:.0%}")
                                   for row in by_file[name]])
        target = folder / (relative if relative.suffix.lower() in ANNOTATION_SUFFIXES else relative.with_suffix(".png"))
        target.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(target.suffix, image)
        if not ok:
            raise ConfigError(f"OpenCV could not encode {target}")
        with atomic_path(target) as tmp:
            tmp.write_bytes(encoded.tobytes())


def write_predictions(result: Predictions, output: Path | None, fmt: str | None) -> str:
    """Render ``result`` as CSV or JSON (``fmt``, else the output file's suffix, else CSV); write it
    atomically to ``output`` when given. Returns the text."""
    suffix = output.suffix.lstrip(".").lower() if output is not None else ""
    fmt = (fmt or (suffix if suffix in FORMATS else "csv")).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be csv or json, got {fmt!r}")
    text = result.to_csv() if fmt == "csv" else result.to_json()
    if output is not None:
        write_text(output, text)
    return text


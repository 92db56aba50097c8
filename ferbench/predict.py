"""``ferbench predict``: a trained model on new photos, one row per detected face.

The photos go through :class:`ferbench.faces.FacePipeline` (every face the detector finds, not only the
largest) and the model saved by ``ferbench run`` (``model.json`` + ``model.safetensors``). The crops are
made as the model's training images were: its ``model.json`` records their size and face pipeline
(margin, mask); grey or colour follows the model's input channels. Files that cannot be decoded and
photos with no detected face are reported by name, never silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch

from ferbench.checkpoint import load_model
from ferbench.errors import ConfigError
from ferbench.faces import IMAGE_SUFFIXES, FacePipeline, image_files, read_image
from ferbench.files import atomic_path, write_text
from ferbench.training import predict_proba

FORMATS = ("csv", "json")
ANNOTATION_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class Predictions:
    """What ``predict`` found: one entry per face, and the files it could not use."""

    model: str
    classes: tuple[str, ...]
    face_pipeline: dict[str, Any]
    faces: list[dict[str, Any]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "classes": list(self.classes), "face_pipeline": self.face_pipeline,
                           "faces": self.faces, "no_face": self.no_face, "unreadable": self.unreadable}, indent=2) + "\n"

    def to_csv(self) -> str:
        """One row per face (status ``face``), then one per file without a usable face (``no_face``,
        ``unreadable``), so the table alone accounts for every input file."""
        columns = ["file", "status", "face", "x", "y", "w", "h", "predicted", "confidence",
                   *(f"p_{c}" for c in self.classes)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.faces:
            box = dict(zip("xywh", row["box"]))
            writer.writerow({"file": row["file"], "status": "face", "face": row["face"], **box,
                             "predicted": row["predicted"], "confidence": f"{row['confidence']:.6f}",
                             **{f"p_{c}": f"{p:.6f}" for c, p in row["probabilities"].items()}})
        for status, files in (("no_face", self.no_face), ("unreadable", self.unreadable)):
            for file in files:
                writer.writerow({"file": file, "status": status})
        return buffer.getvalue()


def input_files(paths: list[Path]) -> list[tuple[Path, str, Path]]:
    """(file, name to report it by, name of its annotated copy): files as given, and the images in
    folders, searched recursively (reported and annotated by their path from the folder's parent)."""
    found = []
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            found += [(file, file.relative_to(path.parent).as_posix(), file.relative_to(path.parent))
                      for file in image_files(path)]
        elif path.is_file():
            found.append((path, str(path), Path(path.name)))
        else:
            raise ConfigError(f"{path}: no such file or folder")
    if not found:
        raise ConfigError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(map(str, paths))}")
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


def predict(model_path: Path, paths: list[Path], build: Callable[..., Any], device: torch.device,
            batch_size: int = 64, detect: str | None = None, margin: float | None = None, mask: bool | None = None,
            annotate: Path | None = None) -> Predictions:
    """Detect every face in ``paths`` and classify it with the saved model at ``model_path``."""
    model, input_spec, record = load_model(model_path, build)
    classes = tuple(record["classes"])
    pipeline = model_pipeline(record, detect, margin, mask)
    result = Predictions(model=str(model_path), classes=classes, face_pipeline=pipeline.settings())
    files = input_files(paths)
    crops, owners = [], []
    for path, name, _ in files:
        image = read_image(path)
        if image is None:
            result.unreadable.append(name)
            continue
        boxes = pipeline.faces(image)
        if not boxes:
            result.no_face.append(name)
            continue
        for index, box in enumerate(boxes):
            crops.append(pipeline.crop(image, box))
            owners.append((path, name, index, box))
    probabilities = predict_proba(model, np.stack(crops), input_spec, device, batch_size) if crops else np.zeros((0, 0))
    for (path, name, index, box), row in zip(owners, probabilities):
        best = int(row.argmax())
        result.faces.append({"file": name, "face": index, "box": box.as_list(), "predicted": classes[best],
                             "confidence": float(row[best]),
                             "probabilities": {c: float(p) for c, p in zip(classes, row)}})
    if annotate is not None:
        write_annotated(annotate, files, result)
    return result


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
        thickness = max(1, round(max(image.shape[:2]) / 300))
        for row in by_file[name]:
            x, y, w, h = row["box"]
            cv2.rectangle(image, (x, y), (x + w, y + h), (0, 200, 0), thickness)
            label = f"{row['predicted']} {row['confidence']:.0%}"
            scale = max(0.4, w / 250)
            (text_w, text_h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            top = max(0, y - text_h - base - 2)
            cv2.rectangle(image, (x, top), (x + text_w + 2, top + text_h + base + 2), (0, 200, 0), -1)
            cv2.putText(image, label, (x + 1, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                        thickness, cv2.LINE_AA)
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


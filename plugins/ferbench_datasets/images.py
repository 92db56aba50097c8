"""What every image-file loader shares: labelled files in, a :class:`~ferbench.data.Dataset` out.

A format module (``ckplus.py``, ``jaffe.py``, ...) only knows its layout: it lists the image files with
their label, person, release split and video sequence as :class:`Record` s. :func:`load_records` then
decodes each file, runs the face pipeline, and builds the dataset, through the preprocessing cache.

What can go wrong, and what happens:

- a file that cannot be decoded (corrupt, truncated, not an image) is skipped; it is counted and named in
  the dataset's ``load_report`` (``excluded.unreadable``), which runs print and record;
- a photo in which the detector finds no face is skipped the same way (``excluded.no_face``);
- an unknown label, a class folder without images or a missing folder is an error naming the path;
- images of different sizes are an error naming the file, unless the pipeline resizes (``size``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ferbench.data import CANONICAL_CLASSES, Dataset, canonical_class
from ferbench.errors import DatasetError
from ferbench.faces import FacePipeline, read_image

from .cache import cache_key, cached
from .npz import subsample

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test", "public_test": "public_test", "private_test": "private_test"}


@dataclass(frozen=True)
class Record:
    """One labelled image file: ``label`` is a canonical class name."""

    path: Path
    label: str
    split: str = "all"
    subject: str = ""
    sequence: str = ""


def label_of(name: str, where: Path | str, aliases: Mapping[str, str] | None = None) -> str:
    """A dataset's own label (a folder name, a code) as a canonical class; an error naming ``where`` if unknown."""
    key = str(name).strip()
    if aliases is not None:
        if key.lower() not in aliases:
            raise DatasetError(f"{where}: unknown label {name!r} (known: {', '.join(sorted(aliases))})")
        return aliases[key.lower()]
    try:
        return canonical_class(key)
    except DatasetError as error:
        raise DatasetError(f"{where}: {error}") from None


def folder(path: Path, what: str) -> Path:
    """``path`` if it is a directory, else an error naming it."""
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} not found" + ("" if path.exists() else " (no such directory)"))
    return path


def class_folders(root: Path) -> dict[Path, str]:
    """``<root>/<class>/`` folders and their canonical class; unknown or empty class folders are errors."""
    folders = sorted(p for p in folder(root, "class folders").iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no class folders (expected {root}/<class>/<image files>)")
    classes = {}
    for path in folders:
        classes[path] = label_of(path.name, path)
        if not any(f.is_file() for f in path.iterdir()):
            raise DatasetError(f"{path}: class folder {path.name!r} holds no images")
    return classes


def load_records(records: list[Record], *, root: Path, loader: str, pipeline: FacePipeline, cache: bool = True,
                 limit: int | None = None, seed: int = 0, settings: Mapping[str, Any] | None = None,
                 layout: str = "") -> Dataset:
    """Decode ``records`` through ``pipeline`` (cached on disk), then keep at most ``limit`` images per split.

    ``settings`` are the loader's own options that change which files or labels it reads (frames per
    sequence, modality): they are part of the cache key together with the pipeline's settings.
    """
    if not records:
        raise DatasetError(f"{root}: no labelled images found" + (f" (expected {layout})" if layout else ""))
    unknown = sorted({r.label for r in records} - set(CANONICAL_CLASSES))
    if unknown:
        raise DatasetError(f"{root}: loader {loader} produced non-canonical labels {unknown}")
    key_settings = {"pipeline": pipeline.settings(), "loader": dict(settings or {}),
                    "records": [(r.label, r.split, r.subject, r.sequence) for r in records]}
    key = cache_key(loader, key_settings, (r.path for r in records), root)
    dataset = cached(loader, key, lambda: _decode(records, root, loader, pipeline), enabled=cache)
    return subsample(dataset, int(limit), seed) if limit else dataset


def _decode(records: list[Record], root: Path, loader: str, pipeline: FacePipeline) -> Dataset:
    images, kept, unreadable, no_face = [], [], [], []
    for record in records:
        image = read_image(record.path)
        if image is None:
            unreadable.append(_relative(record.path, root))
            continue
        found = pipeline(image)
        if found is None:
            no_face.append(_relative(record.path, root))
            continue
        images.append(found[0])
        kept.append(record)
    if not kept:
        raise DatasetError(f"{root}: none of the {len(records)} images could be used "
                           f"({len(unreadable)} unreadable, {len(no_face)} without a detected face)")
    _check_sizes(images, kept)
    classes = tuple(c for c in CANONICAL_CLASSES if any(r.label == c for r in kept))
    index = {c: i for i, c in enumerate(classes)}
    column = lambda attribute: np.array([getattr(r, attribute) for r in kept], dtype=str)
    report = {
        "loader": loader, "root": str(root), "face_pipeline": pipeline.settings(),
        "files": len(records), "images": len(kept),
        "excluded_counts": {"unreadable": len(unreadable), "no_face": len(no_face)},
        "no_face_rate": round(len(no_face) / max(1, len(records) - len(unreadable)), 6),
        "excluded": {"unreadable": unreadable, "no_face": no_face},
    }
    return Dataset(
        name=root.name, images=np.stack(images), labels=np.array([index[r.label] for r in kept], dtype=np.int64),
        classes=classes, subjects=column("subject"), splits=column("split"),
        meta={"source_file": np.array([_relative(r.path, root) for r in kept], dtype=str),
              "sequence": column("sequence")},
        source=str(root), load_report=report,
    )


def _check_sizes(images: list[np.ndarray], records: list[Record]) -> None:
    """All images one size, or an error naming the ones that differ from the most common size."""
    shapes = Counter(image.shape for image in images)
    if len(shapes) == 1:
        return
    common = shapes.most_common(1)[0][0]
    odd = [f"{r.path} ({i.shape[1]}x{i.shape[0]})" for i, r in zip(images, records) if i.shape != common]
    raise DatasetError(
        f"{odd[0].rsplit(' (', 1)[0]}: image size differs from the other images' {common[1]}x{common[0]}: "
        f"{len(odd)} image(s) do: {', '.join(odd[:5])}{', ...' if len(odd) > 5 else ''}; "
        "give the loader a size option (e.g. --data-option size=48) to resize them all")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def image_paths(folder_path: Path) -> list[Path]:
    """Files directly in ``folder_path`` (any name: undecodable ones are reported as unreadable), sorted."""
    return sorted(p for p in folder_path.iterdir() if p.is_file() and not p.name.startswith("."))

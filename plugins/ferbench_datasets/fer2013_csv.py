"""FER2013 as released for the ICML 2013 challenge: one CSV, ``emotion,pixels,Usage``.

``emotion`` is 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral; ``pixels`` holds 2,304
space-separated grey values (48 x 48, row by row); ``Usage`` is ``Training`` (28,709 rows),
``PublicTest`` (3,589) or ``PrivateTest`` (3,589), the official train / public-test / private-test splits.
Column order does not matter (the Kaggle ``icml_face_data.csv`` has ``emotion, Usage, pixels`` with
spaces), only the names. ``root`` is the CSV file or a folder holding ``fer2013.csv``.

A row whose pixels do not parse as 0-255 integers is a corrupt image: skipped, counted and named
(``fer2013.csv:LINE``) in the load report. A row of another length than its first row's is a mismatched
image size, an unknown emotion code or usage an unknown label: errors naming the line. The parsed
dataset is cached like decoded photos (parsing 35,887 rows takes seconds).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ferbench.data import Dataset
from ferbench.errors import DatasetError

from .cache import cache_key, cached
from .npz import subsample

LOADER = "fer2013-csv"
FILE_NAMES = ("fer2013.csv", "icml_face_data.csv")
EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
USAGES = {"training": "train", "publictest": "public_test", "privatetest": "private_test"}
COLUMNS = ("emotion", "pixels", "usage")


def find_csv(root: Path) -> Path | None:
    if root.is_file():
        return root
    return next((root / name for name in FILE_NAMES if (root / name).is_file()), None)


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [name.strip().lower() for name in next(csv.reader(handle), [])]


def sniff(path: Path) -> bool:
    found = find_csv(path)
    return found is not None and found.suffix.lower() == ".csv" and set(COLUMNS) <= set(_header(found))


def load(root: str, cache: bool = True, limit: int | None = None, seed: int = 0) -> Dataset:
    """FER2013 from its CSV; ``limit`` keeps at most that many images per split (class-stratified)."""
    root = Path(root).expanduser()
    path = find_csv(root)
    if path is None:
        raise DatasetError(f"{root}: no FER2013 CSV found (looked for {', '.join(FILE_NAMES)})"
                           if root.exists() else f"{root}: no such file or directory")
    missing = [c for c in COLUMNS if c not in _header(path)]
    if missing:
        raise DatasetError(f"{path}: not a FER2013 CSV, it lacks column(s) {', '.join(missing)} "
                           f"(expected emotion,pixels,Usage)")
    key = cache_key(LOADER, {}, [path], path.parent)
    dataset = cached(LOADER, key, lambda: _parse(path), enabled=cache)
    return subsample(dataset, int(limit), seed) if limit else dataset


def _parse(path: Path) -> Dataset:
    images, labels, splits, lines, corrupt = [], [], [], [], []
    length = None
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader)]
        column = {name: header.index(name) for name in COLUMNS}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}:{line}"
            if len(row) < len(header):
                raise DatasetError(f"{where}: {len(row)} fields, the header has {len(header)}")
            emotion, usage = row[column["emotion"]].strip(), row[column["usage"]].strip()
            if emotion not in {str(i) for i in range(len(EMOTIONS))}:
                raise DatasetError(f"{where}: unknown emotion code {emotion!r} (FER2013 uses 0-6)")
            if usage.lower() not in USAGES:
                raise DatasetError(f"{where}: unknown Usage {usage!r} (expected Training, PublicTest or PrivateTest)")
            values = row[column["pixels"]].split()
            if length is None:
                length = len(values)
                if math.isqrt(length) ** 2 != length or length == 0:
                    raise DatasetError(f"{where}: {length} pixel values do not make a square image")
            elif len(values) != length:
                raise DatasetError(f"{where}: {len(values)} pixel values where the first row has {length} "
                                   f"({math.isqrt(length)}x{math.isqrt(length)}): mismatched image size")
            try:
                pixels = np.array(values, dtype=np.int64)
            except ValueError:
                corrupt.append(f"{path.name}:{line}")
                continue
            if pixels.min() < 0 or pixels.max() > 255:
                corrupt.append(f"{path.name}:{line}")
                continue
            images.append(pixels.astype(np.uint8))
            labels.append(int(emotion))
            splits.append(USAGES[usage.lower()])
            lines.append(f"{path.name}:{line}")
    if not images:
        raise DatasetError(f"{path}: no usable rows" + (f" ({len(corrupt)} corrupt)" if corrupt else ""))
    side = math.isqrt(length)
    n = len(images)
    return Dataset(
        name=path.parent.name or path.stem, images=np.stack(images).reshape(n, side, side),
        labels=np.array(labels, dtype=np.int64), classes=EMOTIONS, subjects=np.full(n, ""),
        splits=np.array(splits), meta={"source_file": np.array(lines), "sequence": np.full(n, "")},
        source=str(path),
        load_report={"loader": LOADER, "root": str(path), "files": n + len(corrupt), "images": n,
                     "excluded_counts": {"corrupt": len(corrupt)}, "excluded": {"corrupt": corrupt}},
    )

"""The preprocessing cache: a dataset decoded (and face-cropped) once is stored as a ferbench ``.npz``.

Decoding thousands of photos and running the face detector on each takes minutes; the result depends
only on the source files and the settings, so it is stored under ``$FERBENCH_CACHE`` (default
``~/.cache/ferbench``) in ``datasets/<loader>-<key>.npz``. The key is a SHA-256 over the loader, its
settings (face pipeline included) and, for every source file, its path, size and modification time: a
changed, added or removed file, or any other setting, gives a new key, so a stale entry is never read.
The archive is ferbench's own format (``ferbench-npz`` loads it), plus the list of files the loader
skipped and why, so a second run reports the same exclusions as the first. Entries are written
atomically; an unreadable entry is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.files import atomic_path

from . import npz

CACHE_ENV = "FERBENCH_CACHE"
CACHE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/ferbench").expanduser() / "datasets"


def cache_key(loader: str, settings: dict[str, Any], files: Iterable[Path], root: Path) -> str:
    """SHA-256 over the loader, its settings and every source file's relative path, size and mtime."""
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "loader": loader, "settings": settings},
                                       sort_keys=True, default=str).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"\n{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cached(loader: str, key: str, build: Callable[[], Dataset], enabled: bool = True) -> Dataset:
    """The dataset stored under ``key``, or ``build()``'s result, stored for next time.

    The returned dataset's ``load_report`` gains ``cache`` (the file, and whether it was reused).
    """
    path = cache_dir() / f"{loader}-{key[:24]}.npz"
    if enabled and path.is_file():
        try:
            dataset = read(path)
        except DatasetError:
            pass  # a damaged entry (an interrupted copy, another version's format): rebuild it
        else:
            return _with_cache(dataset, path, reused=True)
    dataset = build()
    if not enabled:
        return dataset
    write(path, dataset)
    return _with_cache(dataset, path, reused=False)


def write(path: Path, dataset: Dataset) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle, images=dataset.images, labels=dataset.labels.astype(np.int16),
            classes=np.array(dataset.classes), split=dataset.splits.astype(str),
            subject=dataset.subjects.astype(str),
            source_file=dataset.meta.get("source_file", np.full(len(dataset), "")).astype(str),
            sequence=dataset.meta.get("sequence", np.full(len(dataset), "")).astype(str),
            name=np.array(dataset.name), source=np.array(dataset.source),
            load_report=np.array(json.dumps(dataset.load_report)))


def read(path: Path) -> Dataset:
    arrays = npz.read_archive(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            name, source = str(archive["name"]), str(archive["source"])
            report = json.loads(str(archive["load_report"]))
    except (KeyError, ValueError, OSError) as error:
        raise DatasetError(f"{path}: not a ferbench cache entry ({error})") from error
    return Dataset(name=name, images=arrays["images"], labels=arrays["labels"].astype(np.int64),
                   classes=tuple(str(c) for c in arrays["classes"]), subjects=arrays["subject"].astype(str),
                   splits=arrays["split"].astype(str),
                   meta={"source_file": arrays["source_file"].astype(str), "sequence": arrays["sequence"].astype(str)},
                   source=source, load_report=report)


def _with_cache(dataset: Dataset, path: Path, reused: bool) -> Dataset:
    return replace(dataset, load_report={**dataset.load_report, "cache": {"file": str(path), "reused": reused}})

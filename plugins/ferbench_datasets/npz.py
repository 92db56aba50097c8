"""ferbench's own on-disk format: a folder of ``.npz`` archives (``../shared/data`` uses it).

Each archive holds ``images`` (uint8, N x H x W or N x H x W x 3), ``labels`` (int, index into
``classes``), ``classes`` (str), ``split`` and ``subject`` (str, N) and optionally ``source_file`` and
``sequence`` (str, N). A dataset is its folder: every archive in it, concatenated. Archives are read with
``allow_pickle=False``: an archive holding Python objects is refused.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ferbench.data import Dataset, canonical_class
from ferbench.errors import DatasetError

REQUIRED = ("images", "labels", "classes", "split", "subject")
OPTIONAL = ("source_file", "sequence")


def archives(root: Path) -> list[Path]:
    return [root] if root.is_file() else sorted(root.glob("*.npz"))


def sniff(path: Path) -> bool:
    found = archives(path) if path.exists() else []
    if not found:
        return False
    try:
        with np.load(found[0], allow_pickle=False) as archive:
            return set(REQUIRED) <= set(archive.files)
    except Exception:
        return False


def read_archive(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in REQUIRED if k not in archive.files]
            if missing:
                raise DatasetError(f"{path}: missing array(s) {', '.join(missing)} (has {', '.join(archive.files)})")
            arrays = {k: archive[k] for k in (*REQUIRED, *OPTIONAL) if k in archive.files}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DatasetError(f"{path}: not a readable .npz archive ({type(error).__name__}: {error})") from error
    images = arrays["images"]
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DatasetError(f"{path}: images must be uint8 (N, H, W[, 3]), got {images.dtype} {images.shape}")
    n = len(images)
    for key, values in arrays.items():
        if key not in ("images", "classes") and len(values) != n:
            raise DatasetError(f"{path}: {key} has {len(values)} entries for {n} images")
    labels = arrays["labels"].astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= len(arrays["classes"])):
        raise DatasetError(f"{path}: labels must index into its {len(arrays['classes'])} classes")
    return arrays


def load(root: str, limit: int | None = None, seed: int = 0) -> Dataset:
    """Every archive under ``root``; ``limit`` keeps at most that many images per split (a random,
    class-stratified subset drawn with ``seed``), for quick runs on a CPU."""
    root = Path(root)
    found = archives(root)
    if not found:
        raise DatasetError(f"{root}: no .npz archives found")
    parts = [(path, read_archive(path)) for path in found]
    shapes = {a["images"].shape[1:] for _, a in parts}
    if len(shapes) > 1:
        raise DatasetError(f"{root}: archives hold images of different shapes {sorted(shapes)}")
    classes = tuple(dict.fromkeys(canonical_class(c) for _, a in parts for c in a["classes"]))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.concatenate([
        np.array([index[canonical_class(c)] for c in a["classes"]], dtype=np.int64)[a["labels"].astype(np.int64)]
        for _, a in parts])
    column = lambda key: np.concatenate([a[key].astype(str) if key in a else np.full(len(a["images"]), "")
                                         for _, a in parts])
    dataset = Dataset(
        name=root.name, images=np.concatenate([a["images"] for _, a in parts]), labels=labels, classes=classes,
        subjects=column("subject"), splits=column("split"),
        meta={"source_file": column("source_file"), "sequence": column("sequence")}, source=str(root),
    )
    return subsample(dataset, limit, seed) if limit else dataset


def subsample(dataset: Dataset, limit: int, seed: int) -> Dataset:
    """At most ``limit`` images per split, keeping each split's class proportions."""
    if limit < 1:
        raise DatasetError(f"limit must be a positive integer, got {limit}")
    rng = np.random.default_rng(seed)
    keep = []
    for split in dataset.split_names:
        members = np.flatnonzero(dataset.splits == split)
        if len(members) <= limit:
            keep.append(members)
            continue
        for label in np.unique(dataset.labels[members]):
            of_class = members[dataset.labels[members] == label]
            share = max(1, round(limit * len(of_class) / len(members)))
            keep.append(rng.choice(of_class, size=min(share, len(of_class)), replace=False))
    return dataset.select(np.sort(np.concatenate(keep)))

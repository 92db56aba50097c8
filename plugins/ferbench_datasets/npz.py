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
    if root.is_file():
        return [root] if root.suffix == ".npz" else []
    return sorted(root.glob("*.npz"))


def sniff(path: Path) -> bool:
    """A folder (or file) of ``.npz`` archives is in this format. What is inside is checked on load, which
    names a damaged or foreign archive, rather than here, which could only say "not a dataset"."""
    try:
        return path.exists() and bool(archives(path))
    except OSError:
        return False


def read_archive(path: Path) -> dict:
    """The arrays of one archive, checked: any file that is not a well-formed archive in this format is a
    :class:`DatasetError` naming the file and what is wrong, whatever its bytes are."""
    try:
        if not zipfile.is_zipfile(path):
            raise DatasetError(f"{path}: not a readable .npz archive (not a zip file)")
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in REQUIRED if k not in archive.files]
            if missing:
                raise DatasetError(f"{path}: missing array(s) {', '.join(missing)} (has {', '.join(archive.files)})")
            arrays = {}
            for key in (*REQUIRED, *OPTIONAL):
                if key in archive.files:
                    _check_header(path, archive.zip, key)
                    arrays[key] = archive[key]
    except DatasetError:
        raise
    except Exception as error:  # zip, zlib, header and EOF errors alike: the file is damaged or not ours
        raise DatasetError(f"{path}: not a readable .npz archive ({type(error).__name__}: {error})") from error
    return _checked(path, arrays)


def _check_header(path: Path, archive: zipfile.ZipFile, key: str) -> None:
    """Refuse an array whose header claims more (or less) data than its archive member holds, before
    numpy allocates what the header claims: a lying header must not cost gigabytes of memory."""
    info = archive.getinfo(f"{key}.npy")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise DatasetError(f"{path}: {key} is a .npy version {version} array; ferbench reads versions 1 and 2")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(member)
        if dtype.hasobject:
            raise DatasetError(f"{path}: not a readable .npz archive: {key} holds pickled Python objects, which "
                               "could run code when loaded; refused")
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if claimed != info.file_size - member.tell():
            raise DatasetError(f"{path}: {key} claims {dtype} {shape} ({claimed} bytes) but holds "
                               f"{info.file_size - member.tell()} bytes")


def _checked(path: Path, arrays: dict[str, np.ndarray]) -> dict:
    images = arrays["images"]
    if images.dtype != np.uint8 or not (images.ndim == 3 or images.ndim == 4 and images.shape[-1] == 3) \
            or 0 in images.shape[1:]:
        raise DatasetError(f"{path}: images must be uint8 (N, H, W) or (N, H, W, 3), got {images.dtype} {images.shape}")
    n = len(images)
    for key, values in arrays.items():
        if key != "images" and values.ndim != 1:
            raise DatasetError(f"{path}: {key} must be one-dimensional, got shape {values.shape}")
        if key not in ("images", "classes") and len(values) != n:
            raise DatasetError(f"{path}: {key} has {len(values)} entries for {n} images")
    if not np.issubdtype(arrays["labels"].dtype, np.integer):
        raise DatasetError(f"{path}: labels must be integers, got {arrays['labels'].dtype}")
    if arrays["classes"].dtype.kind not in "US" or not len(arrays["classes"]):
        raise DatasetError(f"{path}: classes must be a non-empty list of class names, got {arrays['classes'].dtype}")
    try:
        text = {k: v.astype(str) for k, v in arrays.items() if k not in ("images", "labels")}
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: text that is not valid ASCII/UTF-8 ({error})") from error
    try:
        text["classes"] = [canonical_class(str(c)) for c in text["classes"]]  # plain str, as Dataset.classes holds
    except DatasetError as error:
        raise DatasetError(f"{path}: {error}") from error
    labels = arrays["labels"].astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= len(text["classes"])):
        raise DatasetError(f"{path}: labels must index into its {len(text['classes'])} classes")
    return {"images": images, "labels": labels, **text}


def load(root: str, limit: int | None = None, seed: int = 0) -> Dataset:
    """Every archive under ``root``; ``limit`` keeps at most that many images per split (a random,
    class-stratified subset drawn with ``seed``), for quick runs on a CPU."""
    root = Path(root)
    found = archives(root)
    if not found:
        raise DatasetError(f"{root}: no .npz archives found")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise DatasetError(f"limit must be a positive integer, got {limit!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise DatasetError(f"seed must be an integer, got {seed!r}")
    parts = [(path, read_archive(path)) for path in found]
    shapes = {a["images"].shape[1:] for _, a in parts}
    if len(shapes) > 1:
        raise DatasetError(f"{root}: archives hold images of different shapes {sorted(shapes)}")
    classes = tuple(dict.fromkeys(c for _, a in parts for c in a["classes"]))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.concatenate([np.array([index[c] for c in a["classes"]], dtype=np.int64)[a["labels"]] for _, a in parts])
    column = lambda key: np.concatenate([a[key] if key in a else np.full(len(a["images"]), "") for _, a in parts])
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

"""FER2013 in its common folder release: ``train/<class>/Training_*.jpg`` and
``test/<class>/PublicTest_*.jpg`` / ``test/<class>/PrivateTest_*.jpg``.

The classes are folders (``angry``, ``disgust``, ``fear``, ``happy``, ``neutral``, ``sad``, ``surprise``);
the official splits come from the file-name prefixes: ``Training_`` -> ``train``, ``PublicTest_`` ->
``public_test``, ``PrivateTest_`` -> ``private_test`` (a test file with neither prefix lands in
``test``). The images are 48 x 48 grey crops already, so no face detection runs; an image of another
size is an error naming the file. ``../shared/data/fer2013`` was made from this release.
"""

from __future__ import annotations

from pathlib import Path

from ferbench.data import Dataset
from ferbench.faces import FacePipeline

from .images import Record, class_folders, folder, image_paths, load_records

LOADER = "fer2013-folder"
PREFIXES = {"Training_": "train", "PublicTest_": "public_test", "PrivateTest_": "private_test"}


def split_of(path: Path, default: str) -> str:
    return next((split for prefix, split in PREFIXES.items() if path.name.startswith(prefix)), default)


def sniff(path: Path) -> bool:
    if not ((path / "train").is_dir() and (path / "test").is_dir()):
        return False
    for part in ("train", "test"):
        for class_dir in (path / part).iterdir():
            if class_dir.is_dir():
                return any(p.name.startswith(tuple(PREFIXES)) for p in class_dir.iterdir())
    return False


def load(root: str, cache: bool = True, limit: int | None = None, seed: int = 0) -> Dataset:
    """FER2013 from ``train/`` and ``test/`` class folders; ``limit``: at most that many images per split."""
    root = Path(root).expanduser()
    records = []
    for part in ("train", "test"):
        for class_dir, label in class_folders(folder(root / part, f"FER2013 {part}/ folder")).items():
            records += [Record(path, label, split=split_of(path, part)) for path in image_paths(class_dir)]
    return load_records(records, root=root, loader=LOADER, pipeline=FacePipeline(detect="none", size=None),
                        cache=cache, limit=limit, seed=seed, layout="train/<class>/*.jpg and test/<class>/*.jpg")

"""A generic image folder: ``<root>/<class>/<images>``, or ``<root>/<split>/<class>/<images>``.

Class folder names are mapped onto the canonical classes (``happy``, ``Happiness``, ``joy`` ->
happiness; see :data:`ferbench.data.CLASS_ALIASES`); an unknown name is an error naming the folder
(rename it, or map it with the dataset's ``classes:`` in registry.yaml after loading). When every
top-level folder is a split name (``train``, ``val``/``validation``, ``test``), the level below holds
the classes and the release's splits are kept; otherwise every image is in split ``all``. People are
unknown, so subject-independent folds do not apply.

By default the images are taken as they are (``detect=none``, native size, grey): set ``detect=haar``
for photos, ``size`` when the images differ in size, ``color=rgb`` to keep colour.
"""

from __future__ import annotations

from pathlib import Path

from ferbench.data import CLASS_ALIASES, Dataset
from ferbench.faces import FacePipeline, image_files

from .images import SPLIT_ALIASES, Record, class_folders, folder, load_records

LOADER = "imagefolder"


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def sniff(path: Path) -> bool:
    if not path.is_dir():
        return False
    top = _subfolders(path)
    if top and all(p.name.lower() in SPLIT_ALIASES for p in top):
        top = [c for split in top for c in _subfolders(split)]
    return bool(top) and all(p.name.lower() in CLASS_ALIASES for p in top) and any(image_files(p) for p in top)


def load(root: str, detect: str = "none", margin: float | None = None, mask: bool = False, color: str = "grey",
         size: int | None = None, cache: bool = True, limit: int | None = None, seed: int = 0) -> Dataset:
    """Every file in ``<root>/[<split>/]<class>/`` (recursively within a class folder)."""
    root = Path(root).expanduser()
    top = _subfolders(folder(root, "image folder"))
    by_split = bool(top) and all(p.name.lower() in SPLIT_ALIASES for p in top)
    records = []
    for split_dir in top if by_split else [root]:
        split = SPLIT_ALIASES[split_dir.name.lower()] if by_split else "all"
        for class_dir, label in class_folders(split_dir).items():
            records += [Record(path, label, split=split) for path in sorted(class_dir.rglob("*"))
                        if path.is_file() and not path.name.startswith(".")]
    pipeline = FacePipeline(detect=detect, margin=margin, mask=mask, color=color, size=size)
    return load_records(records, root=root, loader=LOADER, pipeline=pipeline, cache=cache, limit=limit, seed=seed,
                        layout="<class>/<images> or <split>/<class>/<images>")

"""CK+48: the 48 x 48 CK+ face crops in class folders, ``CK+48/<class>/S010_004_00000017.png``.

Classes: ``anger``, ``contempt``, ``disgust``, ``fear``, ``happy``, ``sadness``, ``surprise`` (981 images,
the last three frames of the 327 labelled sequences). The person and the video sequence come from the
file name (``S010`` and ``S010_004``), which is what makes subject-independent folds possible; a file
named otherwise is an error naming it. The crops are used as they are (no face detection); an image of
another size is an error naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.faces import FacePipeline

from .images import Record, class_folders, image_paths, load_records

LOADER = "ckplus48-folder"
NAME = re.compile(r"^(S\d+)_(\d+)_\d+\.\w+$")


def sniff(path: Path) -> bool:
    if not path.is_dir():
        return False
    for class_dir in (p for p in path.iterdir() if p.is_dir()):
        return any(NAME.match(f.name) for f in class_dir.iterdir())
    return False


def load(root: str, cache: bool = True, limit: int | None = None, seed: int = 0) -> Dataset:
    """CK+48 from ``<root>/<class>/S<subject>_<sequence>_<frame>.png``."""
    root = Path(root).expanduser()
    records = []
    for class_dir, label in class_folders(root).items():
        for path in image_paths(class_dir):
            match = NAME.match(path.name)
            if match is None:
                raise DatasetError(f"{path}: not a CK+ file name (S<subject>_<sequence>_<frame>.png), "
                                   "so its person is unknown")
            subject, sequence = match.group(1), f"{match.group(1)}_{match.group(2)}"
            records.append(Record(path, label, subject=subject, sequence=sequence))
    return load_records(records, root=root, loader=LOADER, pipeline=FacePipeline(detect="none", size=None),
                        cache=cache, limit=limit, seed=seed, layout="<class>/S010_004_00000017.png")

"""JAFFE (Japanese Female Facial Expression): 213 grey 256 x 256 photos of 10 women, one folder.

File names say who and what: ``KA.AN1.39.tiff`` is subject ``KA``, expression ``AN`` (anger), take 1,
image 39. Expression codes: AN anger, DI disgust, FE fear, HA happiness, NE neutral, SA sadness, SU
surprise. Other files in the folder (the README) are ignored; an image file (``.tif``/``.tiff``) whose
name does not follow the pattern, or with an unknown code, is an error naming it. The face pipeline runs
(Haar detector, 10% margin, grey, 48 x 48 by default). With 10 people, ``--protocol kfold --folds 10``
is leave-one-subject-out.
"""

from __future__ import annotations

import re
from pathlib import Path

from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.faces import FacePipeline

from .images import Record, folder, label_of, load_records

LOADER = "jaffe"
NAME = re.compile(r"^([A-Za-z]{2})\.([A-Za-z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)
CODES = {"an": "anger", "di": "disgust", "fe": "fear", "ha": "happiness", "ne": "neutral", "sa": "sadness",
         "su": "surprise"}


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


def sniff(path: Path) -> bool:
    return path.is_dir() and any(NAME.match(p.name) for p in path.iterdir())


def load(root: str, detect: str = "haar", margin: float | None = None, mask: bool = False, color: str = "grey",
         size: int | None = 48, cache: bool = True, limit: int | None = None, seed: int = 0) -> Dataset:
    """Every ``XX.YYn.k.tiff`` photo in ``root``, face-cropped."""
    root = Path(root).expanduser()
    records = []
    for path in sorted(p for p in folder(root, "JAFFE folder").iterdir() if p.is_file() and is_image_name(p)):
        match = NAME.match(path.name)
        if match is None:
            raise DatasetError(f"{path}: not a JAFFE file name (like KA.AN1.39.tiff: subject, expression, take, number)")
        subject, code = match.group(1).upper(), match.group(2)
        records.append(Record(path, label_of(code, path, CODES), subject=subject))
    pipeline = FacePipeline(detect=detect, margin=margin, mask=mask, color=color, size=size)
    return load_records(records, root=root, loader=LOADER, pipeline=pipeline, cache=cache, limit=limit, seed=seed,
                        layout="KA.AN1.39.tiff-style file names")

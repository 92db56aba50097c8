"""FACES (Ebner, Riediger & Lindenberger 2010, Max Planck Institute for Human Development): 2,052 colour
photos of 171 young, middle-aged and older people, each showing six expressions in two picture sets.

File names carry everything: ``004_o_m_a_A.jpg`` is person 004, age group ``o`` (y young, m middle,
o older), gender ``m`` (m/f), expression ``a`` and picture set ``A`` (A/B). Expression codes: a anger,
d disgust, f fear, h happiness, n neutrality, s sadness. An image file named otherwise, or with an unknown
code, is an error naming it. The photos are 2835 x 3543, so the face pipeline runs (Haar detector on a
copy at most 800 pixels wide, 10% margin, grey, 48 x 48 by default). Registered as ``mpi-faces`` so that
"faces" stays free to mean faces.
"""

from __future__ import annotations

import re
from pathlib import Path

from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.faces import IMAGE_SUFFIXES, FacePipeline

from .images import Record, folder, label_of, load_records

LOADER = "mpi-faces"
NAME = re.compile(r"^(\d+)_([ymo])_([mf])_([a-z])_([AB])\.\w+$")
CODES = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral", "s": "sadness"}


def sniff(path: Path) -> bool:
    return path.is_dir() and any(NAME.match(p.name) for p in path.iterdir())


def load(root: str, detect: str = "haar", margin: float | None = None, mask: bool = False, color: str = "grey",
         size: int | None = 48, cache: bool = True, limit: int | None = None, seed: int = 0) -> Dataset:
    """Every ``ID_age_gender_expression_set.jpg`` photo under ``root`` (recursively), face-cropped."""
    root = Path(root).expanduser()
    records = []
    for path in sorted(p for p in folder(root, "FACES folder").rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        match = NAME.match(path.name)
        if match is None:
            raise DatasetError(f"{path}: not a FACES file name (like 004_o_m_a_A.jpg: person, age group, "
                               "gender, expression, picture set)")
        records.append(Record(path, label_of(match.group(4), path, CODES), subject=match.group(1)))
    pipeline = FacePipeline(detect=detect, margin=margin, mask=mask, color=color, size=size)
    return load_records(records, root=root, loader=LOADER, pipeline=pipeline, cache=cache, limit=limit, seed=seed,
                        layout="004_o_m_a_A.jpg-style file names")

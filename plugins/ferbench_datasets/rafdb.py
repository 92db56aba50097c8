"""RAF-DB basic (Real-world Affective Faces, Li, Deng & Du 2017): 15,339 web photos, seven classes.

Layout: ``<root>/[basic/]EmoLabel/list_patition_label.txt`` (sic: the release's spelling) lists
``train_00001.jpg 5`` per line, codes 1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger,
7 neutral; the images are ``Image/aligned/train_00001_aligned.jpg`` (100 x 100 aligned faces) and
``Image/original/train_00001.jpg`` (the photos). The split is the file-name prefix (``train`` 12,271,
``test`` 3,068); the people are unknown, so only hold-out and image-level folds apply.

``aligned=true`` (default) reads the aligned faces as they are (``detect`` defaults to ``none``);
``aligned=false`` reads the photos and runs the Haar detector. A listed image that is missing is an error
naming it (the list and the images disagree); a malformed line or unknown code is an error naming the
line.
"""

from __future__ import annotations

from pathlib import Path

from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.faces import FacePipeline

from .images import Record, folder, label_of, load_records

LOADER = "rafdb-basic"
LABEL_FILE = "EmoLabel/list_patition_label.txt"
CODES = {"1": "surprise", "2": "fear", "3": "disgust", "4": "happiness", "5": "sadness", "6": "anger", "7": "neutral"}
SPLITS = ("train", "test")


def base(root: Path) -> Path:
    return root / "basic" if (root / "basic" / LABEL_FILE).is_file() else root


def sniff(path: Path) -> bool:
    return (base(path) / LABEL_FILE).is_file()


def load(root: str, aligned: bool = True, detect: str | None = None, margin: float | None = None, mask: bool = False,
         color: str = "grey", size: int | None = 100, cache: bool = True, limit: int | None = None,
         seed: int = 0) -> Dataset:
    """RAF-DB basic from its label list; ``aligned`` picks the aligned faces or the original photos."""
    root = Path(root).expanduser()
    home = base(root)
    label_file = home / LABEL_FILE
    if not label_file.is_file():
        raise DatasetError(f"{label_file}: RAF-DB label list not found")
    images = folder(home / "Image" / ("aligned" if aligned else "original"), "RAF-DB image folder")
    records = []
    for number, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label_file}:{number}"
        fields = line.split()
        if len(fields) != 2:
            raise DatasetError(f"{where}: expected '<file> <code>', got {line!r}")
        name, code = fields
        split = name.split("_", 1)[0]
        if split not in SPLITS:
            raise DatasetError(f"{where}: file {name!r} is neither train_* nor test_*")
        path = images / (f"{Path(name).stem}_aligned{Path(name).suffix}" if aligned else name)
        if not path.is_file():
            raise DatasetError(f"{path}: listed in {where} but missing")
        records.append(Record(path, label_of(code, where, CODES), split=split))
    pipeline = FacePipeline(detect=detect or ("none" if aligned else "haar"), margin=margin, mask=mask, color=color,
                            size=size)
    return load_records(records, root=home, loader=LOADER, pipeline=pipeline, cache=cache, limit=limit, seed=seed,
                        settings={"aligned": aligned}, layout=f"{LABEL_FILE} and Image/aligned/")

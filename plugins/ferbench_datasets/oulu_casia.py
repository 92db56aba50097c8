"""OULU-CASIA NIR&VIS facial expressions: 80 people, six expressions, each a video sequence from
neutral to peak, filmed by a visible-light (VL) and a near-infrared (NI) camera under three lights.

Layout (the ``OriginalImg`` release): ``<root>/[OriginalImg/]VL/Strong/P001/Anger/000.jpeg``, i.e.
``<modality>/<illumination>/<person>/<expression>/<frame>.jpeg`` with modality ``VL`` or ``NI``,
illumination ``Strong``, ``Weak`` or ``Dark``, and expressions ``Anger``, ``Disgust``, ``Fear``,
``Happiness``, ``Sadness``, ``Surprise``. Each sequence gives its last ``frames`` frames (3 by default,
the common choice: the peak of the expression); ``modality`` and ``illumination`` pick the subset (VL /
Strong by default, the one most papers report). The person is the ``P001`` folder, the sequence
``P001_Anger``. The face pipeline runs (Haar detector, 10% margin, grey, 48 x 48 by default).
"""

from __future__ import annotations

from pathlib import Path

from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.faces import FacePipeline

from .images import Record, folder, image_paths, label_of, load_records

LOADER = "oulu-casia"
MODALITIES = ("VL", "NI")
ILLUMINATIONS = ("Strong", "Weak", "Dark")


def base(root: Path) -> Path:
    """The folder holding ``VL``/``NI``: ``root`` itself or its ``OriginalImg``."""
    return root / "OriginalImg" if (root / "OriginalImg").is_dir() else root


def sniff(path: Path) -> bool:
    found = base(path)
    return any((found / m / i).is_dir() for m in MODALITIES for i in ILLUMINATIONS)


def load(root: str, modality: str = "VL", illumination: str = "Strong", frames: int = 3, detect: str = "haar",
         margin: float | None = None, mask: bool = False, color: str = "grey", size: int | None = 48, cache: bool = True,
         limit: int | None = None, seed: int = 0) -> Dataset:
    """The last ``frames`` frames of every sequence of one modality and illumination, face-cropped."""
    root = Path(root).expanduser()
    if modality not in MODALITIES:
        raise DatasetError(f"OULU-CASIA option modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    if illumination not in ILLUMINATIONS:
        raise DatasetError(f"OULU-CASIA option illumination must be one of {', '.join(ILLUMINATIONS)}, "
                           f"got {illumination!r}")
    if not isinstance(frames, int) or frames < 1:
        raise DatasetError(f"OULU-CASIA option frames must be a positive integer, got {frames!r}")
    subset = folder(base(root) / modality / illumination, f"OULU-CASIA {modality}/{illumination} folder")
    records = []
    for person in sorted(p for p in subset.iterdir() if p.is_dir()):
        for sequence in sorted(p for p in person.iterdir() if p.is_dir()):
            label = label_of(sequence.name, sequence)
            sequence_frames = image_paths(sequence)
            if not sequence_frames:
                raise DatasetError(f"{sequence}: sequence folder holds no frames")
            records += [Record(path, label, subject=person.name, sequence=f"{person.name}_{sequence.name}")
                        for path in sequence_frames[-frames:]]
    pipeline = FacePipeline(detect=detect, margin=margin, mask=mask, color=color, size=size)
    return load_records(records, root=root, loader=LOADER, pipeline=pipeline, cache=cache, limit=limit, seed=seed,
                        settings={"modality": modality, "illumination": illumination, "frames": frames},
                        layout=f"{modality}/{illumination}/P001/Anger/000.jpeg")

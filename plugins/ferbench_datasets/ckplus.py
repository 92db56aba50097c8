"""CK+ (Extended Cohn-Kanade) in its original layout: image sequences plus emotion label files.

``<root>/cohn-kanade-images/S005/001/S005_001_00000011.png`` are the frames of one sequence (neutral to
peak expression); ``<root>/Emotion/S005/001/S005_001_00000011_emotion.txt`` holds its label as one
float (``   3.0000000e+00``): 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness,
7 surprise. Only 327 of the 593 sequences carry a label file.

Each labelled sequence gives its last ``frames`` frames (3 by default, as in the latent-VGG19 paper: 981
images), and optionally its first ``neutral_frames`` frames as neutral. The person and the sequence come
from the folder names (``S005``, ``S005_001``). The photos are 640 x 490 (some 640 x 480, some stored as
three grey channels), so the face pipeline runs: by default the Haar detector, a 10% margin, grey,
48 x 48 (the size of CK+48). A label file whose sequence folder is missing, or whose content is not a
code 0-7, is an error naming it.
"""

from __future__ import annotations

from pathlib import Path

from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.faces import FacePipeline

from .images import Record, folder, image_paths, load_records

LOADER = "ckplus"
EMOTIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")


def sniff(path: Path) -> bool:
    return (path / "cohn-kanade-images").is_dir() and (path / "Emotion").is_dir()


def read_emotion(path: Path) -> str:
    try:
        value = float(path.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DatasetError(f"{path}: not a CK+ emotion file (one number 0-7): {error}") from error
    if value != int(value) or not 0 <= value < len(EMOTIONS):
        raise DatasetError(f"{path}: unknown CK+ emotion code {value:g} (codes are 0-7)")
    return EMOTIONS[int(value)]


def load(root: str, frames: int = 3, neutral_frames: int = 0, detect: str = "haar", margin: float | None = None,
         mask: bool = False, color: str = "grey", size: int | None = 48, cache: bool = True,
         limit: int | None = None, seed: int = 0) -> Dataset:
    """The last ``frames`` frames of every labelled CK+ sequence, face-cropped."""
    root = Path(root).expanduser()
    if not isinstance(frames, int) or frames < 1 or not isinstance(neutral_frames, int) or neutral_frames < 0:
        raise DatasetError(f"CK+ options: frames must be a positive integer and neutral_frames a non-negative "
                           f"one, got frames={frames!r}, neutral_frames={neutral_frames!r}")
    images = folder(root / "cohn-kanade-images", "CK+ cohn-kanade-images/ folder")
    labels = folder(root / "Emotion", "CK+ Emotion/ folder")
    records = []
    for label_file in sorted(labels.glob("*/*/*_emotion.txt")):
        subject, sequence = label_file.parent.parent.name, label_file.parent.name
        label = read_emotion(label_file)
        sequence_dir = folder(images / subject / sequence, f"image sequence for {label_file.name}")
        sequence_frames = image_paths(sequence_dir)
        if not sequence_frames:
            raise DatasetError(f"{sequence_dir}: sequence folder holds no frames")
        sequence_id = f"{subject}_{sequence}"
        for path in sequence_frames[:neutral_frames]:
            records.append(Record(path, "neutral", subject=subject, sequence=sequence_id))
        for path in sequence_frames[-frames:]:
            records.append(Record(path, label, subject=subject, sequence=sequence_id))
    pipeline = FacePipeline(detect=detect, margin=margin, mask=mask, color=color, size=size)
    return load_records(records, root=root, loader=LOADER, pipeline=pipeline, cache=cache, limit=limit, seed=seed,
                        settings={"frames": frames, "neutral_frames": neutral_frames},
                        layout="cohn-kanade-images/S005/001/*.png and Emotion/S005/001/*_emotion.txt")

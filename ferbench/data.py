"""The in-memory dataset every loader returns, the canonical label set, and the image-to-tensor path.

FER datasets are small enough to hold in memory as uint8 arrays (FER2013 is 83 MB), so a dataset is
plain arrays plus metadata, and a model's input transform runs per batch on the model's device.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ferbench.errors import DatasetError

CANONICAL_CLASSES: tuple[str, ...] = (
    "anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
)
"""The one label set results are reported in; every dataset maps its own names onto it."""

BASIC_EXPRESSIONS: tuple[str, ...] = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
)
"""The seven basic expressions (the canonical set without contempt), in canonical order."""

CLASS_ALIASES: Mapping[str, str] = {
    "angry": "anger", "anger": "anger", "an": "anger",
    "contempt": "contempt", "contemptuous": "contempt",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fe": "fear",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness", "ha": "happiness",
    "neutral": "neutral", "neutrality": "neutral", "calm": "neutral", "ne": "neutral",
    "sadness": "sadness", "sad": "sadness", "sa": "sadness",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
}


def canonical_class(name: str) -> str:
    """Map a dataset's own class name ("Happy", "surprised", "SA") onto the canonical label set."""
    key = str(name).strip().lower()
    if key not in CLASS_ALIASES:
        raise DatasetError(
            f"class name {name!r} has no canonical equivalent; canonical classes are "
            f"{', '.join(CANONICAL_CLASSES)} (give the dataset a class mapping in registry.yaml)"
        )
    return CLASS_ALIASES[key]


def fingerprint(*arrays: np.ndarray) -> str:
    """SHA-256 (hex) over each array's shape, dtype and bytes, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.data)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class Dataset:
    """Face images with expression labels, in memory.

    ``images`` are uint8, ``(N, H, W)`` for grey or ``(N, H, W, 3)`` for RGB. ``labels`` index into
    ``classes``, which are canonical names (see :data:`CANONICAL_CLASSES`). ``subjects`` holds a person id
    per image ("" where unknown) so protocols can keep people out of both train and test, and ``splits``
    the release's own split per image ("train", "test", "public_test", "all", ...). ``meta`` holds any
    further per-image columns (``source_file``, ``sequence``, ``style``). ``load_report`` says how the loader
    made it (face pipeline settings, preprocessing cache, and every file it skipped with the reason), so a
    run can show and record what was left out.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    subjects: np.ndarray
    splits: np.ndarray
    meta: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    load_report: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for column in ("images", "labels", "subjects", "splits"):
            object.__setattr__(self, column, np.asarray(getattr(self, column)))
        object.__setattr__(self, "meta", {k: np.asarray(v) for k, v in self.meta.items()})
        object.__setattr__(self, "classes", tuple(self.classes))
        n = len(self.images)
        where = f"dataset {self.name!r}"
        if n and not np.issubdtype(self.labels.dtype, np.integer):
            raise DatasetError(f"{where}: labels must be integers, got {self.labels.dtype}")
        if self.images.dtype != np.uint8 or not (
            self.images.ndim == 3 or (self.images.ndim == 4 and self.images.shape[-1] == 3)
        ):
            raise DatasetError(
                f"{where}: images must be uint8 (N, H, W) or (N, H, W, 3), got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        columns = {"labels": self.labels, "subjects": self.subjects, "splits": self.splits, **self.meta}
        for column, values in columns.items():
            if len(values) != n:
                raise DatasetError(f"{where}: {column} has {len(values)} entries for {n} images")
        unknown = [c for c in self.classes if c not in CANONICAL_CLASSES]
        if unknown or len(set(self.classes)) != len(self.classes):
            raise DatasetError(
                f"{where}: classes must be distinct canonical names, got {list(self.classes)}"
            )
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DatasetError(f"{where}: labels must lie in [0, {len(self.classes)})")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else 3

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def select(self, index: np.ndarray | Sequence[int], name: str | None = None) -> "Dataset":
        """The images at ``index`` (integer indices or a boolean mask), with all their metadata."""
        index = np.asarray(index)
        if index.dtype != bool:
            index = index.astype(np.int64)  # an empty list would otherwise become a float array
        return Dataset(
            name=name or self.name,
            images=self.images[index],
            labels=self.labels[index],
            classes=self.classes,
            subjects=self.subjects[index],
            splits=self.splits[index],
            meta={k: v[index] for k, v in self.meta.items()},
            source=self.source,
            load_report=self.load_report,
        )

    def split(self, split: str) -> "Dataset":
        mask = self.splits == split
        if not mask.any():
            raise DatasetError(
                f"dataset {self.name!r} has no {split!r} split (it has: {', '.join(self.split_names) or 'none'})"
            )
        return self.select(mask, name=f"{self.name}[{split}]")

    @property
    def split_names(self) -> list[str]:
        return sorted(set(self.splits.tolist()))

    def fingerprint(self) -> str:
        """SHA-256 of exactly what a model sees and is scored against: the images after the loader's
        preprocessing, the labels and the class names (order included), so two records share it only if
        they used the same data."""
        return fingerprint(self.images, self.labels.astype(np.int64), np.asarray(self.classes, dtype=str))

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, counts)}

    def restricted_to(self, classes: Sequence[str]) -> "Dataset":
        """Keep the images whose class is in ``classes`` and relabel them to index into ``classes``.

        This lines two datasets up class by class (cross-dataset runs, evaluating a saved model).
        """
        classes = tuple(classes)
        position = {c: i for i, c in enumerate(classes)}
        mapping = np.array([position.get(c, -1) for c in self.classes], dtype=np.int64)
        new_labels = mapping[self.labels] if len(self) else self.labels
        keep = new_labels >= 0
        return replace(self.select(keep), labels=new_labels[keep], classes=classes)


@dataclass(frozen=True)
class InputSpec:
    """How raw uint8 images become a model's input: channels, size and normalisation.

    Saved beside every trained model, so the model sees new images exactly as it saw its training set.
    """

    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, images: np.ndarray, in_chans: int, image_size: int) -> "InputSpec":
        """Per-channel mean and std of ``images`` after channel conversion, on the [0, 1] scale."""
        sample = images[:: max(1, len(images) // 4096)]  # evenly spaced: loaders often sort by class
        x = to_channels(torch.from_numpy(np.ascontiguousarray(sample)), in_chans).float() / 255.0
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return cls(in_chans, image_size, tuple(mean.tolist()), tuple(std.tolist()))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W[, 3])`` images on any device -> normalised float ``(N, C, S, S)``."""
        return self.normalise(self.pixels(batch))

    def pixels(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W[, 3])`` images -> float ``(N, C, S, S)`` in [0, 1], not yet normalised."""
        x = to_channels(batch, self.in_chans).float().div_(255.0)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return x

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = _normalisation(self.mean, self.std, x.device)
        return (x - mean) / std


@functools.lru_cache(maxsize=64)
def _normalisation(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation constants as tensors on ``device``, made once (not copied from the host per batch)."""
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def to_channels(batch: torch.Tensor, in_chans: int) -> torch.Tensor:
    """uint8 ``(N, H, W)`` or ``(N, H, W, 3)`` -> ``(N, in_chans, H, W)``; RGB to grey by ITU-R 601 luma."""
    x = batch.unsqueeze(1) if batch.ndim == 3 else batch.permute(0, 3, 1, 2)
    if x.shape[1] == in_chans:
        return x
    if in_chans == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if x.shape[1] == 1:
        return x.expand(-1, in_chans, -1, -1)
    raise DatasetError(f"cannot convert {x.shape[1]}-channel images to {in_chans} channels")

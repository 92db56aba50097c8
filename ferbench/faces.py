"""Face preprocessing: find the face in a photo, crop it with a margin, optionally mask the background,
convert it to grey or colour and resize it to a method's input size.

This is the first step of the Arabian GAN paper's pipeline, and what ``ferbench predict`` and the loaders
of raw-photo datasets (CK+, JAFFE, OULU-CASIA, FACES) run. Detectors are plugins (hook
``ferbench_register_detectors``; the built-in ones are YuNet and OpenCV's Haar cascade, see
``ferbench detectors``); ``detect="auto"`` takes the best one that loads here, ``detect="none"`` means the
image already is the face. No model is ever downloaded.

Choices the paper leaves open, and ours:

- one face per dataset image: the largest detection (datasets show one person); ``predict`` keeps all.
- the crop is the detection box widened to a square and grown by ``margin`` of its side on every side;
  where it runs off the photo the border pixels are repeated. By default the margin is the detector's
  calibrated one (:attr:`ferbench.interfaces.DetectorSpec.margin`), so that crops frame a face as FER2013
  and CK+48 do whichever detector found it: detectors draw boxes of different sizes around the same face
  (Haar's is about 0.84 of a FER2013 crop's side, YuNet's about 0.97).
- ``mask``: everything outside the ellipse inscribed in the detection box is set to black.
- faces smaller than ``min_face`` (0.1) of the photo's shorter side are not searched for.
- images without a detected face are excluded and counted (the paper reports 8.77% and 1.41%).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferbench.errors import ConfigError, unknown_name

AUTO = "auto"  # the best detector that loads here
NO_DETECTOR = "none"  # the image is the face
COLORS = ("grey", "rgb")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"})


@dataclass(frozen=True)
class Box:
    """A face's bounding box in the photo, in pixels."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0  # the detector's confidence, where it has one

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class FacePipeline:
    """detect -> crop with margin -> optional background mask -> grey/colour -> resize.

    ``detect``: a registered detector (``ferbench detectors``), ``auto`` (the best one that loads here;
    the pipeline records which) or ``none`` (the image already is the face: no crop, so ``margin`` does
    not apply, and ``mask`` keeps the ellipse inscribed in the whole image). ``margin``: None for the
    detector's calibrated margin. ``size``: the output side in pixels, or None to keep the crop's own
    size. ``color``: ``grey`` or ``rgb``.
    """

    detect: str = AUTO
    margin: float | None = None
    mask: bool = False
    color: str = "grey"
    size: int | None = 48
    min_face: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.detect, str):
            raise ConfigError(f"face detector must be a name, got {self.detect!r}")
        if self.color not in COLORS:
            raise ConfigError(f"color must be one of {', '.join(COLORS)}, got {self.color!r}")
        if self.margin is not None and (not isinstance(self.margin, (int, float)) or isinstance(self.margin, bool)
                                        or not 0 <= self.margin <= 1):
            raise ConfigError(f"margin must be a number from 0 to 1 (a fraction of the face's side), got {self.margin!r}")
        if self.size is not None and (not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 8):
            raise ConfigError(f"size must be an integer of at least 8 (or none to keep the crop's size), got {self.size!r}")
        if not isinstance(self.mask, bool):
            raise ConfigError(f"mask must be true or false, got {self.mask!r}")
        if not isinstance(self.min_face, (int, float)) or not 0 < self.min_face <= 1:
            raise ConfigError(f"min_face must be a fraction in (0, 1], got {self.min_face!r}")
        # Resolved now, so that a missing detector fails before the first image and settings() records
        # the detector and margin actually used.
        name, margin = resolve_detector(self.detect)
        object.__setattr__(self, "detect", name)
        if self.margin is None:
            object.__setattr__(self, "margin", margin)

    def settings(self) -> dict[str, Any]:
        return asdict(self)

    def faces(self, image: np.ndarray) -> list[Box]:
        """Every face in ``image``, largest first (``detect="none"``: the whole image)."""
        height, width = image.shape[:2]
        if self.detect == NO_DETECTOR:
            return [Box(0, 0, width, height)]
        found = load_detector(self.detect)(image, max(1, int(self.min_face * min(height, width))))
        return sorted(found, key=lambda b: (-b.w * b.h, b.y, b.x))

    def crop(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The face in ``box`` as a uint8 ``(S, S)`` grey or ``(S, S, 3)`` RGB array."""
        if self.mask:
            ellipse = np.zeros(image.shape[:2], np.uint8)
            cv2.ellipse(ellipse, (box.x + box.w // 2, box.y + box.h // 2), (box.w // 2, box.h // 2), 0, 0, 360, 255, -1)
            image = np.where(ellipse[..., None] if image.ndim == 3 else ellipse, image, 0).astype(np.uint8)
        if self.detect == NO_DETECTOR:
            face = image
        else:
            side = int(round(max(box.w, box.h) * (1 + 2 * self.margin)))
            left = box.x + box.w // 2 - side // 2
            top = box.y + box.h // 2 - side // 2
            height, width = image.shape[:2]
            pad = max(0, -left, -top, left + side - width, top + side - height)
            if pad:
                image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            face = image[top + pad:top + pad + side, left + pad:left + pad + side]
        face = to_color(face, self.color)
        if self.size is not None and face.shape[:2] != (self.size, self.size):
            shrinking = face.shape[0] > self.size
            face = cv2.resize(face, (self.size, self.size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        return np.ascontiguousarray(face)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Box] | None:
        """The largest face, cropped, and its box; None when no face is found."""
        found = self.faces(image)
        return (self.crop(image, found[0]), found[0]) if found else None


def detector_specs() -> dict[str, Any]:
    """The installed face detectors by name (:class:`~ferbench.interfaces.DetectorSpec`)."""
    from ferbench.plugins import installed  # lazily: the plugins module imports this one's users

    return installed().catalog.detectors


@functools.lru_cache(maxsize=None)
def load_detector(name: str) -> Any:
    """The detector ``name``, built once per process (loading a cascade or a network is not free)."""
    specs = detector_specs()
    if name not in specs:
        raise unknown_name("face detector", name, [*specs, AUTO, NO_DETECTOR], where="detect")
    return specs[name].build()


@functools.lru_cache(maxsize=None)
def resolve_detector(name: str) -> tuple[str, float]:
    """(detector name, its calibrated crop margin); ``auto`` becomes the highest-priority detector that
    loads, with a warning naming each one skipped and why."""
    if name == NO_DETECTOR:
        return NO_DETECTOR, 0.0
    specs = detector_specs()
    if name != AUTO:
        load_detector(name)
        return name, specs[name].margin
    skipped = []
    for spec in sorted(specs.values(), key=lambda s: (-s.priority, s.name)):
        try:
            load_detector(spec.name)
        except ConfigError as error:
            skipped.append(f"{spec.name} ({error})")
            continue
        if skipped:
            warnings.warn(f"face detector {spec.name} chosen: {'; '.join(skipped)}", RuntimeWarning, stacklevel=3)
        return spec.name, spec.margin
    raise ConfigError("no face detector loads here: " + ("; ".join(skipped) if skipped else
                      "none is registered (is the ferbench_detectors plugin installed?)")
                      + "; use detect=none for images that are face crops already")


def to_color(image: np.ndarray, color: str) -> np.ndarray:
    """uint8 grey ``(H, W)`` or RGB ``(H, W, 3)`` -> the ``color`` wanted (ITU-R 601 luma for grey)."""
    if color == "grey":
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)


def read_image(path: str | Path) -> np.ndarray | None:
    """A photo as uint8 grey ``(H, W)`` or RGB ``(H, W, 3)``; None when the file cannot be decoded.

    Grey files stay grey (CK+, JAFFE, FER2013 are grey); colour ones become RGB. 16-bit images are scaled
    to 8 bits; an alpha channel is dropped.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.size == 0:
        return None
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        return None
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3:
        if image.shape[2] not in (3, 4):
            return None
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, by suffix), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def measure_detector(name: str, crops: np.ndarray, upscale: int = 4, border: int = 0) -> dict[str, Any]:
    """How detector ``name`` sees face crops of a dataset: each uint8 crop ``(N, S, S)`` upscaled
    ``upscale`` times (a 48-pixel FER2013 face becomes a 192-pixel one), with ``border`` black pixels
    around it (the face inside a larger frame). Returns the share of faces found, the median side of the
    largest box as a fraction of the crop's, the median offset of its centre from the crop's (fractions),
    the crop margin that makes this detector's crops match the dataset's (``(1 / side - 1) / 2``) and the
    time per photo."""
    import time

    detector = load_detector(name)
    side = crops.shape[1] * upscale
    sides, offsets, found, seconds = [], [], 0, 0.0
    for crop in crops:
        photo = cv2.resize(crop, (side, side), interpolation=cv2.INTER_LINEAR)
        if border:
            photo = cv2.copyMakeBorder(photo, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
        start = time.perf_counter()
        boxes = detector(photo, max(1, int(0.1 * min(photo.shape[:2]))))
        seconds += time.perf_counter() - start
        if not boxes:
            continue
        found += 1
        box = max(boxes, key=lambda b: b.w * b.h)
        sides.append(max(box.w, box.h) / side)
        offsets.append(((box.x + box.w / 2 - border) / side - 0.5, (box.y + box.h / 2 - border) / side - 0.5))
    ratio = float(np.median(sides)) if sides else float("nan")
    return {"detector": name, "images": len(crops), "upscale": upscale, "border": border,
            "found": found / max(1, len(crops)), "box_side": ratio,
            "centre_offset": [float(v) for v in np.median(offsets, axis=0)] if offsets else None,
            "margin": max(0.0, (1 / ratio - 1) / 2) if sides else None,
            "ms_per_photo": 1000 * seconds / max(1, len(crops))}

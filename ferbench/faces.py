"""Face preprocessing: find the face in a photo, crop it with a margin, optionally mask the background,
convert it to grey or colour and resize it to a method's input size.

This is the first step of the Arabian GAN paper's pipeline, and what ``ferbench predict`` and the loaders
of raw-photo datasets (CK+, JAFFE, OULU-CASIA, FACES) run. The detector is OpenCV's Haar cascade for
frontal faces (``haarcascade_frontalface_default.xml``), which opencv-python ships in ``cv2.data``: no
model is downloaded. OpenCV 5 moved the cascade classifier and its XML files out of the main package
(into opencv-contrib), so ferbench requires ``opencv-python-headless<5``; with OpenCV 5 the ``haar``
detector raises an error that says so, and ``detect="none"`` (already cropped faces) still works.

Choices the paper leaves open, and ours:

- one face per dataset image: the largest detection (datasets show one person); ``predict`` keeps all.
- the crop is the detection box widened to a square and grown by ``margin`` of its side on every side;
  where it runs off the photo the border pixels are repeated. 0.1 by default, so that crops frame a face
  as FER2013 and CK+48 do: run on those crops (upscaled 4x), the cascade's box is a median 83% (FER2013,
  1,500 private-test images) and 85% (CK+48, all 981) of the crop's side, a margin of 0.10 and 0.09.
- ``mask``: everything outside the ellipse inscribed in the detection box is set to black.
- detection runs on the histogram-equalised grey image with scale step 1.1 (OpenCV's default), 5
  neighbours (OpenCV's default is 3; 5 is the usual choice and gives fewer false faces) and faces of at
  least ``min_face`` (0.1) of the photo's shorter side and 24 pixels.
- images without a detected face are excluded and counted (the paper reports 8.77% and 1.41%).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferbench.errors import ConfigError

DETECTORS = ("haar", "none")
COLORS = ("grey", "rgb")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"})
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
DETECT_SIDE = 800


@dataclass(frozen=True)
class Box:
    """A face's bounding box in the photo, in pixels."""

    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class FacePipeline:
    """detect -> crop with margin -> optional background mask -> grey/colour -> resize.

    ``detect``: ``haar`` (OpenCV's cascade) or ``none`` (the image already is the face: no crop, so
    ``margin`` does not apply, and ``mask`` keeps the ellipse inscribed in the whole image). ``size``: the
    output side in pixels, or None to keep the crop's own size. ``color``: ``grey`` or ``rgb``.
    """

    detect: str = "haar"
    margin: float = 0.1
    mask: bool = False
    color: str = "grey"
    size: int | None = 48
    min_face: float = 0.1

    def __post_init__(self) -> None:
        if self.detect not in DETECTORS:
            raise ConfigError(f"face detector must be one of {', '.join(DETECTORS)}, got {self.detect!r}")
        if self.color not in COLORS:
            raise ConfigError(f"color must be one of {', '.join(COLORS)}, got {self.color!r}")
        if not isinstance(self.margin, (int, float)) or isinstance(self.margin, bool) or not 0 <= self.margin <= 1:
            raise ConfigError(f"margin must be a number from 0 to 1 (a fraction of the face's side), got {self.margin!r}")
        if self.size is not None and (not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 8):
            raise ConfigError(f"size must be an integer of at least 8 (or none to keep the crop's size), got {self.size!r}")
        if not isinstance(self.mask, bool):
            raise ConfigError(f"mask must be true or false, got {self.mask!r}")
        if not isinstance(self.min_face, (int, float)) or not 0 < self.min_face <= 1:
            raise ConfigError(f"min_face must be a fraction in (0, 1], got {self.min_face!r}")
        if self.detect == "haar":
            haar_cascade()  # fail now, with the reason, rather than on the first image

    def settings(self) -> dict[str, Any]:
        return asdict(self)

    def faces(self, image: np.ndarray) -> list[Box]:
        """Every face in ``image``, largest first (``detect="none"``: the whole image)."""
        height, width = image.shape[:2]
        if self.detect == "none":
            return [Box(0, 0, width, height)]
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        # Large photos (FACES is 2835x3543) are searched at most DETECT_SIDE pixels wide: the cascade's
        # time grows with the pixel count, and faces that fill a tenth of the photo stay well above its
        # 24-pixel window.
        scale = min(1.0, DETECT_SIDE / max(height, width))
        if scale < 1:
            grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        smallest = max(24, int(self.min_face * min(grey.shape)))
        found = haar_cascade().detectMultiScale(cv2.equalizeHist(grey), scaleFactor=1.1, minNeighbors=5,
                                                minSize=(smallest, smallest))
        boxes = [Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
                 for x, y, w, h in (found if len(found) else [])]
        return sorted(boxes, key=lambda b: (-b.w * b.h, b.y, b.x))

    def crop(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The face in ``box`` as a uint8 ``(S, S)`` grey or ``(S, S, 3)`` RGB array."""
        if self.mask:
            ellipse = np.zeros(image.shape[:2], np.uint8)
            cv2.ellipse(ellipse, (box.x + box.w // 2, box.y + box.h // 2), (box.w // 2, box.h // 2), 0, 0, 360, 255, -1)
            image = np.where(ellipse[..., None] if image.ndim == 3 else ellipse, image, 0).astype(np.uint8)
        if self.detect == "none":
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


@functools.lru_cache(maxsize=1)
def haar_cascade() -> "cv2.CascadeClassifier":
    """OpenCV's bundled frontal-face cascade, loaded once."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / HAAR_CASCADE
    if not hasattr(cv2, "CascadeClassifier") or not path.is_file():
        raise ConfigError(
            f"OpenCV {cv2.__version__} has no Haar cascade face detector ({HAAR_CASCADE} not found in "
            f"cv2.data.haarcascades={folder!r}); OpenCV 5 moved it out of the main package: install "
            "'opencv-python-headless>=4.8,<5' (ferbench's requirement), or use detect=none for cropped faces"
        )
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ConfigError(f"OpenCV could not load the Haar cascade {path}")
    return cascade


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

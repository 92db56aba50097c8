"""OpenCV's Haar cascade for frontal faces (Viola-Jones), the fallback detector: it needs nothing beyond
OpenCV, whose ``cv2.data`` ships ``haarcascade_frontalface_default.xml``.

Detection runs on the histogram-equalised grey image with scale step 1.1 (OpenCV's default) and 5
neighbours (OpenCV's default is 3; 5 is the usual choice and gives fewer false faces), for faces of at
least 24 pixels. OpenCV 5 moved the cascade classifier and its XML files out of the main package (into
opencv-contrib), so ferbench requires ``opencv-python-headless<5``; with OpenCV 5 building this detector
raises an error that says so.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ferbench.errors import ConfigError
from ferbench.faces import Box

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_SIDE = 800  # larger photos are searched downscaled: the cascade's time grows with the pixel count


def load_cascade() -> "cv2.CascadeClassifier":
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / CASCADE
    if not hasattr(cv2, "CascadeClassifier") or not path.is_file():
        raise ConfigError(
            f"OpenCV {cv2.__version__} has no Haar cascade face detector ({CASCADE} not found in "
            f"cv2.data.haarcascades={folder!r}); OpenCV 5 moved it out of the main package: install "
            "'opencv-python-headless>=4.8,<5' (ferbench's requirement)")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ConfigError(f"OpenCV could not load the Haar cascade {path}")
    return cascade


def build():
    cascade = load_cascade()

    def detect(image: np.ndarray, min_side: int) -> list[Box]:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        height, width = grey.shape
        scale = min(1.0, DETECT_SIDE / max(height, width))
        if scale < 1:
            grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        smallest = max(24, int(min_side * scale))
        found = cascade.detectMultiScale(cv2.equalizeHist(grey), scaleFactor=1.1, minNeighbors=5,
                                         minSize=(smallest, smallest))
        return [Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
                for x, y, w, h in (found if len(found) else [])]

    return detect

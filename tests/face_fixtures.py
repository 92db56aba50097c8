"""Synthetic photos for loader, face-pipeline and predict tests, written in real image formats.

``draw_face`` draws a plain frontal face that OpenCV's Haar cascade detects (checked in
tests/test_faces.py; the procedural faces of the synthetic dataset are detected in only a third of
cases, too few for a fixture). ``photo`` puts one on a larger background, or leaves it out.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def draw_face(side: int = 90, smile: float = 0.0, skin: int = 190) -> np.ndarray:
    """A grey ``side`` x ``side`` frontal face: hair, brows, eyes, nose, mouth (``smile`` 0-1)."""
    s, c = side, side // 2
    image = np.full((s, s), 90, np.uint8)
    cv2.ellipse(image, (c, int(c * 0.95)), (int(s * 0.42), int(s * 0.5)), 0, 180, 360, 40, -1)
    cv2.ellipse(image, (c, int(c * 1.08)), (int(s * 0.36), int(s * 0.46)), 0, 0, 360, skin, -1)
    for side_sign in (-1, 1):
        ex, ey = c + side_sign * int(s * 0.15), int(s * 0.45)
        cv2.line(image, (ex - int(s * 0.08), ey - int(s * 0.09)), (ex + int(s * 0.08), ey - int(s * 0.09)), 50,
                 max(2, s // 40))
        cv2.ellipse(image, (ex, ey), (int(s * 0.075), int(s * 0.035)), 0, 0, 360, 245, -1)
        cv2.circle(image, (ex, ey), int(s * 0.03), 30, -1)
    cv2.line(image, (c - int(s * 0.03), int(s * 0.52)), (c - int(s * 0.05), int(s * 0.66)), 140, max(1, s // 60))
    cv2.line(image, (c - int(s * 0.05), int(s * 0.68)), (c + int(s * 0.05), int(s * 0.68)), 120, max(1, s // 60))
    cv2.ellipse(image, (c, int(s * 0.79) - int(smile * s * 0.04)), (int(s * 0.12), int(s * (0.02 + 0.04 * smile))),
                0, 0, 180, 70, max(2, s // 40))
    return cv2.GaussianBlur(image, (0, 0), s / 150)


def photo(width: int = 240, height: int = 200, side: int = 90, at: tuple[int, int] | None = None,
          face: bool = True, colour: bool = False, smile: float = 0.0, background: int = 110) -> np.ndarray:
    """A ``height`` x ``width`` photo with one face of ``side`` pixels at ``at`` (default: centred), or none."""
    # A smooth diagonal gradient: textured backgrounds (blobs, stripes) fool the cascade into false faces.
    rows, cols = np.mgrid[0:height, 0:width]
    canvas = (background - 30 + 60 * (cols + rows) / (width + height)).clip(0, 255).astype(np.uint8)
    if face:
        x, y = at if at is not None else ((width - side) // 2, (height - side) // 2)
        canvas[y:y + side, x:x + side] = draw_face(side, smile)
    if colour:
        tint = np.array([1.0, 0.85, 0.7])  # warm, so the grey conversion is not the identity
        return (canvas[..., None] * tint).clip(0, 255).astype(np.uint8)
    return canvas


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write an RGB or grey array in the format the suffix names (png, jpg, tiff, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    assert ok, f"OpenCV could not write {path}"
    return path


def write_corrupt(path: Path) -> Path:
    """A file with an image name and a truncated PNG inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR truncated")
    return path

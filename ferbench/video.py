"""Building blocks of ``ferbench predict`` on video files and cameras: frames in, track ids and smoothed
probabilities for each face, an annotated video out. Detection and classification are the caller's.

Choices, and why:

- frames are sampled by time, not by every n-th frame, so ``fps`` means the same for 25 and 30 fps
  sources; skipped frames are only grabbed, never decoded, since decoding is what costs.
- a container that reports no frame rate (0 or NaN, as many cameras and some streams do) is taken to be
  30 fps, so frame times stay finite; they are then only approximate.
- tracking is greedy IoU matching against each track's last box: faces in a frame are few and move little
  between sampled frames, so nothing smarter (Hungarian matching, motion models) pays for itself.
- smoothing is an exponential moving average per track, which damps a classifier's frame-to-frame flicker
  without a window to size.
- the annotated video is written to a temporary file beside the target and renamed only on success, so
  a crash or Ctrl-C never leaves a half-written result that looks complete.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import final

import cv2
import numpy as np

from ferbench.errors import ConfigError
from ferbench.faces import Box

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
FALLBACK_FPS = 30.0
WRITER_FOURCCS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
BOX_COLOR_BGR = (0, 200, 0)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Frame:
    index: int  # frame number in the source
    time: float  # seconds: index / source fps
    image: np.ndarray  # uint8 RGB, H x W x 3


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frames: int | None  # None for cameras, or when the container does not say
    width: int
    height: int


def _describe(source: str | Path | int) -> str:
    return f"camera {source}" if isinstance(source, int) else str(source)


def open_video(source: str | Path | int) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video file or a camera (an int index). fps is 30.0 when the source reports 0 or NaN."""
    if isinstance(source, bool) or not isinstance(source, (str, Path, int)):
        raise ConfigError(f"video source must be a file path or a camera index, got {source!r}")
    if not isinstance(source, int) and not Path(source).is_file():
        raise ConfigError(f"no such file: {source}")
    capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) if capture.isOpened() else 0
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) if capture.isOpened() else 0
    if width <= 0 or height <= 0:
        capture.release()
        raise ConfigError(f"OpenCV cannot open {_describe(source)} as a video")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else FALLBACK_FPS
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not isinstance(source, int) else 0
    return capture, VideoInfo(fps=fps, frames=count if count > 0 else None, width=width, height=height)


def read_frames(source: str | Path | int, fps: float | None = None, limit: int | None = None) -> Iterator[Frame]:
    """The source's frames, all of them or sampled to about ``fps``; at most ``limit`` of them.

    Arguments are checked and the source opened at the call, so errors come before the first frame.
    """
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive whole number, got {limit!r}")
    capture, info = open_video(source)
    return _sampled_frames(capture, info, fps, limit)


def _sampled_frames(capture: cv2.VideoCapture, info: VideoInfo, fps: float | None,
                    limit: int | None) -> Iterator[Frame]:
    ratio = 1.0 if fps is None else min(1.0, fps / info.fps)  # sampled frames per source frame
    next_sample = 0  # keep the first frame at or after next_sample / fps seconds
    kept = 0
    index = 0
    try:
        while limit is None or kept < limit:
            if not capture.grab():
                return
            # The epsilon keeps a frame that lands exactly on a multiple from being lost to rounding.
            position = index * ratio + 1e-9
            if position >= next_sample:
                next_sample = math.floor(position) + 1
                ok, bgr = capture.retrieve()
                if not ok or bgr is None:
                    return
                kept += 1
                yield Frame(index=index, time=index / info.fps, image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0.0 when both are empty."""
    overlap_w = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    overlap_h = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    intersection = overlap_w * overlap_h
    union = a.w * a.h + b.w * b.h - intersection
    return intersection / union if union > 0 else 0.0


class IouTracker:
    """Gives each face a track id that persists across frames while its box keeps overlapping."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5) -> None:
        if not 0 < iou_threshold <= 1:
            raise ConfigError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        if isinstance(max_missed, bool) or not isinstance(max_missed, int) or max_missed < 0:
            raise ConfigError(f"max_missed must be a whole number >= 0, got {max_missed!r}")
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._last_box: dict[int, Box] = {}
        self._missed: dict[int, int] = {}
        self._next_id = 0

    def update(self, boxes: Sequence[Box]) -> list[int]:
        """Track ids for ``boxes``, in their order."""
        pairs = sorted(((iou(box, last), track, i) for track, last in self._last_box.items()
                        for i, box in enumerate(boxes)), key=lambda pair: (-pair[0], pair[1], pair[2]))
        ids: list[int | None] = [None] * len(boxes)
        matched: set[int] = set()
        for overlap, track, i in pairs:
            if overlap < self.iou_threshold:
                break
            if ids[i] is None and track not in matched:
                ids[i] = track
                matched.add(track)
        for track in list(self._last_box):
            if track not in matched:
                self._missed[track] += 1
                if self._missed[track] > self.max_missed:
                    del self._last_box[track], self._missed[track]
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self._next_id
                self._next_id += 1
            self._last_box[ids[i]] = box
            self._missed[ids[i]] = 0
        return [int(track) for track in ids]

    def live_ids(self) -> list[int]:
        """Ids of the tracks still kept, matched in the last update or missed for at most max_missed."""
        return sorted(self._last_box)


class ProbabilitySmoother:
    """Per-track exponential moving average of class probabilities: alpha * new + (1 - alpha) * previous."""

    def __init__(self, alpha: float = 0.5) -> None:
        if not 0 < alpha <= 1:
            raise ConfigError(f"alpha must be in (0, 1] (1 means no smoothing), got {alpha!r}")
        self.alpha = alpha
        self._state: dict[int, np.ndarray] = {}

    def update(self, track: int, probabilities: np.ndarray) -> np.ndarray:
        """The track's smoothed probabilities (float64, a new array); the first update returns the input."""
        new = np.array(probabilities, dtype=np.float64)
        previous = self._state.get(track)
        if previous is not None and previous.shape != new.shape:
            raise ConfigError(f"probabilities for track {track} changed shape from {previous.shape} to {new.shape}")
        smoothed = new if previous is None else self.alpha * new + (1 - self.alpha) * previous
        self._state[track] = smoothed
        return smoothed.copy()

    def forget(self, live: Iterable[int]) -> None:
        """Drop the state of every track not in ``live``."""
        keep = set(live)
        for track in [track for track in self._state if track not in keep]:
            del self._state[track]


def draw_faces(image_bgr: np.ndarray, faces: Sequence[tuple[Box, str]]) -> np.ndarray:
    """A copy of ``image_bgr`` with each box drawn in green and its label on a green band above it."""
    image = image_bgr.copy()
    thickness = max(1, round(max(image.shape[:2]) / 300))
    for box, label in faces:
        x, y, w, h = int(box.x), int(box.y), int(box.w), int(box.h)
        cv2.rectangle(image, (x, y), (x + w, y + h), BOX_COLOR_BGR, thickness, cv2.LINE_AA)
        scale = max(0.4, w / 250)
        (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        band_h = text_h + baseline + 2
        top = y - band_h if y - band_h >= 0 else y  # inside the box when there is no room above it
        cv2.rectangle(image, (x, top), (x + text_w + 2, top + band_h), BOX_COLOR_BGR, -1)
        cv2.putText(image, label, (x + 1, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return image


@final  # not meant for subclassing, so __enter__ returns exactly this class
class AnnotatedVideoWriter:
    """``with AnnotatedVideoWriter(path, fps, (width, height)) as out: out.write(rgb)``; ``path`` appears
    only when the block exits without an exception."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in WRITER_FOURCCS:
            raise ConfigError(f"cannot write video {self.path}: the suffix must be one of "
                              f"{', '.join(sorted(WRITER_FOURCCS))}")
        if not (math.isfinite(fps) and fps > 0):
            raise ConfigError(f"fps for {self.path} must be a positive number, got {fps!r}")
        if len(size) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in size):
            raise ConfigError(f"size for {self.path} must be (width, height) in pixels, got {size!r}")
        self.fps, self.size, self._fourcc = fps, (int(size[0]), int(size[1])), WRITER_FOURCCS[suffix]
        self._writer: cv2.VideoWriter | None = None
        self._temporary: Path | None = None

    def __enter__(self) -> AnnotatedVideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Keep the target's suffix: OpenCV picks the container from the file name.
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}",
                                    dir=self.path.parent)
        os.close(fd)
        self._temporary = Path(name)
        self._writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*self._fourcc), self.fps, self.size)
        if not self._writer.isOpened():
            self._close(keep=False)
            raise ConfigError(f"OpenCV cannot write {self.path} (codec {self._fourcc})")
        return self

    def write(self, image_rgb: np.ndarray) -> None:
        if self._writer is None:
            raise ConfigError(f"write to {self.path} outside its with block")
        # OpenCV silently drops frames of another size or type, which would shorten the video unnoticed.
        width, height = self.size
        if image_rgb.shape != (height, width, 3) or image_rgb.dtype != np.uint8:
            raise ConfigError(f"frames for {self.path} must be uint8 {height}x{width}x3, got "
                              f"{image_rgb.dtype} {'x'.join(map(str, image_rgb.shape))}")
        self._writer.write(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._close(keep=exc_type is None)

    def _close(self, keep: bool) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._temporary is not None:
            if keep:
                os.replace(self._temporary, self.path)
            else:
                self._temporary.unlink(missing_ok=True)
            self._temporary = None

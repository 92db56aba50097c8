"""ferbench.video: frame reading and sampling, IoU tracking, probability smoothing, annotated output."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ferbench.errors import ConfigError
from ferbench.faces import Box
from ferbench.video import (
    AnnotatedVideoWriter,
    IouTracker,
    ProbabilitySmoother,
    draw_faces,
    iou,
    is_video,
    open_video,
    read_frames,
)

WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 20, 30


def moving_square(index: int) -> np.ndarray:
    """A dark BGR frame with a bright square that moves one pixel right per frame."""
    image = np.full((HEIGHT, WIDTH, 3), 20, np.uint8)
    image[10:26, index:index + 16] = (40, 200, 250)
    return image


@pytest.fixture
def clip(tmp_path) -> Path:
    """A 30-frame MJPG .avi (MJPG so that every OpenCV build can write and read it)."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG .avi files")
    for index in range(FRAMES):
        writer.write(moving_square(index))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    readable = capture.isOpened() and capture.read()[0]
    capture.release()
    if not readable:
        pytest.skip("this OpenCV build cannot read back the MJPG .avi it wrote")
    return path


def test_open_video_reports_the_clip(clip):
    capture, info = open_video(clip)
    capture.release()
    assert (info.width, info.height, info.fps) == (WIDTH, HEIGHT, FPS)
    assert info.frames in (FRAMES, None)


def test_read_frames_returns_every_frame_as_rgb(clip):
    frames = list(read_frames(clip))
    assert [frame.index for frame in frames] == list(range(FRAMES))
    assert [frame.time for frame in frames] == pytest.approx([i / FPS for i in range(FRAMES)])
    first = frames[0].image
    assert first.dtype == np.uint8 and first.shape == (HEIGHT, WIDTH, 3)
    # The square is BGR (40, 200, 250) in the file, so RGB puts the large value first.
    red, _, blue = first[18, 8].astype(int)
    assert red > 200 and blue < 90


def test_read_frames_samples_by_time(clip):
    frames = list(read_frames(clip, fps=10))
    assert [frame.index for frame in frames] == list(range(0, FRAMES, 2))
    assert [frame.time for frame in frames] == pytest.approx([i / FPS for i in range(0, FRAMES, 2)])
    assert len(list(read_frames(clip, fps=FPS * 2))) == FRAMES  # faster than the source: all frames


def test_read_frames_limit(clip):
    assert [frame.index for frame in read_frames(clip, limit=4)] == [0, 1, 2, 3]
    assert [frame.index for frame in read_frames(clip, fps=5, limit=3)] == [0, 4, 8]


def test_read_frames_rejects_bad_input(tmp_path, clip):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(ConfigError, match="no such file.*missing.mp4"):
        read_frames(missing)
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(ConfigError, match="notes.txt"):
        read_frames(text)
    with pytest.raises(ConfigError, match="fps"):
        read_frames(clip, fps=0)
    with pytest.raises(ConfigError, match="limit"):
        read_frames(clip, limit=0)


def test_is_video():
    assert is_video("a/b/clip.MP4") and is_video(Path("x.webm")) and is_video("y.mpeg")
    assert not is_video("photo.jpg") and not is_video("video") and not is_video("mp4")


def test_iou():
    box = Box(0, 0, 10, 10)
    assert iou(box, box) == 1.0
    assert iou(box, Box(20, 20, 10, 10)) == 0.0
    assert iou(box, Box(10, 0, 10, 10)) == 0.0  # touching edges do not overlap
    assert iou(box, Box(5, 0, 10, 10)) == pytest.approx(50 / 150)  # half of each box overlaps
    assert iou(Box(0, 0, 0, 0), Box(0, 0, 0, 0)) == 0.0


def test_tracker_keeps_ids_of_moving_boxes_in_any_order():
    tracker = IouTracker()
    left, right = tracker.update([Box(0, 0, 20, 20), Box(50, 0, 20, 20)])
    assert (left, right) == (0, 1)
    for step in range(1, 11):
        a, b = Box(2 * step, step, 20, 20), Box(50 + 2 * step, 0, 20, 20)
        if step % 2:
            assert tracker.update([b, a]) == [right, left]
        else:
            assert tracker.update([a, b]) == [left, right]
    assert tracker.update([Box(200, 200, 20, 20), Box(20, 10, 20, 20)]) == [2, left]


def test_tracker_forgets_a_box_missing_too_long_and_never_reuses_ids():
    tracker = IouTracker(max_missed=2)
    box = Box(10, 10, 20, 20)
    assert tracker.update([box]) == [0]
    assert tracker.update([]) == [] and tracker.update([]) == []
    assert tracker.live_ids() == [0]
    assert tracker.update([box]) == [0]  # missed for max_missed updates: same id
    for _ in range(3):
        tracker.update([])
    assert tracker.live_ids() == []
    assert tracker.update([box]) == [1]  # missed for longer: a new id, 0 is not reused
    assert tracker.update([box, Box(100, 100, 20, 20)]) == [1, 2]


def test_tracker_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="iou_threshold"):
        IouTracker(iou_threshold=0)
    with pytest.raises(ConfigError, match="max_missed"):
        IouTracker(max_missed=-1)


def test_smoother():
    first, second = np.array([0.2, 0.8]), np.array([0.6, 0.4])
    unsmoothed = ProbabilitySmoother(alpha=1)
    unsmoothed.update(0, first)
    np.testing.assert_array_equal(unsmoothed.update(0, second), second)

    smoother = ProbabilitySmoother(alpha=0.5)
    np.testing.assert_array_equal(smoother.update(3, first), first)
    averaged = smoother.update(3, second)
    np.testing.assert_allclose(averaged, [0.4, 0.6])
    assert averaged.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(smoother.update(4, second), second)  # tracks are independent
    smoother.forget([4])
    np.testing.assert_array_equal(smoother.update(3, second), second)
    with pytest.raises(ConfigError, match="alpha"):
        ProbabilitySmoother(alpha=0)


def test_smoother_returns_a_new_array():
    probabilities = np.array([0.5, 0.5])
    smoothed = ProbabilitySmoother().update(0, probabilities)
    smoothed[0] = 9.0
    assert probabilities[0] == 0.5


def test_annotated_video_writer_writes_a_readable_video(tmp_path):
    target = tmp_path / "out" / "annotated.avi"
    with AnnotatedVideoWriter(target, FPS, (WIDTH, HEIGHT)) as writer:
        for index in range(12):
            writer.write(cv2.cvtColor(moving_square(index), cv2.COLOR_BGR2RGB))
    assert [p.name for p in target.parent.iterdir()] == ["annotated.avi"]
    frames = list(read_frames(target))
    assert len(frames) == 12 and frames[0].image.shape == (HEIGHT, WIDTH, 3)
    red, _, blue = frames[0].image[18, 8].astype(int)
    assert red > 200 and blue < 90  # RGB in, RGB back out


def test_annotated_video_writer_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "annotated.avi"
    with pytest.raises(RuntimeError), AnnotatedVideoWriter(target, FPS, (WIDTH, HEIGHT)) as writer:
        writer.write(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
        raise RuntimeError("detector crashed")
    assert list(tmp_path.iterdir()) == []


def test_annotated_video_writer_rejects_bad_input(tmp_path):
    with pytest.raises(ConfigError, match=r"out\.gif.*\.avi"):
        AnnotatedVideoWriter(tmp_path / "out.gif", FPS, (WIDTH, HEIGHT))
    writer = AnnotatedVideoWriter(tmp_path / "out.avi", FPS, (WIDTH, HEIGHT))
    with pytest.raises(ConfigError, match="48x64x3"), writer:
        writer.write(np.zeros((HEIGHT, WIDTH + 1, 3), np.uint8))  # OpenCV would drop it silently
    assert list(tmp_path.iterdir()) == []


def test_draw_faces_draws_on_a_copy():
    image = np.zeros((120, 160, 3), np.uint8)
    box = Box(40, 50, 60, 50)
    drawn = draw_faces(image, [(box, "#3 happiness 87%")])
    assert not image.any()
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert drawn[box.y + box.h // 2, box.x, 1] > 100  # the box's left edge is green
    assert drawn[box.y + box.h // 2, box.x, 2] < 50
    assert drawn[box.y - 3, box.x + 5:box.x + 40].any()  # the label band above the box
    assert not drawn[box.y + 10:box.y + box.h - 10, box.x + 10:box.x + box.w - 10].any()  # inside untouched


def test_draw_faces_puts_the_label_inside_at_the_top_edge():
    drawn = draw_faces(np.zeros((120, 160, 3), np.uint8), [(Box(40, 0, 60, 50), "anger 51%")])
    assert drawn[5, 45:80, 1].max() > 100

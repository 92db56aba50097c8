"""ferbench's built-in image corruptions for ``ferbench robustness``: sensor noise, blur, compression,
lighting, occlusion and small geometric changes, each at five severities.

An ImageNet-C-style benchmark (Hendrycks and Dietterich 2019) made for face crops: besides noise, blur,
JPEG and pixelation it has the lighting a webcam meets (dark, over-exposed, low contrast, vignetting),
what covers faces (a patch, sunglasses, a face mask) and the slack of a face detector (shift, rotation,
scale). The functions and their severity tables are in :mod:`ferbench_corruptions.corruptions`;
``python -m ferbench_corruptions.preview docs/corruptions.png`` draws the grid shown in docs/robustness.md.
"""

from __future__ import annotations

from ferbench import hookimpl
from ferbench.interfaces import CorruptionSpec

from .corruptions import BUILT_IN

__all__ = ["BUILT_IN", "ferbench_register_corruptions"]


@hookimpl
def ferbench_register_corruptions():
    return [CorruptionSpec(name, function, family, (function.__doc__ or "").split("\n")[0].strip())
            for name, (function, family) in BUILT_IN.items()]

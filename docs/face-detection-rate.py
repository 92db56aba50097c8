"""How often ferbench's face pipeline (Haar cascade, default settings) finds no face in real FER crops.

The crops are upscaled 4x first, as in the margin study in ferbench/faces.py, so that the cascade's
24-pixel minimum does not decide. Usage: FERBENCH_DATA=../shared/data python docs/face-detection-rate.py
"""

import os
import time
from pathlib import Path

import cv2
import numpy as np

from ferbench.faces import FacePipeline

DATA = Path(os.environ.get("FERBENCH_DATA", "../shared/data"))
SETS = (("CK+48, all images", DATA / "ckplus48" / "all.npz"),
        ("FER2013, private test", DATA / "fer2013" / "private_test.npz"))

pipeline = FacePipeline()
for name, path in SETS:
    images = np.load(path, allow_pickle=False)["images"]
    started, missed = time.perf_counter(), 0
    for image in images:
        image = image.squeeze()
        upscaled = cv2.resize(image, (image.shape[1] * 4, image.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
        missed += pipeline(upscaled) is None
    print(f"{name}: {missed}/{len(images)} without a detected face = {100 * missed / len(images):.2f}% "
          f"({time.perf_counter() - started:.0f} s)")

"""A third-party ferbench plugin, as small as it can be while doing real work.

It registers a classifier, ``example-tinycnn`` (a four-layer CNN), and a dataset, ``example-stripes``
(faces reduced to their essentials: a mouth line whose curve and a brow line whose slant encode
happiness, sadness and surprise, with noise). Install it and ``ferbench run --method example-tinycnn
--dataset example-stripes`` works without any change to ferbench.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ferbench import hookimpl
from ferbench.data import Dataset
from ferbench.interfaces import Classifier, ComponentSpec, DatasetSpec

__version__ = "0.1.0"

CLASSES = ("happiness", "sadness", "surprise")


class TinyCNN(Classifier):
    """Four conv blocks, global average pooling, a linear head."""

    def __init__(self, num_classes: int, in_chans: int = 1, image_size: int = 32, width: int = 16,
                 drop_rate: float = 0.0):
        super().__init__()
        self.num_classes, self.in_chans, self.feature_dim = num_classes, in_chans, width * 4
        layers, channels = [], in_chans
        for out in (width, width * 2, width * 4, width * 4):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            channels = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.feature_dim, num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def make_stripes(per_class: int = 60, image_size: int = 32, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """``per_class`` images of each class; the last ``test_fraction`` of subjects form the test split."""
    rng = np.random.default_rng(seed)
    n = per_class * len(CLASSES)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    y, x = np.mgrid[0:image_size, 0:image_size] / image_size
    images = np.empty((n, image_size, image_size), dtype=np.uint8)
    for i, label in enumerate(labels):
        curve = {0: 1.0, 1: -1.0, 2: 0.0}[label] * rng.uniform(0.5, 1.0)
        open_mouth = label == 2
        centre = 0.72 + rng.normal(0, 0.03)
        mouth = np.abs(y - (centre - curve * 0.6 * (x - 0.5) ** 2 * 4 + curve * 0.05)) < (0.08 if open_mouth else 0.025)
        mouth &= np.abs(x - 0.5) < 0.22
        brow_slant = {0: 0.0, 1: 0.25, 2: -0.1}[label]
        brows = np.abs(y - (0.28 - (0.3 if label == 2 else 0) * 0.2 + brow_slant * np.abs(x - 0.5))) < 0.025
        brows &= (np.abs(x - 0.5) > 0.08) & (np.abs(x - 0.5) < 0.32)
        face = 0.35 + 0.5 * (mouth | brows) + rng.normal(0, 0.12, (image_size, image_size))
        images[i] = np.clip(face * 255, 0, 255).astype(np.uint8)
    subjects = np.array([f"stripes-{i % 20:02d}" for i in range(n)])
    splits = np.where(np.array([i % 20 for i in range(n)]) >= 20 * (1 - test_fraction), "test", "train")
    return Dataset("example-stripes", images, labels.astype(np.int64), CLASSES, subjects, splits,
                   source=f"ferbench_example seed={seed}")


@hookimpl
def ferbench_register_components():
    return [ComponentSpec(kind="classifier", name="example-tinycnn", build=TinyCNN,
                          summary="a four-layer CNN (ferbench-example-plugin)")]


@hookimpl
def ferbench_register_datasets():
    return [DatasetSpec(name="example-stripes", load=make_stripes, protocol="holdout",
                        summary="three expressions as mouth and brow strokes (ferbench-example-plugin)")]

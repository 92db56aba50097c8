"""A classifier without batch norm, for tests/test_distributed.py: with no per-process statistics, two
processes each training on half of every batch must follow one process training on all of it."""

import torch
from torch import nn

from ferbench import hookimpl
from ferbench.interfaces import Classifier, ComponentSpec


class LinearProbe(Classifier):
    def __init__(self, num_classes: int, in_chans: int = 1, image_size: int = 16, drop_rate: float = 0.0):
        super().__init__()
        self.num_classes, self.in_chans, self.feature_dim = num_classes, in_chans, in_chans * image_size**2
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@hookimpl
def ferbench_register_components():
    return [ComponentSpec(kind="classifier", name="linear-probe", build=LinearProbe,
                          summary="one linear layer on the pixels (tests)")]

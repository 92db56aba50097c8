"""A classifier without batch norm, for tests/test_distributed.py: with no per-process statistics, two
processes each training on half of every batch must follow one process training on all of it. With
``FERBENCH_TEST_PREDICT_LOG=<file>`` each prediction (a forward pass without gradients) appends the
process's rank to the file, so a test sees which ranks evaluated."""

import os

import torch
import torch.distributed as dist
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
        log = os.environ.get("FERBENCH_TEST_PREDICT_LOG")
        if log and not torch.is_grad_enabled():
            with open(log, "a") as file:
                file.write(f"{dist.get_rank() if dist.is_initialized() else 0}\n")
        return self.head(self.features(images))


@hookimpl
def ferbench_register_components():
    return [ComponentSpec(kind="classifier", name="linear-probe", build=LinearProbe,
                          summary="one linear layer on the pixels (tests)")]

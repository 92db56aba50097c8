"""fer-vgg8: a plain VGG-style network sized for 48x48 face crops."""

from __future__ import annotations

import torch
from torch import nn

from ferbench.interfaces import Classifier

WIDTHS = (64, 128, 256, 512)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class FerVGG8(Classifier):
    """Four blocks of two convolutions, each block halving the resolution; then 1024-wide hidden layer.

    The head flattens the last feature map (3x3 at 48px), so spatial layout reaches the classifier;
    other input sizes are pooled to 3x3 first.
    """

    def __init__(self, num_classes: int, in_chans: int = 1, image_size: int = 48, drop_rate: float = 0.5,
                 hidden: int = 1024):
        super().__init__()
        self.num_classes, self.in_chans, self.feature_dim = num_classes, in_chans, hidden
        blocks, channels = [], in_chans
        for width in WIDTHS:
            blocks += [conv_bn_relu(channels, width), conv_bn_relu(width, width), nn.MaxPool2d(2)]
            channels = width
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(3), nn.Flatten())
        self.pre_logits = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(channels * 9, hidden),
                                        nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(hidden, num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.pre_logits(self.body(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

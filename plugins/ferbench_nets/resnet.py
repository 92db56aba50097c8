"""fer-resnet: a small residual network that keeps a 48x48 face's resolution where expressions live.

ImageNet ResNets (timm's resnet10t/resnet18) reach 12x12 after their stem on a 48-pixel face and 2x2 at
the end; most of their compute is spent on maps too coarse for a mouth corner or a brow. This one has a
stride-1 stem, a first stage at 24x24 and three more at 12, 6 and 3, each one or more basic blocks
(two 3x3 convolutions, batch norm, ReLU, identity or 1x1 projection shortcut), then global average
pooling and a linear head. Width and depth are constructor arguments; the registered sizes are:

==================  =====================  ==========  =============
name                widths                 depths      parameters
==================  =====================  ==========  =============
``fer-resnet-s``    24, 48, 96, 192        1, 1, 1, 1  0.69M
``fer-resnet``      32, 64, 128, 256       1, 1, 2, 1  1.52M
``fer-resnet-l``    48, 96, 192, 384       1, 2, 2, 1  3.58M
==================  =====================  ==========  =============
"""

from __future__ import annotations

import torch
from torch import nn

from ferbench.interfaces import Classifier


def conv_bn(in_channels: int, out_channels: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Sequential(conv_bn(in_channels, out_channels, stride), nn.ReLU(inplace=True))
        self.conv2 = conv_bn(out_channels, out_channels)
        # Zero-initialised last BN: each block starts as the identity, which trains deep stacks faster.
        nn.init.zeros_(self.conv2[1].weight)
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels
                         else conv_bn(in_channels, out_channels, stride, kernel=1))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class FerResNet(Classifier):
    """Stride-1 stem, then one stage per width, each halving the resolution; global pool, dropout, linear."""

    def __init__(self, num_classes: int, in_chans: int = 1, image_size: int = 48, drop_rate: float = 0.0,
                 widths: tuple[int, ...] = (32, 64, 128, 256), depths: tuple[int, ...] = (1, 1, 2, 1)):
        super().__init__()
        if len(widths) != len(depths):
            raise ValueError(f"fer-resnet: {len(widths)} widths but {len(depths)} depths")
        self.num_classes, self.in_chans, self.feature_dim = num_classes, in_chans, widths[-1]
        layers: list[nn.Module] = [conv_bn(in_chans, widths[0] // 2), nn.ReLU(inplace=True)]
        channels = widths[0] // 2
        for width, depth in zip(widths, depths):
            for block in range(depth):
                layers.append(BasicBlock(channels, width, stride=2 if block == 0 else 1))
                channels = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(channels, num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "fer-resnet-s": {"widths": (24, 48, 96, 192), "depths": (1, 1, 1, 1)},
    "fer-resnet": {"widths": (32, 64, 128, 256), "depths": (1, 1, 2, 1)},
    "fer-resnet-l": {"widths": (48, 96, 192, 384), "depths": (1, 2, 2, 1)},
}

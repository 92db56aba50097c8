"""Enet: the Arabian GAN's encoder, a shallow AlexNet-like CNN with a normalization block after each
convolution block, from a ``(N, 3, S, S)`` source image in [-1, 1] to a ``(N, 4096)`` feature vector.

AlexNet's five convolutions (a large first kernel, then 5x5, then three 3x3, max-pooling after the first,
second and last) with their width proportions (96:256:384:384:256, here ``width x 1:2:3:3:2``), batch norm
where AlexNet had local response normalization, AlexNet's adaptive average pool before the fully connected
layer, and one fully connected layer to the 4096-d vector (AlexNet's fc6 width; the paper's "1 x 4096").
The first convolution is 5x5 with stride 2 instead of 11x11 with stride 4, so that 48px inputs keep a
12x12 map after the first pool; at 96px the maps are twice as large and the pool evens them out.
"""

from __future__ import annotations

import torch
from torch import nn

from ferbench.interfaces import Encoder


def conv_block(in_chans: int, out_chans: int, kernel: int, stride: int = 1, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(in_chans, out_chans, kernel, stride, kernel // 2, bias=False),
              nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    return nn.Sequential(*layers)


class ArabianEnet(Encoder):
    def __init__(self, image_size: int = 96, in_chans: int = 3, latent_dim: int = 4096, width: int = 32):
        super().__init__()
        if image_size < 16:
            raise ValueError(f"arabian-enet needs images of at least 16px, got {image_size}")
        self.image_size, self.in_chans, self.latent_dim = image_size, in_chans, latent_dim
        w = width
        self.features = nn.Sequential(
            conv_block(in_chans, w, 5, stride=2, pool=True),
            conv_block(w, 2 * w, 5, pool=True),
            conv_block(2 * w, 3 * w, 3),
            conv_block(3 * w, 3 * w, 3),
            conv_block(3 * w, 2 * w, 3, pool=True),
            nn.AdaptiveAvgPool2d(3),
        )
        # No activation after the last layer: the vector is a code for Gnet, not a classifier's input.
        self.project = nn.Linear(2 * w * 9, latent_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(images).flatten(1))


def build(**kwargs) -> ArabianEnet:
    return ArabianEnet(**kwargs)

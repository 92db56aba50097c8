"""Dnet: the Arabian GAN's discriminator. It gets an image in [-1, 1] and its class label, embeds the label
as a fourth image channel (``(N, 4, S, S)``, the paper's 96x96x4) and returns one real-vs-generated logit.

The label becomes a channel through a learned embedding (50-d) and a linear map to ``S x S`` values, the
way conditional GANs that "embed the label into the image" do it (MATLAB's conditional GAN example, whose
vocabulary the paper uses). The rest is DCGAN's discriminator: four 4x4 convolutions with stride 2, batch
norm from the second on, LeakyReLU(0.2), and a linear layer to the logit.
"""

from __future__ import annotations

import torch
from torch import nn

from ferbench.interfaces import Discriminator

LABEL_EMBEDDING_DIM = 50


def down_block(in_chans: int, out_chans: int, norm: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(in_chans, out_chans, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_chans))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class ArabianDnet(Discriminator):
    def __init__(self, image_size: int = 96, in_chans: int = 3, num_classes: int = 6, width: int = 32):
        super().__init__()
        if image_size % 16 or image_size < 16:
            raise ValueError(f"arabian-dnet needs an image size that is a multiple of 16, got {image_size}")
        self.image_size, self.in_chans, self.num_classes = image_size, in_chans, num_classes
        self.embed_label = nn.Sequential(nn.Embedding(num_classes, LABEL_EMBEDDING_DIM),
                                         nn.Linear(LABEL_EMBEDDING_DIM, image_size * image_size))
        w = width
        self.features = nn.Sequential(
            down_block(in_chans + 1, w, norm=False),
            down_block(w, 2 * w),
            down_block(2 * w, 4 * w),
            down_block(4 * w, 8 * w),
        )
        self.classify = nn.Linear(8 * w * (image_size // 16) ** 2, 1)

    def with_label_channel(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The ``(N, in_chans + 1, S, S)`` input: the image with its label embedded as the last channel."""
        plane = self.embed_label(labels).view(len(labels), 1, self.image_size, self.image_size)
        return torch.cat([images, plane.to(images.dtype)], dim=1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise ValueError("arabian-dnet is conditional: it needs the images' labels")
        return self.classify(self.features(self.with_label_channel(images, labels)).flatten(1)).squeeze(1)


def build(**kwargs) -> ArabianDnet:
    return ArabianDnet(**kwargs)

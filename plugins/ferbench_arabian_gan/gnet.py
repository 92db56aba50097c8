"""Gnet: the Arabian GAN's generator, a shallow decoder from Enet's ``(N, 4096)`` vector back to a
``(N, 3, S, S)`` image in [-1, 1].

DCGAN's generator shape: a fully connected projection to an ``(8 width) x S/16 x S/16`` map, then four
stages that double the resolution and halve the channels (batch norm and ReLU between them), and tanh.
Each stage is a nearest-neighbour upsampling and a 3x3 convolution rather than DCGAN's 4x4 transposed
convolution with stride 2, whose uneven overlap paints a checkerboard into the image (Odena et al. 2016,
"Deconvolution and checkerboard artifacts"); the restyled faces showed it. The image size must be a
multiple of 16 (48, 64, 96). It takes no labels: the restyler has to work on unlabelled images, so whatever
class information the output carries must come from the input.

``photometric`` (ours, not the paper's) gives a residual restyler a photometric stage for its input image
(:meth:`ArabianGnet.adjust`), the adaptive instance normalisation of Huang & Belongie (2017): each image is
normalised per channel to zero mean and unit spread, then given a learned mean and spread per channel
(the target's look, shared by all images) that a head reading the same 4096-d vector modulates per image.
Exposure, contrast and colour cast, much of what tells two datasets apart, then become a few numbers
instead of something the decoder has to paint pixel by pixel through the bottleneck; on the synthetic
pair, matching the target's grey-level statistics and mean colour by hand lifts a studio-trained
ResNet-18 on snapshot faces from 28% to 45% (``docs/synthetic-photometric-gap.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ferbench.interfaces import Generator


def up_block(in_chans: int, out_chans: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_chans, out_chans, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True))


class ArabianGnet(Generator):
    def __init__(self, image_size: int = 96, out_chans: int = 3, latent_dim: int = 4096, width: int = 32,
                 photometric: bool = False):
        super().__init__()
        if image_size % 16 or image_size < 16:
            raise ValueError(f"arabian-gnet needs an image size that is a multiple of 16, got {image_size}")
        self.image_size, self.out_chans, self.latent_dim = image_size, out_chans, latent_dim
        self.start = image_size // 16
        w = width
        self.project = nn.Sequential(nn.Linear(latent_dim, 8 * w * self.start ** 2, bias=False),
                                     nn.BatchNorm1d(8 * w * self.start ** 2), nn.ReLU(inplace=True))
        self.decode = nn.Sequential(
            up_block(8 * w, 4 * w),
            up_block(4 * w, 2 * w),
            up_block(2 * w, w),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(w, out_chans, 3, 1, 1),
            nn.Tanh(),
        )
        # no bias: the shared look is style_mean and style_log_std; the head only modulates it per image
        self.photometric = nn.Linear(latent_dim, 2 * out_chans, bias=False) if photometric else None
        if self.photometric is not None:
            nn.init.zeros_(self.photometric.weight)  # starts with no per-image modulation
            # images are in [-1, 1]: mid-grey with a spread of about a quarter of the range to start from
            self.style_mean = nn.Parameter(torch.zeros(1, out_chans, 1, 1))
            self.style_log_std = nn.Parameter(torch.full((1, out_chans, 1, 1), math.log(0.5)))

    def forward(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.project(latent).view(len(latent), -1, self.start, self.start)
        return self.decode(x)

    def adjust(self, images: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``images`` normalised per image and channel, then given the learned mean and spread modulated by
        ``latent`` (unchanged without the photometric stage)."""
        if self.photometric is None:
            return images
        images = images.float()
        mean, std = images.mean((2, 3), keepdim=True), images.std((2, 3), keepdim=True)
        gain, offset = self.photometric(latent).float().view(len(latent), 2, self.out_chans, 1, 1).unbind(1)
        normalised = (images - mean) / (std + 1e-3)
        return normalised * self.style_log_std.exp() * (1 + gain) + self.style_mean + offset


def build(**kwargs) -> ArabianGnet:
    return ArabianGnet(**kwargs)

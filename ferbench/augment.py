"""On-device augmentation of a normalised batch ``(N, C, H, W)``: whatever device the batch is on, the
augmentation runs there, per image, without a CPU data loader.

Three transforms, each chosen by a hyperparameter of the supervised method (and of any method that
calls :func:`augment_batch` with its config):

- ``augment`` (bool): random rotation (±10°), shift (±8%), zoom (±10%) and horizontal flip, in one
  ``grid_sample`` call;
- ``crop_padding`` (pixels, 0 = off): pad by reflection and crop back at a random offset (the classic
  CIFAR/airbench crop; with ``augment`` off it is the only geometric change, and it flips too);
- ``erasing`` (probability, 0 = off): random erasing (Zhong et al. 2020): a rectangle of 2-33% of the image
  with aspect 0.3-3.3 set to 0, the dataset mean after normalisation.

Random numbers come from the CPU ``generator`` the training loop seeds, so a run is repeatable on any
device; only the small per-image parameters are drawn there, the pixel work happens on the device.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, generator: torch.Generator, config: dict[str, Any]) -> torch.Tensor:
    """Apply the augmentations ``config`` turns on (``augment``, ``crop_padding``, ``erasing``)."""
    if config.get("augment"):
        x = random_affine(x, generator)
    if config.get("crop_padding"):
        x = random_crop(x, generator, int(config["crop_padding"]), flip=not config.get("augment"))
    if config.get("erasing"):
        x = random_erasing(x, generator, float(config["erasing"]))
    return x


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def random_affine(x: torch.Tensor, generator: torch.Generator, max_rotate: float = 10.0,
                  max_shift: float = 0.08, max_zoom: float = 0.1) -> torch.Tensor:
    """Per-image random rotation, shift, zoom and horizontal flip, in one ``grid_sample`` call."""
    n = x.shape[0]
    angle = _uniform(n, -max_rotate, max_rotate, generator) * math.pi / 180
    zoom = _uniform(n, 1 - max_zoom, 1 + max_zoom, generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([
        torch.stack([cos * flip, -sin, _uniform(n, -max_shift, max_shift, generator) * 2], dim=1),
        torch.stack([sin * flip, cos, _uniform(n, -max_shift, max_shift, generator) * 2], dim=1),
    ], dim=1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_crop(x: torch.Tensor, generator: torch.Generator, padding: int, flip: bool = True) -> torch.Tensor:
    """Reflect-pad by ``padding`` pixels and crop each image back to its size at a random offset
    (and mirror half of them when ``flip``): one gather, no per-image loop."""
    n, _, height, width = x.shape
    padded = F.pad(x, (padding,) * 4, mode="reflect" if padding < min(height, width) else "replicate")
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    rows = dy[:, None] + torch.arange(height, device=x.device)[None, :]  # (N, H)
    cols = dx[:, None] + torch.arange(width, device=x.device)[None, :]  # (N, W)
    if flip:
        mirrored = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_erasing(x: torch.Tensor, generator: torch.Generator, probability: float,
                   area: tuple[float, float] = (0.02, 0.33), aspect: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Erase one random rectangle (set to 0) in each image with ``probability``."""
    n, _, height, width = x.shape
    target = _uniform(n, *area, generator) * height * width
    ratio = torch.exp(_uniform(n, math.log(aspect[0]), math.log(aspect[1]), generator))
    h = (target * ratio).sqrt().round().clamp(1, height)
    w = (target / ratio).sqrt().round().clamp(1, width)
    top = (torch.rand(n, generator=generator) * (height - h + 1)).floor()
    left = (torch.rand(n, generator=generator) * (width - w + 1)).floor()
    chosen = torch.rand(n, generator=generator) < probability
    parameters = torch.stack([top, top + h, left, left + w, chosen.float()], dim=1).to(x.device)
    rows = torch.arange(height, device=x.device)[None, :]
    cols = torch.arange(width, device=x.device)[None, :]
    inside_rows = (rows >= parameters[:, 0:1]) & (rows < parameters[:, 1:2])  # (N, H)
    inside_cols = (cols >= parameters[:, 2:3]) & (cols < parameters[:, 3:4])  # (N, W)
    erase = inside_rows[:, :, None] & inside_cols[:, None, :] & parameters[:, 4:5, None].bool()
    return x.masked_fill(erase[:, None], 0.0)

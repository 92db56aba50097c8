"""On-device augmentation of a normalised batch ``(N, C, H, W)``: whatever device the batch is on, the
augmentation runs there, per image, without a CPU data loader.

Per-image transforms, each chosen by a hyperparameter of the supervised method (and of any method that
trains through :func:`ferbench.training.train_classifier`):

- ``augment`` (bool): random rotation (±10°), shift (±8%), zoom (±10%) and horizontal flip, in one
  ``grid_sample`` call;
- ``crop_padding`` (pixels, 0 = off): pad by reflection and crop back at a random offset (the classic
  CIFAR/airbench crop; with ``augment`` off it is the only geometric change, and it flips too);
- ``erasing`` (probability, 0 = off): random erasing (Zhong et al. 2020): a rectangle of 2-33% of the image
  with aspect 0.3-3.3 set to 0, the dataset mean after normalisation.

Two more act on pixels on the [0, 1] scale, before normalisation (:func:`apply_pixel_augmentation`), for
robustness to what cameras do to faces:

- ``augmix`` (probability, 0 = off): an AugMix-style photometric chain (Hendrycks et al. 2020, without its
  consistency loss): each op of brightness (x0.4-1.8), contrast (x0.3-1.5 about the image's mean), gamma
  (0.5-2), Gaussian blur (up to sigma 2.5) and Gaussian noise (sigma up to 0.12) is on with probability
  1/2 at a random strength, and the result is blended with the clean image by a uniform weight;
- ``occlusion`` (probability, 0 = off): a rectangle of a random grey level, half the time a patch of
  5-25% of the image, half the time a horizontal band of 12-30% of its height (where glasses or a mask
  sit), at a random place.

These share families with the test corruptions of ``ferbench robustness`` (noise, blur, brightness,
contrast, occlusion); a model trained with them is not being tested on unseen corruption types there.

And per-batch label mixing (:func:`draw_mixing`, :func:`mix`): ``mixup`` (Zhang et al. 2018) and ``cutmix``
(Yun et al. 2019), each a Beta(alpha, alpha) concentration (0 = off); with both on, each batch uses one of
the two at random (timm's convention).

Random numbers come from a CPU ``generator`` the training loop seeds, so a run is repeatable on any device.
They are drawn apart from the pixel work: :func:`draw_augmentation` draws the parameters of many images at
once (the training loop draws a whole epoch's, and copies them to the device once), and
:func:`apply_augmentation` transforms a batch with its slice of them. :func:`augment_batch` does both for
one batch.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Parameters = dict[str, torch.Tensor]
"""Per-image augmentation parameters, one row per image: ``affine`` (N, 2, 3), ``crop`` (N, 3), ``erase`` (N, 5),
``augmix`` (N, 6), ``occlusion`` (N, 6)."""

PIXEL_KEYS = ("augmix", "occlusion")


def augment_batch(x: torch.Tensor, generator: torch.Generator, config: dict[str, Any]) -> torch.Tensor:
    """Apply the augmentations ``config`` turns on (``augment``, ``crop_padding``, ``erasing``)."""
    parameters = draw_augmentation(len(x), x.shape[-2:], generator, config)
    return apply_augmentation(x, {k: v.to(x.device) for k, v in parameters.items()}, config)


def draw_augmentation(n: int, size: tuple[int, int], generator: torch.Generator, config: dict[str, Any]) -> Parameters:
    """The random parameters of ``n`` images of ``size`` (H, W) for the transforms ``config`` turns on (CPU)."""
    parameters: Parameters = {}
    if config.get("augment"):
        parameters["affine"] = draw_affine(n, generator)
    if config.get("crop_padding"):
        parameters["crop"] = draw_crop(n, generator, int(config["crop_padding"]), flip=not config.get("augment"))
    if config.get("erasing"):
        parameters["erase"] = draw_erasing(n, *size, generator, float(config["erasing"]))
    if config.get("augmix"):
        parameters["augmix"] = draw_augmix(n, generator, float(config["augmix"]))
    if config.get("occlusion"):
        parameters["occlusion"] = draw_occlusion(n, *size, generator, float(config["occlusion"]))
    return parameters


def apply_augmentation(x: torch.Tensor, parameters: Parameters, config: dict[str, Any]) -> torch.Tensor:
    """Transform ``x`` with ``parameters`` (on ``x``'s device, one row per image) as drawn for ``config``."""
    if "affine" in parameters:
        grid = F.affine_grid(parameters["affine"].to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if "crop" in parameters:
        x = apply_crop(x, parameters["crop"], int(config["crop_padding"]))
    if "erase" in parameters:
        x = apply_erasing(x, parameters["erase"])
    return x


def apply_pixel_augmentation(x: torch.Tensor, parameters: Parameters, noise: torch.Generator | None) -> torch.Tensor:
    """The ``augmix`` and ``occlusion`` transforms of ``parameters`` on pixels ``x`` in [0, 1] (before
    normalisation); ``noise`` (a generator on ``x``'s device) draws the AugMix chain's pixel noise."""
    if "augmix" in parameters:
        x = apply_augmix(x, parameters["augmix"], noise)
    if "occlusion" in parameters:
        occlusion = parameters["occlusion"]
        x = torch.where(_box_mask(x, occlusion)[:, None], occlusion[:, 4, None, None, None].to(x.dtype), x)
    return x


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def draw_affine(n: int, generator: torch.Generator, max_rotate: float = 10.0, max_shift: float = 0.08,
                max_zoom: float = 0.1) -> torch.Tensor:
    """``(n, 2, 3)`` affine matrices: rotation, zoom, shift and a horizontal flip for half the images."""
    angle = _uniform(n, -max_rotate, max_rotate, generator) * math.pi / 180
    zoom = _uniform(n, 1 - max_zoom, 1 + max_zoom, generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    return torch.stack([
        torch.stack([cos * flip, -sin, _uniform(n, -max_shift, max_shift, generator) * 2], dim=1),
        torch.stack([sin * flip, cos, _uniform(n, -max_shift, max_shift, generator) * 2], dim=1),
    ], dim=1)


def random_affine(x: torch.Tensor, generator: torch.Generator, **limits: float) -> torch.Tensor:
    """Per-image random rotation, shift, zoom and horizontal flip, in one ``grid_sample`` call."""
    return apply_augmentation(x, {"affine": draw_affine(len(x), generator, **limits).to(x.device)}, {})


def draw_crop(n: int, generator: torch.Generator, padding: int, flip: bool = True) -> torch.Tensor:
    """``(n, 3)``: the crop offsets (dy, dx) in the padded image and whether to mirror (0/1)."""
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    mirrored = (torch.rand(n, generator=generator) < 0.5) if flip else torch.zeros(n, dtype=torch.bool)
    return torch.stack([dy, dx, mirrored.long()], dim=1)


def apply_crop(x: torch.Tensor, crop: torch.Tensor, padding: int) -> torch.Tensor:
    """Reflect-pad by ``padding`` pixels and take each image's window at its offset: one gather, no loop."""
    n, _, height, width = x.shape
    padded = F.pad(x, (padding,) * 4, mode="reflect" if padding < min(height, width) else "replicate")
    rows = crop[:, 0:1] + torch.arange(height, device=x.device)[None, :]  # (N, H)
    cols = crop[:, 1:2] + torch.arange(width, device=x.device)[None, :]  # (N, W)
    cols = torch.where(crop[:, 2:3].bool(), cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop(x: torch.Tensor, generator: torch.Generator, padding: int, flip: bool = True) -> torch.Tensor:
    """Reflect-pad by ``padding`` pixels and crop each image back to its size at a random offset
    (and mirror half of them when ``flip``)."""
    return apply_crop(x, draw_crop(len(x), generator, padding, flip).to(x.device), padding)


def draw_erasing(n: int, height: int, width: int, generator: torch.Generator, probability: float,
                 area: tuple[float, float] = (0.02, 0.33), aspect: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """``(n, 5)``: top, bottom, left, right of each image's rectangle and whether it is erased (0/1)."""
    target = _uniform(n, *area, generator) * height * width
    ratio = torch.exp(_uniform(n, math.log(aspect[0]), math.log(aspect[1]), generator))
    h = (target * ratio).sqrt().round().clamp(1, height)
    w = (target / ratio).sqrt().round().clamp(1, width)
    top = (torch.rand(n, generator=generator) * (height - h + 1)).floor()
    left = (torch.rand(n, generator=generator) * (width - w + 1)).floor()
    chosen = torch.rand(n, generator=generator) < probability
    return torch.stack([top, top + h, left, left + w, chosen.float()], dim=1)


def _box_mask(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)``: inside each image's box (top, bottom, left, right in columns 0-3) when it is chosen
    (the last column)."""
    _, _, height, width = x.shape
    rows = torch.arange(height, device=x.device)[None, :]
    cols = torch.arange(width, device=x.device)[None, :]
    inside_rows = (rows >= boxes[:, 0:1]) & (rows < boxes[:, 1:2])  # (N, H)
    inside_cols = (cols >= boxes[:, 2:3]) & (cols < boxes[:, 3:4])  # (N, W)
    return inside_rows[:, :, None] & inside_cols[:, None, :] & boxes[:, -1:, None].bool()


def apply_erasing(x: torch.Tensor, erase: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(_box_mask(x, erase)[:, None], 0.0)


def random_erasing(x: torch.Tensor, generator: torch.Generator, probability: float, **shape: Any) -> torch.Tensor:
    """Erase one random rectangle (set to 0) in each image with ``probability``."""
    return apply_erasing(x, draw_erasing(len(x), *x.shape[-2:], generator, probability, **shape).to(x.device))


# --- pixel-level robustness augmentation ----------------------------------------------------------------


def _log_uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.exp(_uniform(n, math.log(low), math.log(high), generator))


def draw_augmix(n: int, generator: torch.Generator, probability: float) -> torch.Tensor:
    """``(n, 6)``: brightness factor, contrast factor, gamma, blur level (0-2), noise sigma and the weight of
    the augmented image in the blend with the clean one; an op that is off (or an image not chosen) gets
    its neutral value, so the row is the identity."""
    chosen = torch.rand(n, generator=generator) < probability
    strengths = [(_log_uniform(n, 0.4, 1.8, generator), 1.0), (_log_uniform(n, 0.3, 1.5, generator), 1.0),
                 (_log_uniform(n, 0.5, 2.0, generator), 1.0), (_uniform(n, 0.0, 2.0, generator), 0.0),
                 (_uniform(n, 0.0, 0.12, generator), 0.0)]
    columns = [torch.where(chosen & (torch.rand(n, generator=generator) < 0.5), value, torch.full_like(value, neutral))
               for value, neutral in strengths]
    weight = torch.where(chosen, torch.rand(n, generator=generator), torch.zeros(n))
    return torch.stack([*columns, weight], dim=1)


@functools.lru_cache(maxsize=16)
def _gaussian_kernel(sigma: float, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2 / (2 * sigma**2))
    kernel = torch.outer(taps, taps) / taps.sum() ** 2
    return kernel.to(device=device, dtype=dtype).expand(channels, 1, -1, -1).contiguous()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each channel of ``x`` blurred by a Gaussian of ``sigma`` pixels (edges reflected)."""
    kernel = _gaussian_kernel(float(sigma), x.shape[1], x.device, x.dtype)
    radius = kernel.shape[-1] // 2
    return F.conv2d(F.pad(x, (radius,) * 4, mode="replicate"), kernel, groups=x.shape[1])


def apply_augmix(x: torch.Tensor, chain: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
    brightness, contrast, gamma, blur, sigma, weight = (chain[:, i, None, None, None].to(x.dtype) for i in range(6))
    y = (x * brightness).clamp(0, 1)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * contrast + mean).clamp(0, 1)
    y = y.clamp_min(1e-6) ** gamma
    # A blur level in [0, 2] walks from sharp to sigma 1 (0-1) and on to sigma 2.5 (1-2): two fixed
    # convolutions per batch instead of one kernel per image.
    soft, softer = gaussian_blur(y, 1.0), gaussian_blur(y, 2.5)
    y = torch.where(blur <= 1, y + (soft - y) * blur, soft + (softer - soft) * (blur - 1))
    y = y + sigma * torch.randn(y.shape, generator=noise, device=y.device, dtype=y.dtype)
    return (x + (y.clamp(0, 1) - x) * weight)


def draw_occlusion(n: int, height: int, width: int, generator: torch.Generator, probability: float) -> torch.Tensor:
    """``(n, 6)``: top, bottom, left, right, grey level (0-1) and whether the image is occluded (0/1)."""
    band = torch.rand(n, generator=generator) < 0.5
    area = _uniform(n, 0.05, 0.25, generator) * height * width
    aspect = _log_uniform(n, 0.5, 2.0, generator)
    h = torch.where(band, _uniform(n, 0.12, 0.30, generator) * height, (area * aspect).sqrt()).round().clamp(1, height)
    w = torch.where(band, torch.full((n,), float(width)), (area / aspect).sqrt().round().clamp(1, width))
    top = (torch.rand(n, generator=generator) * (height - h + 1)).floor()
    left = (torch.rand(n, generator=generator) * (width - w + 1)).floor()
    grey = torch.rand(n, generator=generator)
    chosen = torch.rand(n, generator=generator) < probability
    return torch.stack([top, top + h, left, left + w, grey, chosen.float()], dim=1)


# --- label mixing -------------------------------------------------------------------------------------


def draw_mixing(batches: int, batch_size: int, size: tuple[int, int], generator: torch.Generator,
                config: dict[str, Any]) -> Parameters:
    """Per-batch mixing for ``batches`` batches, or {} when ``mixup`` and ``cutmix`` are both off.

    ``partner`` (B, N): the image each image is mixed with (a permutation of the batch); ``box`` (B, 4):
    CutMix's rectangle (top, bottom, left, right), empty for a MixUp batch; ``weight`` (B,): the share of
    the image's own label (MixUp's lambda, or the part of the image CutMix kept).
    """
    mixup, cutmix = float(config.get("mixup") or 0), float(config.get("cutmix") or 0)
    if not mixup and not cutmix:
        return {}
    height, width = size
    partner = torch.stack([torch.randperm(batch_size, generator=generator) for _ in range(batches)])
    use_cutmix = torch.rand(batches, generator=generator) < (0.5 if mixup and cutmix else float(bool(cutmix)))
    alphas = torch.where(use_cutmix, cutmix or 1.0, mixup or 1.0)
    # Beta(a, a) through numpy (torch.distributions takes no generator), seeded from the run's generator.
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
    lam = torch.from_numpy(rng.beta(alphas.numpy(), alphas.numpy())).float()
    # CutMix: a box of area (1 - lam) at a uniform centre, clipped to the image; the label weight is the
    # share of the image actually kept.
    cut_h, cut_w = height * (1 - lam).sqrt(), width * (1 - lam).sqrt()
    cy, cx = torch.rand(batches, generator=generator) * height, torch.rand(batches, generator=generator) * width
    box = torch.stack([(cy - cut_h / 2).clamp(0, height), (cy + cut_h / 2).clamp(0, height),
                       (cx - cut_w / 2).clamp(0, width), (cx + cut_w / 2).clamp(0, width)], dim=1).round()
    box = torch.where(use_cutmix[:, None], box, torch.zeros_like(box))
    kept = 1 - (box[:, 1] - box[:, 0]) * (box[:, 3] - box[:, 2]) / (height * width)
    weight = torch.where(use_cutmix, kept, lam)
    return {"partner": partner, "box": box, "weight": weight, "cutmix": use_cutmix.float()}


def mix(x: torch.Tensor, extras: tuple[torch.Tensor, ...], mixing: Parameters
        ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Mix a batch with its partners (one batch's row of :func:`draw_mixing`, on ``x``'s device).

    Extra per-image inputs (e.g. a latent code) are mixed linearly with the label weight in both modes.
    """
    partner, weight = mixing["partner"], mixing["weight"]
    _, _, height, width = x.shape
    rows = torch.arange(height, device=x.device)[:, None]
    cols = torch.arange(width, device=x.device)[None, :]
    box = mixing["box"]
    inside = (rows >= box[0]) & (rows < box[1]) & (cols >= box[2]) & (cols < box[3])  # (H, W)
    lam = weight.to(x.dtype)
    blended = x * lam + x[partner] * (1 - lam)
    cut = torch.where(inside, x[partner], x)
    mixed = torch.where(mixing["cutmix"].bool(), cut, blended)
    extras = tuple(e * weight.to(e.dtype) + e[partner] * (1 - weight.to(e.dtype)) for e in extras)
    return mixed, extras

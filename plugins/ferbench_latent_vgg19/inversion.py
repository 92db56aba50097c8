"""Latent optimisation: find the w whose G(w) looks like a query image, through a "lens" classifier.

The paper's second approach (its Section 3): start from the encoder's estimate of w, then gradient descent
on w alone (the generator's weights frozen) to minimise an L2 distance between the lens's features of G(w)
and of the query, plus a pixel L2 term. Each image's w is optimised on its own (the loss is a sum of
per-image losses and Adam's update is element-wise), so the batch size does not change the result.

Two lenses:

- :class:`FaceLens`: a classifier trained on the run's training images (the default here; no ImageNet
  weights can be downloaded). Its features are the penultimate layer, the paper's "feature vectors distilled
  from the fully connected layers".
- :class:`ImageNetVGGLens`: a local ImageNet VGG19 weights file, as in the paper. Its features are the
  activations at the end of the first four convolution blocks (relu1_2, relu2_2, relu3_4, relu4_4), the
  usual perceptual loss for 48-96 pixel images, which are far below the 224 pixels VGG's fully connected
  layers were trained on.
"""

from __future__ import annotations

import time
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ferbench.checkpoint import load_state_dict, load_weights
from ferbench.data import InputSpec

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def gan_to_input(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Float images in [-1, 1] -> a classifier's normalised input (channels, size, mean/std), differentiably."""
    x = (x + 1) / 2
    if x.shape[1] != spec.in_chans:
        if spec.in_chans == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, True)
        else:
            x = x.expand(-1, spec.in_chans, -1, -1)
    if x.shape[-2:] != (spec.image_size, spec.image_size):
        x = F.interpolate(x, size=(spec.image_size, spec.image_size), mode="bilinear", align_corners=False)
    mean = torch.tensor(spec.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


class FaceLens(nn.Module):
    """A trained :class:`~ferbench.interfaces.Classifier` seen through its penultimate features."""

    def __init__(self, classifier: nn.Module, spec: InputSpec):
        super().__init__()
        self.classifier, self.spec = classifier.eval().requires_grad_(False), spec

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [self.classifier.features(gan_to_input(images, self.spec))]


class ImageNetVGGLens(nn.Module):
    """VGG19's convolution blocks from a local ImageNet weights file (timm or torchvision key names)."""

    def __init__(self, weights: str, image_size: int = 96):
        super().__init__()
        batch_norm = any("running_mean" in key for key in load_state_dict(weights))
        vgg = timm.create_model("vgg19_bn" if batch_norm else "vgg19", pretrained=False, num_classes=0)
        self.features = vgg.features
        self.report = load_weights(self, weights)
        # The end of a block is the ReLU before each max pool; the first four blocks.
        self.taps = [i - 1 for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)][:4]
        self.spec = InputSpec(3, image_size, IMAGENET_MEAN, IMAGENET_STD)
        self.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x, outputs = gan_to_input(images, self.spec), []
        for i, layer in enumerate(self.features[: self.taps[-1] + 1]):
            x = layer(x)
            if i in self.taps:
                outputs.append(x)
        return outputs


def feature_distance(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> torch.Tensor:
    """Per-image mean squared distance, summed over the lens's feature layers: ``(N,)``."""
    return sum((a.float() - b.float()).pow(2).flatten(1).mean(1) for a, b in zip(ours, theirs))


def reconstruction_loss(generated: torch.Tensor, query: torch.Tensor, lens: nn.Module, query_features: list,
                        feature_weight: float, pixel_weight: float) -> torch.Tensor:
    """Per-image loss ``(N,)``: feature_weight * lens-feature L2 + pixel_weight * pixel L2."""
    loss = pixel_weight * (generated.float() - query.float()).pow(2).flatten(1).mean(1)
    if feature_weight:
        loss = loss + feature_weight * feature_distance(lens(generated), query_features)
    return loss


def invert(generator, encoder: nn.Module, lens: nn.Module, queries: torch.Tensor, *, steps: int, lr: float,
           feature_weight: float, pixel_weight: float) -> dict[str, Any]:
    """Invert float queries in [-1, 1] at the generator's size and channels (one batch, on the device).

    Returns ``w_encoder`` and ``w`` (optimised), and the per-image losses before and after. The
    generator's weights are frozen for the duration and restored to trainable afterwards, untouched.
    """
    trainable = [p.requires_grad for p in generator.parameters()]
    generator.eval().requires_grad_(False)
    try:
        with torch.no_grad():
            w_encoder = encoder.eval()(queries).float()
            query_features = [f.detach() for f in lens(queries)] if feature_weight else []
        w = w_encoder.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=lr)
        first = last = None
        started = time.perf_counter()
        for _ in range(steps + 1):
            loss = reconstruction_loss(generator.synthesis(w, noise="fixed"), queries, lens, query_features,
                                       feature_weight, pixel_weight)
            last = loss.detach()
            first = last if first is None else first
            if _ == steps:
                break  # the last pass only measures the final w
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
    finally:
        for parameter, flag in zip(generator.parameters(), trainable):
            parameter.requires_grad_(flag)
    return {"w_encoder": w_encoder, "w": w.detach(), "loss_before": first, "loss_after": last,
            "seconds": time.perf_counter() - started}

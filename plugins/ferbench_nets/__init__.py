"""Compact networks designed for small face crops, for fast training from scratch.

- ``fer-vgg8``: eight 3x3 convolutions in four VGG blocks (64, 128, 256, 512 channels, batch norm, ReLU,
  max-pool after each block) and a two-layer head with dropout: about 9.4M parameters for 48x48 grey
  input. ImageNet backbones downsample 48-pixel faces to 2x2 within a few layers; this keeps 6x6 at the
  last block, which is where FER2013's small expression details survive.
"""

from __future__ import annotations

from ferbench import hookimpl
from ferbench.interfaces import ComponentSpec

from .vgg8 import FerVGG8

__all__ = ["FerVGG8"]


@hookimpl
def ferbench_register_components():
    return [ComponentSpec(kind="classifier", name="fer-vgg8", build=FerVGG8,
                          summary="8-conv VGG-style net for 48px faces (~9.4M parameters)")]

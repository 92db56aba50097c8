"""Compact networks designed for small face crops, for fast training from scratch (one architecture per file).

- ``fer-resnet-s`` / ``fer-resnet`` / ``fer-resnet-l`` (:mod:`.resnet`): a residual net with a stride-1
  stem whose first stage runs at 24x24 on a 48-pixel face; the CPU recipe's default.
- ``fer-vgg8`` (:mod:`.vgg8`): eight 3x3 convolutions in four VGG blocks (64-512 channels) and a
  two-layer head with dropout, about 9.4M parameters; the GPU speed recipe (it keeps 6x6 at the last block).

Training throughput on 2 CPU cores (bare AdamW step, batch 128, 48x48 grey, channels_last, passive
OpenMP threads), beside timm's: fer-resnet-s 652 img/s, fer-resnet 505, timm:lcnet_100 574,
timm:resnet10t 299, timm:mobilenetv3_large_100 291, timm:resnet18 203, fer-resnet-l 199, fer-vgg8 79.
docs/cpu-recipe.md has the measured time-to-accuracy on FER2013.
"""

from __future__ import annotations

from functools import partial

from ferbench import hookimpl
from ferbench.interfaces import ComponentSpec

from .resnet import SIZES, FerResNet
from .vgg8 import FerVGG8

__all__ = ["FerResNet", "FerVGG8"]


@hookimpl
def ferbench_register_components():
    resnets = [ComponentSpec(kind="classifier", name=name, build=partial(FerResNet, **size),
                             summary=f"residual net for 48px faces, widths {'-'.join(map(str, size['widths']))}, "
                                     f"blocks {'-'.join(map(str, size['depths']))}")
               for name, size in SIZES.items()]
    return resnets + [ComponentSpec(kind="classifier", name="fer-vgg8", build=FerVGG8,
                                    summary="8-conv VGG-style net for 48px faces (~9.4M parameters)")]

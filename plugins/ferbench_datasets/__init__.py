"""Loaders for real FER datasets in their on-disk formats.

Registered loaders (registry.yaml binds them to dataset names and paths):

- ``ferbench-npz``: ferbench's ``.npz`` folder format (``../shared/data/fer2013``, ``ckplus48``).
"""

from __future__ import annotations

from ferbench import __version__, hookimpl
from ferbench.interfaces import DatasetSpec

from . import npz


@hookimpl
def ferbench_register_datasets():
    return [
        DatasetSpec(name="ferbench-npz", load=npz.load, sniff=npz.sniff,
                    summary="a folder of ferbench .npz archives (images, labels, classes, split, subject)"),
    ]

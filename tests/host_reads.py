"""Count a tensor's reads back to the host (``item()``, ``float()``, ``int()``, ``bool()``, ``tolist()``,
``cpu()``, ``numpy()``) by ferbench's own code inside a block: on an accelerator each one waits for the
device to finish. On a CPU nothing waits, so tests compare counts between runs of different lengths: a
loop that reads once per step reads more in the longer run. Reads inside torch itself are not counted
(Adam's step counter lives on the host and is read there every step, without a device sync)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter

import torch

TORCH_DIR = os.path.dirname(torch.__file__)

READS = ("item", "__float__", "__int__", "__bool__", "tolist", "cpu", "numpy")


@contextlib.contextmanager
def counting_host_reads(monkeypatch):
    counts: Counter = Counter()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            if not sys._getframe(1).f_code.co_filename.startswith(TORCH_DIR):
                counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    try:
        yield counts
    finally:
        monkeypatch.undo()

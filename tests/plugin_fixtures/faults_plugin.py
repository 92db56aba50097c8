"""Faults on demand, for tests/test_reliability.py.

- ``FERBENCH_TEST_PAUSE=<fold>:<epoch>:<marker file>`` stands in for a long training run: at that epoch of
  that fold the ``ferbench_epoch_end`` hook leaves the marker (holding its process id) and waits to be
  killed; once, so a rerun that finds the marker goes straight on. The hook runs after the epoch's
  checkpoint is written, so a process killed while it waits has that epoch on disk.
- ``unstable-tinycnn``: the example plugin's TinyCNN, except that from its ``NAN_FROM_STEP``-th training
  step on its logits are NaN, as when a network's weights have blown up.
"""

import os
import time
from pathlib import Path

import torch

from ferbench import hookimpl
from ferbench.interfaces import ComponentSpec
from ferbench_example import TinyCNN

NAN_FROM_STEP = 5  # squares trains 27 images in batches of 8: 3 steps an epoch, so epoch 2, step 2


class UnstableTinyCNN(TinyCNN):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.training_steps = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = super().forward(images)
        if torch.is_grad_enabled():  # count training steps, not the runner's dry run or predictions
            self.training_steps += 1
            if self.training_steps >= NAN_FROM_STEP:
                return logits * float("nan")
        return logits


@hookimpl
def ferbench_register_components():
    return [ComponentSpec(kind="classifier", name="unstable-tinycnn", build=UnstableTinyCNN,
                          summary="TinyCNN whose logits turn NaN at a given training step (tests)")]


@hookimpl
def ferbench_epoch_end(run, fold, epoch, metrics):
    pause = os.environ.get("FERBENCH_TEST_PAUSE")
    if not pause:
        return
    want_fold, want_epoch, marker = pause.split(":", 2)
    if fold == want_fold and epoch == int(want_epoch) and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        time.sleep(120)

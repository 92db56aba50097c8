"""Stands in for a long training run: at one epoch of one fold it leaves a marker file and waits to be
killed (once: a rerun that finds the marker goes straight on).

``FERBENCH_TEST_PAUSE=<fold>:<epoch>:<marker file>``. The ``ferbench_epoch_end`` hook runs after the
epoch's checkpoint is written, so a process killed while it waits has that epoch on disk.
"""

import os
import time
from pathlib import Path

from ferbench import hookimpl


@hookimpl
def ferbench_epoch_end(run, fold, epoch, metrics):
    pause = os.environ.get("FERBENCH_TEST_PAUSE")
    if not pause:
        return
    want_fold, want_epoch, marker = pause.split(":", 2)
    if fold == want_fold and epoch == int(want_epoch) and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        time.sleep(120)

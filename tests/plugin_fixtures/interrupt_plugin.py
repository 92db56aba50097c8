"""Ctrl-C on demand, in this process: ``FERBENCH_TEST_INTERRUPT=<metric>:<epoch>`` raises
KeyboardInterrupt at the end of the first epoch numbered ``epoch`` whose metrics hold ``metric`` (e.g.
``loss_g:2``: the Arabian GAN restyler's second epoch), once per process. The epoch's checkpoint is on
disk by then, as when a user presses Ctrl-C during the next epoch. ``seen`` lists every (epoch, metric
names) the hook was called with, so a test can tell which epochs a resumed run trained again."""

import os

from ferbench import hookimpl

_fired = False
seen: list[tuple[int, frozenset]] = []


@hookimpl
def ferbench_epoch_end(run, fold, epoch, metrics):
    global _fired
    seen.append((epoch, frozenset(metrics)))
    metric, _, at = os.environ.get("FERBENCH_TEST_INTERRUPT", "").partition(":")
    if metric and not _fired and metric in metrics and epoch == int(at):
        _fired = True
        raise KeyboardInterrupt

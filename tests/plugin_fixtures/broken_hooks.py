"""A plugin whose hooks raise, and one that registers the wrong type."""

from ferbench import hookimpl


@hookimpl
def ferbench_register_components():
    raise RuntimeError("component registration exploded")


@hookimpl
def ferbench_register_datasets():
    return ["not a DatasetSpec"]


@hookimpl
def ferbench_epoch_end(run, fold, epoch, metrics):
    raise ValueError("tracking server unreachable")

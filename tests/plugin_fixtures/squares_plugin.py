"""A test plugin: the squares dataset (tiny, learnable) in a few variants, and a recorder of lifecycle hooks."""

import numpy as np

from ferbench import hookimpl
from ferbench.data import Dataset
from ferbench.interfaces import DatasetSpec

EVENTS: list[tuple] = []


def make_squares(classes=("anger", "happiness", "surprise"), per_class=12, size=16, channels=1, seed=0,
                 subjects=4, name="squares", splits=None) -> Dataset:
    """A dataset a tiny CNN learns in a few steps: each class is a bright square in its own place."""
    rng = np.random.default_rng(seed)
    n = per_class * len(classes)
    labels = np.repeat(np.arange(len(classes)), per_class)
    images = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        r = (label * size // len(classes)) % (size - 4)
        images[i, r:r + 4, 2:6] = 250
    if channels == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    subject_ids = np.array([f"p{i % subjects}" for i in range(n)])
    split_column = np.array(splits(n) if splits else ["train" if i % 4 else "test" for i in range(n)])
    return Dataset(name, images, labels.astype(np.int64), tuple(classes), subject_ids, split_column,
                   meta={"source_file": np.array([f"img{i}.png" for i in range(n)])})


def load_squares(per_class: int = 12, size: int = 16, channels: int = 1, seed: int = 0):
    return make_squares(per_class=per_class, size=size, channels=channels, seed=seed)


def load_squares_rgb(per_class: int = 12, seed: int = 1):
    return make_squares(per_class=per_class, channels=3, seed=seed, name="squares-rgb")


def load_squares_all(per_class: int = 12):
    return make_squares(per_class=per_class, splits=lambda n: ["all"] * n, subjects=10, name="squares-all")


def load_one_class():
    return make_squares(classes=("anger",), name="one-class")


@hookimpl
def ferbench_register_datasets():
    return [DatasetSpec("squares", load_squares, "tiny learnable squares"),
            DatasetSpec("squares-rgb", load_squares_rgb, "the same, in RGB, another seed"),
            DatasetSpec("squares-all", load_squares_all, "squares without a release split", protocol="kfold"),
            DatasetSpec("one-class", load_one_class, "a dataset with a single class")]


@hookimpl
def ferbench_run_start(run):
    EVENTS.append(("start", run["run_id"]))


@hookimpl
def ferbench_epoch_end(run, fold, epoch, metrics):
    EVENTS.append(("epoch", fold, epoch, round(metrics["loss"], 6)))


@hookimpl
def ferbench_run_end(run, results):
    EVENTS.append(("end", len(results)))


@hookimpl
def ferbench_register_commands(app):
    @app.command("squares-count")
    def squares_count(per_class: int = 3) -> None:
        """Print how many images the squares dataset has (a plugin-provided command)."""
        print(f"squares: {len(make_squares(per_class=per_class))} images")


@hookimpl
def ferbench_leaderboard_sections(records, paper):
    mine = [r for r in records if r["dataset"].startswith("squares")]
    return [f"## Squares\n\n{len(mine)} squares result(s)."] if mine else []

"""The evaluation protocols the core provides, registered through the same hook a plugin would use.

- ``holdout``: train on the release's ``train`` split, score on each other split (FER2013: public and
  private test; the synthetic set: its subject-disjoint test split).
- ``kfold``: stratified k-fold with every person's images in one fold only (subject-independent): the
  default, because nobody should be recognised from their own face in the training set.
- ``image-kfold``: stratified k-fold over images, ignoring who is in them: the folds most FER papers report
  (the latent-VGG19 paper's CK+ 10-fold). The same person, and frames of the same video sequence, land in
  train and test, which flatters accuracy; results carry this protocol's name so they are never mistaken
  for subject-independent ones.
- ``cross-dataset``: train on the ``--target`` dataset, score on the ``--dataset`` one, and hand the
  method the dataset's training images as adaptation data (the Arabian GAN's setting).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

from ferbench import hookimpl
from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.interfaces import Fold, ProtocolOptions, ProtocolSpec

TRAIN_SPLIT = "train"


def evaluation_splits(dataset: Dataset) -> list[str]:
    return [s for s in dataset.split_names if s != TRAIN_SPLIT]


def holdout(dataset: Dataset, options: ProtocolOptions) -> Iterator[Fold]:
    tests = evaluation_splits(dataset)
    if TRAIN_SPLIT not in dataset.split_names or not tests:
        raise DatasetError(
            f"dataset {dataset.name!r} has splits {dataset.split_names}, not a 'train' split and a test split; "
            "use --protocol kfold (subject-independent) or --protocol image-kfold"
        )
    yield Fold("holdout", dataset.split(TRAIN_SPLIT), {s: dataset.split(s) for s in tests})


def image_kfold(dataset: Dataset, options: ProtocolOptions) -> Iterator[Fold]:
    _check_folds(dataset, options.folds)
    splitter = StratifiedKFold(n_splits=options.folds, shuffle=True, random_state=options.seed)
    yield from _folds(dataset, splitter.split(np.zeros(len(dataset)), dataset.labels))


def kfold(dataset: Dataset, options: ProtocolOptions) -> Iterator[Fold]:
    _check_folds(dataset, options.folds)
    if (dataset.subjects == "").any():
        raise DatasetError(
            f"dataset {dataset.name!r} does not record who is in every image, so it cannot be split by "
            "subject; use --protocol image-kfold (image-level folds, which can put one person on both sides)"
        )
    people = len(set(dataset.subjects.tolist()))
    if people < options.folds:
        raise DatasetError(f"dataset {dataset.name!r} has {people} subjects, fewer than --folds {options.folds}")
    splitter = StratifiedGroupKFold(n_splits=options.folds, shuffle=True, random_state=options.seed)
    yield from _folds(dataset, splitter.split(np.zeros(len(dataset)), dataset.labels, dataset.subjects))


def cross_dataset(dataset: Dataset, options: ProtocolOptions) -> Iterator[Fold]:
    target = options.target
    if target is None:
        raise DatasetError("--protocol cross-dataset needs --target: the dataset the models are trained on")
    train = target.split(TRAIN_SPLIT) if TRAIN_SPLIT in target.split_names else target
    if TRAIN_SPLIT in dataset.split_names and evaluation_splits(dataset):
        adaptation = dataset.split(TRAIN_SPLIT)
        tests = {s: dataset.split(s) for s in evaluation_splits(dataset)}
    else:
        # No release split: half the people adapt, the other half are scored, so no face is in both.
        adaptation, test = _split_people(dataset, options.seed)
        tests = {"test": test}
    shared = [c for c in train.classes if c in dataset.classes]
    if len(shared) < 2:
        raise DatasetError(
            f"datasets {train.name!r} and {dataset.name!r} share {len(shared)} class(es) {shared}; need at least 2"
        )
    yield Fold("cross", train, tests, adaptation=adaptation)


def carve_validation(fold: Fold, fraction: float, seed: int) -> Fold:
    """``fold`` with a stratified ``fraction`` of its training images moved to ``fold.validation``: whole
    people when every image names its subject (so the split is as subject-independent as the protocol),
    single images otherwise (FER2013 does not say who is who)."""
    train = fold.train
    if not 0 < fraction < 1:
        raise DatasetError(f"--validation must be a fraction between 0 and 1, got {fraction}")
    labels = train.labels
    if _names_people(train, 1 / fraction):
        splitter = StratifiedGroupKFold(n_splits=max(2, round(1 / fraction)), shuffle=True, random_state=seed)
        kept, held = next(splitter.split(np.zeros(len(train)), labels, train.subjects))
    else:
        try:
            kept, held = next(StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
                              .split(np.zeros(len(train)), labels))
        except ValueError as error:
            raise DatasetError(f"--validation {fraction}: cannot carve a stratified validation split from "
                               f"{train.name} ({error})") from error
    return replace(fold, train=train.select(kept, f"{train.name} minus validation"),
                   validation=train.select(held, f"{train.name} validation"))


def inner_folds(train: Dataset, folds: int, seed: int) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """A stratified ``folds``-fold split of a training set, for out-of-fold predictions inside a method
    (stacking): ``("people", splits)`` when every image names its subject, each person on one side as in
    :func:`carve_validation`; ``("images", splits)`` otherwise. ``splits`` holds (kept, held) index pairs."""
    if _names_people(train, folds):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return "people", list(splitter.split(np.zeros(len(train)), train.labels, train.subjects))
    _check_folds(train, folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return "images", list(splitter.split(np.zeros(len(train)), train.labels))


def _names_people(dataset: Dataset, at_least: float) -> bool:
    return not (dataset.subjects == "").any() and len(set(dataset.subjects.tolist())) >= at_least


def _check_folds(dataset: Dataset, folds: int) -> None:
    if folds < 2:
        raise DatasetError(f"--folds must be at least 2, got {folds}")
    smallest = min(dataset.class_counts().values(), default=0)
    if smallest < folds:
        raise DatasetError(
            f"dataset {dataset.name!r} has a class with {smallest} images, fewer than --folds {folds}"
        )


def _folds(dataset: Dataset, splits) -> Iterator[Fold]:
    for k, (train_index, test_index) in enumerate(splits, start=1):
        name = f"fold-{k:02d}"
        yield Fold(name, dataset.select(train_index, f"{dataset.name}[{name} train]"),
                   {"test": dataset.select(test_index, f"{dataset.name}[{name} test]")})


def _split_people(dataset: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    keys = dataset.subjects if not (dataset.subjects == "").any() else np.arange(len(dataset)).astype(str)
    people = np.array(sorted(set(keys.tolist())))
    np.random.default_rng(seed).shuffle(people)
    in_adaptation = np.isin(keys, people[: len(people) // 2])
    return (dataset.select(in_adaptation, f"{dataset.name}[adaptation]"),
            dataset.select(~in_adaptation, f"{dataset.name}[test]"))


@hookimpl
def ferbench_register_protocols() -> list[ProtocolSpec]:
    return [
        ProtocolSpec("holdout", holdout, "train on the 'train' split, score on every other split"),
        ProtocolSpec("kfold", kfold, "stratified k-fold, each person in one fold only (--folds, default 10)"),
        ProtocolSpec("image-kfold", image_kfold, "stratified k-fold over images; one person can be on both sides"),
        ProtocolSpec("cross-dataset", cross_dataset, "train on --target, score on --dataset", needs_target=True),
    ]

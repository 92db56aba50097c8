"""Subject independence and stratification of the k-fold protocols, on a CK+-like fixture (people with
several sequences of three frames, unbalanced classes) and on the real CK+48 when ../shared/data is there."""

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold

from ferbench.data import Dataset
from ferbench.interfaces import ProtocolOptions
from ferbench.protocols import image_kfold, kfold
from conftest import SHARED_DATA


def ck_like(people=40, seed=0) -> Dataset:
    """Each person shows 2-4 expressions, three frames per sequence; contempt and fear are rare (as in CK+)."""
    rng = np.random.default_rng(seed)
    classes = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
    weights = np.array([14, 5, 18, 8, 21, 9, 25], float)
    labels, subjects, sequences = [], [], []
    for person in range(people):
        for number, label in enumerate(rng.choice(7, size=rng.integers(2, 5), replace=False, p=weights / weights.sum())):
            for _ in range(3):
                labels.append(label)
                subjects.append(f"S{person:03d}")
                sequences.append(f"S{person:03d}_{number:03d}")
    n = len(labels)
    return Dataset("ck-like", np.zeros((n, 4, 4), np.uint8), np.array(labels), classes, np.array(subjects),
                   np.full(n, "all"), meta={"sequence": np.array(sequences), "source_file": np.arange(n).astype(str)})


def class_shares(data: Dataset) -> np.ndarray:
    return np.bincount(data.labels, minlength=len(data.classes)) / len(data)


def check_subject_independent(data: Dataset, folds: int, seed: int) -> list[float]:
    """Assert the subject-independent folds' guarantees; return each test fold's largest class-share gap."""
    result = list(kfold(data, ProtocolOptions(seed=seed, folds=folds)))
    assert len(result) == folds
    tested = np.concatenate([f.tests["test"].meta["source_file"] for f in result])
    assert sorted(tested) == sorted(data.meta["source_file"])  # every image tested exactly once
    gaps = []
    for fold in result:
        train, test = fold.train, fold.tests["test"]
        assert not set(train.subjects) & set(test.subjects), f"{fold.name}: a person is on both sides"
        assert not set(train.meta["sequence"]) & set(test.meta["sequence"]), f"{fold.name}: a sequence is split"
        assert len(train) + len(test) == len(data)
        gaps.append(float(np.abs(class_shares(test) - class_shares(data)).max()))
    return gaps


def unstratified_gaps(data: Dataset, folds: int) -> list[float]:
    splitter = GroupKFold(n_splits=folds)
    return [float(np.abs(class_shares(data.select(test)) - class_shares(data)).max())
            for _, test in splitter.split(data.images, data.labels, data.subjects)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfold_on_a_fixture_is_subject_independent_and_stratified(seed):
    data = ck_like(seed=seed)
    gaps = check_subject_independent(data, folds=5, seed=seed)
    assert np.mean(gaps) < np.mean(unstratified_gaps(data, 5))  # stratifying brings the folds closer


def test_image_kfold_splits_people_which_is_why_it_carries_its_own_name():
    data = ck_like()
    folds = list(image_kfold(data, ProtocolOptions(seed=0, folds=5)))
    shared = [set(f.train.subjects) & set(f.tests["test"].subjects) for f in folds]
    assert all(shared)  # the leak: every fold tests people it trained on
    counts = np.array([np.bincount(f.tests["test"].labels, minlength=7) for f in folds])
    assert (counts.max(0) - counts.min(0) <= 1).all()  # exactly stratified over images


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "ckplus48").is_dir(), reason="../shared/data is absent")
@pytest.mark.parametrize("seed", [0, 1])
def test_kfold_on_real_ckplus48(seed):
    from ferbench_datasets import npz

    data = npz.load(str(SHARED_DATA / "ckplus48"))
    gaps = check_subject_independent(data, folds=10, seed=seed)
    # Measured: stratified folds stay within 4.2 points of every class's overall share (plain
    # GroupKFold: 7.5), and every test fold holds every class, contempt (54 images) included.
    assert max(gaps) < 0.05 and np.mean(gaps) < np.mean(unstratified_gaps(data, 10))
    for fold in kfold(data, ProtocolOptions(seed=seed, folds=10)):
        assert (np.bincount(fold.tests["test"].labels, minlength=7) > 0).all()


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "ckplus48").is_dir(), reason="../shared/data is absent")
def test_image_kfold_on_real_ckplus48_puts_frames_of_one_sequence_on_both_sides():
    from ferbench_datasets import npz

    data = npz.load(str(SHARED_DATA / "ckplus48"))
    for fold in image_kfold(data, ProtocolOptions(seed=0, folds=10)):
        assert len(set(fold.train.meta["sequence"]) & set(fold.tests["test"].meta["sequence"])) > 50

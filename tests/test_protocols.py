import numpy as np
import pytest

from ferbench.errors import DatasetError
from ferbench.interfaces import ProtocolOptions
from ferbench.protocols import cross_dataset, holdout, image_kfold, kfold


def test_holdout_trains_on_train_and_scores_every_other_split(squares):
    d = squares(splits=lambda n: ["train", "public_test", "private_test"] * (n // 3))
    (fold,) = holdout(d, ProtocolOptions())
    assert set(fold.train.splits) == {"train"}
    assert set(fold.tests) == {"public_test", "private_test"}


def test_holdout_without_a_train_split_points_to_kfold(squares):
    with pytest.raises(DatasetError, match="use --protocol kfold"):
        list(holdout(squares(splits=lambda n: ["all"] * n), ProtocolOptions()))


def test_image_kfold_partitions_every_image_once_and_is_stratified(squares):
    d = squares(per_class=10)
    folds = list(image_kfold(d, ProtocolOptions(seed=3, folds=5)))
    assert len(folds) == 5
    tested = np.concatenate([f.tests["test"].meta["source_file"] for f in folds])
    assert sorted(tested) == sorted(d.meta["source_file"])
    for f in folds:
        assert set(f.tests["test"].class_counts().values()) == {2}
        assert not set(f.train.meta["source_file"]) & set(f.tests["test"].meta["source_file"])


def test_image_kfold_depends_on_the_seed(squares):
    d = squares(per_class=10)
    first = [list(f.tests["test"].meta["source_file"]) for f in image_kfold(d, ProtocolOptions(seed=0, folds=5))]
    again = [list(f.tests["test"].meta["source_file"]) for f in image_kfold(d, ProtocolOptions(seed=0, folds=5))]
    other = [list(f.tests["test"].meta["source_file"]) for f in image_kfold(d, ProtocolOptions(seed=1, folds=5))]
    assert first == again and first != other


def test_kfold_keeps_each_person_in_one_fold_and_stratifies(squares):
    d = squares(per_class=12, subjects=6)
    folds = list(kfold(d, ProtocolOptions(folds=3)))
    for fold in folds:
        assert not set(fold.train.subjects) & set(fold.tests["test"].subjects)
        assert set(fold.tests["test"].class_counts().values()) == {4}  # every person shows every class twice
    assert sorted(np.concatenate([f.tests["test"].meta["source_file"] for f in folds])) == sorted(d.meta["source_file"])


def test_kfold_needs_subjects_and_enough_of_them(squares):
    d = squares(subjects=2)
    with pytest.raises(DatasetError, match="2 subjects, fewer than --folds 3"):
        list(kfold(d, ProtocolOptions(folds=3)))
    unknown = d.select(np.arange(len(d)))
    object.__setattr__(unknown, "subjects", np.full(len(d), ""))
    with pytest.raises(DatasetError, match="cannot be split by subject; use --protocol image-kfold"):
        list(kfold(unknown, ProtocolOptions(folds=2)))


def test_fold_count_is_checked(squares):
    with pytest.raises(DatasetError, match="at least 2"):
        list(kfold(squares(), ProtocolOptions(folds=1)))
    with pytest.raises(DatasetError, match="a class with 12 images, fewer than --folds 20"):
        list(kfold(squares(), ProtocolOptions(folds=20)))


def test_cross_dataset_trains_on_target_and_adapts_on_source(squares):
    source = squares(seed=1, name="src")
    target = squares(seed=2, name="tgt", classes=("anger", "happiness", "fear"))
    (fold,) = cross_dataset(source, ProtocolOptions(target=target))
    assert fold.train.name.startswith("tgt") and set(fold.train.splits) == {"train"}
    assert set(fold.adaptation.splits) == {"train"} and fold.adaptation.name.startswith("src")
    assert set(fold.tests) == {"test"}


def test_cross_dataset_without_source_splits_separates_people(squares):
    source = squares(splits=lambda n: ["all"] * n, subjects=6)
    (fold,) = cross_dataset(source, ProtocolOptions(target=squares(seed=5)))
    assert not set(fold.adaptation.subjects) & set(fold.tests["test"].subjects)
    assert len(fold.adaptation) + len(fold.tests["test"]) == len(source)


def test_cross_dataset_needs_a_target_sharing_classes(squares):
    with pytest.raises(DatasetError, match="needs --target"):
        list(cross_dataset(squares(), ProtocolOptions()))
    other = squares(classes=("fear", "contempt", "neutral"))
    with pytest.raises(DatasetError, match="share 0 class"):
        list(cross_dataset(squares(), ProtocolOptions(target=other)))


def test_carve_validation_holds_out_whole_subjects_when_known_and_images_otherwise(squares):
    from ferbench.protocols import carve_validation

    d = squares(per_class=20, subjects=10)
    (fold,) = holdout(d, ProtocolOptions())
    carved = carve_validation(fold, 0.2, seed=0)
    assert len(carved.train) + len(carved.validation) == len(fold.train)
    assert not set(carved.train.subjects) & set(carved.validation.subjects)
    assert set(carved.validation.class_counts()) == set(fold.train.class_counts())
    assert carved.tests is fold.tests  # the test split is never touched
    anonymous = squares(per_class=20, subjects=1)  # one "subject": too few to hold out whole people
    carved = carve_validation(next(iter(holdout(anonymous, ProtocolOptions()))), 0.2, seed=0)
    assert len(carved.validation) == round(0.2 * len(carved.train) / 0.8)
    with pytest.raises(DatasetError, match="--validation must be a fraction"):
        carve_validation(fold, 1.5, seed=0)


def test_inner_folds_hold_every_training_image_out_once_by_person_when_known(squares):
    from ferbench.protocols import inner_folds

    known = squares(per_class=20, subjects=10)
    split, splits = inner_folds(known, 5, seed=0)
    assert split == "people" and len(splits) == 5
    held = np.concatenate([h for _, h in splits])
    assert sorted(held) == list(range(len(known)))
    for kept, out in splits:
        assert not set(known.subjects[kept]) & set(known.subjects[out])
    anonymous = squares(per_class=20, subjects=1)
    split, splits = inner_folds(anonymous, 4, seed=0)
    assert split == "images" and sorted(np.concatenate([h for _, h in splits])) == list(range(len(anonymous)))
    with pytest.raises(DatasetError, match="fewer than --folds 30"):
        inner_folds(anonymous, 30, seed=0)

import numpy as np
import pytest
import torch

from ferbench.data import CANONICAL_CLASSES, Dataset, InputSpec, canonical_class, to_channels
from ferbench.errors import DatasetError


def test_canonical_class_maps_common_names():
    assert canonical_class("Happy") == "happiness"
    assert canonical_class("surprised") == "surprise"
    assert canonical_class("SA") == "sadness"
    with pytest.raises(DatasetError, match="'bored' has no canonical equivalent"):
        canonical_class("bored")


def test_dataset_rejects_inconsistent_arrays(squares):
    d = squares()
    with pytest.raises(DatasetError, match="labels has 3 entries"):
        Dataset("bad", d.images, d.labels[:3], d.classes, d.subjects, d.splits)
    with pytest.raises(DatasetError, match="uint8"):
        Dataset("bad", d.images.astype(np.float32), d.labels, d.classes, d.subjects, d.splits)
    with pytest.raises(DatasetError, match="canonical"):
        Dataset("bad", d.images, d.labels, ("anger", "joyful", "surprise"), d.subjects, d.splits)
    with pytest.raises(DatasetError, match=r"labels must lie in \[0, 3\)"):
        Dataset("bad", d.images, d.labels + 1, d.classes, d.subjects, d.splits)


def test_select_split_and_counts(squares):
    d = squares(per_class=8)
    train = d.split("train")
    assert len(train) == (d.splits == "train").sum()
    assert sum(d.class_counts().values()) == len(d)
    assert train.meta["source_file"].shape == (len(train),)
    with pytest.raises(DatasetError, match="has no 'validation' split"):
        d.split("validation")


def test_restricted_to_relabels_to_the_given_order(squares):
    d = squares(classes=("anger", "happiness", "surprise"))
    r = d.restricted_to(("surprise", "fear", "anger"))
    assert r.classes == ("surprise", "fear", "anger")
    assert set(r.labels.tolist()) == {0, 2}
    assert (d.labels == 1).sum() == len(d) - len(r)  # happiness dropped
    original = {tuple(img.ravel()[:20]): d.classes[lab] for img, lab in zip(d.images, d.labels)}
    for img, lab in zip(r.images, r.labels):
        assert original[tuple(img.ravel()[:20])] == r.classes[lab]


def test_to_channels_converts_grey_and_rgb():
    grey = torch.full((2, 4, 4), 100, dtype=torch.uint8)
    assert to_channels(grey, 3).shape == (2, 3, 4, 4)
    rgb = torch.zeros((2, 4, 4, 3), dtype=torch.uint8)
    rgb[..., 1] = 255
    assert to_channels(rgb, 1)[0, 0, 0, 0].item() == round(0.587 * 255)


def test_input_spec_normalises_and_resizes(squares):
    d = squares(size=16)
    spec = InputSpec.fit(d.images, in_chans=3, image_size=24)
    x = spec(torch.from_numpy(d.images))
    assert x.shape == (len(d), 3, 24, 24)
    assert abs(x.mean().item()) < 0.2 and 0.7 < x.std().item() < 1.3


def test_canonical_set_is_the_documented_one():
    assert CANONICAL_CLASSES == ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")

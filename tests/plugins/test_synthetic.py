"""The built-in synthetic dataset: deterministic, balanced, subject-independent, two distinct styles,
strict about its options, and learnable but not trivially so."""

from __future__ import annotations

import numpy as np
import pluggy
import pytest

import ferbench.hookspecs
import ferbench_synthetic
from ferbench.data import BASIC_EXPRESSIONS, Dataset
from ferbench.errors import DatasetError
from ferbench_synthetic import faces
from ferbench_synthetic.faces import make_synthetic

SMALL = dict(train_subjects=3, test_subjects=2, per_class=2, image_size=32)


def render(style: str = "studio", **options) -> Dataset:
    """Render without the in-process cache, so that determinism is really tested."""
    faces._render.cache_clear()
    return make_synthetic(style, **{**SMALL, **options})


@pytest.mark.parametrize("style", ["studio", "snapshot"])
def test_same_seed_gives_identical_arrays(style):
    first, second = render(style, seed=3), render(style, seed=3)
    assert first.images.tobytes() == second.images.tobytes()
    for column in ("labels", "subjects", "splits"):
        assert np.array_equal(getattr(first, column), getattr(second, column))
    assert np.array_equal(first.meta["intensity"], second.meta["intensity"])


@pytest.mark.parametrize("style", ["studio", "snapshot"])
def test_different_seeds_give_different_images(style):
    first, second = render(style, seed=0), render(style, seed=1)
    assert first.images.shape == second.images.shape
    differs = [not np.array_equal(a, b) for a, b in zip(first.images, second.images)]
    assert all(differs)


def test_more_subjects_only_adds_people():
    small = render(train_subjects=2, test_subjects=1)
    large = render(train_subjects=4, test_subjects=3)
    for subject in np.unique(small.subjects):
        assert np.array_equal(small.images[small.subjects == subject], large.images[large.subjects == subject])


def test_cached_result_is_a_copy():
    first = make_synthetic("studio", **SMALL)
    first.images[:] = 0
    assert make_synthetic("studio", **SMALL).images.any()


@pytest.mark.parametrize("style", ["studio", "snapshot"])
def test_every_subject_shows_every_class_per_class_times(style):
    data = render(style, per_class=3)
    assert data.classes == BASIC_EXPRESSIONS
    assert len(data) == (SMALL["train_subjects"] + SMALL["test_subjects"]) * 7 * 3
    for subject in np.unique(data.subjects):
        counts = np.bincount(data.labels[data.subjects == subject], minlength=7)
        assert counts.tolist() == [3] * 7, subject
    assert set(data.class_counts().values()) == {len(np.unique(data.subjects)) * 3}


@pytest.mark.parametrize("style", ["studio", "snapshot"])
def test_train_and_test_hold_different_people(style):
    data = render(style)
    train, test = set(data.split("train").subjects), set(data.split("test").subjects)
    assert len(train) == SMALL["train_subjects"] and len(test) == SMALL["test_subjects"]
    assert not train & test
    assert all(subject.startswith(f"{style}-") for subject in train | test)
    assert data.split_names == ["test", "train"]


def test_shapes_dtypes_and_columns_per_style():
    studio, snapshot = render("studio"), render("snapshot", image_size=40)
    n = (SMALL["train_subjects"] + SMALL["test_subjects"]) * 7 * SMALL["per_class"]
    assert studio.images.shape == (n, 32, 32, 3) and studio.images.dtype == np.uint8
    assert snapshot.images.shape == (n, 40, 40) and snapshot.images.dtype == np.uint8
    for data, style in ((studio, "studio"), (snapshot, "snapshot")):
        assert data.labels.dtype == np.int64
        assert set(data.meta["style"].tolist()) == {style}
        intensity = data.meta["intensity"]
        assert intensity.dtype == np.float32
        neutral = data.labels == BASIC_EXPRESSIONS.index("neutral")
        assert np.all(intensity[neutral] == 0)
        assert np.all((intensity[~neutral] >= 0.3) & (intensity[~neutral] <= 1.0))
        assert data.source == f"ferbench_synthetic style={style} seed=0"


def test_styles_differ_like_two_datasets():
    studio, snapshot = render("studio", per_class=1), render("snapshot", per_class=1)
    rgb = studio.images.astype(np.float32)
    # Studio is in colour (skin, hair and backdrop are not grey) ...
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 8
    studio_grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    snap = snapshot.images.astype(np.float32)
    # ... snapshot is darker ...
    assert snap.mean() < studio_grey.mean() - 15
    # ... and the two styles draw different people, not the same people photographed differently.
    assert not set(studio.subjects) & set(snapshot.subjects)


def test_contrast_of_the_face_is_lower_in_snapshot():
    # The face sits in the middle: compare the spread of grey levels there, per image.
    studio, snapshot = render("studio", per_class=1), render("snapshot", per_class=1)
    middle = slice(8, 24)
    grey = studio.images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    studio_spread = grey[:, middle, middle].std(axis=(1, 2)).mean()
    snapshot_spread = snapshot.images[:, middle, middle].astype(np.float32).std(axis=(1, 2)).mean()
    assert snapshot_spread < studio_spread


def _specs() -> dict:
    manager = pluggy.PluginManager("ferbench")
    manager.add_hookspecs(ferbench.hookspecs)
    manager.register(ferbench_synthetic)
    return {spec.name: spec for specs in manager.hook.ferbench_register_datasets() for spec in specs}


def test_registers_both_styles_as_holdout_datasets():
    specs = _specs()
    assert set(specs) == {"synthetic", "synthetic-snapshot"}
    assert specs["synthetic"].options["style"] == "studio"
    assert specs["synthetic-snapshot"].options["style"] == "snapshot"
    for name, spec in specs.items():
        assert spec.protocol == "holdout" and spec.summary
        data = spec.load(**{**spec.options, **SMALL})
        assert data.name == name
        assert data.source.startswith("ferbench_synthetic style=")
    assert _specs()["synthetic-snapshot"].load(**SMALL).channels == 1
    # The registered name sticks even when the style is overridden.
    assert specs["synthetic"].load(style="snapshot", **SMALL).name == "synthetic"


def test_default_sizes_fit_the_documented_range():
    specs = _specs()
    options = specs["synthetic"].options
    train = options["train_subjects"] * 7 * options["per_class"]
    test = options["test_subjects"] * 7 * options["per_class"]
    assert 2000 <= train <= 2800 and 600 <= test <= 900
    assert options["image_size"] == 48


@pytest.mark.parametrize("option, value", [
    ("style", "cartoon"), ("train_subjects", 0), ("test_subjects", 0), ("per_class", 0), ("image_size", 15),
    ("seed", -1), ("per_class", 2.5), ("train_subjects", "many"), ("image_size", True), ("colour", True),
])
def test_bad_options_raise_dataset_error_naming_the_option(option, value):
    load = _specs()["synthetic"].load
    with pytest.raises(DatasetError, match=repr(option)):
        load(**{**SMALL, option: value})


def test_integer_options_accept_numpy_ints_and_digit_strings():
    data = make_synthetic("studio", seed=np.int64(0), train_subjects="3", test_subjects=2, per_class=2,
                          image_size=32)
    assert len(data) == 5 * 7 * 2


def test_a_tiny_cnn_learns_it_but_not_perfectly():
    pytest.importorskip("torch")
    from ferbench_synthetic.learnability import train_and_score

    data = make_synthetic("studio", seed=0, train_subjects=30, test_subjects=8, per_class=4, image_size=32)
    scores = train_and_score(data.split("train"), {"test": data.split("test")}, in_chans=1, epochs=12,
                             width=16, batch_size=32, lr=3e-3, seed=0)
    chance = 1 / 7
    assert 0.35 < scores["test"] < 1.0, f"test accuracy {scores['test']:.3f} (chance {chance:.3f})"

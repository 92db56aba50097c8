"""The ferbench .npz loader: a fixture in the real format, its failure modes, and the real data when present."""

import numpy as np
import pytest

from ferbench.errors import DatasetError
from ferbench_datasets import npz
from conftest import SHARED_DATA


def write_archive(path, n=12, classes=("anger", "happiness", "neutral"), split_name="train", **overrides):
    rng = np.random.default_rng(0)
    arrays = {"images": rng.integers(0, 255, (n, 8, 8), dtype=np.uint8),
              "labels": (np.arange(n) % len(classes)).astype(np.int16), "classes": np.array(classes),
              "split": np.full(n, split_name), "subject": np.array([f"S{i % 3:03d}" for i in range(n)]),
              "source_file": np.array([f"{split_name}/{i}.png" for i in range(n)])}
    arrays.update(overrides)
    np.savez_compressed(path, **arrays)


def test_loads_and_concatenates_archives_aligning_class_names(tmp_path):
    write_archive(tmp_path / "1-train.npz")
    write_archive(tmp_path / "2-test.npz", n=6, classes=("happy", "angry", "surprise"), split_name="test")
    assert npz.sniff(tmp_path)
    data = npz.load(str(tmp_path))
    assert data.classes == ("anger", "happiness", "neutral", "surprise")
    assert len(data) == 18 and data.split_names == ["test", "train"]
    test = data.split("test")
    assert [test.classes[i] for i in test.labels[:3]] == ["happiness", "anger", "surprise"]
    assert test.meta["source_file"][0] == "test/0.png" and data.subjects[0] == "S000"


def test_limit_keeps_class_proportions_per_split(tmp_path):
    write_archive(tmp_path / "a.npz", n=300)
    data = npz.load(str(tmp_path), limit=30, seed=1)
    assert len(data) == 30 and set(data.class_counts().values()) == {10}


@pytest.mark.parametrize("overrides, message", [
    ({"labels": np.full(12, 9, dtype=np.int16)}, "labels must index into its 3 classes"),
    ({"split": np.full(5, "train")}, "split has 5 entries for 12 images"),
    ({"images": np.zeros((12, 8, 8), dtype=np.float32)}, "images must be uint8"),
])
def test_malformed_archives_are_reported_by_file(tmp_path, overrides, message):
    write_archive(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DatasetError, match=f"bad.npz: {message}"):
        npz.load(str(tmp_path))


def test_missing_array_truncated_file_and_pickles_are_refused(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DatasetError, match="a.npz: missing array"):
        npz.load(str(tmp_path))
    (tmp_path / "a.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="a.npz: not a readable .npz archive"):
        npz.load(str(tmp_path))
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(2, np.int16),
             classes=np.array([{"evil": 1}, {}], dtype=object), split=np.array(["a", "b"]), subject=np.array(["", ""]))
    with pytest.raises(DatasetError, match="not a readable .npz archive"):
        npz.load(str(tmp_path))


def test_empty_folder(tmp_path):
    assert not npz.sniff(tmp_path)
    with pytest.raises(DatasetError, match="no .npz archives found"):
        npz.load(str(tmp_path))


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "ckplus48").is_dir(), reason="../shared/data is absent")
def test_real_ckplus48_matches_its_readme():
    data = npz.load(str(SHARED_DATA / "ckplus48"))
    assert len(data) == 981 and len(set(data.subjects)) == 118
    assert data.class_counts() == {"anger": 135, "contempt": 54, "disgust": 177, "fear": 75, "happiness": 207,
                                   "sadness": 84, "surprise": 249}


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "fer2013").is_dir(), reason="../shared/data is absent")
def test_real_fer2013_splits_match_its_readme():
    data = npz.load(str(SHARED_DATA / "fer2013"))
    sizes = {s: int((data.splits == s).sum()) for s in data.split_names}
    assert sizes == {"train": 28709, "public_test": 3589, "private_test": 3589}
    assert data.split("private_test").class_counts()["happiness"] == 879

"""Fuzzing the parsers of untrusted input: whatever bytes registry.yaml or a dataset archive holds, ferbench
either reads it or raises its own clear error (a FerbenchError naming the file), never anything else.

Examples are capped (60 per test) so the module stays a few seconds long on two shared cores;
``FERBENCH_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py`` searches longer. Hypothesis keeps the
failing examples it finds in .hypothesis/ and tries them first next time.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ferbench.data import Dataset
from ferbench.errors import DatasetError, FerbenchError
from ferbench.plugins import PluginManager
from ferbench.registry import Registry, Zoo
from ferbench_datasets import npz
from conftest import ROOT

FAST = settings(max_examples=int(os.environ.get("FERBENCH_FUZZ_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
REGISTRY_TEXT = (ROOT / "registry.yaml").read_text()

# --- registry.yaml ------------------------------------------------------------------------------------

# The registry's own vocabulary, so random structures get past the first checks and into the deep ones.
KEYS = ["version", "methods", "datasets", "protocols", "suites", "plugin", "summary", "components", "defaults",
        "paper", "title", "reported", "dataset", "protocol", "metric", "value", "sd", "split", "loader", "paths",
        "options", "classes", "runs", "method", "seeds", "config", "target", "folds", "timm", "timm:resnet18",
        "datasets", "ferbench", "synthetic", "ferbench-npz", "holdout", "kfold", "accuracy", "epochs", "happy"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**12), st.floats(allow_nan=True),
                    st.sampled_from(KEYS), st.text(max_size=8))
yamlish = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5), st.integers(0, 3)), children, max_size=5)),
    max_leaves=25)


@pytest.fixture(scope="module")
def plugins():
    return PluginManager()


def load_and_validate(tmp_path: Path, text: str | bytes, plugins: PluginManager) -> None:
    path = tmp_path / "registry.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        Zoo(plugins, Registry.load(path))
    except FerbenchError as error:
        assert str(error)  # a message, naming something
    # Any other exception fails the test: that is the property.


@FAST
@given(document=yamlish)
@example(document={"version": 1, "methods": ["a"], "datasets": 3, "suites": {"s": {"runs": 7}}})
@example(document={"version": 1, "datasets": {"d": {"plugin": "datasets", "loader": "ferbench-npz", "classes": [1]}}})
@example(document={"version": 1, "methods": {"timm:resnet18": {"plugin": "timm", "paper": {"title": "t", "reported": 5}}}})
def test_random_structures_load_or_raise_a_config_error(tmp_path, plugins, document):
    load_and_validate(tmp_path, yaml.safe_dump(document, allow_unicode=True), plugins)


def mutate(text: str, data) -> str:
    """Delete, duplicate, or insert YAML-significant characters at random places."""
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        kind = data.draw(st.sampled_from(["delete", "duplicate", "insert"]))
        if kind == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 40)):]
        elif kind == "duplicate":
            end = min(len(text), at + data.draw(st.integers(1, 200)))
            text = text[:end] + text[at:end] + text[end:]
        else:
            text = text[:at] + data.draw(st.text(alphabet=":-[]{}!&*|>\t'\"#\n ,?%@`0x", min_size=1, max_size=4)) + text[at:]
    return text


@FAST
@given(data=st.data())
def test_mutations_of_the_real_registry_load_or_raise_a_config_error(tmp_path, plugins, data):
    load_and_validate(tmp_path, mutate(REGISTRY_TEXT, data), plugins)


@FAST
@given(raw=st.binary(max_size=300))
@example(raw=b"\xff\xfe\x00")
@example(raw=b"[" * 500 + b"]" * 500)  # deeper than Python's recursion limit
@example(raw=b"? [a, b]\n: 1\n")
@example(raw=b"a: &x [*x]\n")
@example(raw=b"version: !!python/name:os.system\n")
def test_random_bytes_load_or_raise_a_config_error(tmp_path, plugins, raw):
    load_and_validate(tmp_path, raw, plugins)


# --- the ferbench .npz dataset loader -----------------------------------------------------------------

def valid_archive(n: int = 6) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.arange(n * 16, dtype=np.uint8).reshape(n, 4, 4),
                        labels=np.arange(n) % 2, classes=np.array(["happy", "sad"]), split=np.full(n, "train"),
                        subject=np.array([f"s{i}" for i in range(n)]))
    return buffer.getvalue()


VALID = valid_archive()


def load_or_dataset_error(folder: Path) -> None:
    assert npz.sniff(folder) in (True, False)  # sniffing never raises either
    try:
        data = npz.load(str(folder))
    except DatasetError as error:
        assert str(error)
        return
    assert isinstance(data, Dataset)


@FAST
@given(raw=st.binary(max_size=2000))
@example(raw=b"PK\x03\x04")
@example(raw=b"\x93NUMPY\x01\x00")
@example(raw=VALID[: len(VALID) // 2])
def test_random_bytes_are_a_dataset_error(tmp_path, raw):
    (tmp_path / "a.npz").write_bytes(raw)
    load_or_dataset_error(tmp_path)


@FAST
@given(cut=st.integers(0, len(VALID) - 1), flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1),
                                                                     st.integers(1, 255)), max_size=3))
def test_truncated_and_bit_flipped_archives_are_a_dataset_error(tmp_path, cut, flips):
    raw = bytearray(VALID)
    for position, mask in flips:
        raw[position] ^= mask
    (tmp_path / "a.npz").write_bytes(bytes(raw) if flips and cut % 2 else bytes(raw[:cut]))
    load_or_dataset_error(tmp_path)


any_array = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), hnp.unicode_string_dtypes(max_len=6), hnp.byte_string_dtypes(max_len=6)),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
good_column = {
    "images": hnp.arrays(np.uint8, st.sampled_from([(3, 4, 4), (3, 4, 4, 3), (3, 0, 4), (3, 4, 4, 4)])),
    "labels": hnp.arrays(st.sampled_from([np.int64, np.int8, np.float32]), 3, elements=st.integers(-1, 3)),
    "classes": st.sampled_from([np.array(["happy", "sad"]), np.array(["happy", "bored"]), np.array([], dtype=str),
                                np.array([b"happy", b"\xff"]), np.array([1, 2])]),
    "split": st.just(np.array(["train", "test", "train"])),
    "subject": st.just(np.array(["a", "b", "c"])),
}


@FAST
@given(data=st.data())
def test_random_arrays_load_or_raise_a_dataset_error(tmp_path, data):
    arrays = {}
    for key, strategy in good_column.items():
        choice = data.draw(st.sampled_from(["good", "random", "missing"] if key != "images" else ["good", "random"]))
        if choice != "missing":
            arrays[key] = data.draw(strategy if choice == "good" else any_array)
    np.savez(tmp_path / "a.npz", **arrays)
    load_or_dataset_error(tmp_path)


def test_a_header_that_claims_far_more_data_than_the_archive_holds_is_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                   "shape": (10**7, 1000, 1000)})  # 10 TB of images
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as archive:
        archive.writestr("images.npy", header.getvalue() + b"\0" * 64)  # the header writer writes the magic too
        for key, value in {"labels": np.zeros(1, int), "classes": np.array(["happy"]), "split": np.array(["a"]),
                           "subject": np.array(["a"])}.items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(DatasetError, match=r"a.npz: images claims uint8 \(10000000, 1000, 1000\) .* but holds 64 bytes"):
        npz.load(str(tmp_path))


# --- result records, as the leaderboard reads them ------------------------------------------------------

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
                           lambda children: st.one_of(st.lists(children, max_size=3),
                                                      st.dictionaries(st.text(max_size=5), children, max_size=3)),
                           max_leaves=10)


@FAST
@given(data=st.data())
def test_the_leaderboard_reads_any_result_file_without_crashing(tmp_path, data):
    import json

    from ferbench.leaderboard import write_leaderboard
    from test_leaderboard import result

    record = result()
    for _ in range(data.draw(st.integers(1, 4))):
        key = data.draw(st.sampled_from(sorted(record)))
        target = record[key] if isinstance(record[key], dict) and record[key] and data.draw(st.booleans()) else record
        inner = data.draw(st.sampled_from(sorted(target))) if target is not record else key
        if data.draw(st.booleans()):
            target[inner] = data.draw(json_values)
        else:
            del target[inner]
    (tmp_path / "r.json").write_text(json.dumps(record))
    table, skipped, path = write_leaderboard(tmp_path, [])
    assert path.is_file()

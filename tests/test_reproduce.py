"""Provenance: data fingerprints, the command line and the commit in every record, the dirty-tree refusal,
and ``ferbench reproduce`` re-running a record and comparing it with the original."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from ferbench import results
from ferbench.cli import app
from ferbench.data import Dataset
from ferbench.errors import ConfigError
from ferbench.reproduce import compare, run_folder

runner = CliRunner()


@pytest.fixture
def cli(test_plugins, write_registry, monkeypatch):
    monkeypatch.setenv("FERBENCH_REGISTRY", str(write_registry({"version": 1})))
    # The re-run is a child process: it must find the test plugins' modules too.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT / "tests"), str(ROOT / "examples" / "ferbench-example-plugin"), os.environ.get("PYTHONPATH", "")]))

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def tiny_run(cli, out):
    done = cli("run", "--method", "example-tinycnn", "--dataset", "squares", "--epochs", "2", "--batch-size", "8",
               "--set", "lr=0.01", "--device", "cpu", "--threads", "1", "--out", out)
    assert done.exit_code == 0, done.output
    (record_path,) = out.rglob("result-test.json")
    return record_path, json.loads(record_path.read_text())


def test_a_record_carries_data_fingerprints_and_its_command_line(cli, tmp_path, squares):
    _, record = tiny_run(cli, tmp_path / "results")
    fingerprints = record["data"]["fingerprints"]
    assert all(len(fingerprints[key]) == 64 for key in ("train", "scored"))
    assert fingerprints["train"] != fingerprints["scored"]
    assert record["command"]["line"].startswith("ferbench")  # then pytest's own arguments, if any
    assert set(record["git"]) >= {"commit", "dirty"}


def test_reproduce_repeats_a_cpu_run_exactly_and_flags_a_difference(cli, tmp_path):
    record_path, record = tiny_run(cli, tmp_path / "results")
    done = cli("reproduce", record_path, "--out", tmp_path / "again")
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "again" / "reproduction.json").read_text())
    assert report["ok"] and report["tolerance_points"] == 0
    assert {row["metric"] for row in report["rows"]} == {"accuracy", "macro_f1"}
    assert all(row["delta"] == 0 and row["same_data"] for row in report["rows"])
    assert "--threads" in report["command"] and "--no-save-model" in report["command"]

    # An original that says something else is not reproduced: exit 1, the row marked.
    record["metrics"]["accuracy"] += 0.05
    record_path.write_text(json.dumps(record))
    differs = cli("reproduce", record_path.parent.parent, "--out", tmp_path / "third")
    assert differs.exit_code == 1 and "differs" in differs.output
    # ... unless the tolerance allows it (5 points, as given).
    allowed = cli("reproduce", record_path, "--out", tmp_path / "fourth", "--tolerance", "5.1")
    assert allowed.exit_code == 0, allowed.output


def test_rows_compare_the_data_too():
    original = {("f", "test"): {"metrics": {"accuracy": 0.5, "macro_f1": 0.4},
                                "data": {"fingerprints": {"train": "a", "scored": "b"}}}}
    same = {("f", "test"): {"metrics": {"accuracy": 0.5, "macro_f1": 0.4},
                            "data": {"fingerprints": {"train": "a", "scored": "c"}}}}
    assert not any(row["ok"] for row in compare(original, same, tolerance=1.0))  # equal numbers, other data
    assert not any(row["ok"] for row in compare(original, {}, tolerance=1.0))  # the fold is missing


def test_a_path_that_is_no_run_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path)):
        run_folder(tmp_path)


def test_a_dirty_checkout_is_refused_unless_allowed(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("FERBENCH_ALLOW_DIRTY")
    dirty = {"commit": "0123456789abcdef", "dirty": True, "changed": ["ferbench/training.py"]}
    monkeypatch.setattr(results, "git_info", lambda: dict(dirty))
    with pytest.raises(ConfigError, match=r"uncommitted changes .*ferbench/training\.py.*--allow-dirty"):
        cli("run", "--method", "example-tinycnn", "--dataset", "squares", "--epochs", "1", "--out", tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before anything was written
    done = cli("run", "--method", "example-tinycnn", "--dataset", "squares", "--epochs", "1", "--batch-size", "8",
               "--device", "cpu", "--out", tmp_path / "r", "--allow-dirty")
    assert done.exit_code == 0, done.output


def test_a_copied_tree_without_git_records_the_commit_it_was_given_and_says_so(monkeypatch):
    def no_git(*args, **kwargs):
        raise OSError("git: not found")
    monkeypatch.setattr(results.subprocess, "run", no_git)
    monkeypatch.delenv("FERBENCH_SOURCE_COMMIT", raising=False)
    assert results.git_info() == {"commit": None, "dirty": None}
    monkeypatch.setenv("FERBENCH_SOURCE_COMMIT", "0123456789abcdef")
    assert results.git_info() == {"commit": "0123456789abcdef", "dirty": None, "commit_from": "FERBENCH_SOURCE_COMMIT"}


def test_dataset_fingerprint_changes_with_any_pixel_label_or_class_order(squares):
    data: Dataset = squares(per_class=4, size=8)
    assert data.fingerprint() == squares(per_class=4, size=8).fingerprint()
    images = data.images.copy()
    images[0, 0, 0] ^= 1
    labels = data.labels.copy()
    labels[0] = (labels[0] + 1) % len(data.classes)
    assert replace(data, images=images).fingerprint() != data.fingerprint()
    assert replace(data, labels=labels).fingerprint() != data.fingerprint()
    assert replace(data, classes=tuple(reversed(data.classes))).fingerprint() != data.fingerprint()

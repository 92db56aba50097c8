"""ferbench robustness: a record per model and split, restartable per corruption, bad input refused first."""

import json
from pathlib import Path

import numpy as np
import pytest

from ferbench import robustness
from ferbench.errors import ConfigError
from ferbench.robustness import ROBUSTNESS_SCHEMA, command, summarise
from ferbench.runner import RunRequest, run

TINY = {"epochs": 2, "batch_size": 8, "lr": 0.01}


@pytest.fixture
def saved_model(zoo, tmp_path):
    (record,) = run(zoo, RunRequest(method="example-tinycnn", dataset="squares", config=dict(TINY),
                                    out_dir=tmp_path / "runs", device="cpu"))
    return Path(record["_path"]).parent / "model"


def pass_(zoo, model, tmp_path, console, **kwargs):
    options = {"model_path": model, "dataset_name": "squares", "split": None, "corruption_names": ["dark", "shift"],
               "severities": [1, 3], "device": "cpu", "out_dir": tmp_path / "robust", "batch_size": 64,
               "tta": None, "seed": 0, "resume": None, "console": console, **kwargs}
    return command(zoo, **options)


def test_a_pass_writes_a_record_with_every_cell_a_summary_and_a_heat_map(zoo, saved_model, tmp_path):
    from rich.console import Console

    record = pass_(zoo, saved_model, tmp_path, Console(file=open(tmp_path / "log", "w")))
    on_disk = json.loads(Path(record["_path"]).read_text())
    assert on_disk["schema"] == ROBUSTNESS_SCHEMA and on_disk["split"] == "test" and on_disk["images"] == 9
    assert [(c["corruption"], c["severity"]) for c in on_disk["cells"]] == [("dark", 1), ("dark", 3),
                                                                              ("shift", 1), ("shift", 3)]
    assert {"accuracy", "macro_f1", "per_class_tpr", "ece"} <= set(on_disk["cells"][0])
    summary = on_disk["summary"]
    assert summary["mean_accuracy"] == pytest.approx(np.mean([c["accuracy"] for c in on_disk["cells"]]))
    assert summary["mean_drop"] == pytest.approx(on_disk["clean"]["accuracy"] - summary["mean_accuracy"])
    assert summary["worst_corruption"]["name"] in ("dark", "shift") and summary["corruption_error"] is None
    folder = Path(record["_path"]).parent
    assert (folder / on_disk["artifacts"]["heatmap_png"]).read_bytes()[:4] == b"\x89PNG"
    assert not (folder / "partial").exists()  # the pass finished: nothing left to resume


@pytest.mark.parametrize("kwargs, message", [
    ({"corruption_names": ["gaussian_nosie"]}, "unknown corruption 'gaussian_nosie' in --corruption; did you mean 'gaussian_noise'"),
    ({"severities": [0]}, "--severity must be an integer from 1 to 5, got 0"),
    ({"severities": [6]}, "--severity must be an integer from 1 to 5, got 6"),
])
def test_a_bad_corruption_or_severity_is_refused_before_any_work(zoo, tmp_path, monkeypatch, kwargs, message):
    from rich.console import Console

    monkeypatch.setattr("ferbench.checkpoint.load_model", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        pass_(zoo, tmp_path / "no-model", tmp_path, Console(), **kwargs)
    assert not (tmp_path / "robust").exists()


def test_an_interrupted_pass_resumes_with_the_corruptions_it_finished(zoo, saved_model, tmp_path, monkeypatch):
    from rich.console import Console

    calls, interrupted = [], []
    real = robustness.corrupt

    def flaky(spec, images, severity, seed=0):
        calls.append(spec.name)
        if spec.name == "shift" and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return real(spec, images, severity, seed)

    monkeypatch.setattr(robustness, "corrupt", flaky)
    console = Console(file=open(tmp_path / "log", "w"))
    with pytest.raises(KeyboardInterrupt):
        pass_(zoo, saved_model, tmp_path, console)
    (run_dir,) = (tmp_path / "robust").iterdir()
    assert (run_dir / "partial" / "robustness" / "dark.json").is_file()
    calls.clear()
    record = pass_(zoo, None, tmp_path, console, dataset_name=None, resume=run_dir)
    assert "dark" not in calls and calls.count("shift") == 2  # only the unfinished corruption is scored again
    assert len(record["cells"]) == 4 and Path(record["_path"]).parent == run_dir
    with pytest.raises(ConfigError, match="no unfinished robustness pass"):
        pass_(zoo, None, tmp_path, console, dataset_name=None, resume=run_dir)


def test_corruption_error_is_normalised_to_the_reference():
    clean = {"accuracy": 0.9}
    cells = [{"corruption": "dark", "family": "lighting", "severity": s, "accuracy": a} for s, a in ((1, 0.8), (2, 0.6))]
    reference = {"method": "ref", "clean": {"accuracy": 0.8},
                 "cells": [{"corruption": "dark", "severity": s, "accuracy": a} for s, a in ((1, 0.6), (2, 0.4))]}
    error = summarise(clean, cells, reference, "ref.json")["corruption_error"]
    assert error["mce"] == pytest.approx((0.2 + 0.4) / (0.4 + 0.6))
    assert error["relative_mce"] == pytest.approx((0.1 + 0.3) / (0.2 + 0.4))
    assert summarise(clean, cells, reference)["drop_at_severity_3"] is None


def test_run_with_robustness_ends_with_a_pass_on_each_test_split(zoo, tmp_path):
    (record,) = run(zoo, RunRequest(method="example-tinycnn", dataset="squares", config=dict(TINY),
                                    out_dir=tmp_path, device="cpu", robustness=True))
    path = Path(record["_path"]).parent / "robustness-test.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["fold"] == "holdout" and len(on_disk["cells"]) == 16 * 5
    assert on_disk["clean"]["accuracy"] == pytest.approx(record["metrics"]["accuracy"])


def test_the_leaderboard_has_robustness_and_calibration_sections(zoo, tmp_path):
    from ferbench.leaderboard import write_leaderboard

    run(zoo, RunRequest(method="example-tinycnn", dataset="squares", config={**TINY, "erasing": 0.5},
                        out_dir=tmp_path, device="cpu", robustness=True, validation=0.25))
    _, _, path = write_leaderboard(tmp_path, [])
    text = path.read_text()
    cells = lambda section: [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines()  # noqa: E731
                             if line.startswith("| example-tinycnn")]
    (robust,) = cells(text.split("## Robustness")[1].split("## Calibration")[0])
    assert robust[:3] == ["example-tinycnn", "squares [test], holdout", "erasing 0.5"]
    calibration = text.split("## Calibration")[1]
    (row,) = cells(calibration)
    assert row[:2] == ["example-tinycnn", "squares [test]"] and row[8] != "-"  # a fitted temperature


def test_the_leaderboard_normalises_to_the_reference_the_registry_names_now(zoo, saved_model, tmp_path, write_registry):
    from rich.console import Console

    from ferbench.leaderboard import robustness_section
    from ferbench.registry import Registry
    from ferbench.robustness import load_records

    record = pass_(zoo, saved_model, tmp_path, Console(file=open(tmp_path / "log", "w")))
    assert record["summary"]["corruption_error"] is None  # no reference named when it was written
    registry = Registry.load(write_registry({"version": 1, "robustness_references": {
        "squares": str(Path(record["_path"]).relative_to(tmp_path))}}))
    section = robustness_section(load_records(tmp_path / "robust"), tmp_path / "robust", registry)
    row = [line for line in section.splitlines() if line.startswith("| example-tinycnn")][0]
    assert [c.strip() for c in row.split("|")[1:-1]][11] == "100.0"  # the reference against itself
    with pytest.raises(ConfigError, match="robustness_references.squares: cannot read"):
        robustness_section(load_records(tmp_path / "robust"), tmp_path / "robust",
                           Registry.load(write_registry({"version": 1, "robustness_references": {"squares": "gone.json"}})))


def test_a_broken_robustness_record_is_left_out_of_the_leaderboard(tmp_path):
    from ferbench.robustness import load_records

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "robustness.json").write_text(json.dumps({"schema": ROBUSTNESS_SCHEMA, "summary": {}}))
    (tmp_path / "a" / "robustness-test.json").write_text("{not json")
    assert load_records(tmp_path) == []

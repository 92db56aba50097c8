"""Leaderboard aggregation on hand-made result files: mean ± SD, paper numbers, skipped files."""

import json
import statistics

from ferbench.leaderboard import build, mean_sd, write_leaderboard
from ferbench.results import RESULT_SCHEMA

PAPER = [{"method": "m1", "dataset": "d1", "protocol": "kfold", "metric": "accuracy", "value": 90.0, "paper": "P"},
         {"method": "m9", "dataset": "d1", "protocol": "kfold", "metric": "accuracy", "value": 80.0, "paper": "Q"}]


def result(method="m1", dataset="d1", protocol="kfold", fold="fold-01", seed=0, accuracy=0.9, macro_f1=0.8,
           device="cpu", status="ok", config=None):
    return {"schema": RESULT_SCHEMA, "run_id": f"r-{seed}", "created": "2026-11-22T00:00:00+00:00",
            "method": method, "components": {}, "dataset": dataset, "train_dataset": dataset, "protocol": protocol,
            "fold": fold, "test_split": "test", "seed": seed, "config": config or {"epochs": 5}, "data": {},
            "metrics": {"accuracy": accuracy, "macro_f1": macro_f1}, "timings": {}, "environment": {},
            "device": {"type": "cuda", "name": "NVIDIA H100"} if device != "cpu" else {"type": "cpu"},
            "git": {}, "status": status}


def write(tmp_path, name, record):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record if isinstance(record, str) else json.dumps(record))


def test_mean_and_sample_sd_over_folds_and_seeds(tmp_path):
    accuracies = [0.91, 0.93, 0.88, 0.95]
    for i, acc in enumerate(accuracies):
        write(tmp_path, f"run{i}/fold/result.json", result(fold=f"fold-0{i % 2}", seed=i // 2, accuracy=acc))
    board = build(tmp_path, PAPER)
    table, skipped = board.table, board.skipped
    row = table.iloc[0]
    values = [100 * a for a in accuracies]
    assert row["Accuracy %"] == f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
    assert row["Runs"] == 4 and row["Paper %"] == "90.00"
    assert row["Δ vs paper"] == f"{statistics.mean(values) - 90:+.2f}"
    assert skipped == []


def test_runs_of_other_settings_get_rows_of_their_own(tmp_path):
    write(tmp_path, "a.json", result(accuracy=0.5, config={"epochs": 5, "eval_every": 0}))
    write(tmp_path, "b.json", result(accuracy=0.7, fold="fold-02", config={"epochs": 5, "eval_every": 1}))
    write(tmp_path, "c.json", result(accuracy=0.6, config={"epochs": 7}))
    write(tmp_path, "d.json", result(accuracy=0.6, config={"epochs": 5, "data_options": {"limit": 100}}))
    table = build(tmp_path, PAPER).table
    rows = table[table["Method"] == "m1"]
    assert len(rows) == 3 and len(set(rows["Setting"])) == 3  # evaluating more often is the same setting
    assert sorted(rows["Runs"]) == [1, 1, 2]


def test_another_network_validation_share_or_precision_is_another_setting(tmp_path):
    """The same config with another component, a validation split carved off, or bf16 autocast trains
    another model: each gets a row of its own, never averaged with the plain run."""
    variants = {"plain": {}, "network": {"components": {"classifier": "timm:vgg19_bn"}},
                "validation": {"validation": 0.1},
                "bf16": {"device": {"type": "cpu", "precision": {"autocast": "bf16"}}}}
    for name, change in variants.items():
        write(tmp_path, f"{name}.json", {**result(), **change})
    table = build(tmp_path, PAPER).table
    rows = table[table["Method"] == "m1"]
    assert len(rows) == 4 and len(set(rows["Setting"])) == 4 and set(rows["Runs"]) == {1}


def test_groups_by_device_and_shows_unreproduced_paper_numbers(tmp_path):
    write(tmp_path, "a.json", result(accuracy=0.5))
    write(tmp_path, "b.json", result(accuracy=0.7, device="gpu"))
    table = build(tmp_path, PAPER).table
    assert sorted(table["Device"]) == ["-", "NVIDIA H100", "cpu"]
    missing = table[table["Method"] == "m9"].iloc[0]
    assert missing["Accuracy %"] == "not run" and missing["Runs"] == 0 and missing["Paper %"] == "80.00"


def test_corrupt_foreign_and_failed_files_are_skipped_and_named(tmp_path):
    write(tmp_path, "good.json", result())
    write(tmp_path, "truncated.json", json.dumps(result())[:50])
    write(tmp_path, "old.json", {**result(), "metrics": {}})
    write(tmp_path, "bench/b.json", {"schema": "ferbench.bench/1"})
    write(tmp_path, "failed.json", {**result(status="failed", accuracy=0.0), "error": {"message": "diverged"}})
    board = build(tmp_path, [])
    table, skipped = board.table, board.skipped
    assert len(table) == 1 and table.iloc[0]["Runs"] == 1
    reasons = {path.name: reason for path, reason in skipped}
    assert set(reasons) == {"truncated.json", "old.json"}
    assert reasons["truncated.json"].startswith("unreadable") and "metrics.accuracy" in reasons["old.json"]


def test_write_leaderboard_markdown(tmp_path):
    write(tmp_path, "a.json", result())
    _, _, path = write_leaderboard(tmp_path, PAPER)
    text = path.read_text()
    assert path.name == "LEADERBOARD.md" and "| m1 " in text and "90.00" in text and "not run" in text


def test_mean_sd_formats():
    import pandas as pd

    assert mean_sd(pd.Series([], dtype=float)) == "-"
    assert mean_sd(pd.Series([50.0])) == "50.00"
    assert mean_sd(pd.Series([50.0, 52.0])) == "51.00 ± 1.41"


def test_training_seconds_and_the_time_to_accuracy_curve_sit_beside_accuracy(tmp_path):
    timed = result(method="m5")
    timed["extra"] = {"history": [{"epoch": 1, "train_seconds": 60.0}, {"epoch": 2, "train_seconds": 130.0}]}
    timed["time_to_accuracy"] = [{"epoch": 1, "train_seconds": 60.0, "accuracy": 0.5},
                                 {"epoch": 2, "train_seconds": 130.0, "accuracy": 0.625}]
    write(tmp_path, "timed/fold/result.json", timed)
    untimed = result(method="m6")
    untimed["timings"] = {"fit_s": 42.0}  # no history: the fit time stands in
    write(tmp_path, "untimed/fold/result.json", untimed)
    table = build(tmp_path, []).table
    rows = {row["Method"]: row for _, row in table.iterrows()}
    assert rows["m5"]["Train s"] == "130" and rows["m5"]["Time to accuracy"] == "50.0@60s, 62.5@130s"
    assert rows["m5"]["Epochs"] == "2" and rows["m6"]["Epochs"] == "5"  # trained (time budget), else configured
    assert rows["m6"]["Train s"] == "42" and rows["m6"]["Time to accuracy"] == "-"

"""The command line, through typer's test runner and, for the real entry point, a subprocess."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ferbench.cli import app, parse_value
from conftest import ROOT

runner = CliRunner()


@pytest.fixture
def cli(test_plugins, write_registry, monkeypatch):
    monkeypatch.setenv("FERBENCH_REGISTRY", str(write_registry({"version": 1})))

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("1e-3") == 0.001 and parse_value("True") is True
    assert parse_value("none") is None and parse_value("timm:resnet18") == "timm:resnet18"


def test_list_and_plugins(cli):
    listing = cli("list")
    assert listing.exit_code == 0
    for name in ("example-tinycnn", "squares", "holdout", "image-kfold", "timm:<name>"):
        assert name in listing.output
    plugins = cli("plugins")
    assert plugins.exit_code == 0 and "ferbench_example" in plugins.output and "squares" in plugins.output


def test_run_leaderboard_and_eval(cli, tmp_path):
    out = tmp_path / "results"
    done = cli("run", "--method", "example-tinycnn", "--dataset", "squares", "--epochs", "2", "--batch-size", "8",
               "--set", "lr=0.01", "--seed", "0", "--seed", "1", "--device", "cpu", "--out", out)
    assert done.exit_code == 0, done.output
    assert "accuracy" in done.output and "TPR" in done.output
    results = sorted(out.rglob("result-test.json"))
    assert len(results) == 2
    board = cli("leaderboard", "--results", out)
    assert board.exit_code == 0
    markdown = (out / "LEADERBOARD.md").read_text()
    assert "| example-tinycnn | squares" in markdown and "| 2 " in markdown
    assert "## Squares\n\n2 squares result(s)." in markdown  # a plugin's own leaderboard section
    model = results[0].parent / "model"
    evaluated = cli("eval", "--model", model, "--dataset", "squares-rgb", "--device", "cpu", "--out", out)
    assert evaluated.exit_code == 0, evaluated.output
    assert "trained on squares" in evaluated.output


def test_errors_are_one_clear_line_and_exit_2(test_plugins, write_registry, tmp_path):
    env = {**os.environ, "FERBENCH_REGISTRY": str(write_registry({"version": 1})), "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "examples" / "ferbench-example-plugin")])}
    done = subprocess.run([sys.executable, "-m", "ferbench.cli", "run", "--method", "example-tinycnn", "--dataset",
                           "squares", "--epochs", "-1", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "error: epochs must be a positive integer, got -1" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.json"))


def test_bad_set_syntax(cli, tmp_path):
    with pytest.raises(Exception, match="--set takes KEY=VALUE"):
        cli("run", "--method", "example-tinycnn", "--dataset", "squares", "--set", "epochs", "--out", tmp_path)


def test_data_options_reach_the_loader_and_unknown_ones_are_named(cli, tmp_path):
    done = cli("run", "--method", "example-tinycnn", "--dataset", "squares", "--epochs", "1", "--data-option",
               "per_class=20", "--device", "cpu", "--out", tmp_path)
    assert done.exit_code == 0, done.output
    (result,) = tmp_path.rglob("result-test.json")
    record = json.loads(result.read_text())
    assert record["data"]["test_images"] == 15 and record["config"]["data_options"] == {"per_class": 20}
    with pytest.raises(Exception, match="unknown option of dataset loader 'squares' 'perclass'; did you mean 'per_class'"):
        cli("run", "--method", "example-tinycnn", "--dataset", "squares", "--data-option", "perclass=20", "--out", tmp_path)


def test_plugins_can_add_commands(test_plugins, write_registry):
    env = {**os.environ, "FERBENCH_REGISTRY": str(write_registry({"version": 1})),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "examples" / "ferbench-example-plugin")])}
    done = subprocess.run([sys.executable, "-m", "ferbench.cli", "squares-count", "--per-class", "2"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "squares: 6 images"


def test_suite_list_and_index(cli, write_registry, monkeypatch, tmp_path):
    registry = write_registry({"version": 1, "suites": {"pair": {"runs": [
        {"method": "example-tinycnn", "dataset": "squares", "seeds": [0, 1], "config": {"epochs": 1}},
        {"method": "example-tinycnn", "dataset": "squares-rgb", "config": {"epochs": 1}}]}}}, name="suite.yaml")
    monkeypatch.setenv("FERBENCH_REGISTRY", str(registry))
    listing = cli("run", "--suite", "pair", "--list")
    assert listing.output.splitlines() == ["0\texample-tinycnn on squares, default protocol, seed 0",
                                           "1\texample-tinycnn on squares, default protocol, seed 1",
                                           "2\texample-tinycnn on squares-rgb, default protocol, seed 0"]
    done = cli("run", "--suite", "pair", "--index", "2", "--device", "cpu", "--out", tmp_path)
    assert done.exit_code == 0, done.output
    (result,) = tmp_path.rglob("result-test.json")
    assert json.loads(result.read_text())["dataset"] == "squares-rgb"
    with pytest.raises(Exception, match="--index 3: suite 'pair' has runs 0..2"):
        cli("run", "--suite", "pair", "--index", "3")


def test_bench_command_writes_a_record(cli, tmp_path):
    done = cli("bench", "--model", "example-tinycnn", "--device", "cpu", "--batch-size", "2", "--image-size", "16",
               "--mode", "eager-fp32", "--phase", "inference", "--reps", "1", "--warmup", "0", "--out", tmp_path)
    assert done.exit_code == 0, done.output
    (record,) = tmp_path.glob("*.json")
    data = json.loads(record.read_text())
    assert data["rows"][0]["model"] == "example-tinycnn" and data["rows"][0]["images_per_s"] > 0
    assert data["peak_source"] == "measured matmul"


def test_a_run_logged_to_a_file_writes_one_line_per_epoch(test_plugins, write_registry, tmp_path):
    """`ferbench run ... > log 2>&1`: no progress bars (not a terminal), but one line per epoch."""
    env = {**os.environ, "FERBENCH_REGISTRY": str(write_registry({"version": 1})),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "examples" / "ferbench-example-plugin")])}
    log = tmp_path / "log"
    with log.open("w") as handle:
        done = subprocess.run([sys.executable, "-m", "ferbench.cli", "run", "--method", "example-tinycnn", "--dataset",
                               "squares", "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--out",
                               str(tmp_path / "results")], stdout=handle, stderr=subprocess.STDOUT, env=env,
                              stdin=subprocess.DEVNULL)
    text = log.read_text()
    assert done.returncode == 0, text
    epochs = [line for line in text.splitlines() if line.startswith("holdout epoch ")]
    assert [line.split(",")[0] for line in epochs] == [f"holdout epoch {n}" for n in (1, 2, 3)]
    assert all("loss " in line and "seconds " in line for line in epochs)

"""Fault injection: runs survive faults and bad input, lose no results, and load nothing unsafe.

Each fault is made for real: training processes are stopped with real signals (Ctrl-C, SIGTERM, SIGKILL)
and resumed, two processes write into one results folder at once, a network's loss turns NaN, and
checkpoints, model folders, registries and result files are hand-crafted to attack or confuse the
readers. docs/reliability.md's table lists each fault, what happens, and the test here that shows it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ferbench.checkpoint import TrainingCheckpoint, load_model, load_state_dict, save_model
from ferbench.cli import app
from ferbench.data import InputSpec
from ferbench.divergence import DivergenceGuard
from ferbench.errors import CheckpointError, ConfigError, DatasetError, TrainingDiverged
from ferbench.files import write_json
from ferbench.leaderboard import build, write_leaderboard
from ferbench.plugins import PluginManager
from ferbench.registry import Registry, Zoo
from ferbench.results import claim_run_dir, load_results, validate_result
from ferbench.runner import RunRequest, run
from ferbench.training import SUPERVISED_DEFAULTS, seed_everything, train_classifier
from conftest import EXAMPLE_PLUGIN, ROOT

PLUGINS = "ferbench_example,plugin_fixtures.squares_plugin,plugin_fixtures.faults_plugin"
CONFIG = {"epochs": 4, "batch_size": 8, "lr": 0.01, "drop_rate": 0.3}  # dropout: the global RNG matters too
TRAIN_ARGS = ["--method", "example-tinycnn", "--epochs", "4", "--batch-size", "8", "--lr", "0.01",
              "--set", "drop_rate=0.3", "--seed", "3", "--device", "cpu"]


@pytest.fixture
def faults_zoo(monkeypatch, write_registry):
    monkeypatch.setenv("FERBENCH_PLUGINS", PLUGINS)
    return Zoo(PluginManager(), write_registry({"version": 1}))


@pytest.fixture
def cli(faults_zoo):
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def ferbench_env(registry: Path, **extra: str) -> dict[str, str]:
    paths = [str(ROOT / "tests"), str(EXAMPLE_PLUGIN), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "FERBENCH_REGISTRY": str(registry), "FERBENCH_PLUGINS": PLUGINS,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p), **extra}


def ferbench_process(args: list[str], registry: Path, cwd: Path, **env: str) -> subprocess.Popen:
    # A shell without job control starts background jobs with SIGINT ignored, and children inherit that
    # (so would a CI runner that launches pytest that way): give the child the default disposition, under
    # which Python turns SIGINT into KeyboardInterrupt as in a terminal.
    return subprocess.Popen([sys.executable, "-m", "ferbench.cli", *args], env=ferbench_env(registry, **env),
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def reference_run(zoo, out_dir: Path, **kwargs) -> list[dict]:
    """The same training, uninterrupted, in this process."""
    return run(zoo, RunRequest(method="example-tinycnn", seed=3, config=dict(CONFIG), device="cpu",
                               out_dir=out_dir, **kwargs))


def assert_same_training(run_dir: Path, reference: list[dict]) -> None:
    """Bitwise: the same metrics, the same loss every epoch, the same weights."""
    for expected in reference:
        fold_dir = run_dir / expected["fold"]
        got = json.loads((fold_dir / f"result-{expected['test_split']}.json").read_text())
        assert got["status"] == "ok" and got["metrics"] == expected["metrics"]
        assert [h["loss"] for h in got["extra"]["history"]] == [h["loss"] for h in expected["extra"]["history"]]
        weights = load_file(fold_dir / "model" / "model.safetensors")
        reference_weights = load_file(Path(expected["_path"]).parent / "model" / "model.safetensors")
        assert weights.keys() == reference_weights.keys()
        assert all(torch.equal(weights[k], reference_weights[k]) for k in weights)


# --- resume after Ctrl-C, SIGTERM and SIGKILL --------------------------------------------------------

@pytest.fixture(scope="module")
def stopped_runs(tmp_path_factory):
    """Three real training processes, started together, each stopped right after a checkpoint: Ctrl-C and
    SIGTERM in a 4-epoch holdout run after epoch 2, SIGKILL in a 3-fold run after epoch 1 of fold 2."""
    root = tmp_path_factory.mktemp("stopped")
    registry = root / "registry.yaml"
    registry.write_text("version: 1\n")
    plans = {"SIGINT": (["--dataset", "squares"], "holdout:2"),
             "SIGTERM": (["--dataset", "squares"], "holdout:2"),
             "SIGKILL": (["--dataset", "squares-all", "--folds", "3"], "fold-02:1")}
    started = {}
    for name, (args, pause_at) in plans.items():
        marker = root / f"{name}.paused"
        started[name] = (ferbench_process(["run", *TRAIN_ARGS, *args, "--out", str(root / name)], registry, root,
                                          FERBENCH_TEST_PAUSE=f"{pause_at}:{marker}"), marker)
    stopped = {}
    for name, (process, marker) in started.items():
        deadline = time.monotonic() + 240
        while not marker.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the {name} run never reached its pause point:\n{process.communicate()[1][-3000:]}")
            time.sleep(0.1)
        process.send_signal(getattr(signal, name))
        stdout, stderr = process.communicate(timeout=120)
        (run_dir,) = (root / name).iterdir()
        stopped[name] = SimpleNamespace(returncode=process.returncode, stdout=stdout, stderr=stderr, run_dir=run_dir)
    return stopped


@pytest.mark.parametrize("name, exit_code, how", [("SIGINT", 130, "Ctrl-C (SIGINT)"), ("SIGTERM", 143, "SIGTERM")])
def test_ctrl_c_and_sigterm_stop_cleanly_then_resume_to_the_same_numbers(stopped_runs, cli, faults_zoo, tmp_path,
                                                                        name, exit_code, how):
    stopped = stopped_runs[name]
    checkpoint = stopped.run_dir / "holdout" / "checkpoint.pt"
    assert stopped.returncode == exit_code, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert f"interrupted: stopped by {how}" in stopped.stderr
    assert f"last checkpoint: {checkpoint} (after epoch 2)" in stopped.stderr
    assert f"resume with: FERBENCH_PLUGINS={PLUGINS} ferbench run --resume {stopped.run_dir}" in stopped.stderr
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2
    assert not list(stopped.run_dir.rglob("result-*.json")) and not list(stopped.run_dir.rglob("*.tmp"))

    resumed = cli("run", "--resume", stopped.run_dir)
    assert resumed.exit_code == 0, resumed.output
    assert_same_training(stopped.run_dir, reference_run(faults_zoo, tmp_path, dataset="squares"))
    record = json.loads((stopped.run_dir / "holdout" / "result-test.json").read_text())
    assert record["timings"]["resumed_after_epoch"] == 2 and not checkpoint.exists()
    assert record["command"]["argv"][1:4] == ["run", "--method", "example-tinycnn"]  # how to rerun it
    assert len(record["command"]["resumed_by"]) == 1  # (resumed in this process: its argv is pytest's)


def test_sigkill_mid_kfold_resumes_the_killed_fold_and_keeps_the_finished_one(stopped_runs, cli, faults_zoo, tmp_path):
    stopped = stopped_runs["SIGKILL"]
    assert stopped.returncode == -signal.SIGKILL
    finished = stopped.run_dir / "fold-01" / "result-test.json"
    before = finished.read_bytes()
    assert json.loads(before)["status"] == "ok"
    assert torch.load(stopped.run_dir / "fold-02" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (stopped.run_dir / "fold-03").exists()

    resumed = cli("run", "--resume", stopped.run_dir)
    assert resumed.exit_code == 0, resumed.output
    assert "fold-01: finished before the interruption; kept" in resumed.output
    assert finished.read_bytes() == before
    assert_same_training(stopped.run_dir, reference_run(faults_zoo, tmp_path, dataset="squares-all", folds=3))
    timings = json.loads((stopped.run_dir / "fold-02" / "result-test.json").read_text())["timings"]
    assert timings["resumed_after_epoch"] == 1
    assert "resumed_after_epoch" not in json.loads((stopped.run_dir / "fold-03" / "result-test.json").read_text())["timings"]


def test_a_checkpointed_loop_continues_bit_for_bit_whatever_ran_in_between(tmp_path, squares):
    from ferbench_example import TinyCNN

    data = squares()
    spec = InputSpec.fit(data.images, 1, 16)
    config = {**SUPERVISED_DEFAULTS, **CONFIG}
    cpu = torch.device("cpu")

    def fresh_model():
        seed_everything(5)
        return TinyCNN(num_classes=3, in_chans=1, drop_rate=0.3)

    reference_model = fresh_model()
    reference = train_classifier(reference_model, data, spec, config, cpu, seed=5)

    def stop_after_epoch_2(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(fresh_model(), data, spec, config, cpu, seed=5, epoch_end=stop_after_epoch_2,
                         checkpoint=TrainingCheckpoint(tmp_path / "checkpoint.pt"))
    torch.rand(1000), np.random.rand(1000), random.random()  # whatever happened in between
    model = fresh_model()
    resumed = train_classifier(model, data, spec, config, cpu, seed=5,
                               checkpoint=TrainingCheckpoint(tmp_path / "checkpoint.pt"))
    assert [h["loss"] for h in resumed] == [h["loss"] for h in reference]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference_model.state_dict().values()))


def test_resume_refuses_other_settings_and_a_folder_that_is_not_a_run(cli, faults_zoo, tmp_path):
    (record,) = reference_run(faults_zoo, tmp_path, dataset="squares")
    run_dir = Path(record["_path"]).parent.parent
    changed = cli("run", "--resume", run_dir, "--epochs", "5")
    assert isinstance(changed.exception, ConfigError)
    assert "the run was started with config.epochs = 4, this command gives 5" in str(changed.exception)
    other = cli("run", "--resume", run_dir, "--dataset", "squares-rgb")
    assert "the run was started with dataset = 'squares'" in str(other.exception)
    assert "leave out --out" in str(cli("run", "--resume", run_dir, "--out", tmp_path / "elsewhere").exception)
    again = cli("run", "--resume", run_dir)  # a finished run: nothing to do, nothing rewritten
    assert again.exit_code == 0 and "holdout: finished before the interruption; kept" in again.output
    assert "not a ferbench run folder" in str(cli("run", "--resume", tmp_path).exception)


def test_a_damaged_or_malicious_checkpoint_is_refused_by_name(cli, faults_zoo, tmp_path):
    (record,) = reference_run(faults_zoo, tmp_path, dataset="squares")
    fold_dir = Path(record["_path"]).parent
    Path(record["_path"]).unlink()  # as if the run had been killed before its results
    checkpoint = fold_dir / "checkpoint.pt"
    checkpoint.write_bytes(b"PK\x03\x04 truncated by a full disk")
    damaged = cli("run", "--resume", fold_dir.parent)
    assert isinstance(damaged.exception, CheckpointError)
    assert f"cannot resume from {checkpoint}" in str(damaged.exception) and "Delete the file" in str(damaged.exception)
    marker = tmp_path / "pwned"
    torch.save({"format": "ferbench.training-state/1", "epoch": Exploit(marker)}, checkpoint)
    assert isinstance(cli("run", "--resume", fold_dir.parent).exception, CheckpointError)
    assert not marker.exists()


# --- divergence ----------------------------------------------------------------------------------------

def test_a_nan_loss_stops_the_fold_records_the_failure_keeps_the_checkpoint_and_exits_3(cli, tmp_path):
    done = cli("run", "--method", "unstable-tinycnn", "--dataset", "squares", "--epochs", "4", "--batch-size", "8",
               "--device", "cpu", "--out", tmp_path)
    assert done.exit_code == 3, done.output
    assert "training diverged in epoch 2, step 2: the classifier loss became nan" in done.output
    (path,) = tmp_path.rglob("result-test.json")
    record = json.loads(path.read_text())
    assert validate_result(record) == [] and record["status"] == "failed" and record["metrics"] is None
    assert record["error"] | {"message": None} == {
        "type": "diverged", "message": None, "epoch": 2, "step": 2, "component": "classifier loss", "value": "nan",
        "checkpoint_epoch": 1}
    assert f"the last good checkpoint is {path.parent / 'checkpoint.pt'} (after epoch 1)" in record["error"]["message"]
    assert torch.load(path.parent / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (path.parent / "model").exists()  # no garbage model either
    table, skipped, markdown = write_leaderboard(tmp_path, [])
    assert table.empty and skipped == []  # left out of the table, and not an unreadable file either
    assert f"- `{path}`: training diverged in epoch 2, step 2" in markdown.read_text()


def test_exploding_gradients_stop_training_naming_the_step(faults_zoo, tmp_path):
    (record,) = run(faults_zoo, RunRequest(method="example-tinycnn", dataset="squares", device="cpu", out_dir=tmp_path,
                                           config={"epochs": 2, "batch_size": 8, "lr": 1e8}))
    assert record["status"] == "failed" and record["error"]["component"] == "classifier gradient norm"
    assert "above grad_norm_limit 1e+06 (exploding gradients" in record["error"]["message"]
    assert record["error"]["epoch"] == 1 and "no epoch had finished, so there is no checkpoint" in record["error"]["message"]


def test_the_guard_names_the_component_of_a_gan_style_loop():
    generator, discriminator = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
    guard = DivergenceGuard(grad_norm_limit=1e3)
    for step in range(5):
        fake = generator(torch.randn(8, 4))
        loss_g = -discriminator(fake).mean()
        loss_d = discriminator(fake.detach()).mean() * (float("inf") if step == 3 else 1.0)
        for loss, network in ((loss_g, generator), (loss_d, discriminator)):
            network.zero_grad()
            loss.backward(retain_graph=True)
            guard.gradients(step, **{"generator" if network is generator else "discriminator": network})
        guard.loss(step, generator=loss_g, discriminator=loss_d)
    with pytest.raises(TrainingDiverged, match="epoch 7, step 4: the discriminator gradient norm became (nan|inf)") as caught:
        guard.check(epoch=7)
    assert (caught.value.epoch, caught.value.step, caught.value.component) == (7, 4, "discriminator gradient norm")
    guard.check(epoch=8)  # a check covers what was watched since the last one


# --- concurrent writers ----------------------------------------------------------------------------------

def test_two_runs_writing_into_one_results_folder_at_once_both_land_intact(tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text("version: 1\n")
    out = tmp_path / "results"
    args = ["run", "--method", "example-tinycnn", "--dataset", "squares", "--epochs", "2", "--device", "cpu",
            "--out", str(out)]
    processes = [ferbench_process(args, registry, tmp_path) for _ in range(2)]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    records, skipped = load_results(out)
    assert len(records) == 2 and len({r["run_id"] for r in records}) == 2
    assert records[0]["metrics"] == records[1]["metrics"]  # same seed, same numbers
    board = build(out, [])
    table, problems = board.table, board.skipped
    assert table.iloc[0]["Runs"] == 2 and problems == []


def test_a_taken_run_id_is_drawn_again(tmp_path, monkeypatch):
    tokens = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr("ferbench.results.secrets.token_hex", lambda n: next(tokens))
    first, _ = claim_run_dir(tmp_path, "m", "d", "holdout", 0)
    second, _ = claim_run_dir(tmp_path, "m", "d", "holdout", 0)
    assert first.endswith("-aaaa") and second.endswith("-bbbb")


def test_readers_never_see_a_half_written_file(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"n": 0, "payload": "x" * 100_000})
    seen, stop = [], threading.Event()

    def writer(k):
        for i in range(40):
            write_json(path, {"n": k * 1000 + i, "payload": "x" * 100_000})

    def reader():
        while not stop.is_set():
            seen.append(json.loads(path.read_text())["n"])  # raises on a partial file

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert seen and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("content, reason", [
    ('{"schema": "ferbench.result/1", "run_id": ', "unreadable: JSONDecodeError"),
    (b"\xff\xfe\x00garbage", "unreadable: UnicodeDecodeError"),
    ("[" * 100_000 + "]" * 100_000, "unreadable: RecursionError"),
    ('{"hello": "world"}', "not a ferbench result"),
    ("[1, 2, 3]", "not a ferbench result"),
    ({"device": "cpu"}, "device is not an object"),
    ({"metrics": {"accuracy": "high", "macro_f1": 0.5}}, "metrics.accuracy is missing or not a number"),
    ({"seed": "zero"}, "seed is not an integer"),
    ({"config": {"epochs": "many"}}, "config is not an object with integer epochs"),
    ({"status": "running"}, "status is 'running'"),
    ({"status": "failed"}, "a failed result lacks error.message"),
])
def test_the_leaderboard_skips_and_names_corrupt_and_foreign_files(tmp_path, content, reason):
    from test_leaderboard import result

    (tmp_path / "good.json").write_text(json.dumps(result()))
    bad = tmp_path / "run" / "bad.json"
    bad.parent.mkdir()
    if isinstance(content, dict):
        content = json.dumps({**result(), **content})
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    table, skipped, written = write_leaderboard(tmp_path, [])
    assert table.iloc[0]["Runs"] == 1
    assert [(p.name, r.startswith(reason) or reason in r) for p, r in skipped] == [("bad.json", True)]
    assert f"`{bad}`" in written.read_text()


# --- untrusted files -------------------------------------------------------------------------------------

class Exploit:
    """Unpickling this runs a shell command: what a malicious checkpoint would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_code_running_pickle_inside_a_zip_format_pt_is_refused(tmp_path, cli):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"conv.weight": torch.zeros(2), "hook": Exploit(marker)}, evil)  # torch's zip format
    assert evil.read_bytes()[:2] == b"PK"
    with pytest.raises(CheckpointError, match="refused to load .*evil.pt.*could run arbitrary code"):
        load_state_dict(evil)
    started = cli("run", "--method", "example-tinycnn", "--dataset", "squares", "--weights", evil, "--device", "cpu",
                  "--out", tmp_path / "results")
    assert isinstance(started.exception, CheckpointError)  # refused before training: no run folder
    assert not marker.exists() and not (tmp_path / "results").exists()


def lying_safetensors(header: bytes | dict, data: bytes = b"\0" * 16, length: int | None = None) -> bytes:
    header = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(header) if length is None else length) + header + data


@pytest.mark.parametrize("raw", [
    lying_safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, length=2**62),
    lying_safetensors({"w": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4 * 10**9]}}),
    lying_safetensors({"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 16]}}),
    lying_safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}),
    lying_safetensors(b'{"w": {"dtype": '),
    lying_safetensors({"w": {"dtype": "PICKLE", "shape": [4], "data_offsets": [0, 16]}}),
], ids=["header-length", "huge-shape", "shape-vs-offsets", "offsets-past-end", "truncated-json", "unknown-dtype"])
def test_a_safetensors_file_with_a_lying_header_is_refused_by_name(tmp_path, faults_zoo, squares, raw):
    (tmp_path / "w.safetensors").write_bytes(raw)
    with pytest.raises(CheckpointError, match="w.safetensors is not a readable safetensors file"):
        load_state_dict(tmp_path / "w.safetensors")
    model_dir = saved_model(tmp_path / "model", faults_zoo, squares)
    (model_dir / "model.safetensors").write_bytes(raw)
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        load_model(model_dir, faults_zoo.catalog.build)


def saved_model(directory: Path, zoo, squares) -> Path:
    data = squares()
    model = zoo.catalog.build("classifier", "example-tinycnn", num_classes=3, in_chans=1, image_size=16)
    return save_model(directory, model, kind="classifier", component="example-tinycnn",
                      build={"num_classes": 3, "in_chans": 1, "image_size": 16}, classes=data.classes,
                      input_spec=InputSpec.fit(data.images, 1, 16), trained_by={})


@pytest.mark.parametrize("change, message", [
    ({"weights": "../outside.safetensors"}, "weights must name a .safetensors file inside the model folder"),
    ({"weights": "/etc/passwd"}, "weights must name a .safetensors file inside the model folder"),
    ({"weights": "evil.pt"}, "weights must name a .safetensors file"),
    ({"build": {"num_classes": {"__class__": "os.system"}}}, "build must map argument names to plain values"),
    ({"build": {"num_classes": 3, "evil": 1}}, "cannot build 'example-tinycnn'"),
    ({"input": {"in_chans": 1, "image_size": 16, "mean": [0.5], "std": [0.0]}}, "positive std"),
    ({"classes": "happiness"}, "classes must be a non-empty list"),
])
def test_a_model_json_cannot_point_outside_its_folder_or_smuggle_arguments(tmp_path, faults_zoo, squares, cli,
                                                                           change, message):
    model_dir = saved_model(tmp_path / "model", faults_zoo, squares)
    save_file({"w": torch.zeros(1)}, tmp_path / "outside.safetensors")
    record = json.loads((model_dir / "model.json").read_text())
    (model_dir / "model.json").write_text(json.dumps({**record, **change}))
    with pytest.raises(CheckpointError, match=message):
        load_model(model_dir, faults_zoo.catalog.build)
    evaluated = cli("eval", "--model", model_dir, "--dataset", "squares", "--device", "cpu", "--out", tmp_path / "r")
    assert isinstance(evaluated.exception, CheckpointError) and not (tmp_path / "r").exists()


def test_a_weights_link_out_of_the_model_folder_is_refused(tmp_path, faults_zoo, squares):
    model_dir = saved_model(tmp_path / "model", faults_zoo, squares)
    (model_dir / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    (model_dir / "model.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(CheckpointError, match="outside the model folder"):
        load_model(model_dir, faults_zoo.catalog.build)


@pytest.mark.parametrize("tagged", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:os.system ['touch {marker}']",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:ferbench.registry.Registry {{path: x}}",
    "!custom {{a: 1}}",
])
def test_registry_yaml_constructs_no_python_objects(tmp_path, tagged):
    marker = tmp_path / "pwned"
    path = tmp_path / "registry.yaml"
    path.write_text("version: 1\nmethods:\n  m: " + tagged.format(marker=marker) + "\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        Registry.load(path)
    assert not marker.exists()


def test_plugins_that_fail_on_import_or_in_a_hook_do_not_stop_a_run(monkeypatch, write_registry, tmp_path):
    monkeypatch.setenv("FERBENCH_PLUGINS", f"{PLUGINS},plugin_fixtures.broken_import,plugin_fixtures.broken_hooks")
    monkeypatch.setenv("FERBENCH_REGISTRY", str(write_registry({"version": 1})))
    runner = CliRunner()
    with pytest.warns(RuntimeWarning, match="plugin 'plugin_fixtures.broken_hooks': ferbench_epoch_end raised"):
        done = runner.invoke(app, ["run", "--method", "example-tinycnn", "--dataset", "squares", "--epochs", "2",
                                   "--device", "cpu", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "plugin 'plugin_fixtures.broken_import': failed to load: ImportError" in done.output
    assert len(load_results(tmp_path)[0]) == 1
    assert runner.invoke(app, ["plugins"]).exit_code == 0
    manager = PluginManager()  # what `ferbench plugins` shows
    assert manager.plugins["plugin_fixtures.broken_hooks"].source.startswith("named explicitly (FERBENCH_PLUGINS")
    assert "ferbench_register_components raised RuntimeError: component registration exploded" in \
        manager.failures["plugin_fixtures.broken_hooks"][0]


# --- bad input, refused before any training ------------------------------------------------------------

def write_npz(folder: Path, name: str = "data.npz", **overrides) -> Path:
    folder.mkdir(exist_ok=True)
    n = 12
    arrays = {"images": np.zeros((n, 16, 16), np.uint8), "labels": np.arange(n) % 2, "classes": np.array(["happy", "sad"]),
              "split": np.array(["train", "test"] * (n // 2)), "subject": np.array([f"s{i % 4}" for i in range(n)])}
    np.savez(folder / name, **{**arrays, **overrides})
    return folder


@pytest.mark.parametrize("kwargs, error, message", [
    ({"config": {"image_size": 8}}, ConfigError, "--image-size 8: example-tinycnn cannot take 1-channel 8x8 images"),
    ({"data_options": {"size": 8}}, ConfigError, "the dataset's image size 8 (give a larger --image-size): example-tinycnn"),
    ({"method": "timm:vit_tiny_patch16_224", "config": {"image_size": 8}}, ConfigError,
     "--image-size 8: timm:vit_tiny_patch16_224 cannot take"),
    ({"config": {"lr": float("nan")}}, ConfigError, "lr must be a finite non-negative number, got nan"),
    ({"config": {"lr": float("inf")}}, ConfigError, "lr must be a finite non-negative number, got inf"),
    ({"config": {"lr": -0.1}}, ConfigError, "lr must be a finite non-negative number"),
    ({"config": {"epochs": -1}}, ConfigError, "epochs must be a positive integer, got -1"),
    ({"config": {"grad_norm_limit": 0}}, ConfigError, "grad_norm_limit must be a positive number or null"),
    ({"dataset": "squares-all", "folds": 1}, ConfigError, "--folds must be at least 2, got 1"),
    ({"dataset": "squares-all", "folds": 0}, ConfigError, "--folds must be at least 2, got 0"),
    ({"dataset": "squares-all", "only_folds": [0]}, ConfigError, "--fold 0: the protocol has folds 1..10"),
    ({"dataset": "one-class"}, DatasetError, "fewer than two classes"),
    ({"dataset": "{tmp}/nowhere"}, ConfigError, "unknown dataset"),
    ({"dataset": "{tmp}/empty"}, DatasetError, "is not in a dataset format ferbench can read"),
    ({"dataset": "{tmp}/truncated"}, DatasetError, "data.npz: not a readable .npz archive"),
    ({"dataset": "{tmp}/random"}, DatasetError, "data.npz: not a readable .npz archive (not a zip file)"),
    ({"dataset": "{tmp}/labels-out-of-range"}, DatasetError, "data.npz: labels must index into its 2 classes"),
    ({"dataset": "{tmp}/labels-too-few"}, DatasetError, "data.npz: labels has 5 entries for 12 images"),
    ({"dataset": "{tmp}/labels-float"}, DatasetError, "data.npz: labels must be integers, got float64"),
    ({"dataset": "{tmp}/unknown-class"}, DatasetError, "data.npz: class name 'bored' has no canonical equivalent"),
    ({"dataset": "{tmp}/labels-too-few", "data_options": {"limit": 0}}, DatasetError, "limit must be a positive integer"),
])
def test_bad_input_is_refused_before_training_naming_the_culprit(faults_zoo, tmp_path, monkeypatch, kwargs, error,
                                                                message):
    from ferbench import training

    (tmp_path / "empty").mkdir()
    write_npz(tmp_path / "truncated")
    (tmp_path / "truncated" / "data.npz").write_bytes((tmp_path / "truncated" / "data.npz").read_bytes()[:300])
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "data.npz").write_bytes(os.urandom(500))
    write_npz(tmp_path / "labels-out-of-range", labels=np.full(12, 2))
    write_npz(tmp_path / "labels-too-few", labels=np.zeros(5, int))
    write_npz(tmp_path / "labels-float", labels=np.zeros(12) + 0.5)
    write_npz(tmp_path / "unknown-class", classes=np.array(["happy", "bored"]))
    monkeypatch.setattr(training, "train_classifier", lambda *a, **k: pytest.fail("training started"))
    request = {"method": "example-tinycnn", "dataset": "squares", "device": "cpu", "out_dir": tmp_path / "results",
               "config": {"epochs": 1}, **kwargs}
    request["dataset"] = request["dataset"].format(tmp=tmp_path)
    with pytest.raises(error) as caught:
        run(faults_zoo, RunRequest(**request))
    assert message in str(caught.value)
    assert not (tmp_path / "results").exists()


def test_the_stop_message_names_the_stage_checkpoints_a_staged_method_left(tmp_path):
    from ferbench.checkpoint import TrainingCheckpoint
    from ferbench.runner import _stopped_message

    fold = tmp_path / "run" / "fold-02"
    fold.mkdir(parents=True)
    (fold / "checkpoint.gan.pt").write_bytes(b"x")
    message = _stopped_message("stopped", tmp_path / "run", TrainingCheckpoint(fold / "checkpoint.pt"))
    assert "stage checkpoints of fold-02: checkpoint.gan.pt" in message and "start over" not in message
    (fold / "checkpoint.gan.pt").unlink()
    assert "no epoch of fold-02 had finished" in _stopped_message("stopped", tmp_path / "run",
                                                                  TrainingCheckpoint(fold / "checkpoint.pt"))

"""One run on two processes: torchrun + DistributedDataParallel over gloo on the CPU; rank 0 alone writes."""

import json
import os
import subprocess
import sys

import pytest

from ferbench.errors import ConfigError
from ferbench.plugins import PluginManager
from ferbench.registry import Zoo
from ferbench.runner import RunRequest, run
from conftest import EXAMPLE_PLUGIN, ROOT


PLUGINS = "ferbench_example,plugin_fixtures.squares_plugin,plugin_fixtures.linear_plugin"
CONFIG = {"epochs": 3, "batch_size": 8, "lr": 0.01, "eval_every": 1}


def test_two_gloo_processes_train_one_run_and_only_rank_0_writes(tmp_path, write_registry, monkeypatch):
    registry = write_registry({"version": 1})
    out = tmp_path / "results"
    env = {**os.environ, "FERBENCH_REGISTRY": str(registry), "FERBENCH_PLUGINS": PLUGINS, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "tests"), str(EXAMPLE_PLUGIN),
                                                     os.environ.get("PYTHONPATH", "")) if p),
           "FERBENCH_TEST_PREDICT_LOG": str(tmp_path / "predictions.log")}
    # linear-probe has no batch norm, so the two processes together must train exactly what one does.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "ferbench.cli", "run", "--method", "linear-probe", "--dataset", "squares", "--device", "cpu",
               "--out", str(out), *(a for k, v in CONFIG.items() for a in ("--set", f"{k}={v}"))]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    (run_dir,) = out.iterdir()  # one run folder: the second process made none of its own
    written = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    assert written == ["holdout/confusion-test.png", "holdout/model/model.json", "holdout/model/model.safetensors",
                       "holdout/reliability-test.png", "holdout/result-test.json", "holdout/time-to-accuracy-test.png",
                       "run.json"]
    record = json.loads((run_dir / "holdout" / "result-test.json").read_text())
    assert record["device"]["world_size"] == 2 and record["device"]["backend"] == "gloo"
    assert record["status"] == "ok" and [p["epoch"] for p in record["time_to_accuracy"]] == [1, 2, 3]
    assert done.stdout.count("results:") == 1  # one rank reports
    # eval_every: every rank scores the test split (none waits in a collective while rank 0 does)
    assert {"0", "1"} <= set((tmp_path / "predictions.log").read_text().split())

    # The same run in one process: the same losses (up to summation order) and the same predictions.
    monkeypatch.setenv("FERBENCH_PLUGINS", PLUGINS)
    (single,) = run(Zoo(PluginManager(), registry), RunRequest(
        method="linear-probe", dataset="squares", config=dict(CONFIG), out_dir=tmp_path / "single", device="cpu"))
    assert single["device"]["world_size"] == 1
    losses = [entry["loss"] for entry in record["extra"]["history"]]
    assert losses == pytest.approx([entry["loss"] for entry in single["extra"]["history"]], rel=1e-5)
    assert losses[0] != losses[-1]  # it did train
    assert record["metrics"]["confusion_matrix"] == single["metrics"]["confusion_matrix"]


def test_sync_batchnorm_is_checked_and_refused_on_the_cpu(squares, monkeypatch):
    import torch

    from ferbench import distributed
    from ferbench.data import InputSpec
    from ferbench.training import SUPERVISED_DEFAULTS, check_config, train_classifier
    from plugin_fixtures.linear_plugin import LinearProbe

    with pytest.raises(ConfigError, match="sync_batchnorm must be true or false"):
        check_config({**SUPERVISED_DEFAULTS, "sync_batchnorm": "yes"})
    monkeypatch.setattr(distributed, "world_size", lambda: 2)  # as under torchrun with two processes
    data = squares()
    with pytest.raises(ConfigError, match="sync_batchnorm needs CUDA"):
        train_classifier(LinearProbe(len(data.classes), image_size=data.image_size[0]), data,
                         InputSpec.fit(data.images, 1, data.image_size[0]),
                         {**SUPERVISED_DEFAULTS, "epochs": 1, "batch_size": 8, "sync_batchnorm": True},
                         torch.device("cpu"), 0)


def test_a_single_process_records_world_size_1(zoo, tmp_path):
    (record,) = run(zoo, RunRequest(method="example-tinycnn", dataset="squares", out_dir=tmp_path, device="cpu",
                                    config={"epochs": 1, "batch_size": 8}))
    assert record["device"]["world_size"] == 1


def test_a_batch_that_does_not_split_evenly_is_refused_before_training(zoo, tmp_path, monkeypatch):
    monkeypatch.setattr("ferbench.distributed.world_size", lambda: 2)
    with pytest.raises(ConfigError, match="batch_size 7 must be divisible by the 2 distributed processes"):
        run(zoo, RunRequest(method="example-tinycnn", dataset="squares", out_dir=tmp_path / "results",
                            device="cpu", config={"epochs": 1, "batch_size": 7}))
    assert not (tmp_path / "results").exists()


def test_a_method_that_cannot_train_distributed_is_refused_under_torchrun(zoo, tmp_path, monkeypatch):
    from ferbench.training import SupervisedMethod

    monkeypatch.setattr("ferbench.distributed.world_size", lambda: 2)
    monkeypatch.setattr(SupervisedMethod, "distributed", False)
    with pytest.raises(ConfigError, match="cannot train across 2 torchrun processes"):
        run(zoo, RunRequest(method="example-tinycnn", dataset="squares", out_dir=tmp_path / "results",
                            device="cpu", config={"epochs": 1, "batch_size": 8}))
    assert not (tmp_path / "results").exists()

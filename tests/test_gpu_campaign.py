"""The GPU campaign script (benchmarks/gpu_campaign.sh), rehearsed on the CPU with tiny settings so that it
cannot rot between the sessions that have a GPU: every step runs and writes its records."""

import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_campaign.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="the campaign is a bash script")
def test_the_campaign_runs_every_step_on_the_cpu_at_tiny_scale(tmp_path):
    out = tmp_path / "campaign"
    env = {**os.environ, "SCALE": "tiny", "DEVICE": "cpu", "OUT": str(out), "OMP_NUM_THREADS": "1",
           "FERBENCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "gpu campaign: 0 failed step(s)" in done.stdout
    (bench,) = (out / "bench").glob("*.json")
    assert {r["mode"] for r in json.loads(bench.read_text())["rows"]} == {"eager-fp32", "fp32-cl"}
    runs = sorted(p.name.split("-", 1)[1] for p in out.iterdir() if p.is_dir() and p.name != "bench")
    assert len(runs) == 7, runs  # a FER2013 budget, CK+48 x 2 protocols, latent-vgg19 x 2, Arabian GAN x 2
    results = list(out.rglob("result-*.json"))
    assert results and all(json.loads(p.read_text())["status"] == "ok" for p in results)
    assert len(list(out.glob("gpu-campaign-*.log"))) == 1


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("split") is None, reason="a bash script")
def test_the_device_wrapper_records_the_given_commit_and_packs_records_into_parts(tmp_path):
    """benchmarks/gpu_device.sh at tiny scale, one step: the records name the commit it was given (the
    device's copy has a stale .git) and come back as split archives that unpack."""
    env = {**os.environ, "SCALE": "tiny", "DEVICE": "cpu", "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"),
           "STEP_SECONDS": "600 0 0 0", "OMP_NUM_THREADS": "1", "FERBENCH_CACHE": str(tmp_path / "cache")}
    (tmp_path / "out").mkdir()
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_device.sh"), "0123456789abcdef"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    parts = sorted((tmp_path / "out").glob("records.tgz.*"))
    assert parts and all(p.stat().st_size <= 15_000_000 for p in parts)
    archive = b"".join(p.read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    results = list((tmp_path / "unpacked").rglob("result-*.json"))
    assert results, sorted(str(p) for p in (tmp_path / "unpacked").rglob("*"))
    for path in results:
        git = json.loads(path.read_text())["git"]
        assert git == {"commit": "0123456789abcdef", "dirty": None, "commit_from": "FERBENCH_SOURCE_COMMIT"}
    assert "synthetic" in (tmp_path / "out" / "records.txt").read_text()

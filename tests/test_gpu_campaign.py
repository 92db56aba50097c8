"""The GPU campaign script (benchmarks/gpu_campaign.sh), rehearsed on the CPU with tiny settings so that it
cannot rot between the sessions that have a GPU: every step runs and writes its records."""

import json
import os
import shutil
import subprocess

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

"""The worked example: a third-party package, installed for real, adds a classifier and a dataset that
`ferbench run` uses without any change to ferbench."""

import json
import os
import shutil
import subprocess
import sys

from conftest import EXAMPLE_PLUGIN


def test_installed_example_plugin_is_found_through_its_entry_point(tmp_path):
    site, source = tmp_path / "site", tmp_path / "source"
    shutil.copytree(EXAMPLE_PLUGIN, source)  # a build writes into its source tree; keep the checkout clean
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert install.returncode == 0, install.stderr
    assert list(site.glob("ferbench_example_plugin-*.dist-info/entry_points.txt"))
    env = {k: v for k, v in os.environ.items() if k != "FERBENCH_PLUGINS"}
    env["PYTHONPATH"] = str(site)

    def ferbench(*args):
        return subprocess.run([sys.executable, "-m", "ferbench.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)

    plugins = ferbench("plugins")
    assert plugins.returncode == 0, plugins.stderr
    assert "example" in plugins.stdout and "ferbench-example-plugin 0.1.0" in plugins.stdout
    done = ferbench("run", "--method", "example-tinycnn", "--dataset", "example-stripes", "--epochs", "2",
                    "--device", "cpu", "--out", str(tmp_path / "results"))
    assert done.returncode == 0, done.stderr
    (result,) = (tmp_path / "results").rglob("result-test.json")
    record = json.loads(result.read_text())
    assert record["method"] == "example-tinycnn" and record["dataset"] == "example-stripes"
    assert record["environment"]["plugins"]["example"] == "0.1.0"

"""Shared fixtures: tiny learnable datasets, a plugin manager with test plugins, a zoo on a temp registry."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from ferbench.threads import available_cores

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = ROOT / "examples" / "ferbench-example-plugin"
# ../shared/data beside the checkout, or wherever FERBENCH_DATA points (a worktree's parent has no shared/).
SHARED_DATA = Path(os.environ.get("FERBENCH_DATA") or ROOT.parent / "shared" / "data")
# The suite runs `ferbench run` while a developer's checkout has uncommitted changes; the refusal itself is
# tested in tests/test_reproduce.py with this unset.
os.environ.setdefault("FERBENCH_ALLOW_DIRTY", "1")
# The default thread count depends on the load when a command starts (ferbench/threads.py), and another
# thread count trains other numbers: pin it, so a run and its resumed or reproduced copy in a subprocess use
# the same. tests/test_engine.py tests the load-aware default with this unset.
os.environ.setdefault("FERBENCH_THREADS", str(available_cores()))
sys.path.insert(0, str(EXAMPLE_PLUGIN))  # the example plugin's module, for in-process tests
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/plugin_fixtures

from plugin_fixtures.squares_plugin import make_squares  # noqa: E402


@pytest.fixture
def squares():
    return make_squares


@pytest.fixture
def write_registry(tmp_path):
    """Write a registry dict (or YAML text) to a temp file and return its path."""

    def write(content, name="registry.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return write


@pytest.fixture
def test_plugins(monkeypatch):
    """Make the test plugin modules (tests/plugin_fixtures) and the example plugin loadable by name."""
    monkeypatch.setenv("FERBENCH_PLUGINS", "ferbench_example,plugin_fixtures.squares_plugin")
    return ["ferbench_example", "plugin_fixtures.squares_plugin"]


@pytest.fixture
def zoo(test_plugins, write_registry):
    """A zoo with every installed plugin plus the test plugins, and an empty registry."""
    from ferbench.plugins import PluginManager
    from ferbench.registry import Zoo

    return Zoo(PluginManager(), write_registry({"version": 1}))


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path_factory):
    """Every test gets its own preprocessing cache, so none reads another's entries or writes to ~/.cache."""
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path_factory.mktemp("ferbench-cache")))


@pytest.fixture
def no_cpp_compiler(monkeypatch):
    """A machine where torch.compile's inductor finds no C++ compiler."""
    import torch._inductor.cpp_builder as cpp_builder

    def no_compiler():
        raise RuntimeError("no g++")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)

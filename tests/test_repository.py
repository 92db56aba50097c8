"""The repository stays light: what is committed, not what a run writes."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import ROOT

PNG_LIMIT = 300_000  # bytes: the brief's "~300 KB each"; grids can be smaller or JPEG


def committed(pattern: str) -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z", pattern], cwd=ROOT, capture_output=True, check=True,
                            stdin=subprocess.DEVNULL).stdout.decode()
    return [name for name in listed.split("\0") if name]


def test_every_committed_png_stays_under_the_size_limit():
    pngs = committed("*.png")
    assert pngs, "git ls-files found no PNG: the check would pass on nothing"
    heavy = [(name, (ROOT / name).stat().st_size) for name in pngs
             if (ROOT / name).exists() and (ROOT / name).stat().st_size > PNG_LIMIT]
    assert not heavy, f"PNGs over {PNG_LIMIT:,} bytes (write them with ferbench.plots.save_figure): {heavy}"

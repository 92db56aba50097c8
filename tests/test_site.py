"""`ferbench leaderboard --html`: a self-contained site, checked as HTML and, where Chromium is installed,
in a real headless browser (the table renders, sorting and filtering work, no console error)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import webdriver
from ferbench.errors import ConfigError
from ferbench.leaderboard import build
from ferbench.runner import RunRequest, run
from ferbench.site import write_site

SCREENSHOT_DIR_ENV = "FERBENCH_SCREENSHOTS"  # where the browser test keeps its screenshot (default: tmp)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Three tiny real runs on two datasets: two folds of one and a holdout of the other."""
    from ferbench.plugins import PluginManager
    from ferbench.registry import Zoo

    out = tmp_path_factory.mktemp("results")
    registry = out.parent / "registry.yaml"
    registry.write_text("version: 1\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FERBENCH_PLUGINS", "ferbench_example,plugin_fixtures.squares_plugin")
        patch.setenv("FERBENCH_CACHE", str(out.parent / "cache"))
        zoo = Zoo(PluginManager(), registry)
        for request in RUNS:
            run(zoo, RunRequest(**request, out_dir=out, device="cpu"))
    return out


CONFIG = {"epochs": 2, "batch_size": 8, "lr": 0.01, "eval_every": 1}
RUNS = [{"method": "example-tinycnn", "dataset": "squares", "config": CONFIG},
        {"method": "example-tinycnn", "dataset": "squares", "protocol": "kfold", "folds": 2, "config": CONFIG},
        {"method": "example-tinycnn", "dataset": "squares-rgb", "config": {**CONFIG, "epochs": 1}}]


@pytest.fixture(scope="module")
def site(results, tmp_path_factory):
    board = build(results, [{"method": "example-tinycnn", "dataset": "squares", "protocol": "holdout",
                             "metric": "accuracy", "value": 99.0}])
    return write_site(board, tmp_path_factory.mktemp("site") / "site"), board


def test_the_site_is_one_page_with_its_pictures_and_no_network(site):
    page, board = site
    text = page.read_text()
    assert text.count("<tr>") >= len(board.table) + 1
    assert "99.00" in text  # the paper's number beside ours
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched at view time
    pictures = re.findall(r'<img loading="lazy" src="([^"]+)"', text)
    assert pictures and all((page.parent / p).is_file() for p in pictures)
    assert any("confusion" in p for p in pictures) and any("time-to-accuracy" in p for p in pictures)
    for tab in ("Leaderboard", "Runs"):
        assert f">{tab}</button>" in text
    assert text.count('<details class="run">') == 3  # one card per run


def test_the_site_is_refused_inside_the_results_folder(results):
    with pytest.raises(ConfigError, match="folder of its own"):
        write_site(build(results, []), results)


@pytest.mark.skipif(webdriver.missing() is not None, reason=webdriver.missing() or "")
def test_in_chromium_the_table_renders_sorts_and_filters_without_console_errors(site, tmp_path):
    import os

    page, board = site
    browser = webdriver.Browser(tmp_path / "profile")
    try:
        browser.open(page.resolve().as_uri())
        rows = "return Array.from(document.querySelectorAll('#board tbody tr')).filter(r => r.style.display !== 'none')"
        assert browser.run(rows + ".length") == len(board.table)
        headers = browser.run("return Array.from(document.querySelectorAll('#board th')).map(t => t.textContent)")
        column = headers.index("Accuracy %")
        values = rows + f".map(r => parseFloat(r.cells[{column}].textContent)).filter(v => !isNaN(v))"
        browser.click(f"#board th:nth-child({column + 1})")
        ascending = browser.run(values)
        assert ascending == sorted(ascending) and len(ascending) >= 2
        browser.click(f"#board th:nth-child({column + 1})")
        descending = browser.run(values)
        assert descending == sorted(ascending, reverse=True)
        # Filtering by dataset leaves only that dataset's rows.
        dataset_column = headers.index("Dataset")
        browser.run("const s = document.querySelector('.filters select[data-column=\"%d\"]'); s.value = 'squares-rgb';"
                    "s.dispatchEvent(new Event('input'));" % dataset_column)
        shown = browser.run(rows + f".map(r => r.cells[{dataset_column}].textContent)")
        assert shown and set(shown) == {"squares-rgb"}
        browser.click('nav button[data-tab="runs"]')
        assert browser.run("return document.getElementById('runs').classList.contains('active')")
        browser.click('nav button[data-tab="leaderboard"]')
        browser.run("const s = document.querySelector('.filters select'); s.value = ''; s.dispatchEvent(new Event('input'));")
        shots = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
        assert browser.screenshot(shots / "leaderboard-site.png").stat().st_size > 10_000
        errors = [entry for entry in browser.console() if entry.get("level") == "SEVERE"]
        assert not errors, errors
    finally:
        browser.close()

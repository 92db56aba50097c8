"""``ferbench leaderboard --html DIR``: the leaderboard as a static site people browse.

One ``index.html`` with a tab per section, its CSS and script inline and the result pictures copied beside
it, so the folder opens from disk or any static host with no network: the main table sortable (click a
header) and filterable (dataset, protocol, device, free text), paper numbers beside ours; a card per run
with the per-class true-positive rates as bars (mean over its folds), each fold's confusion matrix and the
time-to-accuracy curve; the robustness, calibration and method sections (the GAN methods' Table 2 and
reconstruction quality), rendered from the same Markdown as LEADERBOARD.md; the accuracy-vs-throughput
Pareto plot. Markdown becomes HTML through Python-Markdown (the library MkDocs uses).
"""

from __future__ import annotations

import html
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import markdown

from ferbench.errors import ConfigError
from ferbench.files import write_text
from ferbench.leaderboard import DIRTY_MARK, Leaderboard
from ferbench.results import now_iso, recorded_git

FILTERS = ("Dataset", "Protocol", "Device")

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2733; background: #f6f7f9; }
header { background: #1d2733; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; } header p { margin: 4px 0 0; color: #c6ccd4; }
nav { display: flex; gap: 4px; padding: 8px 24px 0; background: #e4e7eb; flex-wrap: wrap; }
nav button { border: 0; padding: 8px 14px; background: #d0d5db; cursor: pointer; border-radius: 6px 6px 0 0; }
nav button.active { background: #f6f7f9; font-weight: 600; }
main { padding: 16px 24px; } section { display: none; } section.active { display: block; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #d8dce1; padding: 4px 7px; text-align: left; vertical-align: top; }
th { background: #eef0f3; position: sticky; top: 0; }
#board th { cursor: pointer; user-select: none; white-space: nowrap; }
#board th.asc::after { content: " \\25B2"; } #board th.desc::after { content: " \\25BC"; }
.filters { display: flex; gap: 12px; margin-bottom: 10px; align-items: center; flex-wrap: wrap; }
.run { background: #fff; border: 1px solid #d8dce1; border-radius: 6px; margin: 0 0 10px; padding: 6px 12px; }
.run summary { cursor: pointer; font-weight: 600; } .run .meta { color: #5b6673; font-weight: 400; }
.bars { display: grid; grid-template-columns: 110px 320px 60px; gap: 2px 8px; margin: 8px 0; }
.bar { background: #e4e7eb; height: 14px; } .bar > div { background: #3b7dd8; height: 14px; }
.pictures { display: flex; gap: 6px; flex-wrap: wrap; } .pictures img { width: 220px; border: 1px solid #d8dce1; }
.note { color: #5b6673; }
"""

SCRIPT = """
function showTab(name) {
  document.querySelectorAll('nav button').forEach(b => b.classList.toggle('active', b.dataset.tab === name));
  document.querySelectorAll('main > section').forEach(s => s.classList.toggle('active', s.id === name));
}
function cellValue(text) {
  const number = parseFloat(text.replace(/,/g, ''));
  return isNaN(number) ? null : number;
}
function sortBoard(column) {
  const table = document.getElementById('board');
  const header = table.tHead.rows[0].cells[column];
  const ascending = !header.classList.contains('asc');
  for (const th of table.tHead.rows[0].cells) th.classList.remove('asc', 'desc');
  header.classList.add(ascending ? 'asc' : 'desc');
  const rows = Array.from(table.tBodies[0].rows);
  rows.sort((a, b) => {
    const x = a.cells[column].textContent.trim(), y = b.cells[column].textContent.trim();
    const u = cellValue(x), v = cellValue(y);
    let order;
    if (u !== null && v !== null) order = u - v;
    else if (u !== null) order = -1;  // numbers before "-" and "not run", whichever way
    else if (v !== null) order = 1;
    else order = x.localeCompare(y);
    return ascending || (u === null) !== (v === null) ? order : -order;
  });
  rows.forEach(row => table.tBodies[0].appendChild(row));
}
function filterBoard() {
  const wanted = {};
  document.querySelectorAll('.filters select').forEach(s => { if (s.value) wanted[s.dataset.column] = s.value; });
  const text = document.getElementById('search').value.toLowerCase();
  let shown = 0;
  for (const row of document.getElementById('board').tBodies[0].rows) {
    const ok = Object.entries(wanted).every(([c, v]) => row.cells[c].textContent.trim() === v)
      && (!text || row.textContent.toLowerCase().includes(text));
    row.style.display = ok ? '' : 'none';
    shown += ok;
  }
  document.getElementById('shown').textContent = shown;
}
document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('nav button').forEach(b => b.addEventListener('click', () => showTab(b.dataset.tab)));
  document.querySelectorAll('#board th').forEach((th, i) => th.addEventListener('click', () => sortBoard(i)));
  document.querySelectorAll('.filters select, #search').forEach(e => e.addEventListener('input', filterBoard));
  showTab(location.hash.slice(1) || 'leaderboard');
  filterBoard();
});
"""


def write_site(board: Leaderboard, out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html`` and the pictures it shows; returns the page's path."""
    out_dir = Path(out_dir)
    if out_dir.resolve() == board.results_dir.resolve():
        raise ConfigError(f"--html {out_dir}: the site needs a folder of its own, not the results folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    tabs: list[tuple[str, str, str]] = [("leaderboard", "Leaderboard", _board_section(board, out_dir)),
                                        ("runs", "Runs", _runs_section(board, out_dir))]
    for number, text in enumerate(board.sections):
        title = _first_heading(text) or f"Section {number + 1}"
        tabs.append((f"section-{number + 1}", title, markdown.markdown(text, extensions=["tables"])))
    nav = "".join(f'<button data-tab="{key}">{html.escape(title)}</button>' for key, title, _ in tabs)
    body = "".join(f'<section id="{key}">{content}</section>' for key, _, content in tabs)
    runs = len({r["run_id"] for r in board.records})
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ferbench leaderboard</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style>'
            f'<script>{SCRIPT}</script></head><body><header><h1>ferbench leaderboard</h1>'
            f'<p>{len(board.records)} result records from {runs} runs under {html.escape(str(board.results_dir))}; '
            f'generated by <code>ferbench leaderboard --html</code> on {html.escape(now_iso())}</p></header>'
            f'<nav>{nav}</nav><main>{body}</main></body></html>\n')
    path = out_dir / "index.html"
    write_text(path, page)
    return path


def _board_section(board: Leaderboard, out_dir: Path) -> str:
    table = board.table
    columns = list(table.columns)
    filters = []
    for name in FILTERS:
        values = sorted({str(v) for v in table[name]} - {"-", ""})
        options = "".join(f"<option>{html.escape(v)}</option>" for v in values)
        filters.append(f'<label>{name} <select data-column="{columns.index(name)}"><option value="">all</option>'
                       f"{options}</select></label>")
    filters.append('<label>Search <input id="search" type="search" placeholder="method, setting, ..."></label>'
                   f'<span class="note"><span id="shown">{len(table)}</span> of {len(table)} rows</span>')
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    legend = ("<p class=\"note\">One row per method x dataset x protocol x split x device x setting (a fingerprint of "
              "the resolved config); accuracy and macro-F1 are mean ± SD over the row's folds and seeds; "
              "<code>Paper %</code> is the method's paper's number, <code>Δ vs paper</code> our mean minus it; "
              f"<code>{DIRTY_MARK.strip()}</code> after a setting: a run of it was made from a checkout with "
              "uncommitted changes. Click a column to sort.</p>")
    pareto = ""
    if board.pareto is not None and board.pareto.is_file():
        shutil.copy2(board.pareto, out_dir / "pareto.png")
        pareto = ('<h3>Accuracy against throughput</h3><img src="pareto.png" alt="Pareto plot: accuracy '
                  'against inference images/s" style="max-width: 100%">')
    problems = ""
    if board.failed or board.skipped:
        items = [f"<li><code>{html.escape(r['_path'])}</code>: {html.escape(r['error']['message'].splitlines()[0])}"
                 "</li>" for r in board.failed]
        items += [f"<li><code>{html.escape(str(f))}</code>: skipped, {html.escape(why)}</li>" for f, why in board.skipped]
        problems = f"<h3>Failed and skipped</h3><ul>{''.join(items)}</ul>"
    return (f'<div class="filters">{"".join(filters)}</div>{legend}<table id="board"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>{pareto}{problems}")


def _runs_section(board: Leaderboard, out_dir: Path) -> str:
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in board.records:
        if record.get("status", "ok") == "ok":
            runs[record["run_id"]].append(record)
    cards = [_run_card(run_id, records, board.results_dir, out_dir)
             for run_id, records in sorted(runs.items(), reverse=True)]
    return (f'<p class="note">{len(cards)} runs, newest first. Bars: per-class true-positive rate, mean over the '
            f'run\'s folds.</p>{"".join(cards)}')


def _run_card(run_id: str, records: list[dict[str, Any]], results_dir: Path, out_dir: Path) -> str:
    first = records[0]
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_split[record["test_split"]].append(record)
    parts, summaries = [], []
    for split, group in sorted(by_split.items()):
        accuracy = sum(r["metrics"]["accuracy"] for r in group) / len(group)
        summaries.append(f"{split} {100 * accuracy:.2f}%")
        classes = group[0]["metrics"]["per_class_tpr"]
        bars = "".join(
            f"<span>{html.escape(c)}</span><div class=\"bar\"><div style=\"width: {100 * tpr:.1f}%\"></div></div>"
            f"<span>{100 * tpr:.1f}%</span>"
            for c in classes
            for tpr in [sum((r["metrics"]["per_class_tpr"].get(c) or 0) for r in group) / len(group)])
        pictures = [_picture(r, key, results_dir, out_dir) for r in sorted(group, key=lambda r: r["fold"])
                    for key in ("confusion_matrix_png", "time_to_accuracy_png")]
        parts.append(f"<h4>{html.escape(split)}: {100 * accuracy:.2f}% over {len(group)} fold(s)</h4>"
                     f'<div class="bars">{bars}</div><div class="pictures">{"".join(p for p in pictures if p)}</div>')
    git = recorded_git(first)
    meta = (f"{first['protocol']}, seed {first['seed']}, {first['device'].get('name', first['device'].get('type'))}, "
            f"commit {str(git.get('commit'))[:10]}{' (dirty)' if git.get('dirty') else ''}")
    command = (first.get("command") or {}).get("line") or " ".join((first.get("command") or {}).get("argv") or [])
    return (f'<details class="run"><summary>{html.escape(first["method"])} on {html.escape(first["dataset"])}: '
            f'{html.escape(", ".join(summaries))} <span class="meta">{html.escape(run_id)}; {html.escape(meta)}</span>'
            f'</summary><p><code>{html.escape(command)}</code></p>{"".join(parts)}</details>')


def _picture(record: dict[str, Any], key: str, results_dir: Path, out_dir: Path) -> str:
    name = (record.get("artifacts") or {}).get(key)
    if not name:
        return ""
    source = Path(record["_path"]).parent / name
    if not source.is_file():
        return ""
    relative = source.resolve().relative_to(results_dir.resolve())
    target = out_dir / "runs" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    alt = f"{key.replace('_png', '').replace('_', ' ')}, {record['fold']} [{record['test_split']}]"
    return f'<img loading="lazy" src="{html.escape(target.relative_to(out_dir).as_posix())}" alt="{html.escape(alt)}" title="{html.escape(alt)}">'


def _first_heading(text: str) -> str | None:
    match = re.search(r"^#+\s+(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


__all__ = ["write_site"]

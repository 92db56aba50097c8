"""``ferbench reproduce RECORD``: run a recorded experiment again and set its numbers beside the original's.

The run is rebuilt from its ``run.json`` (the resolved request, so a run started by a suite is reproduced
alone), with the recorded thread count and precision, into a fresh results folder, in a child process
(threads must be chosen before torch starts). Then every (fold, split) of the original is matched with the
new one and its accuracy and macro-F1 compared, beside the data fingerprints and the commits. On the CPU a
seeded run repeats exactly, so the default tolerance there is 0; on a GPU (non-deterministic kernels,
other cards) it is 1 percentage point.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ferbench.errors import ConfigError
from ferbench.files import write_json
from ferbench.results import RUN_MANIFEST, command_line, git_info, now_iso, read_run_manifest, recorded_git

METRICS = ("accuracy", "macro_f1")
GPU_TOLERANCE = 1.0  # percentage points


def run_folder(path: str | Path) -> Path:
    """The run folder of a result record, a fold folder or the run folder itself."""
    path = Path(path)
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / RUN_MANIFEST).is_file():
            return candidate
    raise ConfigError(f"{path}: not a result record or run folder of ferbench run (no {RUN_MANIFEST} in it or "
                      "above it)")


def read_records(run_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    records = {}
    for path in sorted(run_dir.glob("*/result-*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        records[(record["fold"], record["test_split"])] = record
    return records


def rerun_argv(manifest: dict[str, Any], record: dict[str, Any], out_dir: Path, allow_dirty: bool) -> list[str]:
    """The ``ferbench run`` arguments that start the recorded run again, written into ``out_dir``."""
    request = manifest["request"]
    argv = ["run", "--method", request["method"], "--dataset", request["dataset"], "--seed", str(request["seed"]),
            "--out", str(out_dir), "--no-save-model"]
    for key, option in (("protocol", "--protocol"), ("target", "--target"), ("folds", "--folds"),
                        ("device", "--device"), ("validation", "--validation")):
        if request.get(key) is not None:
            argv += [option, str(request[key])]
    for fold in request.get("only_folds") or []:
        argv += ["--fold", str(fold)]
    for option, pairs in (("--set", request.get("config")), ("--component", request.get("components")),
                          ("--data-option", request.get("data_options"))):
        for key, value in (pairs or {}).items():
            argv += [option, f"{key}={_cli_value(value)}"]
    device = record.get("device") or {}
    if (device.get("threads") or {}).get("threads"):
        argv += ["--threads", str(device["threads"]["threads"])]
    if (device.get("precision") or {}).get("setting"):
        argv += ["--precision", str(device["precision"]["setting"])]
    registry = manifest.get("registry")
    if registry and Path(registry).is_file():
        argv += ["--registry", registry]
    if allow_dirty:
        argv.append("--allow-dirty")
    return argv


def _cli_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def compare(original: dict[tuple[str, str], dict], reproduced: dict[tuple[str, str], dict],
            tolerance: float) -> list[dict[str, Any]]:
    """One row per (fold, split, metric): both values in %, their difference and whether it is within
    ``tolerance`` points; a missing or failed counterpart is a row that is not."""
    rows = []
    for (fold, split), record in original.items():
        again = reproduced.get((fold, split))
        fingerprints = ((record.get("data") or {}).get("fingerprints"),
                        ((again or {}).get("data") or {}).get("fingerprints"))
        same_data = None if None in fingerprints else fingerprints[0] == fingerprints[1]
        for metric in METRICS:
            before = (record.get("metrics") or {}).get(metric)
            after = ((again or {}).get("metrics") or {}).get(metric)
            delta = None if before is None or after is None else 100 * (after - before)
            rows.append({"fold": fold, "split": split, "metric": metric,
                         "original": None if before is None else 100 * before,
                         "reproduced": None if after is None else 100 * after, "delta": delta,
                         "same_data": same_data,
                         "ok": delta is not None and abs(delta) <= tolerance + 1e-9 and same_data is not False})
    return rows


def reproduce(record_path: str | Path, out_dir: Path | None = None, tolerance: float | None = None,
              allow_dirty: bool = False, echo=print) -> dict[str, Any]:
    """Re-run the recorded run into ``out_dir`` (default: a new temporary folder) and compare; returns the
    comparison, also written to ``<out_dir>/reproduction.json``."""
    run_dir = run_folder(record_path)
    manifest = read_run_manifest(run_dir)
    original = read_records(run_dir)
    if not original:
        raise ConfigError(f"{run_dir}: the run has no result records to compare with")
    first = next(iter(original.values()))
    on_gpu = (first.get("device") or {}).get("type") == "cuda"
    tolerance = (GPU_TOLERANCE if on_gpu else 0.0) if tolerance is None else tolerance
    if tolerance < 0:
        raise ConfigError(f"--tolerance must be >= 0 percentage points, got {tolerance}")
    out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="ferbench-reproduce-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    now = git_info()
    git = recorded_git(first)
    commits = {"original": git.get("commit"), "now": now["commit"], "original_dirty": git.get("dirty")}
    if commits["original"] != commits["now"]:
        echo(f"warning: the record was made at commit {str(commits['original'])[:12]}, this checkout is at "
             f"{str(commits['now'])[:12]}: differences may come from the code between them")
    if (manifest["request"].get("config") or {}).get("time_budget"):
        echo("warning: a time-budgeted run trains the epochs that fit on this machine now (and re-plans its "
             "schedule as it goes), so it need not repeat exactly")
    if commits["original_dirty"]:
        echo("warning: the record was made from a checkout with uncommitted changes: its commit need not "
             "reproduce it")
    argv = rerun_argv(manifest, first, out_dir, allow_dirty)
    echo(f"reproducing {run_dir.name}: {command_line(['', *argv])}")
    done = subprocess.run([sys.executable, "-m", "ferbench.cli", *argv], check=False)
    reproduced_dirs = [path.parent for path in out_dir.glob(f"*/{RUN_MANIFEST}")]
    if done.returncode not in (0, 3) or not reproduced_dirs:  # 3: a fold diverged, which the rows then show
        raise ConfigError(f"the re-run exited with status {done.returncode}; nothing to compare (its output is "
                          "above)")
    reproduced = read_records(max(reproduced_dirs))
    rows = compare(original, reproduced, tolerance)
    report = {"schema": "ferbench.reproduction/1", "created": now_iso(), "original": str(run_dir),
              "reproduced": str(max(reproduced_dirs)), "command": ["ferbench", *argv], "commits": commits,
              "tolerance_points": tolerance, "rows": rows, "ok": all(row["ok"] for row in rows)}
    write_json(out_dir / "reproduction.json", report)
    return report

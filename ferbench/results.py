"""Result records: one JSON per fold and test split, with everything needed to read and rerun it.

Schema ``ferbench.result/1``. A run writes ``results/<run_id>/<fold>/result-<split>.json`` beside its
confusion-matrix PNG and saved model; the leaderboard reads every record under ``results/``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable

import torch

import ferbench
from ferbench import precision, threads
from ferbench.errors import ConfigError
from ferbench.files import write_json

RESULT_SCHEMA = "ferbench.result/1"
REQUIRED_FIELDS = (
    "schema", "run_id", "created", "method", "components", "dataset", "train_dataset", "protocol",
    "fold", "test_split", "seed", "config", "data", "metrics", "timings", "environment", "device", "git",
)
TRACKED_PACKAGES = ("torch", "torchvision", "timm", "numpy", "scikit-learn", "opencv-python-headless",
                    "safetensors", "pluggy")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def new_run_id(method: str, dataset: str, protocol: str, seed: int) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slug(method)}-{slug(dataset)}-{protocol}-s{seed}-{secrets.token_hex(2)}"


def claim_run_dir(out_dir: str | Path, method: str, dataset: str, protocol: str, seed: int) -> tuple[str, Path]:
    """A new run id and its folder, created here: two runs started at the same moment never share one
    (creating the folder is the claim; a taken id is drawn again)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for _ in range(1000):
        run_id = new_run_id(method, dataset, protocol, seed)
        try:
            (Path(out_dir) / run_id).mkdir()
        except FileExistsError:
            continue
        return run_id, Path(out_dir) / run_id
    raise RuntimeError(f"could not claim a new run folder under {out_dir}")


RUN_SCHEMA = "ferbench.run/1"
RUN_MANIFEST = "run.json"


def read_run_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` a run writes into its folder when it starts: how it was asked for and resolved."""
    from ferbench.errors import ConfigError

    path = Path(run_dir) / RUN_MANIFEST
    if not path.is_file():
        raise ConfigError(f"--resume {run_dir}: not a ferbench run folder ({RUN_MANIFEST} not found)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ConfigError(f"--resume {run_dir}: {path} is unreadable ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("schema") != RUN_SCHEMA \
            or not all(isinstance(manifest.get(k), dict) for k in ("request", "resolved")):
        raise ConfigError(f"--resume {run_dir}: {path} is not a {RUN_SCHEMA} record")
    return manifest


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def environment(plugins: dict[str, str] | None = None) -> dict[str, Any]:
    packages = {}
    for name in TRACKED_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            pass
    return {"ferbench": ferbench.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "packages": packages, "plugins": plugins or {}}


ALLOW_DIRTY_ENV = "FERBENCH_ALLOW_DIRTY"
SOURCE_COMMIT_ENV = "FERBENCH_SOURCE_COMMIT"


def command_line(argv: list[str]) -> str:
    """``argv`` as one line a shell runs again: ``ferbench run --method ...`` (whatever started it)."""
    return shlex.join(["ferbench", *argv[1:]])


def git_info() -> dict[str, Any]:
    """Commit of the ferbench source tree, whether it had uncommitted changes to tracked files (None outside
    git) and, when it had, which files (``changed``, at most 20). Outside git, ``FERBENCH_SOURCE_COMMIT``
    names the commit a copied tree came from (recorded with ``commit_from`` saying so, dirtiness unknown)."""
    source = Path(ferbench.__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.rstrip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None and os.environ.get(SOURCE_COMMIT_ENV):
        # A copy of a committed checkout without a usable .git (benchmarks/gpu_device.sh on a lent GPU
        # machine): the commit is the copier's word, and nothing here can check that the files match it.
        return {"commit": os.environ[SOURCE_COMMIT_ENV], "dirty": None, "commit_from": SOURCE_COMMIT_ENV}
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    info: dict[str, Any] = {"commit": commit, "dirty": bool(status) if status is not None else None}
    if status:
        info["changed"] = [line[3:] for line in status.splitlines()][:20]
    return info


def recorded_git(record: dict[str, Any]) -> dict[str, Any]:
    """A record's ``git`` field, or ``{}`` where it is missing or not a mapping (a hand-edited record)."""
    git = record.get("git")
    return git if isinstance(git, dict) else {}


def check_clean_tree(allow_dirty: bool) -> dict[str, Any]:
    """Refuse to write records from a checkout with uncommitted changes (their commit would not reproduce
    them) unless ``allow_dirty``; return :func:`git_info`. Outside git (an installed wheel) there is nothing
    to check: the records name the ferbench version."""
    info = git_info()
    if info["dirty"] and not allow_dirty:
        changed = info["changed"]
        raise ConfigError(
            f"the ferbench checkout has uncommitted changes to {len(changed)}{'+' if len(changed) == 20 else ''} "
            f"tracked file(s) ({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}): a record written "
            f"now would name commit {info['commit'][:12]} but could not be reproduced from it. Commit first, "
            f"or pass --allow-dirty (or set {ALLOW_DIRTY_ENV}=1) to record anyway, marked dirty")
    return info


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "cpu": _cpu_name(), "threads": threads.describe()}
    info["cpu_threads"] = info["threads"]["torch_threads"]
    info["precision"] = precision.describe(device)
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        info["name"] = f"cpu ({info['cpu']}, {info['cpu_threads']} threads)"
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_result(path: str | Path, record: dict[str, Any]) -> Path:
    problems = validate_result(record)
    if problems:
        raise ValueError(f"refusing to write an invalid result to {path}: {'; '.join(problems)}")
    return write_json(path, record)


def validate_result(record: Any) -> list[str]:
    """What is wrong with ``record`` as a ``ferbench.result/1`` record (empty when it is valid).

    Checks everything the leaderboard reads, so a valid record can never make it crash. A record with
    ``status: failed`` (training diverged) holds ``error`` instead of metrics.
    """
    if not isinstance(record, dict):
        return ["not a JSON object"]
    if record.get("schema") != RESULT_SCHEMA:
        return [f"schema is {record.get('schema')!r}, not {RESULT_SCHEMA!r}"]
    problems = [f"missing field {f!r}" for f in REQUIRED_FIELDS if f not in record]
    for key in ("method", "dataset", "train_dataset", "protocol", "fold", "test_split"):
        if key in record and not isinstance(record[key], str):
            problems.append(f"{key} is not a string")
    if "seed" in record and (not isinstance(record["seed"], int) or isinstance(record["seed"], bool)):
        problems.append("seed is not an integer")
    device = record.get("device")
    if "device" in record and (not isinstance(device, dict) or not isinstance(device.get("type"), str)
                               or not isinstance(device.get("name", ""), str)):
        problems.append("device is not an object with a type and name")
    config = record.get("config")
    if "config" in record and (not isinstance(config, dict) or not isinstance(config.get("epochs", 0), int)):
        problems.append("config is not an object with integer epochs")
    status = record.get("status", "ok")
    if status == "failed":
        error = record.get("error")
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            problems.append("a failed result lacks error.message")
        return problems
    if status != "ok":
        problems.append(f"status is {status!r}, not 'ok' or 'failed'")
    metrics = record.get("metrics")
    for key in ("accuracy", "macro_f1"):
        value = metrics.get(key) if isinstance(metrics, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            problems.append(f"metrics.{key} is missing or not a number in [0, 1]")
    return problems


def load_results(root: str | Path) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """Every valid result under ``root`` (failed ones included), and the JSON files skipped with why.

    ferbench's other records (``run.json``, ``model.json``, benchmarks) are returned as skipped with reason
    ``other schema``, which callers leave unsaid; any other file is named.
    """
    records, skipped = [], []
    for path in sorted(Path(root).rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
            skipped.append((path, f"unreadable: {type(error).__name__}: {str(error)[:200]}"))
            continue
        label = (record.get("schema") or record.get("format")) if isinstance(record, dict) else None
        if not isinstance(label, str) or not label.startswith("ferbench."):
            skipped.append((path, "not a ferbench result (no ferbench schema)"))
            continue
        if not label.startswith("ferbench.result/"):
            skipped.append((path, "other schema"))
            continue
        problems = validate_result(record)
        if problems:
            skipped.append((path, "; ".join(problems)))
            continue
        record["_path"] = os.fspath(path)
        records.append(record)
    return records, skipped


def iter_reasons(skipped: Iterable[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """The skipped files worth telling the user about (not the other-schema ones)."""
    return [(p, r) for p, r in skipped if r != "other schema"]

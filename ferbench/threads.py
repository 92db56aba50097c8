"""How many CPU threads torch uses, and how they wait: chosen once, before torch starts OpenMP.

Measured on a 2-core machine with another process holding one core (ResNet-10-T training step, batch 128,
48x48): torch's defaults (one thread per core, OpenMP's spin-waiting threads) ran 47-54 img/s, while
``OMP_WAIT_POLICY=PASSIVE`` or a single thread ran 311-356 img/s. A spinning OpenMP thread that shares its
core with another process burns its time slice waiting for the thread that was descheduled; a passive one
sleeps. On an idle machine the two policies are alike (see ``ferbench bench --busy-cores``), so the
default is every core this process may use (``os.sched_getaffinity``: a cgroup or ``taskset`` limit
counts, the machine's core count does not) with passive waiting, *less the cores other processes keep busy
at start*: measured on the AMX Xeon (docs/cpu-recipe.md), two passive threads sharing a core with another
process ran 4.4x slower than on an idle machine, one thread beside it 1.0x (and 1.4x slower than two on an
idle machine). The load is sampled from ``/proc/stat`` over :data:`LOAD_SAMPLE_S` before torch loads (this
process is asleep meanwhile, so what is busy is someone else); a core counts as taken when more than half of
it was busy. Where ``/proc/stat`` is missing (macOS, Windows) nothing is subtracted.

libgomp reads ``OMP_WAIT_POLICY`` when it is loaded, i.e. at ``import torch``; :func:`configure` is
therefore called by the CLI before anything imports torch, and this module never imports torch at import
time. An ``OMP_WAIT_POLICY`` or ``OMP_NUM_THREADS`` the user set is respected and recorded as such.
Every result and bench record carries :func:`describe` under ``device.threads``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

THREADS_ENV = "FERBENCH_THREADS"
LOAD_SAMPLE_S = 0.15


@dataclass
class ThreadChoice:
    threads: int  # torch intra-op threads
    available_cores: int  # cores this process may run on
    source: str  # where `threads` came from: --threads, FERBENCH_THREADS, OMP_NUM_THREADS, the resumed run, available cores
    omp_wait_policy: str  # as OpenMP saw it: PASSIVE, ACTIVE, or "default" (libgomp: spin, then sleep)
    wait_policy_source: str  # "ferbench", "environment" (the user's), or "too late" (torch was loaded first)
    busy_cores: float | None = None  # with the default: cores other processes kept busy at start (None: not sampled)


_choice: ThreadChoice | None = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _cpu_times(cores: set[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cores`` from ``/proc/stat``; None where it cannot be read."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            values = [float(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(values)
            busy += sum(values) - values[3] - values[4]
    return busy, total


def busy_cores(sample_s: float = LOAD_SAMPLE_S) -> float | None:
    """How many of this process's cores other processes kept busy over ``sample_s`` (this one sleeps)."""
    try:
        cores = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    first = _cpu_times(cores)
    time.sleep(sample_s)
    second = _cpu_times(cores)
    if first is None or second is None or second[1] <= first[1]:
        return None
    return len(cores) * (second[0] - first[0]) / (second[1] - first[1])


def option_from_argv(argv: list[str], option: str) -> str | None:
    """The value of ``OPTION V`` or ``OPTION=V`` anywhere in ``argv`` (the last one wins), else None."""
    value = None
    for position, argument in enumerate(argv):
        if argument == option and position + 1 < len(argv):
            value = argv[position + 1]
        elif argument.startswith(option + "="):
            value = argument.split("=", 1)[1]
    return value


def resumed_threads(argv: list[str]) -> int | None:
    """The thread count of the run that ``ferbench run --resume DIR`` continues (its run.json's
    ``threads``), so that the resumed folds sum in the same order as the first ones did; None for anything
    else, or a run folder written before run.json recorded it."""
    folder = option_from_argv(argv, "--resume")
    if folder is None or not argv or argv[0] != "run":
        return None
    try:
        recorded = json.loads((Path(folder) / "run.json").read_text(encoding="utf-8")).get("threads")
    except (OSError, ValueError, AttributeError):
        return None  # the run command itself reports a missing or damaged folder
    return recorded if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0 else None


def parse_threads(text: str, where: str) -> int:
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{where} must be a positive number of threads, got {text!r}")
    return threads


def configure(argv: list[str] | None = None) -> ThreadChoice:
    """Choose the thread count and wait policy; sets the OpenMP environment if torch is not loaded yet.

    Raises ValueError naming the option for a bad ``--threads`` / ``FERBENCH_THREADS``.
    """
    global _choice
    cores = available_cores()
    argv = list(sys.argv[1:] if argv is None else argv)
    given = option_from_argv(argv, "--threads")
    if given is not None:
        threads, source = parse_threads(given, "--threads"), "--threads"
    elif os.environ.get(THREADS_ENV):
        threads, source = parse_threads(os.environ[THREADS_ENV], THREADS_ENV), THREADS_ENV
    elif os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        threads, source = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    elif (resumed := resumed_threads(argv)) is not None:
        threads, source = resumed, "the resumed run"
    else:
        busy = busy_cores()
        taken = int(busy + 0.5) if busy is not None else 0  # a core more than half busy is taken
        threads = max(1, cores - taken)
        source = "available cores" if threads == cores else f"available cores less {cores - threads} busy"
    if "torch" in sys.modules:
        # OpenMP has read its environment already; only the thread count can still change.
        policy_source = "too late"
    elif "OMP_WAIT_POLICY" in os.environ:
        policy_source = "environment"
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        policy_source = "ferbench"
    if "torch" not in sys.modules:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # sizes OpenMP's pool before torch creates it
    policy = os.environ.get("OMP_WAIT_POLICY", "default").upper()
    _choice = ThreadChoice(threads, cores, source, policy, policy_source,
                           busy if source.startswith("available cores") else None)
    return _choice


def apply() -> ThreadChoice:
    """Give torch the chosen thread count (configuring first if nobody did); call where torch is in use."""
    import torch

    choice = _choice or configure([])
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def describe() -> dict:
    """The choice in force, for records: threads, available cores, wait policy and where each came from."""
    import torch

    choice = apply()
    return {**asdict(choice), "torch_threads": torch.get_num_threads()}

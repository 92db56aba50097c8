"""The leaderboard: every result under ``results/`` aggregated per method x dataset x protocol x split,
mean +- SD over seeds and folds, beside the number the method's paper reports."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from ferbench.files import write_text
from ferbench.results import iter_reasons, load_results, now_iso, recorded_git

GROUP = ["method", "dataset", "train_dataset", "protocol", "test_split", "device", "setting"]
COLUMNS = ["Method", "Dataset", "Trained on", "Protocol", "Split", "Device", "Setting", "Accuracy %", "Macro-F1 %",
           "Runs", "Epochs", "Train s", "Time to accuracy", "Paper %", "Δ vs paper"]
# Settings that change how a model is scored, not the model: runs differing only in these share a row.
SCORING_ONLY = frozenset({"eval_every", "eval_batch_size"})
SPEED_COLUMNS = ["Infer img/s", "Train img/s", "Bench"]
DIRTY_MARK = " †"  # after a Setting: a run of the row was made from a checkout with uncommitted changes


def results_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in records:
        if r.get("status", "ok") != "ok":
            continue
        device = r["device"]
        rows.append({
            "method": r["method"], "dataset": r["dataset"], "train_dataset": r.get("train_dataset", r["dataset"]),
            "protocol": r["protocol"], "test_split": r["test_split"],
            "device": device.get("name") if device.get("type") == "cuda" else "cpu",
            "setting": setting_fingerprint(r),
            "fold": r["fold"], "seed": r["seed"], "epochs": trained_epochs(r),
            "accuracy": 100 * r["metrics"]["accuracy"], "macro_f1": 100 * r["metrics"]["macro_f1"],
            "train_seconds": training_seconds(r), "curve": r.get("time_to_accuracy") or None,
            "dirty": bool(recorded_git(r).get("dirty")),
        })
    return pd.DataFrame(rows, columns=[*GROUP, "fold", "seed", "epochs", "accuracy", "macro_f1", "train_seconds",
                                       "curve", "dirty"])


def training_seconds(record: dict[str, Any]) -> float | None:
    """The training clock of a run (evaluation excluded): the last epoch's ``train_seconds``, else fit time."""
    history = (record.get("extra") or {}).get("history") or []
    if history and isinstance(history[-1], dict) and isinstance(history[-1].get("train_seconds"), (int, float)):
        return float(history[-1]["train_seconds"])
    fit = (record.get("timings") or {}).get("fit_s")
    return float(fit) if isinstance(fit, (int, float)) else None


def trained_epochs(record: dict[str, Any]) -> int | None:
    """The epochs a run trained: its history's last epoch (a time budget stops before the configured
    count: 4 to 94 of 30 in the FER2013 runs), else the configured ``epochs``."""
    history = (record.get("extra") or {}).get("history") or []
    if history and isinstance(history[-1], dict) and isinstance(history[-1].get("epoch"), int):
        return history[-1]["epoch"]
    return (record.get("config") or {}).get("epochs")


def curve_text(curve: list[dict[str, Any]] | None, points: int = 4) -> str:
    """Up to ``points`` evenly spaced points of a time-to-accuracy curve: ``accuracy % @ training seconds``."""
    if not curve:
        return "-"
    step = max(1, -(-len(curve) // points))
    chosen = curve[::-1][::step][::-1]
    return ", ".join(f"{100 * p['accuracy']:.1f}@{p['train_seconds']:.0f}s" for p in chosen)


def setting_fingerprint(record: dict[str, Any]) -> str:
    """Six hex digits naming a run's settings, so that folds and seeds of one setting are averaged together
    and never with a run of other settings: its resolved config (another epoch count, data limit or
    ablation), its components (another image network under the same recipe), the share of its training
    data carved off as validation (``--validation``: less to train on) and its autocast precision."""
    config = record.get("config") or {}
    setting = {"config": {key: value for key, value in config.items() if key not in SCORING_ONLY},
               "components": record.get("components") or {}, "validation": record.get("validation"),
               "autocast": ((record.get("device") or {}).get("precision") or {}).get("autocast")}
    return hashlib.sha256(json.dumps(setting, sort_keys=True, default=str).encode()).hexdigest()[:6]


def mean_sd(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def aggregate(frame: pd.DataFrame, paper_rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per group, with the paper's number where registry.yaml has one (and rows for paper numbers
    nobody has reproduced yet, so the gaps show)."""
    rows = []
    matched: set[int] = set()
    for key, group in frame.groupby(GROUP, sort=True, dropna=False):
        method, dataset, trained_on, protocol, split, device, setting = key
        paper, index = _paper_value(paper_rows, method, dataset, protocol, split)
        if index is not None:
            matched.add(index)
        accuracy = group["accuracy"].mean()
        epochs = sorted({int(e) for e in group["epochs"].dropna()})
        seconds = group["train_seconds"].dropna()
        marked = setting + (DIRTY_MARK if group["dirty"].any() else "")
        rows.append([method, dataset, "" if trained_on == dataset else trained_on, protocol, split, device, marked,
                     mean_sd(group["accuracy"]), mean_sd(group["macro_f1"]), len(group),
                     ",".join(map(str, epochs)) or "-",
                     f"{seconds.mean():,.0f}" if len(seconds) else "-",
                     curve_text(group["curve"].iloc[0]) if len(group) == 1 else "-",
                     "-" if paper is None else _paper_text(paper),
                     "-" if paper is None else f"{accuracy - paper['value']:+.2f}"])
    for index, paper in enumerate(paper_rows):
        if index not in matched and paper["metric"] == "accuracy":
            rows.append([paper["method"], paper["dataset"], "", paper["protocol"], paper.get("split", "-"), "-", "-",
                         "not run", "-", 0, "-", "-", "-", _paper_text(paper), "-"])
    return pd.DataFrame(rows, columns=COLUMNS)


def _paper_value(paper_rows, method, dataset, protocol, split) -> tuple[dict | None, int | None]:
    for index, row in enumerate(paper_rows):
        if (row["method"], row["dataset"], row["protocol"], row["metric"]) == (method, dataset, protocol, "accuracy") \
                and row.get("split", split) == split:
            return row, index
    return None, None


def _paper_text(row: dict[str, Any]) -> str:
    return f"{row['value']:.2f}" + (f" ± {row['sd']:.2f}" if row.get("sd") is not None else "")


def leaderboard_markdown(table: pd.DataFrame, skipped: list, results_dir: Path, sections: list[str] = (),
                         failed: list[dict[str, Any]] = ()) -> str:
    lines = [
        "# ferbench leaderboard",
        "",
        f"Generated by `ferbench leaderboard` from the result records under `{results_dir}` on {now_iso()}.",
        "A row is one setting (`Setting`: a fingerprint of the runs' resolved config, components, validation share",
        "and autocast precision, so runs with other epochs, data limits, networks or ablations never share a row).",
        "Accuracy and macro-F1 are mean ± sample SD over every fold and seed of a row (`Runs` counts them);",
        "`Paper %` is the number the method's paper reports (registry.yaml), `Δ vs paper` our mean minus it.",
        "`Device` is where the run trained. `Epochs`: epochs trained (a time budget stops early).",
        "`Train s`: training seconds (evaluation excluded; mean over the row's runs); `Time to accuracy`: points",
        "of the run's curve (`--set eval_every=N`) as accuracy % @ training seconds.",
        f"`{DIRTY_MARK.strip()}` after a setting: one or more of its runs were made from a checkout with uncommitted",
        "changes (`git.dirty` in the record), so their commit does not reproduce them exactly.",
        "",
        tabulate(table.values.tolist(), headers=list(table.columns), tablefmt="github", disable_numparse=True)
        if len(table) else "_No results yet: run `ferbench run --method timm:resnet18 --dataset synthetic`._",
    ]
    for section in sections:
        lines += ["", section.strip()]
    if failed:
        lines += ["", "Failed runs (training stopped; left out of the table):", ""] + [
            f"- `{r['_path']}`: {r['error']['message'].splitlines()[0]}" for r in failed]
    if skipped:
        lines += ["", "Skipped files:", ""] + [f"- `{path}`: {reason}" for path, reason in skipped]
    return "\n".join(lines) + "\n"


def join_speed(table: pd.DataFrame, bench_rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Add each method's best benchmarked throughput (``ferbench bench`` records), so accuracy and speed sit
    side by side. The best inference figure picks the device and batch; training is read at the same ones."""
    table = table.copy()
    speed = {column: [] for column in SPEED_COLUMNS}
    for method in table["Method"]:
        mine = [r for r in bench_rows if r["model"] == method]
        inference = [r for r in mine if r["phase"] == "inference"]
        if not inference:
            for column in SPEED_COLUMNS:
                speed[column].append("-")
            continue
        best = max(inference, key=lambda r: r["images_per_s"])
        training = [r for r in mine if r["phase"] == "training" and r["device"] == best["device"]
                    and r["batch_size"] == best["batch_size"] and r["image_size"] == best["image_size"]]
        speed["Infer img/s"].append(f"{best['images_per_s']:,.0f}")
        speed["Train img/s"].append(f"{max(r['images_per_s'] for r in training):,.0f}" if training else "-")
        speed["Bench"].append(f"{best['device']}, {best['mode']}, batch {best['batch_size']}, {best['image_size']}px")
    for column in SPEED_COLUMNS:
        table[column] = speed[column]
    return table


def pareto_png(frame: pd.DataFrame, bench_rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Accuracy against best inference throughput, one panel per dataset and split, frontier drawn."""
    best = {}
    for r in bench_rows:
        if r["phase"] == "inference":
            best[r["model"]] = max(best.get(r["model"], 0), r["images_per_s"])
    frame = frame[frame["method"].isin(best) & (frame["protocol"] != "eval")]
    if frame.empty:
        return None
    from ferbench.plots import pareto_plot

    panels = {}
    for (dataset, split), group in frame.groupby(["dataset", "test_split"]):
        points = group.groupby("method")["accuracy"].mean()
        panels[f"{dataset} [{split}]"] = [(method, best[method], accuracy) for method, accuracy in points.items()]
    return pareto_plot(path, panels)


# "photometric" is augmix's first name (records of commit 1b3f646); a bool "photometric" is another
# method's option (the Arabian GAN's), not an augmentation.
ROBUSTNESS_AUGMENTATIONS = ("augmix", "photometric", "occlusion", "erasing")
FAMILY_ORDER = ("noise", "blur", "digital", "lighting", "occlusion", "geometric")


def robustness_section(records: list[dict[str, Any]], results_dir: Path, registry=None) -> str:
    """One row per robustness record: clean and mean corrupted accuracy, the drops, the worst corruption, the
    accuracy per corruption family, and the mCE against the reference model registry.yaml names for the
    dataset now (computed here, so a reference named after a record was written still applies)."""
    from ferbench.robustness import corruption_error, reference_for

    if not records:
        return ""
    rows = []
    for r in sorted(records, key=lambda r: (r["dataset"], r["split"], -r["summary"]["mean_accuracy"])):
        summary, config = r["summary"], r.get("training_config") or {}
        augmentation = ", ".join(f"{k} {config[k]:g}" for k in ROBUSTNESS_AUGMENTATIONS
                                 if config.get(k) and not isinstance(config[k], bool)) or "none"
        worst = summary["worst_corruption"]
        reference, named = reference_for(registry, r["dataset"], r["split"]) if registry else (None, None)
        accuracy = {(c["corruption"], c["severity"]): c["accuracy"] for c in r["cells"]}
        error = (corruption_error(r["clean"], accuracy, reference, named) if reference
                 else summary.get("corruption_error")) or {}
        families = summary.get("by_family") or {}
        rows.append([r["method"], f"{r['dataset']} [{r['split']}]" + (f", {r['fold']}" if r.get("fold") else ""),
                     augmentation, r.get("tta") or "-", f"{100 * summary['clean_accuracy']:.2f}", f"{100 * summary['mean_accuracy']:.2f}",
                     f"{100 * summary['mean_drop']:.1f}",
                     "-" if summary.get("drop_at_severity_3") is None else f"{100 * summary['drop_at_severity_3']:.1f}",
                     f"{100 * summary['relative_drop']:.0f}%" if summary.get("relative_drop") is not None else "-",
                     f"{worst['name']} {100 * worst['mean_accuracy']:.1f}",
                     " / ".join(f"{100 * families[f]:.0f}" for f in FAMILY_ORDER if f in families) or "-",
                     f"{100 * error['mce']:.1f}" if error.get("mce") is not None else "-",
                     f"`{Path(r['_path']).relative_to(results_dir).parent}`"])
    columns = ["Method", "Test set", "Robustness augmentation", "TTA", "Clean %", "Mean corrupted %", "Drop (points)",
               "Drop at severity 3", "Relative drop", "Worst corruption %", "By family % (" + "/".join(FAMILY_ORDER) + ")",
               "mCE %", "Record"]
    return "\n".join([
        "## Robustness", "",
        "`ferbench robustness`: each model scored on its test split under every corruption x severity 1-5",
        "(`ferbench list corruptions`; picture: `docs/corruptions.jpg`). Mean corrupted: over all cells; drops are",
        "clean minus corrupted accuracy; mCE: corruption error relative to the dataset's reference model",
        "(registry.yaml `robustness_references`; 100% = as robust as it).", "",
        tabulate(rows, headers=columns, tablefmt="github", disable_numparse=True)])


def calibration_section(records: list[dict[str, Any]]) -> str:
    """Calibration per method x dataset x split x setting (mean over folds and seeds): ECE, NLL and Brier as
    predicted, and ECE and NLL after temperature scaling where a run fitted one (``--validation``)."""
    rows = {}
    for r in records:
        metrics = r.get("metrics") or {}
        if r.get("status", "ok") != "ok" or "ece" not in metrics:
            continue
        key = (r["method"], r["dataset"], r["test_split"], setting_fingerprint(r))
        rows.setdefault(key, []).append(metrics)
    if not rows:
        return ""
    table = []
    for (method, dataset, split, setting), group in sorted(rows.items()):
        scaled = [m["temperature_scaled"] for m in group if m.get("temperature_scaled")]
        mean = lambda values: sum(values) / len(values)  # noqa: E731
        table.append([method, f"{dataset} [{split}]", setting, len(group), f"{100 * mean([m['accuracy'] for m in group]):.2f}",
                      f"{100 * mean([m['ece'] for m in group]):.2f}", f"{mean([m['nll'] for m in group]):.3f}",
                      f"{mean([m['brier'] for m in group]):.3f}",
                      f"{mean([s['temperature'] for s in scaled]):.2f}" if scaled else "-",
                      f"{100 * mean([s['ece'] for s in scaled]):.2f}" if scaled else "-",
                      f"{mean([s['nll'] for s in scaled]):.3f}" if scaled else "-"])
    columns = ["Method", "Test set", "Setting", "Runs", "Accuracy %", "ECE %", "NLL", "Brier", "T", "ECE after T %",
               "NLL after T"]
    return "\n".join([
        "## Calibration", "",
        "Expected calibration error (15 bins), negative log-likelihood and Brier score of the predicted",
        "probabilities; `T`: the temperature fitted on a validation split carved from the training data",
        "(`ferbench run --validation 0.1`), never the test split. Temperature scaling leaves accuracy unchanged.", "",
        tabulate(table, headers=columns, tablefmt="github", disable_numparse=True)])


@dataclass
class Leaderboard:
    """Everything the leaderboard shows, computed once for the Markdown file and the HTML site."""

    results_dir: Path
    table: pd.DataFrame  # the main table (COLUMNS + SPEED_COLUMNS)
    records: list[dict[str, Any]]  # every readable result record
    sections: list[str]  # Markdown: robustness, calibration, and each plugin's own
    failed: list[dict[str, Any]]
    skipped: list[tuple[str, str]]  # (file, why)
    pareto: Path | None  # results/pareto.png, where benchmarks exist


def build(results_dir: str | Path, paper_rows: list[dict[str, Any]], plugins=None, registry=None) -> Leaderboard:
    """Aggregate ``results_dir`` and draw ``pareto.png``; ``plugins`` (a PluginManager) may add sections of
    their own; ``registry`` names the reference models of the robustness section's mCE."""
    from ferbench.bench import load_bench
    from ferbench.robustness import load_records as load_robustness

    results_dir = Path(results_dir)
    records, skipped = load_results(results_dir)
    frame = results_frame(records)
    bench_rows = load_bench(results_dir / "bench")
    table = join_speed(aggregate(frame, paper_rows), bench_rows)
    pareto = pareto_png(frame, bench_rows, results_dir / "pareto.png")
    sections = [robustness_section(load_robustness(results_dir), results_dir, registry), calibration_section(records)]
    if plugins is not None:
        for returned in plugins.notify("ferbench_leaderboard_sections", records=records, paper=paper_rows):
            sections += [s for s in returned or [] if isinstance(s, str) and s.strip()]
    return Leaderboard(results_dir, table, records, [s for s in sections if s],
                       [r for r in records if r.get("status") == "failed"], iter_reasons(skipped), pareto)


def write_leaderboard(results_dir: str | Path, paper_rows: list[dict[str, Any]], output: str | Path | None = None,
                      plugins=None, registry=None) -> tuple[pd.DataFrame, list, Path]:
    """Write LEADERBOARD.md (and pareto.png where benchmarks exist): see :func:`build`."""
    board = build(results_dir, paper_rows, plugins, registry)
    return board.table, board.skipped, write_markdown(board, output)


def write_markdown(board: Leaderboard, output: str | Path | None = None) -> Path:
    """``board`` as LEADERBOARD.md (default: in its results folder)."""
    output = Path(output) if output else board.results_dir / "LEADERBOARD.md"
    write_text(output, leaderboard_markdown(board.table, board.skipped, board.results_dir, board.sections,
                                            board.failed))
    return output


__all__ = ["Leaderboard", "aggregate", "build", "mean_sd", "results_frame", "write_leaderboard", "write_markdown"]

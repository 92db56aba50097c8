"""The Arabian GAN's section of LEADERBOARD.md: the paper's Table 2 (per-class true-positive rate before and
after restyling, mean +- SD over classifiers) for every group of runs, beside the paper's numbers."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from tabulate import tabulate

from ferbench.leaderboard import setting_fingerprint

PAPER_ORDER = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


def _cell(values: list[float]) -> str:
    values = [100 * v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def _paper_cell(row: dict[str, Any] | None, key: str | None) -> str:
    if row is None:
        return "-"
    if key is None:
        value, sd = row["value"], row.get("sd")
    else:
        value, sd = (row.get("per_class") or {}).get(key), (row.get("per_class_sd") or {}).get(key)
    if value is None:
        return "-"
    return f"{value:.2f}" + (f" ± {sd:.2f}" if sd else "")


def evaluator_label(entry: dict[str, Any]) -> str:
    """An evaluator's name in a table: the component name, and for a saved model the run that trained it
    (its folder path says less and runs off the page)."""
    validation = entry.get("validation") or {}
    trained_by = validation.get("trained_by") or {}
    if trained_by.get("run_id"):
        component = validation.get("component") or trained_by.get("method") or entry["name"]
        return f"{component} (saved, run {trained_by['run_id']})"
    return entry["name"]


def _mean_tpr(entry: dict[str, Any], stage: str) -> float:
    return float(np.mean([v for v in entry[stage]["per_class_tpr"].values() if v is not None]))


def per_evaluator_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """One row per evaluator: its mean TPR and accuracy before and after, mean ± SD over the runs (seeds),
    and in how many runs restyling raised its mean TPR; the question Table 2's pooled SD hides."""
    by_name: dict[str, list[dict[str, Any]]] = {}  # the name (component or folder) is the same in every seed
    for r in runs:
        for entry in r["extra"]["classifiers"]:
            if entry["role"] == "evaluator":
                by_name.setdefault(entry["name"], []).append(entry)
    rows = []
    for entries in by_name.values():
        before = [_mean_tpr(e, "before") for e in entries]
        after = [_mean_tpr(e, "after") for e in entries]
        gains = [a - b for b, a in zip(before, after)]
        rows.append([evaluator_label(entries[0]), _cell(before), _cell(after), _cell(gains),
                     f"{sum(g > 0 for g in gains)} of {len(gains)}",
                     _cell([e["before"]["accuracy"] for e in entries]),
                     _cell([e["after"]["accuracy"] for e in entries])])
    return rows


def table2_sections(records: list[dict[str, Any]], paper: list[dict[str, Any]], methods: Iterable[str]) -> list[str]:
    methods = tuple(methods)
    mine = [r for r in records if r.get("method") in methods and isinstance((r.get("extra") or {}).get("table2"), dict)]
    if not mine:
        return []
    paper_rows = {row.get("stage"): row for row in paper if row["method"] in methods and row.get("stage")}
    before_paper, after_paper = paper_rows.get("before"), paper_rows.get("after")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in mine:
        device = r["device"].get("name") if r["device"].get("type") == "cuda" else "cpu"
        setting = setting_fingerprint(r)  # as the main table: one setting per section
        groups.setdefault((r["method"], r["dataset"], r["train_dataset"], r["test_split"], device, setting),
                          []).append(r)

    lines = [
        "## Arabian GAN: true-positive rate before and after restyling (the paper's Table 2)",
        "",
        "Per class, the true-positive rate (%) of classifiers trained on the target dataset, on the source",
        "dataset's test images as they are (*before*) and restyled by Enet -> Gnet (*after*), as mean ± SD over",
        "the evaluator classifiers (and seeds, where a row has several runs). The evaluators never guided the",
        "GAN's training (the guide's own numbers are in each result's `extra.guide_table2`). `Accuracy` is",
        "true positives over all images, which is what the paper's *Mean* row matches. **The datasets differ**:",
        "the paper restyles FACES + JAFFE towards three OULU-CASIA subjects at 96x96; our rows name their own",
        "source -> target pair, so the paper's columns are a reference for the shape of the result, not a",
        "number to match.",
    ]
    for (method, dataset, target, split, device, setting), runs in sorted(groups.items()):
        classes = list(dict.fromkeys(c for r in runs for c in r["extra"]["table2"]["classes"]))
        evaluators = [c for r in runs for c in r["extra"]["classifiers"] if c["role"] == "evaluator"]
        names = sorted({evaluator_label(c) for c in evaluators})
        rows = []
        ordered = [c for c in PAPER_ORDER if c in classes] + [c for c in classes if c not in PAPER_ORDER]
        ordered += [c for c in PAPER_ORDER if c not in ordered and before_paper is not None]
        for c in ordered:
            rows.append([c] + [_cell([e[stage]["per_class_tpr"].get(c) for e in evaluators]) if c in classes else "-"
                               for stage in ("before", "after")]
                        + [_paper_cell(before_paper, c), _paper_cell(after_paper, c)])
        for label, stage_value in (("**Mean TPR**", _mean_tpr), ("**Accuracy**", lambda e, s: e[s]["accuracy"])):
            paper_value = ("_paper's Mean_", _paper_cell(before_paper, None), _paper_cell(after_paper, None)) \
                if label == "**Accuracy**" else (None, "-", "-")
            rows.append([label] + [_cell([stage_value(e, stage) for e in evaluators]) for stage in ("before", "after")]
                        + list(paper_value[1:]))
        vanished = sorted({c for r in runs for c in r["extra"]["collapse"]["vanished"]})
        frechet = [(r["extra"]["frechet"]["before"], r["extra"]["frechet"]["after"]) for r in runs]
        epochs = sorted({str((r.get("config") or {}).get("epochs")) for r in runs})
        options = sorted({str((r.get("config") or {}).get("data_options")) for r in runs} - {"None"})
        lines += [
            "",
            f"### {method}: {dataset} restyled towards {target} [{split}], {device}, setting {setting}",
            "",
            f"{len(runs)} run(s); evaluators: {', '.join(names)}; restyler epochs {', '.join(epochs)}"
            + (f"; data options {', '.join(options)}" if options else "") + ".",
            "",
            tabulate(rows, headers=["Class", "Before %", "After %", "Paper before %", "Paper after %"],
                     tablefmt="github", disable_numparse=True),
            "",
            "Each evaluator (mean ± SD over the runs):",
            "",
            tabulate(per_evaluator_rows(runs), headers=["Evaluator", "Mean TPR before %", "Mean TPR after %",
                                                        "Gain (points)", "Runs with a gain", "Accuracy before %",
                                                        "Accuracy after %"],
                     tablefmt="github", disable_numparse=True),
            "",
            "Collapse (classes the evaluators' mean prediction on restyled images leaves out): "
            + (", ".join(vanished) if vanished else "none") + ". "
            + "Fréchet distance to the target in the evaluators' features: "
            + f"{np.mean([b for b, _ in frechet]):.2f} before -> {np.mean([a for _, a in frechet]):.2f} after.",
        ]
    if before_paper is not None or after_paper is not None:
        source = (after_paper or before_paper)
        lines += ["", f"Paper: {source.get('paper', '')}; {source.get('dataset')} -> {source.get('target', '?')}. "
                      + (source.get("note") or "")]
    return ["\n".join(lines)]

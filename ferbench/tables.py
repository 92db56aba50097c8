"""Terminal tables (rich) for a result record: scores, per-class true-positive rates, confusion matrix."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def result_table(record: dict[str, Any]) -> Group:
    metrics = record["metrics"]
    classes = metrics["classes"]
    title = Text.assemble((record["method"], "bold"), " on ", (f"{record['dataset']} [{record['test_split']}]", "bold"),
                          f"  protocol {record['protocol']}, {record['fold']}, seed {record['seed']}")
    if record.get("train_dataset") not in (None, record["dataset"]):
        title.append(f", trained on {record['train_dataset']}")
    summary = Table(show_header=True)
    for column in ("accuracy", "macro-F1", "images", "fit s", "predict img/s"):
        summary.add_column(column, justify="right")
    timings = record.get("timings", {})
    summary.add_row(f"{metrics['accuracy']:.2%}", f"{metrics['macro_f1']:.2%}", str(record["data"]["scored_images"]),
                    f"{timings['fit_s']:.1f}" if "fit_s" in timings else "-",
                    f"{timings.get('predict_images_per_s', 0):,.0f}")
    confusion = Table(caption="TPR: per-class true-positive rate; confusion matrix rows: true class, columns: predicted",
                      caption_justify="left")
    confusion.add_column("class")
    confusion.add_column("TPR", justify="right")
    confusion.add_column("n", justify="right")
    for name in classes:
        confusion.add_column(name[:5], justify="right")
    for name, row in zip(classes, metrics["confusion_matrix"]):
        tpr = metrics["per_class_tpr"][name]
        confusion.add_row(name, "-" if tpr is None else f"{tpr:.1%}", str(metrics["support"][name]),
                          *[str(v) for v in row])
    return Group(title, summary, confusion)

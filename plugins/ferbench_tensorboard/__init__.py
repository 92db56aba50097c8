"""Log ferbench runs for TensorBoard: ``ferbench run ... --track tensorboard`` (or ``FERBENCH_TRACK``).

Event files go to ``$FERBENCH_TENSORBOARD_DIR/<run_id>`` (default ``runs/<run_id>``, torch's own
convention; ``tensorboard --logdir runs``), written by ``torch.utils.tensorboard.SummaryWriter`` through the
lifecycle hooks: every epoch's loss, train accuracy, learning rate and seconds as scalars
(``<fold>/loss``, step = epoch; with ``eval_every`` also ``<fold>/<split>/test_accuracy``), the resolved
config as text, and at the end each fold's and split's accuracy and macro-F1 and its confusion matrix
picture (the run's own PNG) as an image. Needs ``pip install 'ferbench[tracking]'`` (tensorboard).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ferbench import hookimpl
from ferbench.errors import ConfigError
from ferbench.interfaces import TrackerSpec

NAME = "tensorboard"
DIR_ENV = "FERBENCH_TENSORBOARD_DIR"
_writers: dict = {}  # ferbench run id -> SummaryWriter


def check() -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (needs the tensorboard package)
    except ImportError as error:
        raise ConfigError("--track tensorboard needs TensorBoard: pip install 'ferbench[tracking]' "
                          "(or tensorboard)") from error


def log_dir(run_id: str) -> Path:
    return Path(os.environ.get(DIR_ENV) or "runs") / run_id


def _on(run) -> bool:
    return NAME in (run.get("track") or [])


@hookimpl
def ferbench_register_trackers():
    return [TrackerSpec(NAME, check, "TensorBoard event files: per-epoch scalars, final metrics, confusion "
                                     "matrices ($FERBENCH_TENSORBOARD_DIR, else ./runs)")]


@hookimpl
def ferbench_run_start(run):
    if not _on(run):
        return
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir(run["run_id"])))
    writer.add_text("config", "```\n" + json.dumps({k: run[k] for k in ("method", "components", "dataset",
                                                                          "protocol", "seed", "config")},
                                                     indent=2, default=str) + "\n```")
    _writers[run["run_id"]] = writer


@hookimpl
def ferbench_epoch_end(run, fold, epoch, metrics):
    writer = _writers.get(run["run_id"]) if _on(run) else None
    if writer is None:
        return
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"{fold}/{key}", value, epoch)
    for split, value in (metrics.get("test_accuracy") or {}).items():
        writer.add_scalar(f"{fold}/{split}/test_accuracy", value, epoch)


@hookimpl
def ferbench_run_end(run, results):
    writer = _writers.pop(run["run_id"], None) if _on(run) else None
    if writer is None:
        return
    import cv2

    try:
        for record in results:
            if record.get("status") != "ok":
                continue
            tag = f"{record['fold']}/{record['test_split']}"
            for key in ("accuracy", "macro_f1"):
                writer.add_scalar(f"{tag}/{key}", record["metrics"][key], 0)
            picture = Path(record["_path"]).parent / (record.get("artifacts") or {}).get("confusion_matrix_png", "")
            image = cv2.imread(str(picture), cv2.IMREAD_COLOR) if picture.is_file() else None
            if image is not None:
                writer.add_image(f"{tag}/confusion_matrix", image[:, :, ::-1].copy(), 0, dataformats="HWC")
    finally:
        writer.close()

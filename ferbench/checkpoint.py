"""Weights in and out, safely: safetensors, or ``torch.load(weights_only=True)``; never a code-running pickle.

A *saved model* is a folder with ``model.safetensors`` and ``model.json`` (how to rebuild it: component
name, constructor arguments, classes, input normalisation, and the run that trained it). Anything
ferbench trains can be evaluated again, used for prediction, or serve as another method's frozen
classifier from that folder alone.

A *training checkpoint* (:class:`TrainingCheckpoint`) is a fold's whole training state, written each
epoch so that ``ferbench run --resume`` continues an interrupted run exactly where it stopped. It is read
back with ``torch.load(weights_only=True)`` too: a shared results folder can hold nothing that runs code.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import safetensors.torch
import torch
from torch import nn

from ferbench.data import InputSpec
from ferbench.errors import CheckpointError, FerbenchError
from ferbench.files import atomic_path, write_json

MODEL_FORMAT = "ferbench.model/1"
MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file or a PyTorch checkpoint, refusing arbitrary pickles."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except Exception as error:
            raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects beyond tensors, and unpickling them could run "
            f"arbitrary code. Re-save it as safetensors or a plain state_dict. ({str(error).splitlines()[0]})"
        ) from error
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {error}") from error
    for key in ("state_dict", "model", "model_state_dict"):  # common wrappers around a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def load_weights(module: nn.Module, path: str | Path, classes: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """Load matching weights from ``path`` into ``module`` and report what did not match.

    Tensors whose shape differs (a 1000-class head, say) are skipped; an RGB first convolution is summed
    over its input channels when the module takes grey images. When the weights are a saved ferbench model
    (a ``model.json`` beside them names its classes) and ``classes`` are the module's, the output head's
    rows are matched by class name: FER2013's "happiness" row lands on CK+48's "happiness", and a class the
    source never had keeps the module's fresh initialisation (loading by position would hand CK+48's
    "contempt" FER2013's "disgust" row). Returns the skipped, missing, unexpected and remapped keys.
    Nothing matching at all is an error: it means the file is for another architecture.
    """
    own = module.state_dict()
    state = _match_prefix(load_state_dict(path), own)
    remapped = _match_head_by_class(state, own, _saved_classes(path), classes)
    usable, skipped = {}, []
    for key, tensor in state.items():
        target = own.get(key)
        if target is None:
            continue
        if tensor.shape != target.shape and tensor.ndim == 4 and tensor.shape[1] == 3 and target.shape[1] == 1 \
                and tensor.shape[0] == target.shape[0] and tensor.shape[2:] == target.shape[2:]:
            tensor = tensor.sum(dim=1, keepdim=True)
        if tensor.shape == target.shape:
            usable[key] = tensor.to(target.dtype)
        else:
            skipped.append(f"{key} {tuple(tensor.shape)} -> {tuple(target.shape)}")
    if not usable:
        raise CheckpointError(f"no tensor in {path} matches the model by name and shape")
    result = module.load_state_dict(usable, strict=False)
    return {"skipped": skipped, "missing": list(result.missing_keys),
            "unexpected": [k for k in state if k not in own], "remapped": remapped}


def _saved_classes(path: str | Path) -> tuple[str, ...] | None:
    """The classes of the saved ferbench model whose weights ``path`` is, if a readable model.json is beside it."""
    try:
        record = json.loads((Path(path).parent / MODEL_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    classes = record.get("classes") if isinstance(record, dict) else None
    return tuple(classes) if isinstance(classes, list) and all(isinstance(c, str) for c in classes) else None


def _match_head_by_class(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                         source: tuple[str, ...] | None, target: tuple[str, ...] | None) -> list[str]:
    """Rewrite ``state``'s output-head tensors (the module's last-registered layer, one row per class) into
    ``target``'s class order, rows of classes ``source`` lacks taken from ``own``; say what was rewritten."""
    if not source or not target or tuple(source) == tuple(target) or not own:
        return []
    head = next(reversed(own)).rpartition(".")[0] + "."
    shared = [(row, source.index(name)) for row, name in enumerate(target) if name in source]
    remapped = []
    for key, tensor in list(state.items()):
        mine = own.get(key)
        if not key.startswith(head) or mine is None or tensor.ndim != mine.ndim or tensor.ndim == 0 \
                or tensor.shape[0] != len(source) or mine.shape[0] != len(target) or tensor.shape[1:] != mine.shape[1:]:
            continue
        rows = mine.detach().clone()
        for row, source_row in shared:
            rows[row] = tensor[source_row]
        state[key] = rows
        remapped.append(f"{key}: {len(shared)} of {len(target)} classes by name")
    return remapped


def _match_prefix(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Re-key ``state`` when it and the module differ only by a leading prefix ("model.", "module.")."""
    if set(state) & set(own):
        return state
    own_prefix, state_prefix = _common_prefix(own), _common_prefix(state)
    return {own_prefix + key[len(state_prefix):]: tensor for key, tensor in state.items()}


def _common_prefix(keys) -> str:
    prefix = os.path.commonprefix(list(keys))
    return prefix[: prefix.rfind(".") + 1]


def save_model(directory: str | Path, module: nn.Module, *, kind: str, component: str,
               build: dict[str, Any], classes: tuple[str, ...], input_spec: InputSpec,
               trained_by: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``directory`` (each atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / MODEL_WEIGHTS) as tmp:
        safetensors.torch.save_model(module, str(tmp))
    write_json(directory / MODEL_JSON, {
        "format": MODEL_FORMAT,
        "kind": kind,
        "component": component,
        "build": build,
        "classes": list(classes),
        "input": {"in_chans": input_spec.in_chans, "image_size": input_spec.image_size,
                  "mean": list(input_spec.mean), "std": list(input_spec.std)},
        "weights": MODEL_WEIGHTS,
        "trained_by": trained_by,
    })
    return directory


def read_model_record(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The folder and parsed ``model.json`` of a saved model (``path``: the folder or its model.json)."""
    path = Path(path).expanduser()
    directory = path.parent if path.name == MODEL_JSON else path
    record_path = directory / MODEL_JSON
    if not record_path.is_file():
        raise CheckpointError(f"{directory} is not a saved ferbench model: {MODEL_JSON} not found")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{record_path} is not valid JSON: {error}") from error
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{record_path}: expected format {MODEL_FORMAT!r}, got {record.get('format')!r}"
                              if isinstance(record, dict) else f"{record_path} is not a model record")
    missing = [k for k in ("kind", "component", "build", "classes", "input") if k not in record]
    if missing:
        raise CheckpointError(f"{record_path} lacks {', '.join(missing)}")
    problems = _record_problems(record)
    if problems:
        raise CheckpointError(f"{record_path}: {'; '.join(problems)}")
    return directory, record


def _record_problems(record: dict[str, Any]) -> list[str]:
    """What in a model.json (which may come from anyone) is not what ``save_model`` writes."""
    problems = []
    for key in ("kind", "component"):
        if not isinstance(record[key], str):
            problems.append(f"{key} must be a string")
    scalar = (str, int, float, bool, type(None))
    if not isinstance(record["build"], dict) or not all(
            isinstance(k, str) and isinstance(v, scalar) for k, v in record["build"].items()):
        problems.append("build must map argument names to plain values")
    if not isinstance(record["classes"], list) or not record["classes"] \
            or not all(isinstance(c, str) for c in record["classes"]):
        problems.append("classes must be a non-empty list of class names")
    if not _valid_input(record["input"]):
        problems.append("input must give in_chans (1 or 3), image_size, and a finite mean and positive std per channel")
    weights = record.get("weights", MODEL_WEIGHTS)
    if not isinstance(weights, str) or Path(weights).name != weights or weights in ("", ".", "..") \
            or not weights.endswith(".safetensors"):
        problems.append(f"weights must name a .safetensors file inside the model folder, got {weights!r}")
    return problems


def _valid_input(spec: Any) -> bool:
    if not isinstance(spec, dict) or type(spec.get("in_chans")) is not int or spec["in_chans"] not in (1, 3):
        return False
    size = spec.get("image_size")
    if type(size) is not int or not 1 <= size <= 4096:
        return False
    for key in ("mean", "std"):
        values = spec.get(key)
        if not isinstance(values, list) or len(values) != spec["in_chans"] or not all(map(_finite, values)):
            return False
    return all(s > 0 for s in spec["std"])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def load_model(path: str | Path, build) -> tuple[nn.Module, InputSpec, dict[str, Any]]:
    """Rebuild a saved model with ``build(kind, name, **kwargs)`` (``Catalog.build``) and load its weights.

    Weights come only from a ``.safetensors`` file inside the model's folder (a model.json naming any other
    file, or a link out of the folder, is refused). Returns the module in eval mode, its input transform
    and its record.
    """
    directory, record = read_model_record(path)
    weights = directory / record.get("weights", MODEL_WEIGHTS)
    if not weights.is_file():
        raise CheckpointError(f"saved model {directory} lacks its weights file {weights.name}")
    if not weights.resolve().is_relative_to(directory.resolve()):
        raise CheckpointError(f"{weights} links to {weights.resolve()}, outside the model folder {directory}; refused")
    try:
        module = build(record["kind"], record["component"], **record["build"])
    except FerbenchError:
        raise
    except Exception as error:
        raise CheckpointError(f"{directory / MODEL_JSON}: cannot build {record['component']!r} with "
                              f"{record['build']}: {type(error).__name__}: {error}") from error
    try:
        missing, unexpected = safetensors.torch.load_model(module, str(weights), strict=False)
    except Exception as error:
        raise CheckpointError(f"{weights} is not a readable safetensors file for {record['component']}: "
                              f"{type(error).__name__}: {str(error).splitlines()[0]}") from error
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not fit {record['component']}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    spec = record["input"]
    input_spec = InputSpec(int(spec["in_chans"]), int(spec["image_size"]), tuple(spec["mean"]), tuple(spec["std"]))
    return module.eval(), input_spec, record


# --- training state, for resume -------------------------------------------------------------------

TRAINING_STATE_FORMAT = "ferbench.training-state/1"


@dataclass(frozen=True)
class Resumed:
    """Where a training loop starts: after ``epoch`` (0 on a fresh start), with the ``extra`` values it
    saved at that epoch (its history, say)."""

    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingCheckpoint:
    """A fold's training state, saved atomically after every epoch, restored when a run is resumed.

    ``state`` maps names to the objects a loop needs to continue bit for bit: anything with
    ``state_dict``/``load_state_dict`` (modules, optimizers, LR schedules, grad scalers) and
    ``torch.Generator`` s. The global RNGs (Python, NumPy, torch CPU and CUDA) are saved with them, so
    dropout and augmentation draw the same numbers after a resume. ``extra`` holds plain values (lists,
    dicts, numbers, strings, tensors). A loop adopts it in four lines::

        state = {"model": model, "optimizer": optimizer, "schedule": schedule, "generator": generator}
        start = ctx.checkpoint.restore(state)          # Resumed(epoch=0) on a fresh start
        history = start.extra.get("history", [])
        for epoch in range(start.epoch + 1, epochs + 1):
            ...                                        # one epoch of training
            ctx.checkpoint.save(epoch, state, history=history)

    Build everything in ``state`` (and seed) before ``restore``, exactly as on a fresh start. Without a
    path (``TrainingCheckpoint()``) both calls do nothing, so a loop works the same outside the runner.
    With ``writable=False`` (the ranks other than 0 of a distributed run) ``restore`` reads and ``save``
    and ``remove`` do nothing.
    """

    def __init__(self, path: str | Path | None = None, writable: bool = True):
        self.path = Path(path) if path is not None else None
        self.writable = writable
        self.epoch = 0  # the epoch the file on disk holds; 0 when there is none
        self.resumed_from = 0  # the epoch restore() continued after; 0 on a fresh start

    def restore(self, state: Mapping[str, Any]) -> Resumed:
        """Load the saved state into the objects of ``state``; ``Resumed()`` when there is nothing saved."""
        if self.path is None:
            return Resumed()
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp") if self.writable else ():
            stale.unlink(missing_ok=True)  # a write cut short by SIGKILL
        if not self.path.is_file():
            return Resumed()
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise CheckpointError(f"cannot resume from {self.path}: {str(error).splitlines()[0]}. Delete the file "
                                  "to train this fold from the start.") from error
        if not isinstance(saved, dict) or saved.get("format") != TRAINING_STATE_FORMAT \
                or not isinstance(saved.get("state"), dict) or not isinstance(saved.get("rng"), dict) \
                or type(saved.get("epoch")) is not int:
            raise CheckpointError(f"{self.path} is not a ferbench training checkpoint ({TRAINING_STATE_FORMAT})")
        if sorted(saved["state"]) != sorted(state):
            raise CheckpointError(f"{self.path} holds {sorted(saved['state'])}, but the training loop restores "
                                  f"{sorted(state)}; it was written by another version of this method")
        for name, target in state.items():
            try:
                if isinstance(target, torch.Generator):
                    target.set_state(saved["state"][name])
                else:
                    target.load_state_dict(saved["state"][name])
            except Exception as error:
                raise CheckpointError(f"{self.path}: {name} does not fit: {error}") from error
        try:
            _set_rng_states(saved["rng"])
        except Exception as error:
            raise CheckpointError(f"{self.path}: its random number generator states are damaged: {error}") from error
        self.epoch = self.resumed_from = saved["epoch"]
        return Resumed(self.epoch, dict(saved.get("extra") or {}))

    def save(self, epoch: int, state: Mapping[str, Any], **extra: Any) -> None:
        """Write the state after ``epoch`` in one atomic replace: the previous checkpoint stays whole until
        the new one is complete."""
        if self.path is None or not self.writable:
            return
        payload = {
            "format": TRAINING_STATE_FORMAT, "epoch": int(epoch),
            "state": {name: target.get_state() if isinstance(target, torch.Generator) else target.state_dict()
                      for name, target in state.items()},
            "rng": _rng_states(), "extra": extra,
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)
        self.epoch = int(epoch)

    def stage(self, name: str) -> "TrainingCheckpoint":
        """The checkpoint of one training loop of a fold that runs several in turn (a GAN method's
        classifiers, then its generator): a file beside this one, ``<stem>.<name><suffix>``. A stage that
        finished holds its last epoch, so a resumed fold restores it and goes straight on to the next;
        :meth:`remove` deletes the stages' files with this one."""
        if self.path is None:
            return TrainingCheckpoint(writable=self.writable)
        return TrainingCheckpoint(self.path.with_name(f"{self.path.stem}.{name}{self.path.suffix}"), self.writable)

    def remove(self) -> None:
        """Delete the checkpoint and its stages' (the fold's results are written; the trained model is
        saved on its own)."""
        if self.path is not None and self.writable:
            self.path.unlink(missing_ok=True)
            for stage in self.path.parent.glob(f"{self.path.stem}.*{self.path.suffix}"):
                stage.unlink(missing_ok=True)


def _rng_states() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "numpy": [kind, keys.tolist(), position, has_gauss, cached],
            "torch": torch.get_rng_state(),
            # This process's own GPU only: each rank restores its own, and a checkpoint made on a machine with
            # another number of GPUs still loads.
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None}


def _set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda")
    if isinstance(cuda, list):  # written before checkpoints kept the local GPU's state only: one per GPU
        local = torch.cuda.current_device() if cuda and torch.cuda.is_available() else None
        cuda = cuda[local] if local is not None and local < len(cuda) else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)

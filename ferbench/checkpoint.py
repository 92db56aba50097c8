"""Weights in and out, safely: safetensors, or ``torch.load(weights_only=True)``; never a code-running pickle.

A *saved model* is a folder with ``model.safetensors`` and ``model.json`` (how to rebuild it: component
name, constructor arguments, classes, input normalisation, and the run that trained it). Anything
ferbench trains can be evaluated again, used for prediction, or serve as another method's frozen
classifier from that folder alone.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from ferbench.data import InputSpec
from ferbench.errors import CheckpointError
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


def load_weights(module: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load matching weights from ``path`` into ``module`` and report what did not match.

    Tensors whose shape differs (a 1000-class head, say) are skipped; an RGB first convolution is summed
    over its input channels when the module takes grey images. Returns the skipped, missing and
    unexpected keys. Nothing matching at all is an error: it means the file is for another architecture.
    """
    state = _match_prefix(load_state_dict(path), module.state_dict())
    own = module.state_dict()
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
            "unexpected": [k for k in state if k not in own]}


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
    return directory, record


def load_model(path: str | Path, build) -> tuple[nn.Module, InputSpec, dict[str, Any]]:
    """Rebuild a saved model with ``build(kind, name, **kwargs)`` (``Catalog.build``) and load its weights.

    Returns the module in eval mode, its input transform and its record.
    """
    directory, record = read_model_record(path)
    module = build(record["kind"], record["component"], **record["build"])
    weights = directory / record.get("weights", MODEL_WEIGHTS)
    if not weights.is_file():
        raise CheckpointError(f"saved model {directory} lacks its weights file {weights.name}")
    missing, unexpected = safetensors.torch.load_model(module, str(weights), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not fit {record['component']}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    spec = record["input"]
    input_spec = InputSpec(int(spec["in_chans"]), int(spec["image_size"]), tuple(spec["mean"]), tuple(spec["std"]))
    return module.eval(), input_spec, record

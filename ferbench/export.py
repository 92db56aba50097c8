"""``ferbench export``: a saved model as one ONNX file that runs without ferbench or PyTorch, and the
ONNX Runtime classifier that ``ferbench predict --backend onnxruntime`` uses.

The graph takes what the face pipeline makes, uint8 face crops at the model's size (``(N, S, S)`` grey
or ``(N, S, S, 3)`` RGB), and returns class probabilities ``(N, C)``: scaling, normalisation and softmax
are inside it, so a user of the file only has to crop faces. The same preprocessing, the classes and the
saved model's whole ``model.json`` record (face pipeline included) are in the file's metadata under the
key ``ferbench`` (JSON), so ``ferbench predict --model model.onnx`` works from the file alone.

An export is verified before it is written: ONNX Runtime's probabilities on sample crops (seeded noise
and smooth gradients) must match PyTorch's within ``tolerance``, else nothing is written. Exported with the
TorchScript-based exporter (``dynamo=False``): it needs no onnxscript and handles the compact nets and timm
models alike; opset 17.

``--int8`` writes ``model-int8.onnx`` beside it: the verified fp32 graph after ONNX Runtime's static int8
quantisation (QDQ), its activation ranges calibrated on real faces (by default the model's own training
set, never a test split). An int8 graph cannot match fp32 to 1e-4, so it is checked on other faces of the
same set instead: its class must agree with the fp32 graph's on at least ``min_agreement`` of them, else
nothing is written; the agreement, the calibration faces and their source are in its metadata. Its
accuracy is what ``ferbench eval --model model-int8.onnx`` measures, like any model's.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ferbench import precision
from ferbench.checkpoint import load_model, read_model_record
from ferbench.data import InputSpec
from ferbench.errors import CheckpointError, ConfigError
from ferbench.files import atomic_path
from ferbench.training import predict_proba, tta_views

ONNX_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
METADATA_KEY = "ferbench"
METADATA_SCHEMA = "ferbench.onnx/1"
OPSET = 17


class CropsToProbabilities(nn.Module):
    """uint8 crops at the model's size -> probabilities: the model with its input transform and softmax."""

    def __init__(self, model: nn.Module, spec: InputSpec):
        super().__init__()
        self.model, self.in_chans = model, spec.in_chans
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.float() / 255.0
        x = x.unsqueeze(1) if self.in_chans == 1 else x.permute(0, 3, 1, 2)
        return self.model((x - self.mean) / self.std).softmax(1)


def crop_shape(spec: InputSpec) -> tuple[int, ...]:
    """One crop's shape as the face pipeline makes it for this model."""
    size = spec.image_size
    return (size, size) if spec.in_chans == 1 else (size, size, 3)


def sample_crops(spec: InputSpec, count: int = 32, seed: int = 0) -> np.ndarray:
    """Crops to verify an export on: half seeded uniform noise, half smooth random gradients (closer to
    faces' statistics), so both saturated and ordinary activations are compared."""
    rng = np.random.default_rng(seed)
    shape = crop_shape(spec)
    noise = rng.integers(0, 256, (count // 2, *shape), dtype=np.uint8)
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] / shape[0]
    weights = rng.uniform(-1, 1, (count - count // 2, 3))
    smooth = 128 + 100 * np.tanh(weights[:, :1, None] * rows + weights[:, 1:2, None] * cols + weights[:, 2:, None])
    if len(shape) == 3:
        smooth = np.repeat(smooth[..., None], 3, axis=-1)
    return np.concatenate([noise, smooth.astype(np.uint8)])


def export_onnx(model_path: str | Path, build: Callable[..., nn.Module], out: str | Path | None = None,
                tolerance: float = 1e-4, int8_faces: np.ndarray | None = None,
                int8_source: dict[str, Any] | None = None, min_agreement: float = 0.95) -> dict[str, Any]:
    """Export the saved model at ``model_path`` to ``out`` (default: ``model.onnx`` in its folder) after
    checking it against PyTorch on sample crops; returns what was checked and written.

    With ``int8_faces`` (uint8 faces, any size; ``int8_source`` says where they came from), the file is the
    int8 graph instead (default ``model-int8.onnx``): calibrated on the first half of the faces, checked
    against the fp32 graph on the second half."""
    _onnxruntime()  # before any work: the error says what to install
    model, spec, record = load_model(model_path, build)
    directory = Path(model_path).expanduser()
    directory = directory.parent if directory.suffix == ".json" else directory
    wrapper = CropsToProbabilities(model.float().eval(), spec).eval()
    samples = sample_crops(spec)
    graph = to_onnx(wrapper, torch.from_numpy(samples[:2]), "crops", "probabilities")
    metadata = {"schema": METADATA_SCHEMA, "classes": list(record["classes"]),
                "input": {"layout": "NHW (grey)" if spec.in_chans == 1 else "NHWC (RGB)", "dtype": "uint8",
                          "image_size": spec.image_size, "in_chans": spec.in_chans, "scale": 1 / 255,
                          "mean": list(spec.mean), "std": list(spec.std)},
                "output": "probabilities (softmax over classes)", "model": record, "torch": torch.__version__}
    data = with_metadata(graph, metadata)
    # The graph computes in fp32, so it is checked against fp32 PyTorch even under --precision bf16.
    with precision.using("fp32"):
        expected = predict_proba(model, samples, spec, torch.device("cpu"), batch_size=64)
    fp32 = OnnxClassifier(data)
    got = fp32(samples)
    difference = float(np.abs(got - expected).max())
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    report = {"source": str(directory), "crops": len(samples), "max_abs_difference": difference,
              "argmax_agreement": agreement, "tolerance": tolerance, "opset": OPSET}
    if not difference <= tolerance:
        raise CheckpointError(f"ONNX export of {directory} differs from PyTorch by {difference:.2e} on "
                              f"{len(samples)} crops (tolerance {tolerance:.0e}); nothing written")
    default_name = ONNX_FILE
    if int8_faces is not None:
        default_name = INT8_FILE
        crops = fp32.crops(int8_faces)[0]
        if len(crops) < 2:
            raise ConfigError(f"int8 calibration needs at least 2 faces, got {len(crops)}")
        calibration, check = crops[:len(crops) // 2], crops[len(crops) // 2:]
        quantized = quantize_int8(graph, [{"crops": calibration[start:start + 64]}
                                          for start in range(0, len(calibration), 64)])
        reference, got = fp32(check), OnnxClassifier(with_metadata(quantized, metadata))(check)
        int8 = {"format": "int8 static quantisation, QDQ (ONNX Runtime), uint8 activations, int8 weights",
                "calibration_faces": len(calibration), "checked_faces": len(check), **(int8_source or {}),
                "argmax_agreement": float((got.argmax(1) == reference.argmax(1)).mean()),
                "max_abs_difference": float(np.abs(got - reference).max()), "min_agreement": min_agreement}
        report["int8"] = int8
        data = with_metadata(quantized, {**metadata, "int8": int8})
        if not int8["argmax_agreement"] >= min_agreement:
            raise CheckpointError(f"the int8 graph of {directory} picks the fp32 graph's class on only "
                                  f"{int8['argmax_agreement']:.1%} of {len(check)} faces (at least "
                                  f"{min_agreement:.0%} required); nothing written")
    target = Path(out) if out is not None else directory / default_name
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return {**report, "bytes": len(data), "path": str(target)}


def calibration_faces(zoo, model_path: str | Path, dataset: str | None, count: int, seed: int = 0
                      ) -> tuple[np.ndarray, dict[str, Any]]:
    """``count`` faces (seeded draw) from the training split of ``dataset`` (default: the model's own training
    set, so no test face shapes the int8 ranges), and where they came from."""
    from ferbench.protocols import TRAIN_SPLIT

    _, record = read_model_record(model_path)
    name = dataset or (record.get("trained_by") or {}).get("dataset")
    if not name:
        raise ConfigError(f"--int8: {model_path} does not name its training set; pass --calibration-dataset")
    data = zoo.dataset(name).load()
    part = data.split(TRAIN_SPLIT) if TRAIN_SPLIT in data.split_names else data
    chosen = np.sort(np.random.default_rng(seed).permutation(len(part))[:count])
    return part.images[chosen], {"dataset": data.name, "split": TRAIN_SPLIT if part is not data else "all",
                                 "seed": seed}


def with_metadata(graph: bytes, metadata: dict[str, Any]) -> bytes:
    """``graph`` (as exported or quantised, without ferbench's metadata) with ``metadata`` as JSON under the
    ``ferbench`` key."""
    import onnx

    proto = onnx.load_from_string(graph)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return proto.SerializeToString()


def to_onnx(module: nn.Module, example: torch.Tensor, input_name: str, output_name: str) -> bytes:
    """``module`` as ONNX bytes, with a dynamic batch axis (also the ``onnxruntime`` mode of ``ferbench bench``)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice, chosen knowingly (above)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (example,), buffer, input_names=[input_name], output_names=[output_name],
                          opset_version=OPSET, dynamo=False,
                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
    return buffer.getvalue()


def quantize_int8(graph: bytes, calibration: list[dict[str, np.ndarray]]) -> bytes:
    """``graph`` with ONNX Runtime's int8 static quantisation (QDQ: uint8 activations, int8 weights),
    activation ranges calibrated on the ``calibration`` feeds, after its recommended pre-processing
    (shape inference, batch norm folded into the convolutions)."""
    _onnxruntime()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(calibration)

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="ferbench-int8-") as folder:
        source, prepared, target = (Path(folder) / f"{name}.onnx" for name in ("fp32", "prepared", "int8"))
        source.write_bytes(graph)
        quant_pre_process(source, prepared)
        quantize_static(prepared, target, Feeds(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return target.read_bytes()


def inference_session(source: str | Path | bytes) -> Any:
    """An ONNX Runtime CPU session with as many threads as torch uses (``--threads``)."""
    onnxruntime = _onnxruntime()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    where = "the exported model" if isinstance(source, bytes) else str(source)
    try:
        return onnxruntime.InferenceSession(source if isinstance(source, bytes) else os.fspath(source), options,
                                            providers=["CPUExecutionProvider"])
    except Exception as error:
        raise CheckpointError(f"{where}: ONNX Runtime cannot load it: {str(error).splitlines()[0]}") from error


class OnnxClassifier:
    """Class probabilities for uint8 crops from an exported file (path or bytes), by ONNX Runtime."""

    def __init__(self, source: str | Path | bytes):
        self.session = inference_session(source)
        where = "the exported model" if isinstance(source, bytes) else str(source)
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if text is None:
            raise CheckpointError(f"{where} has no '{METADATA_KEY}' metadata: not written by ferbench export")
        self.metadata = json.loads(text)
        self.record: dict[str, Any] = self.metadata["model"]
        self.classes = tuple(self.metadata["classes"])

    def __call__(self, crops: np.ndarray, batch_size: int = 256, tta: str = "none") -> np.ndarray:
        """Probabilities for uint8 faces: crops at the model's size as they are; faces of another size are
        resized as the PyTorch path resizes them; with ``tta``, the mean over the test-time views."""
        outputs = []
        for start in range(0, len(crops), batch_size):
            probabilities = [self.session.run(None, {"crops": view})[0]
                             for view in self.crops(crops[start:start + batch_size], tta)]
            # One view (predict's path) is passed on as it is: no stacked copy for a mean of one.
            outputs.append(probabilities[0] if len(probabilities) == 1 else np.mean(probabilities, axis=0))
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.classes)), np.float32)

    def crops(self, faces: np.ndarray, tta: str = "none") -> list[np.ndarray]:
        """uint8 faces -> one array per test-time view in the graph's input layout. Crops already at the
        model's size pass through untouched; other sizes are resized as the PyTorch path resizes them, then
        rounded to uint8 (the graph's input type)."""
        spec = self.metadata["input"]
        grey = spec["in_chans"] == 1
        if tta == "none" and faces.shape[1:] == (spec["image_size"],) * 2 + (() if grey else (3,)):
            return [np.ascontiguousarray(faces)]
        resize = InputSpec(spec["in_chans"], spec["image_size"], tuple(spec["mean"]), tuple(spec["std"]))
        x = resize.pixels(torch.from_numpy(np.ascontiguousarray(faces))).mul_(255).round_()
        return [np.ascontiguousarray((view[:, 0] if grey else view.permute(0, 2, 3, 1)).to(torch.uint8).numpy())
                for view in tta_views(x, tta)]


def _onnxruntime():
    try:
        import onnx  # noqa: F401 - the exporter writes through it
        import onnxruntime
    except ImportError as error:
        raise ConfigError(f"ONNX export and the onnxruntime backend need onnx and onnxruntime "
                          f"(pip install 'ferbench[onnx]'): {error}") from None
    return onnxruntime

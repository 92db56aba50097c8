"""A trained restyler on disk, and ``ferbench restyle``: apply it to a folder of images.

A saved restyler is a folder with ``enet.safetensors``, ``gnet.safetensors``, ``dnet.safetensors`` and
``restyler.json`` (format ``ferbench.restyler/1``: each network's component name and constructor
arguments, the GAN's image size, the target's channels, the classes and the run that trained it). The
networks are rebuilt by component name through the plugin catalog, like any saved ferbench model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import safetensors.torch
import torch
from torch import nn

from ferbench.errors import CheckpointError, ConfigError, DatasetError
from ferbench.files import atomic_path, write_json

RESTYLER_FORMAT = "ferbench.restyler/1"
RESTYLER_JSON = "restyler.json"
WEIGHT_FILES = {"encoder": "enet.safetensors", "generator": "gnet.safetensors", "discriminator": "dnet.safetensors"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")


class Restyler(nn.Module):
    """Enet -> Gnet as an image-to-image function. ``residual``: Gnet's output, times ``correction_scale``
    (at 2 any pixel can reach any value), is a correction added to the input image instead of the image
    itself, after the generator's photometric ``adjust`` of that image where it has one
    (``ArabianGnet(photometric=True)``)."""

    in_chans = 3  # it always takes RGB in [-1, 1] (grey sources are repeated), whatever the data's channels

    def __init__(self, encoder: nn.Module, generator: nn.Module, image_size: int, target_channels: int,
                 residual: bool = False, correction_scale: float = 2.0):
        super().__init__()
        self.encoder, self.generator = encoder, generator
        self.image_size, self.target_channels, self.residual = image_size, target_channels, residual
        self.correction_scale = correction_scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` in [-1, 1] -> restyled ``(N, 3, S, S)`` (unclamped while training)."""
        latent = self.encoder(images)
        output = self.generator(latent)
        if not self.residual:
            return output
        adjust = getattr(self.generator, "adjust", None)
        return (adjust(images, latent) if adjust else images) + self.correction_scale * output

    @torch.no_grad()
    def restyle(self, images: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
        """uint8 ``(N, H, W[, 3])`` -> uint8 ``(N, S, S)`` (grey target) or ``(N, S, S, 3)``."""
        from .method import to_gan

        self.to(device).eval()
        out = []
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            x = self(to_gan(batch, self.image_size)).float()
            x = ((x.clamp(-1, 1) + 1) * 127.5).round()
            if self.target_channels == 1:  # ITU-R 601 luma, as ferbench turns RGB into grey everywhere
                x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1).round()
            else:
                x = x.permute(0, 2, 3, 1)
            out.append(x.clamp(0, 255).to(torch.uint8).cpu().numpy())
        if not out:
            shape = (0, self.image_size, self.image_size) + (() if self.target_channels == 1 else (3,))
            return np.zeros(shape, dtype=np.uint8)
        return np.concatenate(out)


def save_restyler(directory: Path, modules: dict[str, nn.Module], components: dict[str, str],
                  build_args: dict[str, dict[str, Any]], *, image_size: int, target_channels: int, residual: bool,
                  correction_scale: float,
                  classes: tuple[str, ...], names: dict[str, str], trained_by: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for role, module in modules.items():
        with atomic_path(directory / WEIGHT_FILES[role]) as tmp:
            safetensors.torch.save_model(module, str(tmp))
    write_json(directory / RESTYLER_JSON, {
        "format": RESTYLER_FORMAT,
        "networks": {role: {"component": components[role], "build": build_args[role], "weights": WEIGHT_FILES[role]}
                     for role in modules},
        "image_size": image_size,
        "target_channels": target_channels,
        "residual": residual,
        "correction_scale": correction_scale,
        "classes": list(classes),
        "source": names["source"],
        "target": names["target"],
        "trained_by": trained_by,
    })
    return directory


def load_restyler(path: str | Path, build: Callable[..., nn.Module]) -> tuple[Restyler, dict[str, Any]]:
    """Rebuild Enet and Gnet from a saved restyler folder (or its restyler.json)."""
    path = Path(path).expanduser()
    directory = path.parent if path.name == RESTYLER_JSON else path
    record_path = directory / RESTYLER_JSON
    if not record_path.is_file():
        raise CheckpointError(f"{directory} is not a saved restyler: {RESTYLER_JSON} not found "
                              f"(ferbench run --method arabian-gan writes one under <run>/cross/model)")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{record_path} is not valid JSON: {error}") from error
    if not isinstance(record, dict) or record.get("format") != RESTYLER_FORMAT:
        raise CheckpointError(f"{record_path}: expected format {RESTYLER_FORMAT!r}")
    modules = {}
    for role in ("encoder", "generator"):
        entry = (record.get("networks") or {}).get(role)
        if not isinstance(entry, dict) or not {"component", "build", "weights"} <= set(entry):
            raise CheckpointError(f"{record_path}: networks.{role} must give component, build and weights")
        module = build(role, entry["component"], **entry["build"])
        weights = directory / entry["weights"]
        if not weights.is_file():
            raise CheckpointError(f"saved restyler {directory} lacks its weights file {weights.name}")
        missing, unexpected = safetensors.torch.load_model(module, str(weights), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{weights} does not fit {entry['component']}: missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}")
        modules[role] = module.eval()
    return Restyler(modules["encoder"], modules["generator"], int(record["image_size"]),
                    int(record["target_channels"]), bool(record.get("residual", False)),
                    float(record.get("correction_scale", 2.0))).eval(), record


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: Path) -> np.ndarray:
    """uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{path}: not a readable image")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def restyle_folder(restyler: Restyler, folder: Path, out: Path, device: torch.device,
                   batch_size: int = 64) -> list[Path]:
    """Restyle every image under ``folder`` into ``out`` (same relative names, as PNG). All images are read
    and checked before anything is written; each output is written atomically."""
    import cv2

    folder, out = Path(folder), Path(out)
    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        raise ConfigError(f"--out {out} must not be the input folder {folder} or inside it")
    files = image_files(folder)
    images = [read_image(p) for p in files]
    written = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        # Images of any size and channels become the GAN's input one by one (to_gan resizes), so a folder
        # can mix sizes.
        restyled = [restyler.restyle(image[None], device)[0] for image in images[start:start + batch_size]]
        for path, image in zip(chunk, restyled):
            target = out / path.relative_to(folder).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            encoded_ok, encoded = cv2.imencode(".png", image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if not encoded_ok:
                raise DatasetError(f"could not encode the restyled {path} as PNG")
            with atomic_path(target) as tmp:
                tmp.write_bytes(encoded.tobytes())
            written.append(target)
    return written

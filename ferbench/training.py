"""Supervised training of any registered classifier: the method behind ``--method timm:resnet18``.

One obvious loop in the style of nanoGPT/airbench: the whole training set sits on the device as uint8,
each batch is converted, normalised and augmented there, AdamW with a one-cycle schedule, bf16 autocast
and channels_last on CUDA. Other methods reuse :func:`train_classifier` and :func:`predict_proba` (the
Arabian GAN's Cnet, the latent-VGG19 classifier).
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ferbench import distributed
from ferbench.augment import augment_batch
from ferbench.checkpoint import TrainingCheckpoint, load_weights, save_model
from ferbench.data import Dataset, InputSpec
from ferbench.divergence import DivergenceGuard
from ferbench.errors import ConfigError, FerbenchError
from ferbench.interfaces import Method, MethodSpec, RunContext

SUPERVISED_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 64,
    "lr": 2e-3,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "augment": True,  # random rotation, shift, zoom and flip (ferbench.augment)
    "crop_padding": 0,  # > 0: random crop after reflection padding by this many pixels
    "erasing": 0.0,  # > 0: probability of random erasing per image
    "drop_rate": 0.0,
    "image_size": None,  # None: the training set's own size
    "in_chans": None,  # None: the training set's own channels
    "weights": None,  # a local weights file to start from (safetensors or a weights-only checkpoint)
    "eval_batch_size": 256,
    # A gradient norm above this stops training as diverged (NaN/Inf always does); null: NaN/Inf only.
    "grad_norm_limit": 1e6,
    # > 0: score the test splits after every this many epochs (and after the last) with the training clock
    # stopped, for a time-to-accuracy curve; 0: only at the end (costs nothing extra).
    "eval_every": 0,
    "optimizer": "adamw",  # or "sgd": SGD with Nesterov momentum 0.9 (give it a larger lr, e.g. 0.05)
    "compile": False,  # torch.compile the model for training (inductor; on the CPU it needs a C++ compiler)
}

OPTIMIZERS = ("adamw", "sgd")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_classifier(model: nn.Module, train: Dataset, input_spec: InputSpec, config: dict[str, Any],
                     device: torch.device, seed: int, track: Callable = lambda it, *a, **k: it,
                     epoch_end: Callable[[int, dict[str, float]], None] = lambda e, m: None,
                     checkpoint: TrainingCheckpoint | None = None,
                     evaluate: Callable[[], dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """Train ``model`` on ``train`` with cross-entropy; returns the per-epoch metrics.

    With a ``checkpoint`` the state after each epoch is saved, and a saved state is continued from. With
    ``evaluate`` (test accuracy per split) and ``config["eval_every"]`` > 0, the epochs it names also
    record ``test_accuracy``; ``train_seconds`` (every epoch) is the training clock, evaluation excluded.
    """
    epochs, batch_size = int(config["epochs"]), int(config["batch_size"])
    cuda = device.type == "cuda"
    # channels_last is faster for convolutions on CUDA and on CPUs alike (+8% here for ResNet-18 on AVX2).
    model.to(device, memory_format=torch.channels_last)
    images = torch.from_numpy(train.images).to(device)
    labels = torch.from_numpy(train.labels.astype(np.int64)).to(device)
    n = len(train)
    # Full batches only: a batch of one breaks batch norm, and equal steps keep epochs comparable.
    steps = max(1, n // batch_size) if n >= batch_size else 1
    batch_size = min(batch_size, n)
    # Under torchrun each of the `world` processes trains on its shard of every batch; DDP averages gradients.
    world, rank = distributed.world_size(), distributed.rank()
    if batch_size % world:
        raise ConfigError(f"batch_size {batch_size} must be divisible by the {world} distributed processes")
    shard = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    trained = DistributedDataParallel(model, device_ids=[device.index] if cuda else None) if world > 1 else model
    optimizer = make_optimizer(model, config, fused=cuda or None)
    # The compiled module shares the model's parameters: the checkpoint and the saved model stay the plain model's.
    forward = torch.compile(trained) if config.get("compile") else trained
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=float(config["lr"]),
                                                   total_steps=epochs * steps, pct_start=0.2)
    generator = torch.Generator().manual_seed(seed)
    guard = DivergenceGuard(config.get("grad_norm_limit"))
    checkpoint = checkpoint or TrainingCheckpoint()
    state = {"model": model, "optimizer": optimizer, "schedule": schedule, "generator": generator}
    start = checkpoint.restore(state)
    history = start.extra.get("history", [])
    train_seconds = sum(entry["seconds"] for entry in history)
    eval_every = int(config.get("eval_every") or 0)
    for epoch in range(start.epoch + 1, epochs + 1):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for step in track(range(steps), f"epoch {epoch}/{epochs}", total=steps):
            index = order[step * batch_size:(step + 1) * batch_size].to(device)
            # The whole batch is augmented on every rank, so the generator draws the same numbers everywhere
            # and a rank's shard is exactly that part of the batch a single process would train on.
            x = augment_batch(input_spec(images[index]), generator, config)
            x = x[shard].contiguous(memory_format=torch.channels_last)
            y = labels[index][shard]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = forward(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=float(config["label_smoothing"]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            guard.loss(step, classifier=loss)
            guard.gradients(step, classifier=model)
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
        seen = steps * batch_size
        distributed.sum_(loss_sum)  # over all ranks' shards (no-ops in a single process)
        distributed.sum_(correct)
        metrics = {"loss": loss_sum.item() / seen, "train_accuracy": correct.item() / seen,  # .item() syncs CUDA
                   "lr": schedule.get_last_lr()[0], "seconds": time.perf_counter() - started}
        train_seconds += metrics["seconds"]
        metrics["train_seconds"] = train_seconds
        guard.check(epoch)  # before saving: a checkpoint only ever holds a good state
        if evaluate is not None and eval_every and (epoch % eval_every == 0 or epoch == epochs):
            metrics["test_accuracy"] = evaluate()  # after the clock stopped: not training time
        history.append({"epoch": epoch, **metrics})
        checkpoint.save(epoch, state, history=history)
        epoch_end(epoch, metrics)
    return history


def make_optimizer(model: nn.Module, config: dict[str, Any], fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay) or SGD with Nesterov momentum 0.9 (L2 weight decay), by ``config["optimizer"]``."""
    lr, weight_decay = float(config["lr"]), float(config["weight_decay"])
    if config.get("optimizer", "adamw") == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay,
                               fused=fused)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)


@torch.no_grad()
def predict_proba(model: nn.Module, images: np.ndarray, input_spec: InputSpec, device: torch.device,
                  batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(N, num_classes)`` for uint8 images."""
    model.to(device, memory_format=torch.channels_last).eval()
    cuda = device.type == "cuda"
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        x = input_spec(batch).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        outputs.append(logits.float().softmax(1).cpu())
    if not outputs:
        return np.zeros((0, getattr(model, "num_classes", 0)), dtype=np.float32)
    return torch.cat(outputs).numpy()


class SupervisedMethod(Method):
    """Train the classifier named by the ``classifier`` role with cross-entropy, then predict with it."""

    distributed = True

    def _build(self, train: Dataset, ctx: RunContext) -> nn.Module:
        config = ctx.config
        self.in_chans = int(config["in_chans"] or train.channels)
        self.image_size = int(config["image_size"] or max(train.image_size))
        self.classes = train.classes
        self.component = ctx.components["classifier"]
        self.build_args = {"num_classes": len(train.classes), "in_chans": self.in_chans,
                           "image_size": self.image_size, "drop_rate": float(config["drop_rate"])}
        model = ctx.build("classifier", self.component, **self.build_args)
        if config["weights"]:
            self.weights_report = load_weights(model, config["weights"])
        return model

    def check(self, train: Dataset, ctx: RunContext) -> None:
        """Build the classifier (loading ``--weights``) and train-mode forward two images of the input size."""
        given = ctx.config["image_size"]
        size = int(given or max(train.image_size))
        argument = f"--image-size {size}" if given else f"the dataset's image size {size} (give a larger --image-size)"
        if ctx.config.get("compile") and ctx.device.type == "cpu":
            check_cpu_compiler()
        if int(ctx.config["batch_size"]) % distributed.world_size():
            raise ConfigError(f"batch_size {ctx.config['batch_size']} must be divisible by the "
                              f"{distributed.world_size()} distributed processes (each trains on an equal shard)")
        try:
            model = self._build(train, ctx).to(ctx.device).train()
            with torch.no_grad(), torch.autocast(ctx.device.type, dtype=torch.bfloat16,
                                                 enabled=ctx.device.type == "cuda"):
                model(torch.zeros(2, self.in_chans, size, size, device=ctx.device))
        except FerbenchError:
            raise
        except Exception as error:
            detail = (str(error).strip().splitlines() or [""])[0]
            raise ConfigError(f"{argument}: {self.component} cannot take {self.in_chans}-channel {size}x{size} "
                              f"images ({type(error).__name__}: {detail})") from error

    def fit(self, train: Dataset, ctx: RunContext) -> None:
        self.device = ctx.device
        self.eval_batch_size = int(ctx.config["eval_batch_size"])
        self.model = self._build(train, ctx)
        self.input_spec = InputSpec.fit(train.images, self.in_chans, self.image_size)
        evaluate = (lambda: ctx.evaluate(self)) if ctx.evaluate else None
        self.history = train_classifier(self.model, train, self.input_spec, ctx.config, ctx.device, ctx.seed,
                                        ctx.track, ctx.epoch_end, ctx.checkpoint, evaluate)

    def predict(self, data: Dataset) -> np.ndarray:
        return predict_proba(self.model, data.images, self.input_spec, self.device, self.eval_batch_size)

    def report(self, test: Dataset, ctx: RunContext) -> dict[str, Any]:
        extra: dict[str, Any] = {"history": self.history}
        if getattr(self, "weights_report", None):
            extra["weights"] = self.weights_report
        return extra

    def save(self, directory: Path, trained_by: dict[str, Any] | None = None) -> None:
        save_model(directory, self.model.cpu(), kind="classifier", component=self.component,
                   build=self.build_args, classes=self.classes, input_spec=self.input_spec,
                   trained_by=trained_by or {})
        self.model.to(self.device)


def supervised_spec(classifier: str) -> MethodSpec:
    """The method that trains classifier ``classifier`` on its own: what ``--method timm:resnet18`` means."""
    return MethodSpec(name=classifier, build=SupervisedMethod, summary=f"supervised training of {classifier}",
                      defaults=SUPERVISED_DEFAULTS, components={"classifier": classifier})


def check_config(config: dict[str, Any]) -> None:
    """Reject values no run can use before any training starts, naming the option."""
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if key in config and (not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1):
            raise ConfigError(f"{key} must be a positive integer, got {config[key]!r}")
    if "eval_every" in config and (not isinstance(config["eval_every"], int) or isinstance(config["eval_every"], bool)
                                   or config["eval_every"] < 0):
        raise ConfigError(f"eval_every must be a non-negative integer (epochs; 0 = off), got {config['eval_every']!r}")
    if config.get("optimizer", "adamw") not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {config['optimizer']!r}")
    if not isinstance(config.get("compile", False), bool):
        raise ConfigError(f"compile must be true or false, got {config['compile']!r}")
    if "crop_padding" in config and (not isinstance(config["crop_padding"], int) or isinstance(config["crop_padding"], bool)
                                     or config["crop_padding"] < 0):
        raise ConfigError(f"crop_padding must be a non-negative integer (pixels), got {config['crop_padding']!r}")
    if "erasing" in config and (not isinstance(config["erasing"], (int, float)) or isinstance(config["erasing"], bool)
                                or not 0 <= config["erasing"] <= 1):
        raise ConfigError(f"erasing must be a probability from 0 to 1, got {config['erasing']!r}")
    for key in ("lr", "weight_decay", "label_smoothing", "drop_rate"):
        if key in config and (not _is_number(config[key]) or config[key] < 0):
            raise ConfigError(f"{key} must be a finite non-negative number, got {config[key]!r}")
    if config.get("grad_norm_limit") is not None and (not _is_number(config["grad_norm_limit"])
                                                      or config["grad_norm_limit"] <= 0):
        raise ConfigError(f"grad_norm_limit must be a positive number or null, got {config['grad_norm_limit']!r}")
    if config.get("image_size") is not None and (not isinstance(config["image_size"], int) or config["image_size"] < 8):
        raise ConfigError(f"image_size must be an integer of at least 8, got {config['image_size']!r}")
    if config.get("in_chans") not in (None, 1, 3):
        raise ConfigError(f"in_chans must be 1 or 3, got {config['in_chans']!r}")
    if config.get("weights") and not Path(str(config["weights"])).expanduser().is_file():
        raise ConfigError(f"weights file {config['weights']} does not exist")


def check_cpu_compiler() -> None:
    """torch.compile on the CPU generates C++: refuse ``compile: true`` up front when no compiler is found."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # a torch without this (private) helper: let torch.compile report it itself
        return
    try:
        get_cpp_compiler()
    except Exception as error:
        raise ConfigError("compile: true on the CPU needs a C++ compiler for torch.compile's inductor backend "
                          f"(g++ or clang++, or $CXX), and none was found ({type(error).__name__}); install one "
                          "or leave compile off") from error


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

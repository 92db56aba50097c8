"""Supervised training of any registered classifier: the method behind ``--method timm:resnet18``.

One obvious loop in the style of nanoGPT/airbench: the whole training set sits on the device as uint8,
each batch is converted, normalised and augmented there, AdamW with a one-cycle schedule, channels_last,
and the device policy of ``ferbench.precision`` (bf16 autocast on CUDA; on a CPU with ``--precision bf16``). Other methods reuse :func:`train_classifier` and :func:`predict_proba` (the
Arabian GAN's Cnet, the latent-VGG19 classifier).
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from timm.utils.model_ema import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel

from ferbench import distributed, precision
from ferbench.augment import PIXEL_KEYS, apply_augmentation, apply_pixel_augmentation, draw_augmentation, draw_mixing, mix
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
    "augmix": 0.0,  # > 0: probability of an AugMix-style brightness/contrast/gamma/blur/noise chain per image
    "occlusion": 0.0,  # > 0: probability of a grey patch or band over each image
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
    "mixup": 0.0,  # > 0: MixUp with Beta(mixup, mixup) mixing weights (0 = off)
    "cutmix": 0.0,  # > 0: CutMix with Beta(cutmix, cutmix) box areas (0 = off); with mixup too, half the batches each
    "ema": 0.0,  # > 0: evaluate and save an exponential moving average of the weights with this decay (e.g. 0.999)
    # Under torchrun on GPUs: batch-norm statistics over every rank's shard of the batch (SyncBatchNorm)
    # instead of each rank's own; false keeps per-process statistics, as DDP does by default.
    "sync_batchnorm": False,
    # test-time augmentation: none, flip (mean of the image and its mirror), flip-shift (10 views) or
    # flip-shift-zoom (14 views); see tta_views
    "tta": "flip",
    # Seconds (or "30m", "1.5h") of training: epochs becomes what fits at the measured step rate; null: use epochs.
    "time_budget": None,
}

TTA_MODES = ("none", "flip", "flip-shift", "flip-shift-zoom")

OPTIMIZERS = ("adamw", "sgd")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainingSet:
    """What the engine trains on, resident on the training device: uint8 images, labels, and any further
    per-image inputs of the model's ``forward`` (latent-VGG19's latent code ``w``), indexed like the images."""

    images: torch.Tensor
    labels: torch.Tensor
    extras: tuple[torch.Tensor, ...] = ()

    @classmethod
    def of(cls, data: Dataset, device: torch.device) -> "TrainingSet":
        return cls.of_arrays(data.images, data.labels, device)

    @classmethod
    def of_arrays(cls, images: np.ndarray, labels: np.ndarray, device: torch.device,
                  extras: tuple[torch.Tensor, ...] = ()) -> "TrainingSet":
        return cls(torch.from_numpy(np.ascontiguousarray(images)).to(device),
                   torch.from_numpy(labels.astype(np.int64, copy=False)).to(device), extras)

    def __len__(self) -> int:
        return len(self.labels)


def train_classifier(model: nn.Module, train: Dataset | TrainingSet, input_spec: InputSpec, config: dict[str, Any],
                     device: torch.device, seed: int, track: Callable = lambda it, *a, **k: it,
                     epoch_end: Callable[[int, dict[str, float]], None] = lambda e, m: None,
                     checkpoint: TrainingCheckpoint | None = None,
                     evaluate: Callable[[], dict[str, float]] | None = None, label: str = "epoch",
                     clock: Callable[[], float] = time.perf_counter) -> list[dict[str, Any]]:
    """Train ``model`` on ``train`` with cross-entropy; returns the per-epoch metrics.

    The one supervised engine: ``--method <classifier>`` and every method's classifier step train
    through it. The training set sits on the device; each epoch's order and augmentation parameters are
    drawn at once on the host from the seeded generator and copied to the device once, so the steady
    state makes no host copy and no host-device synchronisation (losses and accuracies are summed on the
    device and read once per epoch).

    With a ``checkpoint`` the state after each epoch is saved, and a saved state is continued from. With
    ``evaluate`` (test accuracy per split) and ``config["eval_every"]`` > 0, the epochs it names also
    record ``test_accuracy``, scored with the training clock stopped (``train_seconds`` excludes it). With
    ``config["ema"]`` > 0 a moving average of the weights is kept, evaluated, and left in ``model`` at the
    end. With ``config["time_budget"]`` (seconds) ``epochs`` is replaced by the number of epochs that fits,
    from the step rate measured after warm-up, and training stops when the budget is spent; the last
    epoch's entry then carries the plan under ``time_budget`` (see :func:`plan_epochs`).
    """
    batch_size = int(config["batch_size"])
    cuda = device.type == "cuda"
    # channels_last is faster for convolutions on CUDA and on CPUs alike (+8% here for ResNet-18 on AVX2).
    model.to(device, memory_format=torch.channels_last)
    data = train if isinstance(train, TrainingSet) else TrainingSet.of(train, device)
    n = len(data)
    # Full batches only: a batch of one breaks batch norm, and equal steps keep epochs comparable.
    steps = max(1, n // batch_size) if n >= batch_size else 1
    batch_size = min(batch_size, n)
    # Under torchrun each of the `world` processes trains on its shard of every batch; DDP averages gradients.
    world, rank = distributed.world_size(), distributed.rank()
    if batch_size % world:
        raise ConfigError(f"batch_size {batch_size} must be divisible by the {world} distributed processes")
    shard = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    if world > 1 and config.get("sync_batchnorm"):
        if not cuda:
            raise ConfigError("sync_batchnorm needs CUDA (torch's SyncBatchNorm runs on GPUs only); on the CPU "
                              "leave it off: each process keeps its own batch-norm statistics")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # swaps the layers inside: the same root module
    trained = DistributedDataParallel(model, device_ids=[device.index] if cuda else None) if world > 1 else model
    optimizer = make_optimizer(model, config)
    # The compiled module shares the model's parameters: the checkpoint and the saved model stay the plain model's.
    forward = torch.compile(trained) if config.get("compile") else trained
    budget = parse_duration(config.get("time_budget"), "time_budget")
    epochs = int(config["epochs"])
    schedule = one_cycle(optimizer, config, epochs * steps)
    generator = torch.Generator().manual_seed(seed)
    guard = DivergenceGuard(config.get("grad_norm_limit"))
    ema = WeightAverage(model, float(config["ema"])) if config.get("ema") else None
    checkpoint = checkpoint or TrainingCheckpoint()
    state = {"model": model, "optimizer": optimizer, "schedule": schedule, "generator": generator}
    if ema is not None:
        state["ema"] = ema.module
    start = checkpoint.restore(state)
    history = start.extra.get("history", [])
    plan = dict(start.extra.get("plan") or {})
    if plan:
        epochs = plan["epochs"]
    train_seconds = sum(entry["seconds"] for entry in history)
    eval_every = int(config.get("eval_every") or 0)
    size = tuple(input_spec(data.images[:1]).shape[-2:])
    label_smoothing = float(config["label_smoothing"])
    calibrating = budget is not None and not plan
    window = calibration_window(steps)
    epoch = start.epoch
    while epoch < epochs:
        epoch += 1
        model.train()
        started = clock()
        # One host-to-device copy per epoch: the order and every augmentation and mixing parameter.
        order = torch.randperm(n, generator=generator)[:steps * batch_size].view(steps, batch_size).to(device)
        augmentation = {k: v.to(device).view(steps, batch_size, *v.shape[1:]) for k, v in
                        draw_augmentation(steps * batch_size, size, generator, config).items()}
        mixing = {k: v.to(device) for k, v in draw_mixing(steps, batch_size, size, generator, config).items()}
        pixel_level = any(k in augmentation for k in PIXEL_KEYS)
        # Pixel noise is drawn on the device, from a generator seeded once per epoch by the run's generator.
        noise = (torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
                 if "augmix" in augmentation else None)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        done = 0
        for step in track(range(steps), f"{label} {epoch}/{epochs}", total=steps):
            if calibrating and step == window[0]:
                calibration_started = _synchronized_clock(device, clock)
            index = order[step]
            # The whole batch is augmented on every rank, so the generator draws the same numbers everywhere
            # and a rank's shard is exactly that part of the batch a single process would train on.
            parameters = {k: v[step] for k, v in augmentation.items()}
            if pixel_level:
                x = input_spec.normalise(apply_pixel_augmentation(input_spec.pixels(data.images[index]), parameters,
                                                                  noise))
            else:
                x = input_spec(data.images[index])
            x = apply_augmentation(x, parameters, config)
            y = data.labels[index]
            extras = tuple(extra[index] for extra in data.extras)
            if mixing:
                row = {k: v[step] for k, v in mixing.items()}
                x, extras = mix(x, extras, row)
                y_partner, weight = y[row["partner"]][shard], row["weight"]
            x = x[shard].contiguous(memory_format=torch.channels_last)
            y = y[shard]
            with precision.autocast(device):
                logits = forward(x, *(extra[shard] for extra in extras))
            if mixing:
                loss = mixed_cross_entropy(logits.float(), y, y_partner, weight, label_smoothing)
            else:
                loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            guard.loss(step, classifier=loss)
            guard.gradients(step, classifier=model)
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update(model)
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            done += 1
            if calibrating and step + 1 == window[1]:
                # The step rate after warm-up sizes the schedule: the whole epochs that fit the budget.
                rate = (window[1] - window[0]) / (_synchronized_clock(device, clock) - calibration_started)
                plan = plan_epochs(budget, steps, rate)
                epochs, calibrating = plan["epochs"], False
                state["schedule"] = schedule = one_cycle(optimizer, config, epochs * steps, already=step + 1)
            if budget is not None and train_seconds + clock() - started > budget:
                plan["stopped_on_time"] = True  # the budget ran out before the planned schedule did
                break
        seen = done * batch_size
        distributed.sum_(loss_sum)  # over all ranks' shards (no-ops in a single process)
        distributed.sum_(correct)
        metrics = {"loss": loss_sum.item() / seen, "train_accuracy": correct.item() / seen,  # .item() syncs CUDA
                   "lr": schedule.get_last_lr()[0], "seconds": clock() - started}
        train_seconds += metrics["seconds"]
        metrics["train_seconds"] = train_seconds
        guard.check(epoch)  # before saving: a checkpoint only ever holds a good state
        if plan and not plan.get("stopped_on_time") and epoch < epochs:
            # Re-plan from the epochs' own pace, so a machine that slows down (or speeds up) still ends the
            # schedule, annealed, inside the budget rather than being cut off at a high learning rate.
            # The first epoch's seconds hold one-time costs (torch.compile took 50 s of a 101 s epoch here):
            # its pace is the step rate calibrated inside it.
            paces = [entry["seconds"] for entry in history[-2:] if entry["epoch"] > 1]
            paces.append(metrics["seconds"] if epoch > 1 else steps / plan["steps_per_second"])
            pace = statistics.fmean(paces)
            replanned = replan_epochs(budget, epoch, train_seconds, pace, epochs)
            if replanned != epochs:
                plan.setdefault("replanned", []).append({"after_epoch": epoch, "epochs": replanned})
                epochs = plan["epochs"] = replanned
                state["schedule"] = schedule = one_cycle(optimizer, config, epochs * steps, already=epoch * steps)
        stop = plan.get("stopped_on_time", False)
        if evaluate is not None and eval_every and (epoch % eval_every == 0 or epoch == epochs or stop):
            with ema.weights_in(model) if ema is not None else contextlib.nullcontext():
                metrics["test_accuracy"] = evaluate()  # after the clock stopped: not training time
        history.append({"epoch": epoch, **metrics})
        checkpoint.save(epoch, state, history=history, plan=plan)
        epoch_end(epoch, metrics)
        if stop:
            break
    if ema is not None:
        ema.copy_to(model)
    if plan:
        history[-1]["time_budget"] = plan
    return history


def mixed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, partner_labels: torch.Tensor,
                        weight: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against a MixUp/CutMix target: ``weight`` of the image's own label, the rest its partner's."""
    own = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return weight * own + (1 - weight) * F.cross_entropy(logits, partner_labels, label_smoothing=label_smoothing)


def calibration_window(steps_per_epoch: int) -> tuple[int, int]:
    """The steps of the first epoch whose rate sizes a time-budgeted schedule: steps 5-25 (after warm-up),
    or as much of a shorter epoch as there is."""
    end = min(25, steps_per_epoch)
    return min(5, end // 4), end


def plan_epochs(budget: float, steps_per_epoch: int, steps_per_second: float) -> dict[str, Any]:
    """The whole number of epochs (at least 1) whose steps fit in ``budget`` seconds of training at the
    measured rate; 3% is kept back for the per-epoch work (drawing augmentations, the divergence check)."""
    fitting = budget * 0.97 * steps_per_second / steps_per_epoch
    return {"budget_seconds": budget, "steps_per_second": steps_per_second, "epochs": max(1, int(fitting))}


def replan_epochs(budget: float, epoch: int, spent: float, pace: float, planned: int) -> int:
    """After ``epoch`` epochs and ``spent`` seconds of training, the total epochs to plan for at ``pace``
    seconds per epoch (the last three epochs' mean, the first epoch's taken from its calibrated step rate).
    Each re-plan bends the learning-rate curve, so the plan only moves when it must: it shrinks when
    ``planned`` would overrun the budget, and grows (keeping one epoch in hand) only when two more epochs
    fit; a pace that wobbles by a few percent leaves it alone."""
    fitting = epoch + max(0, int((budget * 0.99 - spent) / pace))
    if fitting < planned:
        return fitting
    return fitting - 1 if fitting >= planned + 2 else planned


def parse_duration(value: Any, name: str) -> float | None:
    """Seconds from a number (seconds) or a text such as ``90s``, ``30m``, ``1.5h``, ``1h30m``; None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text)
        if not text or parts is None:
            raise ConfigError(f"{name} must be seconds or a duration such as 90s, 30m, 1.5h or 1h30m, got {value!r}")
        hours, minutes, secs = (float(group) if group else 0.0 for group in parts.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name} must be a positive duration, got {value!r}")
    return seconds


def _synchronized_clock(device: torch.device, clock: Callable[[], float]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # twice per run, to time the calibration steps truly
    return clock()


def one_cycle(optimizer: torch.optim.Optimizer, config: dict[str, Any], total_steps: int,
              already: int = 0) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule (20% warm-up) over ``total_steps``, advanced past the ``already`` steps done."""
    for group in optimizer.param_groups:
        group.pop("initial_lr", None)  # a fresh schedule on an optimizer that had one
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=float(config["lr"]),
                                                   total_steps=max(total_steps, already + 1), pct_start=0.2)
    if already:  # jump to step `already` (one step() sets its learning rate) instead of stepping there one by one
        schedule.last_epoch = already - 1
        schedule.step()
    return schedule


class WeightAverage(ModelEmaV3):
    """An exponential moving average of the weights (timm's ModelEmaV3 with warm-up: the decay grows
    from 0 towards ``decay`` as 1 - (1 + t)^(-2/3), so short runs are not dominated by the initial weights)."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__(model, decay=decay, use_warmup=True)
        self.updates = 0

    def update(self, model: nn.Module) -> None:  # type: ignore[override]
        self.updates += 1
        super().update(model, step=self.updates)

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.module.state_dict())

    @contextlib.contextmanager
    def weights_in(self, model: nn.Module):
        """Put the averaged weights in ``model`` for the block (an evaluation), and the trained ones back."""
        trained = {k: v.clone() for k, v in model.state_dict().items()}
        self.copy_to(model)
        try:
            yield
        finally:
            model.load_state_dict(trained)


def make_optimizer(model: nn.Module, config: dict[str, Any], fused: bool = True) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay) or SGD with Nesterov momentum 0.9 (L2 weight decay), by ``config["optimizer"]``.

    Fused kernels on every device: on a CPU they are 5% faster here than the foreach default for fer-resnet-s,
    and unlike it they never read the step count back to the host (a GPU sync per step when not fused)."""
    lr, weight_decay = float(config["lr"]), float(config["weight_decay"])
    if config.get("optimizer", "adamw") == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay,
                               fused=fused)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)


@torch.no_grad()
def predict_proba(model: nn.Module, images: np.ndarray, input_spec: InputSpec, device: torch.device,
                  batch_size: int = 256, tta: str = "none", extras: tuple[torch.Tensor, ...] = ()) -> np.ndarray:
    """Class probabilities ``(N, num_classes)`` for uint8 images: the mean over the ``tta`` views' softmax.

    ``extras``: further per-image inputs of the model's ``forward``, indexed like ``images``.
    """
    check_tta(tta)
    model.to(device, memory_format=torch.channels_last).eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        x = input_spec(batch)
        inputs = tuple(extra[start:start + batch_size].to(device) for extra in extras)
        probabilities = 0
        views = tta_views(x, tta)
        for view in views:
            with precision.autocast(device):
                logits = model(view.contiguous(memory_format=torch.channels_last), *inputs)
            probabilities = probabilities + logits.float().softmax(1)
        outputs.append((probabilities / len(views)).cpu())
    if not outputs:
        return np.zeros((0, int(getattr(model, "num_classes", 0))), dtype=np.float32)
    return torch.cat(outputs).numpy()


def tta_views(x: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The test-time views of a normalised batch: itself; with its mirror (flip); and each of the two
    shifted by 2 pixels up, down, left and right (flip-shift: 10 views, borders replicated); and each of the
    two zoomed in and out by 10% about the centre (flip-shift-zoom: 14 views)."""
    views = [x]
    if tta in ("flip", "flip-shift", "flip-shift-zoom"):
        views.append(x.flip(3))
    if tta in ("flip-shift", "flip-shift-zoom"):
        size = x.shape[-1]
        shift = max(1, round(size / 24))  # 2 pixels at 48
        padded = [F.pad(v, (shift,) * 4, mode="replicate") for v in views[:2]]
        for p in padded:
            for dy, dx in ((0, shift), (2 * shift, shift), (shift, 0), (shift, 2 * shift)):
                views.append(p[..., dy:dy + x.shape[-2], dx:dx + size])
    if tta == "flip-shift-zoom":
        views += [zoomed(v, factor) for v in views[:2] for factor in (0.9, 1.1)]
    return views


def zoomed(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` scaled by ``factor`` about its centre, cropped (in) or border-replicated (out) to its own size."""
    height, width = x.shape[-2:]
    new_height, new_width = round(height * factor), round(width * factor)
    scaled = F.interpolate(x, size=(new_height, new_width), mode="bilinear", align_corners=False,
                           antialias=factor < 1)
    if factor >= 1:
        top, left = (new_height - height) // 2, (new_width - width) // 2
        return scaled[..., top:top + height, left:left + width]
    pad_y, pad_x = height - new_height, width - new_width
    return F.pad(scaled, (pad_x // 2, pad_x - pad_x // 2, pad_y // 2, pad_y - pad_y // 2), mode="replicate")


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
            self.weights_report = load_weights(model, config["weights"], train.classes)
        return model

    def check(self, train: Dataset, ctx: RunContext) -> None:
        """Build the classifier (loading ``--weights``) and train-mode forward two images of the input size."""
        given = ctx.config["image_size"]
        size = int(given or max(train.image_size))
        argument = f"--image-size {size}" if given else f"the dataset's image size {size} (give a larger --image-size)"
        check_cpu_compiler(ctx.config, ctx.device)
        if int(ctx.config["batch_size"]) % distributed.world_size():
            raise ConfigError(f"batch_size {ctx.config['batch_size']} must be divisible by the "
                              f"{distributed.world_size()} distributed processes (each trains on an equal shard)")
        try:
            model = self._build(train, ctx).to(ctx.device).train()
            with torch.no_grad(), precision.autocast(ctx.device):
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
        self.tta = ctx.config["tta"]
        self.model = self._build(train, ctx)
        self.input_spec = InputSpec.fit(train.images, self.in_chans, self.image_size)
        evaluate = (lambda: ctx.evaluate(self)) if ctx.evaluate else None
        self.history = train_classifier(self.model, train, self.input_spec, ctx.config, ctx.device, ctx.seed,
                                        ctx.track, ctx.epoch_end, ctx.checkpoint, evaluate)

    def predict(self, data: Dataset) -> np.ndarray:
        return predict_proba(self.model, data.images, self.input_spec, self.device, self.eval_batch_size, self.tta)

    def report(self, test: Dataset, ctx: RunContext) -> dict[str, Any]:
        extra: dict[str, Any] = {"history": self.history}
        if getattr(self, "weights_report", None):
            extra["weights"] = self.weights_report
        if "time_budget" in self.history[-1]:
            extra["time_budget"] = self.history[-1]["time_budget"]
        return extra

    def save(self, directory: Path, trained_by: dict[str, Any] | None = None) -> None:
        save_model(directory, self.model.cpu(), kind="classifier", component=self.component,
                   build=self.build_args, classes=self.classes, input_spec=self.input_spec,
                   trained_by={**(trained_by or {}), "tta": self.tta})
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
    for key in ("mixup", "cutmix", "ema"):
        if key in config and (not _is_number(config[key]) or config[key] < 0):
            raise ConfigError(f"{key} must be a finite non-negative number (0 = off), got {config[key]!r}")
    if "ema" in config and config["ema"] >= 1:
        raise ConfigError(f"ema must be a decay below 1 (e.g. 0.999; 0 = off), got {config['ema']!r}")
    if "tta" in config:
        check_tta(config["tta"])
    if config.get("time_budget") is not None:
        parse_duration(config["time_budget"], "time_budget")
        if distributed.world_size() > 1:
            raise ConfigError("time_budget is for a single process: under torchrun every rank would measure its "
                              "own step rate and plan its own schedule; give --epochs instead")
    if config.get("optimizer", "adamw") not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {config['optimizer']!r}")
    for key in ("compile", "sync_batchnorm"):
        if not isinstance(config.get(key, False), bool):
            raise ConfigError(f"{key} must be true or false, got {config[key]!r}")
    if "crop_padding" in config and (not isinstance(config["crop_padding"], int) or isinstance(config["crop_padding"], bool)
                                     or config["crop_padding"] < 0):
        raise ConfigError(f"crop_padding must be a non-negative integer (pixels), got {config['crop_padding']!r}")
    for key in ("erasing", "augmix", "occlusion"):
        if key in config and (not isinstance(config[key], (int, float)) or isinstance(config[key], bool)
                              or not 0 <= config[key] <= 1):
            raise ConfigError(f"{key} must be a probability from 0 to 1, got {config[key]!r}")
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


def check_tta(tta: str, name: str = "tta") -> None:
    """Refuse a test-time augmentation mode that is not one of ``TTA_MODES``, naming the setting (``--tta``)."""
    if tta not in TTA_MODES:
        raise ConfigError(f"{name} must be one of {', '.join(TTA_MODES)}, got {tta!r}")


def check_cpu_compiler(config: dict[str, Any], device: torch.device) -> None:
    """torch.compile on the CPU generates C++: refuse ``compile: true`` up front when no compiler is found."""
    if not config.get("compile") or device.type != "cpu":
        return
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

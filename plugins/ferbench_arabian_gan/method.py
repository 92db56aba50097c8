"""The Arabian GAN as a ferbench method: restyle the source dataset so that classifiers trained on the
target dataset recognise it, and measure whether they do.

``fit(train=target's training split, ctx)`` with ``ctx.adaptation`` = the source's training images:

1. Cut a validation slice off the target's training split (by person where people are known), train the
   frozen classifiers on the rest with :func:`ferbench.training.train_classifier` (or load saved ones) and
   score them on the slice (the paper quotes its Cnet's validation accuracy).
2. Train Enet -> Gnet (the restyler) against Dnet and the *guide* classifiers, in :func:`train_restyler`.

``predict`` restyles a source test set and returns the *evaluator* classifiers' mean probabilities on the
restyled images, so the record's accuracy and confusion matrix are the after-restyling ones; ``report``
adds the paper's Table 2 (per-class true-positive rate before and after, mean +- SD over evaluators), the
collapse detector, the Frechet distances and the image grid. Guides and evaluators are different models:
an image optimised against one classifier can fool that classifier without looking like the target domain.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferbench import precision
from ferbench.checkpoint import load_model, save_model
from ferbench.data import Dataset, InputSpec, to_channels
from ferbench.errors import CheckpointError, ConfigError
from ferbench.interfaces import Method, RunContext
from ferbench.metrics import classification_metrics, frechet_distance
from ferbench.runner import epoch_line
from ferbench.augment import random_affine
from ferbench.divergence import DivergenceGuard
from ferbench.training import SUPERVISED_DEFAULTS, predict_proba, train_classifier

from .report import collapse_report, restyle_grid_png, tpr_table
from .restyler import Restyler, save_restyler

DEFAULTS: dict[str, Any] = {
    # The restyler (Enet -> Gnet) and Dnet.
    "epochs": 16,  # passes over the source training images
    "batch_size": 64,
    "lr": 1e-3,  # Adam for Enet, Gnet and Dnet (the paper's setting: DCGAN's 2e-4); beta1 0.5 as DCGAN
    "beta1": 0.5,
    "beta2": 0.999,
    "image_size": 48,  # the GAN's resolution; 96 is the paper's (multiples of 16)
    "latent_dim": 4096,  # the paper's Enet output
    "width": 16,  # base channel count of Enet, Gnet and Dnet (32 or 64 on a GPU)
    # The generator's loss: adversarial BCE + guide cross-entropy (the paper), + our terms.
    "adversarial_weight": 0.1,  # (1: the paper's plain sum) at 1 Dnet's term painted colour noise over the faces
    "classifier_weight": 5.0,  # the guides' cross-entropy (1: the paper's plain sum); see docs/arabian-gan.md's tuning table
    "warmup_epochs": 2,  # first epochs with the reconstruction term alone, no Dnet or guide (0: the paper)
    "reconstruction_weight": 10.0,  # L1 of restyling a target image, in the source's channels, back to itself (0: the paper)
    "residual": True,  # Gnet's output is a correction added to the input image (False: the paper)
    "photometric": True,  # with residual: the input normalised per image, then given a learned look (False: the paper)
    "correction_scale": 0.25,  # with residual: Gnet's output (in [-1, 1]) times this is added to the image
    "label_matched_batches": True,  # real target batch with the same labels as the source batch (False: the paper)
    "guide_augment": True,  # random shift/rotation/flip before the guides see a generated image (False: the paper)
    # The frozen classifiers: component names (trained on the target's training split) or saved model folders.
    # The Cnet(s) in the generator's loss (one: the paper). Two, averaged: an image has to read as its class
    # to both, which one network's blind spots cannot satisfy.
    "guide_classifiers": ["timm:test_resnet", "timm:test_efficientnet"],
    # Table 2's evaluators: standard backbones of three designs that score 59-78 % on the studio test faces
    # (timm's tiny test_* nets scored 37-47 %, too close to chance for a before/after comparison)
    "classifiers": ["timm:resnet18", "timm:resnet10t", "timm:convnext_atto"],
    "classifier_epochs": 10,
    "classifier_batch_size": 64,
    "classifier_lr": 3e-3,
    "classifier_augment": False,
    # The rest of the compact-net recipe (registry.yaml's fer-resnet: weight decay 0.05, erasing 0.25) for
    # evaluators strong enough that a before/after difference is more than noise.
    "classifier_weight_decay": SUPERVISED_DEFAULTS["weight_decay"],
    "classifier_erasing": 0.0,
    "classifier_image_size": None,  # None: the target's own size
    "validation_fraction": 0.1,  # of the target's training people, held out from the classifiers
    # Reporting.
    "collapse_fraction": 0.1,  # a class vanishes when predicted for < this share of its true frequency
    "grid_examples": 4,
    "eval_batch_size": 256,
}

PAPER_SETTING: dict[str, Any] = {
    **DEFAULTS,
    "lr": 2e-4,
    "adversarial_weight": 1.0,
    "classifier_weight": 1.0,
    "guide_classifiers": ["timm:test_resnet"],
    "reconstruction_weight": 0.0,
    "warmup_epochs": 0,
    "residual": False,
    "photometric": False,
    "label_matched_batches": False,
    "guide_augment": False,
}
"""The paper's losses and sampling: adversarial BCE + Cnet cross-entropy, random target batches."""

WEIGHTS = ("adversarial_weight", "classifier_weight", "reconstruction_weight")



@dataclass
class FrozenClassifier:
    """A classifier trained on the target (or loaded from a saved model), never updated by the GAN."""

    name: str  # the component name or the saved model's folder
    role: str  # "guide" or "evaluator"
    model: nn.Module
    input_spec: InputSpec
    columns: torch.Tensor  # the model's logit columns of the method's classes, in their order
    origin: str  # "trained" or "loaded"
    validation: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    on_device: dict[tuple, tuple[torch.Tensor, ...]] = field(default_factory=dict, repr=False)

    def probabilities(self, images: np.ndarray, device: torch.device, batch_size: int) -> np.ndarray:
        """Probabilities over the method's classes for uint8 images (other classes' columns dropped)."""
        if not len(images):
            return np.zeros((0, len(self.columns)), dtype=np.float32)
        probabilities = predict_proba(self.model, images, self.input_spec, device, batch_size)
        kept = probabilities[:, self.columns.numpy()]
        return kept / np.clip(kept.sum(1, keepdims=True), 1e-12, None)

    @torch.no_grad()
    def features(self, images: np.ndarray, device: torch.device, batch_size: int) -> np.ndarray:
        """Penultimate features for uint8 images (the Frechet distance's space)."""
        self.model.to(device).eval()
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            chunks.append(self.model.features(self.input_spec(batch)).float().cpu())
        return torch.cat(chunks).numpy().astype(np.float64)

    def logits_of_generated(self, images: torch.Tensor) -> torch.Tensor:
        """Logits over the method's classes for Gnet output in [-1, 1], differentiably."""
        luma, mean, std, columns = self._constants(images.device, images.dtype)
        x = (images + 1) / 2
        if self.input_spec.in_chans == 1 and x.shape[1] == 3:
            x = (x * luma).sum(1, keepdim=True)
        size = self.input_spec.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return self.model((x - mean) / std)[:, columns]

    def _constants(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """Luma weights, normalisation and logit columns on ``device``: made once, not copied to the device in
        every generator step."""
        key = (device, dtype)
        if key not in self.on_device:
            self.on_device[key] = (
                torch.tensor([0.299, 0.587, 0.114], device=device, dtype=dtype).view(1, 3, 1, 1),
                torch.tensor(self.input_spec.mean, device=device, dtype=dtype).view(1, -1, 1, 1),
                torch.tensor(self.input_spec.std, device=device, dtype=dtype).view(1, -1, 1, 1),
                self.columns.to(device))
        return self.on_device[key]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "origin": self.origin, "validation": self.validation,
                "epochs_trained": len(self.history),
                "final_train_loss": self.history[-1]["loss"] if self.history else None}


def names(value: Any, key: str) -> list[str]:
    """A list hyperparameter from registry.yaml (a list) or ``--set key=a,b,c`` (a string)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of classifier names or saved model folders, got {value!r}")
    return list(value)


def check(config: dict[str, Any]) -> None:
    """Reject hyperparameters no run can use, naming the key, before anything trains."""
    for key in (*WEIGHTS, "correction_scale", "validation_fraction", "collapse_fraction", "beta1", "beta2",
                "classifier_weight_decay", "classifier_erasing"):
        if not isinstance(config[key], (int, float)) or isinstance(config[key], bool) or config[key] < 0:
            raise ConfigError(f"{key} must be a non-negative number, got {config[key]!r}")
    for key in ("beta1", "beta2", "validation_fraction", "collapse_fraction", "classifier_erasing"):
        if config[key] >= 1:
            raise ConfigError(f"{key} must be below 1, got {config[key]!r}")
    if config["image_size"] is None or config["image_size"] % 16:
        raise ConfigError(f"image_size must be a multiple of 16 (48, 64, 96), got {config['image_size']!r}")
    for key in ("latent_dim", "width", "classifier_epochs", "classifier_batch_size", "grid_examples"):
        if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {config[key]!r}")
    warmup = config["warmup_epochs"]
    if not isinstance(warmup, int) or isinstance(warmup, bool) or not 0 <= warmup < config["epochs"]:
        raise ConfigError(f"warmup_epochs must be an integer from 0 to epochs - 1, got {warmup!r}")
    if warmup and not config["reconstruction_weight"]:
        raise ConfigError("warmup_epochs trains the reconstruction term alone: it needs reconstruction_weight > 0")
    if config["photometric"] and not config["residual"]:
        raise ConfigError("photometric adjusts the input image of a residual restyler: it needs residual=true")
    if not names(config["classifiers"], "classifiers"):
        raise ConfigError("classifiers must name at least one evaluator classifier")
    if not names(config["guide_classifiers"], "guide_classifiers") and config["classifier_weight"] > 0:
        raise ConfigError("guide_classifiers is empty but classifier_weight > 0: name a guide or set the weight to 0")
    for key in ("residual", "photometric", "label_matched_batches", "guide_augment", "classifier_augment"):
        if not isinstance(config[key], bool):
            raise ConfigError(f"{key} must be true or false, got {config[key]!r}")


def validation_split(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Hold out ``fraction`` of the people (of the images, per class, where people are unknown)."""
    if fraction <= 0:
        return data, None
    rng = np.random.default_rng(seed)
    if not (data.subjects == "").any() and len(set(data.subjects.tolist())) >= 2:
        people = np.array(sorted(set(data.subjects.tolist())))
        rng.shuffle(people)
        held = np.isin(data.subjects, people[: max(1, math.ceil(fraction * len(people)))])
    else:
        held = np.zeros(len(data), dtype=bool)
        for label in np.unique(data.labels):
            members = np.flatnonzero(data.labels == label)
            held[rng.choice(members, size=int(round(fraction * len(members))), replace=False)] = True
    if held.all() or not held.any():
        return data, None
    return data.select(~held, f"{data.name}[classifier training]"), data.select(held, f"{data.name}[validation]")


def to_gan(batch: torch.Tensor, image_size: int, channels: int = 3) -> torch.Tensor:
    """uint8 ``(N, H, W[, 3])`` -> float ``(N, 3, S, S)`` in [-1, 1]: the GAN's view of any image.
    ``channels=1`` drops the colour first (a target image in a grey source's format)."""
    x = to_channels(batch, channels)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    x = x.float().div_(127.5).sub_(1)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return x


class ArabianGAN(Method):
    """Enet -> Gnet restyler trained with Dnet and frozen guide classifiers; scored by other classifiers."""

    def fit(self, train: Dataset, ctx: RunContext) -> None:
        if ctx.adaptation is None:
            raise ConfigError("arabian-gan restyles one dataset towards another: run it with --protocol "
                              "cross-dataset --target <dataset the classifiers are trained on> --dataset <source>")
        config = self.config = dict(ctx.config)
        check(config)
        self.device = ctx.device
        self.seed = ctx.seed
        source_classes = {c for c, k in ctx.adaptation.class_counts().items() if k}
        self.classes = tuple(c for c, k in train.class_counts().items() if k and c in source_classes)
        if len(self.classes) < 2:
            raise ConfigError(f"{train.name} and {ctx.adaptation.name} share fewer than two classes "
                              f"with images ({list(self.classes)}); nothing to restyle towards")
        # Only the shared classes: the paper dropped neutral, which its target (OULU-CASIA) lacks.
        target = train.restricted_to(self.classes)
        source = ctx.adaptation.restricted_to(self.classes)
        self.target_channels = target.channels
        self.names = {"source": ctx.adaptation.name.split("[")[0], "target": train.name.split("[")[0]}
        classifier_train, self.reference = validation_split(target, float(config["validation_fraction"]), ctx.seed)
        if self.reference is None:
            self.reference = target  # nothing held out: the Frechet reference is the training images themselves

        plans = [(n, "evaluator") for n in names(config["classifiers"], "classifiers")] + \
                [(n, "guide") for n in names(config["guide_classifiers"], "guide_classifiers")]
        built = [self._build_classifier(name, role, target, ctx) for name, role in plans]  # every name checked first
        size, width, latent = int(config["image_size"]), int(config["width"]), int(config["latent_dim"])
        self.build_args = {
            "encoder": {"image_size": size, "in_chans": 3, "latent_dim": latent, "width": width},
            "generator": {"image_size": size, "out_chans": 3, "latent_dim": latent, "width": width,
                          # only when asked, so that another generator component need not know the key
                          **({"photometric": True} if config["photometric"] else {})},
            "discriminator": {"image_size": size, "in_chans": 3, "num_classes": len(self.classes), "width": width},
        }
        self.components = {role: ctx.components[role] for role in self.build_args}
        self.encoder, self.generator, self.discriminator = (
            ctx.build(role, self.components[role], **self.build_args[role]).to(ctx.device) for role in self.build_args)

        self.frozen = [self._prepare_classifier(c, classifier_train, ctx, index) for index, c in enumerate(built)]
        self.evaluators = [c for c in self.frozen if c.role == "evaluator"]
        self.guides = [c for c in self.frozen if c.role == "guide"]
        self.restyler = Restyler(self.encoder, self.generator, size, self.target_channels, bool(config["residual"]),
                                 float(config["correction_scale"]))
        started = time.perf_counter()
        self.history = train_restyler(self.restyler, self.discriminator, self.guides, source, target, config, ctx)
        self.restyler_seconds = time.perf_counter() - started
        self._cache: dict[int, dict[str, Any]] = {}

    # --- the frozen classifiers -------------------------------------------------------------------
    def _build_classifier(self, name: str, role: str, target: Dataset, ctx: RunContext) -> FrozenClassifier:
        if Path(name).expanduser().is_dir() or name.endswith("model.json"):
            try:
                model, input_spec, record = load_model(name, ctx.build)
            except CheckpointError as error:
                raise ConfigError(f"{role} classifier {name}: {error}") from error
            missing = [c for c in self.classes if c not in record["classes"]]
            if missing:
                raise ConfigError(f"{role} classifier {name} was trained on {record['classes']}, "
                                  f"which lack {missing}")
            columns = torch.tensor([record["classes"].index(c) for c in self.classes])
            return FrozenClassifier(name, role, model, input_spec, columns, "loaded",
                                    {"component": record["component"], "trained_by": record.get("trained_by", {})})
        in_chans = target.channels
        image_size = int(self.config["classifier_image_size"] or max(target.image_size))
        model = ctx.build("classifier", name, num_classes=len(self.classes), in_chans=in_chans, image_size=image_size)
        input_spec = InputSpec.fit(target.images, in_chans, image_size)
        return FrozenClassifier(name, role, model, input_spec, torch.arange(len(self.classes)), "trained")

    def _prepare_classifier(self, classifier: FrozenClassifier, train: Dataset, ctx: RunContext,
                            index: int) -> FrozenClassifier:
        config = self.config
        if classifier.origin == "trained":
            recipe = {**SUPERVISED_DEFAULTS, "epochs": config["classifier_epochs"],
                      "batch_size": config["classifier_batch_size"], "lr": config["classifier_lr"],
                      "augment": config["classifier_augment"], "weight_decay": config["classifier_weight_decay"],
                      "erasing": config["classifier_erasing"]}
            classifier.history = train_classifier(
                classifier.model, train, classifier.input_spec, recipe, ctx.device, ctx.seed, ctx.track,
                lambda epoch, metrics: ctx.note(epoch_line(f"{classifier.role} {classifier.name}", epoch, metrics)),
                ctx.checkpoint.stage(f"classifier-{index}"))
        classifier.model.to(ctx.device).eval().requires_grad_(False)
        if self.reference is not train:
            probabilities = classifier.probabilities(self.reference.images, ctx.device, int(config["eval_batch_size"]))
            classifier.validation = {**classifier.validation, "images": len(self.reference),
                                     "accuracy": float((probabilities.argmax(1) == self.reference.labels).mean())}
        return classifier

    # --- restyling and scoring ----------------------------------------------------------------------
    def _scored(self, data: Dataset) -> dict[str, Any]:
        """Restyled images and every classifier's probabilities before and after, computed once per set."""
        key = id(data)
        if key not in self._cache:
            batch = int(self.config["eval_batch_size"])
            restyled = self.restyler.restyle(data.images, self.device, batch)
            self._cache[key] = {
                "data": data, "restyled": restyled,
                "before": [c.probabilities(data.images, self.device, batch) for c in self.frozen],
                "after": [c.probabilities(restyled, self.device, batch) for c in self.frozen],
            }
        return self._cache[key]

    def predict(self, data: Dataset) -> np.ndarray:
        scored = self._scored(data)
        return np.mean([p for p, c in zip(scored["after"], self.frozen) if c.role == "evaluator"], axis=0)

    def report(self, test: Dataset, ctx: RunContext) -> dict[str, Any]:
        scored = self._scored(test)
        batch = int(self.config["eval_batch_size"])
        labels, classes = test.labels, self.classes
        per_classifier = []
        for classifier, before, after in zip(self.frozen, scored["before"], scored["after"]):
            entry = classifier.describe()
            for stage, probabilities in (("before", before), ("after", after)):
                metrics = classification_metrics(labels, probabilities, classes)
                entry[stage] = {"accuracy": metrics["accuracy"], "per_class_tpr": metrics["per_class_tpr"],
                                "predicted_distribution": metrics["predicted_distribution"]}
            entry["collapse"] = collapse_report(labels, after.argmax(1), classes, float(self.config["collapse_fraction"]))
            reference = classifier.features(self.reference.images, self.device, batch)
            entry["frechet"] = {
                "before": frechet_distance(classifier.features(test.images, self.device, batch), reference),
                "after": frechet_distance(classifier.features(scored["restyled"], self.device, batch), reference)}
            per_classifier.append(entry)
        evaluators = [e for e in per_classifier if e["role"] == "evaluator"]
        guides = [e for e in per_classifier if e["role"] == "guide"]
        ensemble = self.predict(test)
        split = test.name.split("[")[-1].rstrip("]") if "[" in test.name else "test"
        grid = restyle_grid_png(ctx.out_dir / f"restyle-grid-{split}.png", test, scored["restyled"], self.reference,
                                classes, int(self.config["grid_examples"]), self.seed,
                                f"{self.names['source']} -> {self.names['target']} ({split})")
        frechet = {stage: float(np.mean([e["frechet"][stage] for e in evaluators])) for stage in ("before", "after")}
        return {
            "table2": tpr_table(evaluators, classes),
            "guide_table2": tpr_table(guides, classes) if guides else None,
            "collapse": {**collapse_report(labels, ensemble.argmax(1), classes, float(self.config["collapse_fraction"])),
                         "zero_tpr_after": [c for c, v in tpr_table(evaluators, classes)["after"].items()
                                            if v["mean"] is not None and v["mean"] == 0]},
            "frechet": {"space": "each evaluator's penultimate features (mean over evaluators)",
                        "reference": f"{self.reference.name} ({len(self.reference)} images)", **frechet},
            "classifiers": per_classifier,
            "restyle_grid_png": grid.name,
            "history": self.history,
            "restyler_seconds": self.restyler_seconds,
            "source": self.names["source"], "target": self.names["target"],
        }

    def save(self, directory: Path, trained_by: dict[str, Any] | None = None) -> None:
        directory = Path(directory)
        save_restyler(directory, {"encoder": self.encoder, "generator": self.generator,
                                  "discriminator": self.discriminator}, self.components, self.build_args,
                      image_size=int(self.config["image_size"]), target_channels=self.target_channels,
                      residual=self.restyler.residual, correction_scale=self.restyler.correction_scale,
                      classes=self.classes, names=self.names, trained_by=trained_by or {})
        for index, classifier in enumerate(self.frozen):
            if classifier.origin != "trained":
                continue
            folder = directory / "classifiers" / f"{index}-{classifier.role}-{classifier.name.replace(':', '_')}"
            save_model(folder, classifier.model.cpu(), kind="classifier", component=classifier.name,
                       build={"num_classes": len(self.classes), "in_chans": classifier.input_spec.in_chans,
                              "image_size": classifier.input_spec.image_size},
                       classes=self.classes, input_spec=classifier.input_spec,
                       trained_by={**(trained_by or {}), "role": f"arabian-gan {classifier.role} classifier"})
            classifier.model.to(self.device)


# --- training --------------------------------------------------------------------------------------

def generator_terms(restyler: Restyler, discriminator: nn.Module, guides: list[FrozenClassifier],
                    real_source: torch.Tensor, labels: torch.Tensor, real_target: torch.Tensor,
                    target_as_source: torch.Tensor, config: dict[str, Any], sampler: torch.Generator,
                    restyled: torch.Tensor | None = None, warmup: bool = False) -> dict[str, torch.Tensor]:
    """The generator's loss terms (unweighted): the adversarial BCE and the guides' cross-entropy against
    the source labels (the paper), and our reconstruction term: the L1 between target images and the
    restyling of the same images in the source's channel format (``target_as_source``: grey when the
    source is grey). A target image has to come back as it was, which is CycleGAN's identity term, and
    when the source is grey it is free paired supervision for the colour the restyler has to add.
    ``warmup``: the reconstruction term alone."""
    device = real_source.device
    terms = {}
    with precision.autocast(device):
        if not warmup:
            restyled = restyler(real_source) if restyled is None else restyled
            logits = discriminator(restyled, labels).float()
            terms["adversarial"] = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        if guides and float(config["classifier_weight"]) and not warmup:
            seen = random_affine(restyled.float(), sampler) if config["guide_augment"] else restyled
            terms["classifier"] = torch.stack([F.cross_entropy(g.logits_of_generated(seen).float(), labels)
                                               for g in guides]).mean()
        if float(config["reconstruction_weight"]):
            terms["reconstruction"] = (restyler(target_as_source).float() - real_target).abs().mean()
    return terms


def generator_loss(terms: dict[str, torch.Tensor], config: dict[str, Any]) -> torch.Tensor:
    return sum(float(config[f"{name}_weight"]) * value for name, value in terms.items())


def train_restyler(restyler: Restyler, discriminator: nn.Module, guides: list[FrozenClassifier], source: Dataset,
                   target: Dataset, config: dict[str, Any], ctx: RunContext) -> list[dict[str, float]]:
    """Train Enet -> Gnet (the restyler) and Dnet; returns the per-epoch metrics.

    Each step: Dnet learns to tell real target images with their labels from restyled source images with
    the source labels (binary cross-entropy); then Enet and Gnet minimise :func:`generator_terms`. In the
    first ``warmup_epochs`` only the reconstruction term trains (no Dnet step). The guides are frozen:
    only Enet's, Gnet's and Dnet's parameters are in an optimizer.
    """
    device, size = ctx.device, int(config["image_size"])
    epochs, batch_size = int(config["epochs"]), min(int(config["batch_size"]), len(source))
    sampler = torch.Generator().manual_seed(ctx.seed)
    source_images = torch.from_numpy(source.images).to(device)
    source_labels = torch.from_numpy(source.labels.astype(np.int64)).to(device)
    target_images = torch.from_numpy(target.images).to(device)
    target_labels = torch.from_numpy(target.labels.astype(np.int64))
    target_by_class = [torch.nonzero(target_labels == c).flatten() for c in range(len(source.classes))]
    target_labels = target_labels.to(device)
    betas = (float(config["beta1"]), float(config["beta2"]))
    optimizer_g = torch.optim.Adam(restyler.parameters(), lr=float(config["lr"]), betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=float(config["lr"]), betas=betas)
    steps = max(1, len(source) // batch_size)
    restyler.to(device).train()
    discriminator.to(device).train()
    state = {"restyler": restyler, "discriminator": discriminator, "optimizer_g": optimizer_g,
             "optimizer_d": optimizer_d, "sampler": sampler}
    checkpoint = ctx.checkpoint.stage("restyler")
    start = checkpoint.restore(state)
    history = list(start.extra.get("history", []))
    guard = DivergenceGuard()  # NaN/Inf losses or gradients stop the run as a failed result naming the network
    for epoch in range(start.epoch + 1, epochs + 1):
        started = time.perf_counter()
        # Batch indices and labels are picked on the host (numpy), losses are summed on the device and read
        # once per epoch: a host read per step would make an accelerator wait for every step to finish.
        order = torch.randperm(len(source), generator=sampler).numpy()
        sums: dict[str, torch.Tensor] = {}
        guide_predictions = torch.zeros(len(source.classes), dtype=torch.long, device=device)
        for step in ctx.track(range(steps), f"restyler epoch {epoch}/{epochs}", total=steps):
            index_host = order[step * batch_size:(step + 1) * batch_size]
            index = torch.from_numpy(index_host).to(device, non_blocking=True)
            real_source, labels = to_gan(source_images[index], size), source_labels[index]
            target_index = sample_target(target_by_class, source.labels[index_host], len(target),
                                         config["label_matched_batches"], sampler).to(device, non_blocking=True)
            real_target, real_target_labels = to_gan(target_images[target_index], size), target_labels[target_index]
            target_as_source = to_gan(target_images[target_index], size, source.channels)

            warmup = epoch <= int(config["warmup_epochs"])
            restyled = None
            if not warmup:
                with precision.autocast(device):
                    restyled = restyler(real_source)
                    logit_real = discriminator(real_target, real_target_labels).float()
                    logit_fake = discriminator(restyled.detach(), labels).float()
                loss_d = F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real)) \
                    + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
                optimizer_d.zero_grad(set_to_none=True)
                loss_d.backward()
                guard.loss(step, discriminator=loss_d)
                guard.gradients(step, discriminator=discriminator)
                optimizer_d.step()

            terms = generator_terms(restyler, discriminator, guides, real_source, labels, real_target,
                                    target_as_source, config, sampler, restyled, warmup)
            loss_g = generator_loss(terms, config)
            optimizer_g.zero_grad(set_to_none=True)
            loss_g.backward()
            guard.loss(step, generator=loss_g)
            guard.gradients(step, restyler=restyler)
            optimizer_g.step()

            observed = {"loss_g": loss_g, **{f"loss_{k}": v for k, v in terms.items()}}
            if not warmup:
                observed.update(loss_d=loss_d, d_real=torch.sigmoid(logit_real).mean(),
                                d_fake=torch.sigmoid(logit_fake).mean())
                if guides:
                    with torch.no_grad():
                        guessed = guides[0].logits_of_generated(restyled.detach().float()).argmax(1)
                    guide_predictions += torch.bincount(guessed, minlength=len(source.classes))
            for name, value in observed.items():
                sums[name] = sums.get(name, 0) + value.detach().float()
        totals = torch.stack(list(sums.values())).tolist()  # the epoch's one read of its losses
        metrics = {name: total / steps for name, total in zip(sums, totals)}
        guide_predictions = guide_predictions.cpu()
        metrics["loss"] = metrics["loss_g"]  # what epoch observers log: the generator's loss
        if guide_predictions.sum():
            # The share of the rarest class among the guide's predictions on restyled images: near 0, a
            # class is vanishing (the paper's collapse), visible while training.
            metrics["guide_rarest_class_share"] = float(guide_predictions.min() / guide_predictions.sum())
        metrics["seconds"] = time.perf_counter() - started
        guard.check(epoch)
        history.append({"epoch": epoch, **metrics})
        checkpoint.save(epoch, state, history=history)
        ctx.epoch_end(epoch, metrics)
    restyler.eval()
    discriminator.eval()
    return history


def sample_target(by_class: list[torch.Tensor], labels: np.ndarray, size: int, matched: bool,
                  generator: torch.Generator) -> torch.Tensor:
    """Indices of a real target batch: the same labels as the source batch (``matched``) or uniform."""
    if not matched:
        return torch.randint(size, (len(labels),), generator=generator)
    picks = torch.empty(len(labels), dtype=torch.long)
    for label in np.unique(labels):
        where = torch.from_numpy(np.flatnonzero(labels == label))
        pool = by_class[label]
        if not len(pool):  # the target lacks this class: fall back to any image
            picks[where] = torch.randint(size, (len(where),), generator=generator)
        else:
            picks[where] = pool[torch.randint(len(pool), (len(where),), generator=generator)]
    return picks

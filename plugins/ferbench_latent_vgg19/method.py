"""The latent-vgg19 method: fit = generator + encoder (trained once, cached) -> lens -> invert the training
faces -> train the classifier on (G(w), w); predict = invert the query faces -> classify.

The generator and encoder are trained on face images only (no labels) and saved as a *GAN folder*
(``generator.safetensors``, ``encoder.safetensors``, ``gan.json``). The folder lives in the cache
(``$FERBENCH_CACHE/latent-vgg19/<key>``, default ``~/.cache/ferbench``), keyed by a fingerprint of the
images it was trained on and every hyperparameter that shapes it, so later folds and runs with the same
data reuse it instead of training again; ``gan_checkpoint`` names such a folder (or a saved model folder of
this method) to load instead. Every result records what the generator was trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from ferbench import precision
from ferbench.data import Dataset, InputSpec, fingerprint
from ferbench.errors import CheckpointError, ConfigError
from ferbench.files import atomic_path, write_json
from ferbench.interfaces import Method, RunContext
from ferbench.protocols import inner_folds
from ferbench.results import slug
from ferbench.runner import epoch_line
from ferbench.training import (SUPERVISED_DEFAULTS, TrainingSet, check_cpu_compiler, predict_proba, seed_everything,
                               train_classifier)

from ferbench_latent_vgg19.classifier import (LatentCorrection, LatentStack, LatentVGG19, fit_mix,
                                              identity_directions, latent_shift, predict_latent_proba,
                                              train_latent_classifier)
from ferbench_latent_vgg19.encoder import StyleEncoder, train_encoder
from ferbench_latent_vgg19.inversion import FaceLens, ImageNetVGGLens, invert
from ferbench_latent_vgg19.stylegan import StyleGenerator, resolution_plan, to_gan_range, train_gan

GAN_FORMAT = "ferbench.latent-vgg19.gan/1"
MODEL_FORMAT = "ferbench.latent-vgg19.model/1"
CACHE_ENV = "FERBENCH_CACHE"

DEFAULTS: dict[str, Any] = {
    # The classifier (fine-tuned VGG19 + latent branch) is trained by the supervised engine, so it takes
    # every option the supervised baselines take (erasing, mixup, ema, tta, ...), with these changes.
    **SUPERVISED_DEFAULTS,
    "epochs": 30,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "augment": True,
    "drop_rate": 0.5,
    "fc_dim": 4096,
    "latent_fc_dim": 512,
    "latent_dropout": 0.0,  # share of training faces whose w the classifier does not see (0: the paper's)
    # "joint": image and latent branches trained together (the paper's); "image-first": the image network is
    # trained alone first (the no-latent baseline, same seed and recipe), then frozen, and a correction of its
    # logits is learned from w for latent_epochs epochs (ferbench_latent_vgg19.classifier.LatentCorrection).
    "latent_training": "joint",
    "latent_epochs": 10,
    # "stacked": the image network and a logistic regression on w, each trained alone, mixed by two weights
    # (ferbench_latent_vgg19.classifier.LatentStack) fitted on faces the networks have not trained on.
    # stack_on "out-of-fold": predictions from a stack_folds split of the training faces (whole people where
    # the data names them), stack_folds more image networks; "validation": the finished image network's and
    # regression's predictions on the run's validation split (--validation), no more networks.
    "stack_on": "out-of-fold",
    "stack_folds": 3,
    # Stacked only: project this many identity directions of the training people out of w before its
    # regression (ferbench_latent_vgg19.classifier.identity_directions; the data must name its people). 0: none.
    "identity_dims": 0,
    "image_size": None,  # None: the training images' size
    "weights": None,  # a local ImageNet VGG19(-BN) file for the classifier's convolutions
    "eval_batch_size": 256,
    "image_branch": "reconstruction",  # what VGG19 sees: the reconstruction G(w), or the query itself
    # The style-based generator.
    "latent_dim": 512,
    "mapping_layers": 8,
    "gan_channels": 128,
    "gan_image_size": 64,
    "gan_steps": 20000,
    "gan_batch_size": 32,
    "gan_lr": 0.002,
    "r1_gamma": 0.1,
    "gan_data": "train",  # "train": the fold's training images; or a dataset name/folder (its train split)
    "gan_images": None,  # at most this many images for the GAN (a seeded random subset); None: all
    "gan_checkpoint": None,  # a GAN folder (or a saved latent-vgg19 model) to load instead of training
    # The encoder.
    "encoder_backbone": "resnet18",
    "encoder_steps": 5000,
    "encoder_batch_size": 64,
    "encoder_lr": 1e-3,
    # The lens and the latent optimisation.
    "lens_weights": None,  # a local ImageNet VGG19 file; None: a face classifier trained on the training split
    "lens_epochs": 10,
    "lens_size": None,  # the face lens's input size; None: the classifier's image_size, else the data's size
    "lens_lr": 3e-3,
    "lens_image_size": 96,  # the ImageNet lens's input size
    "invert_steps": 100,
    "invert_lr": 0.01,
    "feature_weight": 1.0,
    "pixel_weight": 1.0,
    "invert_batch_size": 128,
}

LATENT_TRAININGS = ("joint", "image-first", "stacked")
# w's weight relative to the image network's in the stacked mix, as its stage diagnosis sweeps it (0: the
# image network alone).
WEIGHT_RATIOS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
STACK_EVIDENCE = ("out-of-fold", "validation")
COMPONENTS = {"generator": "stylegan", "discriminator": "stylegan-discriminator", "encoder": "stylegan-encoder",
              "lens": "timm:resnet18", "classifier": "timm:vgg19_bn"}

# Every hyperparameter that changes the generator or encoder: the cache key is made of these.
GAN_KEYS = ("latent_dim", "mapping_layers", "gan_channels", "gan_image_size", "gan_steps", "gan_batch_size",
            "gan_lr", "r1_gamma", "encoder_backbone", "encoder_steps", "encoder_batch_size", "encoder_lr")


def check_latent_config(config: dict[str, Any]) -> None:
    """Reject values this method cannot use, naming the hyperparameter (before any training)."""
    positive = ("fc_dim", "latent_fc_dim", "latent_dim", "mapping_layers", "gan_channels", "gan_batch_size",
                "encoder_batch_size", "invert_batch_size", "latent_epochs")
    for key in positive:
        if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {config[key]!r}")
    if config["latent_training"] not in LATENT_TRAININGS:
        raise ConfigError(f"latent_training must be one of {', '.join(LATENT_TRAININGS)}, "
                          f"got {config['latent_training']!r}")
    folds = config["stack_folds"]
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ConfigError(f"stack_folds must be an integer of at least 2, got {folds!r}")
    if config["stack_on"] not in STACK_EVIDENCE:
        raise ConfigError(f"stack_on must be one of {', '.join(STACK_EVIDENCE)}, got {config['stack_on']!r}")
    if config["identity_dims"] and config["latent_training"] != "stacked":
        raise ConfigError(f"identity_dims shapes the stacked model's regression on w: it needs "
                          f"latent_training=stacked, got {config['latent_training']!r}")
    for key in ("gan_steps", "encoder_steps", "lens_epochs", "invert_steps", "identity_dims"):
        if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 0:
            raise ConfigError(f"{key} must be a non-negative integer, got {config[key]!r}")
    for key in ("gan_lr", "r1_gamma", "encoder_lr", "lens_lr", "invert_lr", "feature_weight", "pixel_weight"):
        if not isinstance(config[key], (int, float)) or isinstance(config[key], bool) or config[key] < 0:
            raise ConfigError(f"{key} must be a non-negative number, got {config[key]!r}")
    if config["feature_weight"] + config["pixel_weight"] <= 0:
        raise ConfigError("feature_weight and pixel_weight are both 0: the latent optimisation needs a loss")
    for key in ("drop_rate", "latent_dropout"):
        if not isinstance(config[key], (int, float)) or not 0 <= float(config[key]) < 1:
            raise ConfigError(f"{key} must lie in [0, 1), got {config[key]!r}")
    if config["lens_size"] is not None and (not isinstance(config["lens_size"], int) or config["lens_size"] < 8):
        raise ConfigError(f"lens_size must be an integer of at least 8 or null, got {config['lens_size']!r}")
    if config["image_branch"] not in ("reconstruction", "query"):
        raise ConfigError(f"image_branch must be 'reconstruction' or 'query', got {config['image_branch']!r}")
    if config["gan_images"] is not None and (not isinstance(config["gan_images"], int) or config["gan_images"] < 2):
        raise ConfigError(f"gan_images must be an integer of at least 2 or null, got {config['gan_images']!r}")
    if not isinstance(config["gan_data"], str) or not config["gan_data"]:
        raise ConfigError(f"gan_data must be 'train' or a dataset name or folder, got {config['gan_data']!r}")
    resolution_plan(int(config["gan_image_size"]))
    for key in ("lens_weights", "weights"):
        if config[key] and not Path(str(config[key])).expanduser().is_file():
            raise ConfigError(f"{key}: file {config[key]} does not exist")
    if config["gan_checkpoint"] and not (Path(str(config["gan_checkpoint"])).expanduser() / "gan.json").is_file():
        raise ConfigError(f"gan_checkpoint: {config['gan_checkpoint']} is not a GAN folder (no gan.json in it)")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/ferbench").expanduser() / "latent-vgg19"


def gan_images_for(train: Dataset, config: dict[str, Any], seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The face images the generator and encoder learn from, and a record of where they came from."""
    source = config["gan_data"]
    if source == "train":
        images, name, split = train.images, train.name, "the fold's training split"
    else:
        from ferbench.plugins import PluginManager
        from ferbench.registry import Zoo

        dataset = Zoo(PluginManager()).dataset(source).load()
        run_dataset = train.name.split("[")[0]
        if "train" in dataset.split_names:
            dataset, split = dataset.split("train"), "its train split"
        elif dataset.name == run_dataset:
            raise ConfigError(f"gan_data={source}: {source} has no train split, so the generator would see this "
                              "run's test faces; use gan_data=train or another dataset")
        else:
            split = "all of it"
        images, name = dataset.images, dataset.name
    total = len(images)
    if config["gan_images"] and total > config["gan_images"]:
        keep = np.sort(np.random.default_rng(seed).choice(total, config["gan_images"], replace=False))
        images = images[keep]
    return images, {"gan_data": source, "dataset": name, "split": split, "images": len(images),
                    "of_images": total, "fingerprint": fingerprint(images)[:16]}


def write_gan_folder(directory: Path, generator: StyleGenerator, encoder: StyleEncoder,
                     record: dict[str, Any]) -> Path:
    """generator.safetensors, encoder.safetensors, then gan.json last: a folder with gan.json is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, module in (("generator", generator), ("encoder", encoder)):
        with atomic_path(directory / f"{name}.safetensors") as tmp:
            safetensors.torch.save_model(module, str(tmp))
    write_json(directory / "gan.json", {"format": GAN_FORMAT, **record})
    return directory


def read_gan_folder(directory: Path, build) -> tuple[StyleGenerator, StyleEncoder, dict[str, Any]]:
    record_path = Path(directory).expanduser() / "gan.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{record_path} is not readable JSON: {error}") from error
    if record.get("format") != GAN_FORMAT:
        raise CheckpointError(f"{record_path}: expected format {GAN_FORMAT!r}, got {record.get('format')!r}")
    modules = []
    for name, kind in (("generator", "generator"), ("encoder", "encoder")):
        module = build(kind, record[name]["component"], **record[name]["build"])
        weights = record_path.parent / f"{name}.safetensors"
        if not weights.is_file():
            raise CheckpointError(f"GAN folder {record_path.parent} lacks {weights.name}")
        try:
            missing, unexpected = safetensors.torch.load_model(module, str(weights), strict=False)
        except Exception as error:  # a tensor of another shape, or not a safetensors file
            raise CheckpointError(f"{weights} does not fit {record[name]['component']}: {error}") from error
        if missing or unexpected:
            raise CheckpointError(f"{weights} does not fit {record[name]['component']}: "
                                  f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        modules.append(module.eval())
    return modules[0], modules[1], record


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float ``(N, C, S, S)`` in [-1, 1] -> uint8 ``(N, S, S)`` (grey) or ``(N, S, S, 3)``."""
    x = ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()
    return (x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)).numpy()


class LatentVGG19Method(Method):
    """GAN latent-space reconstruction + fine-tuned VGG19 (Abirami & Vincent, 2022)."""

    def check(self, train: Dataset, ctx: RunContext) -> None:
        """Settings refused before the generator and lens train."""
        check_latent_config(ctx.config)
        _check_stack_evidence(ctx)
        if ctx.config["identity_dims"] and (train.subjects == "").any():
            raise ConfigError(f"identity_dims needs the people of the training faces, and {train.name} does not "
                              "name the person of every face; use identity_dims=0")
        check_cpu_compiler(ctx.config, ctx.device)

    def fit(self, train: Dataset, ctx: RunContext) -> None:
        config, self.config = ctx.config, dict(ctx.config)
        self.check(train, ctx)
        self.device, self.track, self.classes = ctx.device, ctx.track, train.classes
        self.components = dict(ctx.components)
        self.timings: dict[str, float] = {}

        started = time.perf_counter()
        self.generator, self.encoder, self.gan_record = self._generator_and_encoder(train, ctx)
        self.generator.to(self.device).eval()
        self.encoder.to(self.device).eval()
        self.timings["generator_s"] = time.perf_counter() - started

        started = time.perf_counter()
        self.lens, self.lens_record = self._lens(train, ctx)
        self.timings["lens_s"] = time.perf_counter() - started

        started = time.perf_counter()
        inverted = self._invert(train.images, "inverting the training faces")
        self.train_inversion = _summary(inverted)
        self.train_latents = {"w": inverted["w"], "w_encoder": inverted["w_encoder"], "labels": train.labels}
        self.train_reference = train.images
        self.timings["invert_train_s"] = time.perf_counter() - started

        images = self._branch_images(train, inverted)
        in_chans = 1 if images.ndim == 3 else 3
        image_size = int(config["image_size"] or max(train.image_size))
        self.input_spec = InputSpec.fit(images, in_chans, image_size)
        latent = {"latent_dim": self.generator.latent_dim, "latent_fc_dim": int(config["latent_fc_dim"]),
                  "latent_dropout": float(config["latent_dropout"])}
        self.weights_report = None
        build = {"joint": self._joint, "image-first": self._image_first, "stacked": self._stacked}
        self.classifier, classifier_config = build[config["latent_training"]](images, train, ctx, latent, in_chans,
                                                                              image_size)
        # Test faces are inverted once each and kept, so a time-to-accuracy curve (eval_every) costs one
        # inversion per split, and the final scoring and report reuse it.
        self._inversions: dict[str, dict[str, Any]] = {}
        evaluate = (lambda: ctx.evaluate(self)) if ctx.evaluate else None
        self.history = []
        if classifier_config is not None:  # stacked: nothing is left to train
            started = time.perf_counter()
            self.history = train_latent_classifier(self.classifier, images, inverted["w"], train.labels,
                                                   self.input_spec, classifier_config, self.device, ctx.seed,
                                                   ctx.track, ctx.epoch_end, ctx.checkpoint.stage("classifier"),
                                                   evaluate)
            self.timings["classifier_s"] = time.perf_counter() - started

    def _joint(self, images: np.ndarray, train: Dataset, ctx: RunContext, latent: dict[str, Any], in_chans: int,
               image_size: int) -> tuple[LatentVGG19, dict[str, Any]]:
        """The paper's classifier: image and latent branches joined before the final layer, trained together."""
        config, name = ctx.config, ctx.components["classifier"]
        self.classifier_build = {"latent_training": "joint", "num_classes": len(train.classes), "in_chans": in_chans,
                                 **latent, "fc_dim": int(config["fc_dim"]), "drop_rate": float(config["drop_rate"])}
        if name.startswith("timm:"):  # the paper's VGG: its pooled convolutions
            self.classifier_build["backbone"] = name[len("timm:"):]
            image_net = None
        else:  # any ferbench classifier: its penultimate features (e.g. the compact fer-resnet)
            image_net_build = {"num_classes": len(train.classes), "in_chans": in_chans, "image_size": image_size}
            self.classifier_build["image_net"] = {"component": name, "build": image_net_build}
            image_net = ctx.build("classifier", name, **image_net_build)
        classifier = LatentVGG19(**{k: v for k, v in self.classifier_build.items()
                                    if k not in ("image_net", "latent_training")}, image_net=image_net)
        self._load_weights(classifier.image_net, config, train.classes)
        return classifier, config

    def _image_first(self, images: np.ndarray, train: Dataset, ctx: RunContext, latent: dict[str, Any],
                     in_chans: int, image_size: int) -> tuple[LatentCorrection, dict[str, Any]]:
        """The image network trained alone, exactly as the no-latent baseline is, then frozen under a
        correction from w that trains for ``latent_epochs`` epochs."""
        image_net = self._image_net_alone(images, train, ctx, in_chans, image_size, latent)
        return (LatentCorrection(image_net, len(train.classes), **latent),
                {**ctx.config, "epochs": int(ctx.config["latent_epochs"]), "time_budget": None})

    def _stacked(self, images: np.ndarray, train: Dataset, ctx: RunContext, latent: dict[str, Any],
                 in_chans: int, image_size: int) -> tuple[LatentStack, None]:
        """The image network trained alone, a logistic regression on w, and their mix fitted on faces neither
        has trained on (:class:`LatentStack`): out-of-fold training faces, or the run's validation split."""
        w, classes = self.train_latents["w"], len(train.classes)
        image_net = self._image_net_alone(images, train, ctx, in_chans, image_size, latent)
        model = LatentStack(image_net, classes, latent["latent_dim"])
        model.fit_latent_scale(w)
        with torch.no_grad():
            z = model.standardised(w.float())
        identity = self._identity_directions(z, train.labels, train.subjects)
        model.latent.load_state_dict(_latent_regression(z, train.labels, classes, identity).state_dict())
        started = time.perf_counter()
        if ctx.config["stack_on"] == "validation":
            labels, image_log_probs, latent_shifts, evidence = self._validation_evidence(model, ctx)
        else:
            labels, image_log_probs, latent_shifts, evidence = self._out_of_fold_evidence(images, train, z, ctx)
        image_weight, latent_weight = fit_mix(labels, image_log_probs, latent_shifts)
        model.mix.copy_(torch.tensor([image_weight, latent_weight]))
        self.timings["stack_s"] = time.perf_counter() - started

        def accuracy(scores: np.ndarray) -> float:
            return float((scores.argmax(1) == labels).mean())

        if identity is not None:
            centred = z - z.mean(0)
            evidence["identity"] = {"dims": identity.shape[1], "variance_share": float(
                (centred @ identity).square().sum() / centred.square().sum())}
        self.stack_record = {
            **evidence, "image_weight": image_weight, "latent_weight": latent_weight,
            "held_out_accuracy": {"image": accuracy(image_log_probs), "latent": accuracy(latent_shifts),
                                  "stacked": accuracy(image_weight * image_log_probs
                                                      + latent_weight * latent_shifts)}}
        ctx.note(f"stacked on {evidence['on']} ({len(labels)} faces): image x {image_weight:.3f} + "
                 f"w x {latent_weight:.3f}; held out {self.stack_record['held_out_accuracy']}")
        return model.to(self.device), None

    def _out_of_fold_evidence(self, images: np.ndarray, train: Dataset, z: torch.Tensor, ctx: RunContext):
        """Labels, image log-probabilities and w's shifts of every training face, each from an image network
        and a regression trained on the other ``stack_folds - 1`` parts of the training split."""
        config, classes = ctx.config, len(train.classes)
        split, splits = inner_folds(train, int(config["stack_folds"]), ctx.seed)
        image_log_probs = np.zeros((len(train), classes))
        latent_shifts = np.zeros_like(image_log_probs)
        for k, (kept, held) in enumerate(splits, start=1):
            label = f"out-of-fold image network {k}/{len(splits)}"
            inner, _ = self._train_image_net(images[kept], train.labels[kept], ctx, label, f"image_net_oof{k}")
            image_log_probs[held] = self._image_log_probs(inner, images[held])
            with torch.no_grad():
                identity = self._identity_directions(z[kept], train.labels[kept], train.subjects[kept])
                regression = _latent_regression(z[kept], train.labels[kept], classes, identity)
                latent_shifts[held] = latent_shift(regression, z[held]).double().numpy()
        return train.labels, image_log_probs, latent_shifts, {"on": "out-of-fold", "folds": len(splits),
                                                              "split": split}

    def _identity_directions(self, z: torch.Tensor, labels: np.ndarray, subjects: np.ndarray):
        dims = int(self.config["identity_dims"])
        return identity_directions(z, labels, subjects, dims) if dims else None

    def _validation_evidence(self, model: LatentStack, ctx: RunContext):
        """Labels, the finished image network's log-probabilities and w's shifts of the run's validation
        faces (carved from the training data, which the networks and the regression never saw)."""
        validation = ctx.validation.restricted_to(self.classes)
        inverted = self._invert(validation.images, "inverting the validation faces")
        image_log_probs, shifts = self._stack_inputs(model, validation, inverted)
        return validation.labels, image_log_probs, shifts, {"on": "validation", "faces": len(validation)}

    def _stack_inputs(self, model: LatentStack, data: Dataset, inverted: dict[str, Any]):
        """What the stacked mix weighs for ``data``'s faces: the image network's log-probabilities and w's
        shifts (the form :func:`fit_mix` fits)."""
        with torch.no_grad():
            shifts = latent_shift(model.latent, model.standardised(inverted["w"].float())).double().numpy()
        return self._image_log_probs(model.image_net, self._branch_images(data, inverted)), shifts

    def _image_log_probs(self, image_net, images: np.ndarray) -> np.ndarray:
        probabilities = predict_proba(image_net, images, self.input_spec, self.device,
                                      int(self.config["eval_batch_size"]), tta=str(self.config["tta"]))
        return np.log(np.clip(probabilities, 1e-8, None))

    def _image_net_alone(self, images: np.ndarray, train: Dataset, ctx: RunContext, in_chans: int,
                         image_size: int, latent: dict[str, Any]):
        """The image network trained on every training face, as the no-latent baseline is."""
        image_net_build = {"num_classes": len(train.classes), "in_chans": in_chans, "image_size": image_size,
                           "drop_rate": float(ctx.config["drop_rate"])}
        self.classifier_build = {"latent_training": ctx.config["latent_training"], **latent,
                                 "image_net": {"component": ctx.components["classifier"], "build": image_net_build}}
        started = time.perf_counter()
        image_net, self.image_net_history = self._train_image_net(images, train.labels, ctx, "image network",
                                                                  "image_net")
        self.timings["image_net_s"] = time.perf_counter() - started
        return image_net

    def _train_image_net(self, images: np.ndarray, labels: np.ndarray, ctx: RunContext, label: str, stage: str):
        """One image network under the method's recipe, from the run's seed (where the no-latent
        baseline's fold starts)."""
        config, classes = ctx.config, self.classes
        build = self.classifier_build["image_net"]
        seed_everything(ctx.seed)
        image_net = ctx.build("classifier", build["component"], **build["build"])
        self._load_weights(image_net, config, classes)
        history = train_classifier(
            image_net, TrainingSet.of_arrays(images, labels, self.device), self.input_spec, config, self.device,
            ctx.seed, ctx.track, lambda epoch, metrics: ctx.note(epoch_line(label, epoch, metrics)),
            ctx.checkpoint.stage(stage))
        return image_net, history

    def _load_weights(self, image_net, config: dict[str, Any], classes) -> None:
        if config["weights"]:
            from ferbench.checkpoint import load_weights

            self.weights_report = load_weights(image_net, config["weights"], classes)

    # --- the generator and encoder: loaded, cached or trained --------------------------------------------
    def _generator_and_encoder(self, train: Dataset, ctx: RunContext):
        config = ctx.config
        if config["gan_checkpoint"]:
            generator, encoder, record = read_gan_folder(Path(str(config["gan_checkpoint"])), ctx.build)
            self._check_generator(generator, encoder)
            return generator, encoder, {**_public(record), "source": f"loaded from {config['gan_checkpoint']}"}
        images, trained_on = gan_images_for(train, config, ctx.seed)
        channels = 1 if images.ndim == 3 else 3
        # The autocast precision belongs to the key: a generator trained in bf16 is another generator (on
        # FER2013 one scored Fréchet 6.8 where the fp32 one scored 3.7), and a run must not reuse it unnamed.
        autocast = "bf16" if precision.uses_bf16(ctx.device) else "fp32"
        key_material = {"format": GAN_FORMAT, "config": {k: config[k] for k in GAN_KEYS}, "channels": channels,
                        "components": {r: ctx.components[r] for r in ("generator", "discriminator", "encoder")},
                        "data": trained_on["fingerprint"], "seed": ctx.seed, "autocast": autocast}
        key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:16]
        folder = cache_root() / key
        if (folder / "gan.json").is_file():
            generator, encoder, record = read_gan_folder(folder, ctx.build)
            self._check_generator(generator, encoder)
            return generator, encoder, {**_public(record), "source": f"reused from the cache ({folder})"}

        size, latent_dim = int(config["gan_image_size"]), int(config["latent_dim"])
        generator_build = {"image_size": size, "out_chans": channels, "latent_dim": latent_dim,
                           "mapping_layers": int(config["mapping_layers"]), "channels": int(config["gan_channels"])}
        encoder_build = {"latent_dim": latent_dim, "in_chans": channels, "image_size": size,
                         "backbone": str(config["encoder_backbone"])}
        generator = ctx.build("generator", ctx.components["generator"], **generator_build)
        discriminator = ctx.build("discriminator", ctx.components["discriminator"], image_size=size,
                                  in_chans=channels, channels=int(config["gan_channels"]))
        encoder = ctx.build("encoder", ctx.components["encoder"], **encoder_build)
        self._check_generator(generator, encoder)
        device = ctx.device
        gan_history = train_gan(generator, discriminator, torch.from_numpy(images).to(device),
                                steps=int(config["gan_steps"]), batch_size=int(config["gan_batch_size"]),
                                lr=float(config["gan_lr"]), r1_gamma=float(config["r1_gamma"]), seed=ctx.seed,
                                device=device, track=ctx.track, checkpoint=ctx.checkpoint.stage("gan"))
        encoder_history = train_encoder(encoder, generator, steps=int(config["encoder_steps"]),
                                        batch_size=int(config["encoder_batch_size"]),
                                        lr=float(config["encoder_lr"]), seed=ctx.seed + 1, device=device,
                                        track=ctx.track, checkpoint=ctx.checkpoint.stage("encoder"))
        record = {"trained_on": trained_on, "key": key, "seed": ctx.seed, "autocast": autocast,
                  "generator": {"component": ctx.components["generator"], "build": generator_build},
                  "encoder": {"component": ctx.components["encoder"], "build": encoder_build},
                  "discriminator": ctx.components["discriminator"], "config": key_material["config"],
                  "training": {"gan": gan_history, "encoder": encoder_history}}
        write_gan_folder(folder, generator.cpu(), encoder.cpu(), record)
        return generator, encoder, {**_public(record), "source": f"trained in this run, cached at {folder}"}

    @staticmethod
    def _check_generator(generator, encoder) -> None:
        if not isinstance(generator, StyleGenerator):
            raise ConfigError("latent-vgg19 needs a style-based generator with mapping and synthesis networks "
                              f"(the 'stylegan' component), got {type(generator).__name__}")
        if getattr(encoder, "latent_dim", None) != generator.latent_dim:
            raise ConfigError(f"the encoder predicts {getattr(encoder, 'latent_dim', '?')}-d latents but the "
                              f"generator takes {generator.latent_dim}-d ones")

    # --- the lens --------------------------------------------------------------------------------------
    def _lens(self, train: Dataset, ctx: RunContext):
        config = ctx.config
        if not config["feature_weight"]:
            return None, {"kind": "none (feature_weight is 0: pixel loss only)"}
        if config["lens_weights"]:
            lens = ImageNetVGGLens(str(config["lens_weights"]), int(config["lens_image_size"])).to(self.device)
            return lens, {"kind": "ImageNet VGG19 (local weights)", "weights": str(config["lens_weights"]),
                          "layers": "relu1_2, relu2_2, relu3_4, relu4_4", "image_size": int(config["lens_image_size"]),
                          "load_report": lens.report}
        name = ctx.components["lens"]
        size = int(config["lens_size"] or config["image_size"] or max(train.image_size))
        build = {"num_classes": len(train.classes), "in_chans": train.channels, "image_size": size}
        classifier = ctx.build("classifier", name, **build)
        spec = InputSpec.fit(train.images, train.channels, size)
        lens_config = {"epochs": int(config["lens_epochs"]), "batch_size": int(config["batch_size"]),
                       "lr": float(config["lens_lr"]), "weight_decay": float(config["weight_decay"]),
                       "label_smoothing": float(config["label_smoothing"]), "augment": bool(config["augment"])}
        history = train_classifier(classifier, train, spec, lens_config, self.device, ctx.seed + 2, ctx.track,
                                   lambda epoch, metrics: ctx.note(epoch_line(f"lens {name}", epoch, metrics)),
                                   checkpoint=ctx.checkpoint.stage("lens")) if lens_config["epochs"] else []
        self.lens_state = (name, build, spec, classifier)
        return FaceLens(classifier, spec).to(self.device), {
            "kind": f"face classifier {name} trained on the fold's training split (penultimate features)",
            "epochs": lens_config["epochs"], "history": history}

    # --- inversion ---------------------------------------------------------------------------------------
    def _invert(self, images: np.ndarray, description: str) -> dict[str, Any]:
        config, generator = self.config, self.generator
        batch_size = int(config["invert_batch_size"])
        lens = self.lens if self.lens is not None else (lambda x: [])
        parts: dict[str, list] = {"w_encoder": [], "w": [], "loss_before": [], "loss_after": [],
                                  "reconstructions": []}
        starts = range(0, len(images), batch_size)
        for start in self.track(starts, description, total=len(starts)):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(self.device)
            queries = to_gan_range(batch, generator.out_chans, generator.image_size)
            result = invert(generator, self.encoder, lens, queries, steps=int(config["invert_steps"]),
                            lr=float(config["invert_lr"]), feature_weight=float(config["feature_weight"]),
                            pixel_weight=float(config["pixel_weight"]))
            with torch.no_grad():
                reconstruction = generator.synthesis(result["w"], noise="fixed")
            for key in ("w_encoder", "w", "loss_before", "loss_after"):
                parts[key].append(result[key].cpu())
            parts["reconstructions"].append(to_uint8(reconstruction))
        out: dict[str, Any] = {k: torch.cat(v) if v else torch.zeros(0) for k, v in parts.items()
                               if k != "reconstructions"}
        out["reconstructions"] = np.concatenate(parts["reconstructions"]) if parts["reconstructions"] else \
            np.zeros((0, generator.image_size, generator.image_size), np.uint8)
        return out

    def _branch_images(self, data: Dataset, inverted: dict[str, Any]) -> np.ndarray:
        """What the image network reads of ``data``: its faces' reconstructions G(w), or the faces."""
        return inverted["reconstructions"] if self.config["image_branch"] == "reconstruction" else data.images

    def _inversion_for(self, data: Dataset) -> dict[str, Any]:
        """The inversion of ``data``'s faces, computed at the first call for these images (by content: the
        runner hands each call its own restricted copy of a split)."""
        key = fingerprint(data.images)
        if key not in self._inversions:
            started = time.perf_counter()
            self._inversions[key] = self._invert(data.images, f"inverting {len(data)} faces")
            self.timings["invert_test_s"] = self.timings.get("invert_test_s", 0.0) + time.perf_counter() - started
        return self._inversions[key]

    # --- Method --------------------------------------------------------------------------------------------
    def predict(self, data: Dataset) -> np.ndarray:
        inverted = self._inversion_for(data)
        return self._classify(data, inverted, inverted["w"])

    def _classify(self, data: Dataset, inverted: dict[str, Any], w: torch.Tensor) -> np.ndarray:
        images = self._branch_images(data, inverted)
        return predict_latent_proba(self.classifier, images, w, self.input_spec, self.device,
                                    int(self.config["eval_batch_size"]), str(self.config["tta"]))

    def report(self, test: Dataset, ctx: RunContext) -> dict[str, Any]:
        from ferbench_latent_vgg19.quality import reconstruction_grid_png, reconstruction_quality

        inverted = self._inversion_for(test)
        generator = self.generator
        queries = to_uint8(to_gan_range(torch.from_numpy(np.ascontiguousarray(test.images)),
                                        generator.out_chans, generator.image_size))
        with torch.no_grad():
            encoder_estimates = np.concatenate([np.zeros((0, *queries.shape[1:]), np.uint8)] + [
                to_uint8(generator.synthesis(w.to(self.device), noise="fixed"))
                for w in inverted["w_encoder"].split(int(self.config["invert_batch_size"]))])
        quality = reconstruction_quality(queries, encoder_estimates, inverted["reconstructions"])
        grid = reconstruction_grid_png(ctx.out_dir / f"reconstructions-{slug(test.name)}.png", queries,
                                       encoder_estimates, inverted["reconstructions"],
                                       f"latent-vgg19 on {test.name}: query | encoder estimate | optimised")
        extra: dict[str, Any] = {
            "history": self.history,
            **({"image_net_history": self.image_net_history} if hasattr(self, "image_net_history") else {}),
            "generator": self.gan_record,
            "lens": self.lens_record,
            "inversion": {"steps": int(self.config["invert_steps"]), "lr": float(self.config["invert_lr"]),
                          "feature_weight": float(self.config["feature_weight"]),
                          "pixel_weight": float(self.config["pixel_weight"]),
                          "train": self.train_inversion, "test": _summary(inverted)},
            "reconstruction": {**quality, "png": grid.name},
            "stages": self._stages(test, inverted),
            "timings": dict(self.timings),
        }
        if self.weights_report:
            extra["weights"] = self.weights_report
        if getattr(self, "stack_record", None):
            extra["stack"] = self.stack_record
        return extra

    def _stages(self, test: Dataset, inverted: dict[str, Any]) -> dict[str, Any]:
        """Where accuracy is lost, stage by stage, on ``test``: what each representation the method builds
        carries about the expression, each read by a classifier fitted on the training split's version.

        - ``latent_*``: a logistic regression on w alone (the encoder's estimate; after optimisation);
        - ``lens_real`` / ``lens_reconstruction``: the lens (a face classifier trained on the real training
          faces) on the real test faces and on their reconstructions G(w): what the generator loses;
        - ``generator_frechet``: Fréchet distance between generator samples and the real test faces in the
          lens's feature space (0: indistinguishable), beside the same distance between the real training
          and test faces, which is the floor a perfect generator would reach on a finite sample;
        - ``classifier_without_w``: the trained classifier with every test face's w hidden (set to the
          training mean, as ``latent_dropout`` hides it), under the same test-time views: its image branch
          alone, so the record's accuracy minus this is what w adds at test time. Under
          ``latent_training: image-first`` or ``stacked`` this is exactly the image network trained alone:
          the no-latent baseline, measured in the same run.
        - ``latent_weight_sweep`` (``stacked`` only): the accuracy on the test faces of
          ``log p_image + ratio * shift(w)`` for each ratio of :data:`WEIGHT_RATIOS`, beside the fitted mix's
          ratio: the most any weight of w could add. The best ratio is chosen on the test faces, so it bounds
          what a better-fitted mix could reach; it is a diagnosis, never a result.
        The method's own accuracy is the record's metrics.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        stages: dict[str, Any] = {}
        train = self.train_latents
        if len(np.unique(train["labels"])) > 1 and len(test):
            for key in ("w_encoder", "w"):
                probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))
                probe.fit(train[key].numpy(), train["labels"])
                name = "latent_encoder" if key == "w_encoder" else "latent_optimised"
                stages[name] = float((probe.predict(inverted[key].numpy()) == test.labels).mean())
        lens_state = getattr(self, "lens_state", None)
        if lens_state is not None and len(test):
            _, _, spec, lens = lens_state
            batch = int(self.config["eval_batch_size"])
            for name, images in (("lens_real", test.images), ("lens_reconstruction", inverted["reconstructions"])):
                probabilities = predict_proba(lens, images, spec, self.device, batch)
                stages[name] = float((probabilities.argmax(1) == test.labels).mean())
            stages["generator_frechet"] = self._generator_frechet(test, lens, spec)
        if len(test):
            hidden = self.classifier.latent_mean.expand(len(test), -1).cpu()
            stages["classifier_without_w"] = float((self._classify(test, inverted, hidden).argmax(1)
                                                    == test.labels).mean())
        if isinstance(self.classifier, LatentStack) and len(test):
            image_log_probs, shifts = self._stack_inputs(self.classifier, test, inverted)
            image_weight, latent_weight = self.classifier.mix.tolist()
            stages["latent_weight_sweep"] = {
                "ratios": list(WEIGHT_RATIOS),
                "accuracy": [float(((image_log_probs + ratio * shifts).argmax(1) == test.labels).mean())
                             for ratio in WEIGHT_RATIOS],
                "fitted_ratio": latent_weight / image_weight if image_weight else None}
        return stages

    @torch.no_grad()
    def _generator_frechet(self, test: Dataset, lens, spec: InputSpec, samples: int = 1000) -> dict[str, float]:
        from ferbench.metrics import frechet_distance

        generator, batch = self.generator, int(self.config["invert_batch_size"])
        lens_view = FaceLens(lens, spec)
        n = min(samples, len(test))
        rng = np.random.default_rng(0)
        real = torch.from_numpy(np.ascontiguousarray(test.images[np.sort(rng.choice(len(test), n, replace=False))]))

        def features(images: torch.Tensor) -> np.ndarray:
            return lens_view(images.to(self.device))[0].float().cpu().numpy()

        real_features = np.concatenate([features(to_gan_range(part, generator.out_chans, generator.image_size))
                                        for part in real.split(batch)])
        torch.manual_seed(0)
        fake_features = np.concatenate([features(generator(torch.randn(len(part), generator.latent_dim,
                                                                       device=self.device), noise="fixed"))
                                        for part in real.split(batch)])
        train_images = self.train_reference[np.sort(rng.choice(len(self.train_reference), min(n, len(self.train_reference)), replace=False))]
        train_features = np.concatenate([features(to_gan_range(part, generator.out_chans, generator.image_size))
                                         for part in torch.from_numpy(np.ascontiguousarray(train_images)).split(batch)])
        return {"samples": n, "generator": frechet_distance(fake_features, real_features),
                "real_train": frechet_distance(train_features, real_features)}

    def save(self, directory: Path, trained_by: dict[str, Any] | None = None) -> None:
        """The GAN folder (generator, encoder, gan.json), the classifier and the lens, and a record of each."""
        directory = Path(directory)
        write_gan_folder(directory, self.generator.cpu(), self.encoder.cpu(), self.gan_record)
        self.generator.to(self.device)
        self.encoder.to(self.device)
        with atomic_path(directory / "classifier.safetensors") as tmp:
            safetensors.torch.save_model(self.classifier.cpu(), str(tmp))
        self.classifier.to(self.device)
        lens = None
        if getattr(self, "lens_state", None):
            name, build, spec, module = self.lens_state
            with atomic_path(directory / "lens.safetensors") as tmp:
                safetensors.torch.save_model(module.cpu(), str(tmp))
            module.to(self.device)
            lens = {"component": name, "build": build, "input": _spec_json(spec), "weights": "lens.safetensors"}
        write_json(directory / "latent-vgg19.json", {
            "format": MODEL_FORMAT, "classes": list(self.classes), "components": self.components,
            "classifier": {"build": self.classifier_build, "input": _spec_json(self.input_spec),
                           "weights": "classifier.safetensors"},
            "lens": lens or self.lens_record, "gan": "gan.json", "config": self.config,
            "trained_by": trained_by or {},
        })


def _check_stack_evidence(ctx: RunContext) -> None:
    config = ctx.config
    if config["latent_training"] == "stacked" and config["stack_on"] == "validation" and ctx.validation is None:
        raise ConfigError("stack_on: validation fits the stacked mix on the run's validation split, and this run "
                          "has none: add --validation FRACTION (0.1: a tenth of the training faces, whole people "
                          "where the data names them)")


def _latent_regression(z: torch.Tensor, labels: np.ndarray, num_classes: int,
                       identity: torch.Tensor | None = None) -> nn.Linear:
    """The stacked model's classifier of w: a logistic regression (scikit-learn, C=0.1, as the
    ``latent_optimised`` stage reads w) on the standardised latents ``z``, as one linear layer over all
    ``num_classes`` (logits up to a per-face constant). A class absent from its training faces gets a logit
    far below the rest; a two-class fit gets its softmax form. With ``identity`` directions
    (:func:`identity_directions`) the regression reads ``z`` with them projected out, and the layer folds the
    projection into its weights, so it reads raw ``z`` the same way."""
    from sklearn.linear_model import LogisticRegression

    def without_identity(x: torch.Tensor) -> torch.Tensor:
        return x if identity is None else x - (x @ identity) @ identity.T

    fit = LogisticRegression(C=0.1, max_iter=1000).fit(without_identity(z).numpy(), labels)
    linear = nn.Linear(z.shape[1], num_classes)
    coef, intercept = without_identity(torch.from_numpy(fit.coef_).float()), torch.from_numpy(fit.intercept_).float()
    if len(fit.classes_) == 2:  # scikit-learn keeps one row: p(second) = sigmoid(row . z + b)
        coef, intercept = torch.cat([torch.zeros_like(coef), coef]), torch.cat([torch.zeros(1), intercept])
    elif len(fit.classes_) == 1:
        coef, intercept = torch.zeros(1, z.shape[1]), torch.zeros(1)
    classes = torch.from_numpy(fit.classes_.astype(np.int64))
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(-30.0)
        linear.weight[classes], linear.bias[classes] = coef, intercept
    return linear


def _summary(inverted: dict[str, Any]) -> dict[str, Any]:
    before, after = inverted["loss_before"], inverted["loss_after"]
    if not len(before):
        return {"images": 0}
    return {"images": len(before), "loss_encoder": float(before.mean()), "loss_optimised": float(after.mean()),
            "improved_share": float((after < before).float().mean())}


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """What a result needs to say about the generator: what it was trained on, how, and its key."""
    keys = ("trained_on", "key", "seed", "autocast", "generator", "encoder", "discriminator", "config", "source")
    out = {k: record[k] for k in keys if k in record}
    training = record.get("training") or {}
    out["training"] = {part: {k: v for k, v in (training.get(part) or {}).items() if k != "history"}
                       | {"last": ((training.get(part) or {}).get("history") or [None])[-1]}
                       for part in ("gan", "encoder") if part in training}
    return out


def _spec_json(spec: InputSpec) -> dict[str, Any]:
    return {"in_chans": spec.in_chans, "image_size": spec.image_size, "mean": list(spec.mean), "std": list(spec.std)}

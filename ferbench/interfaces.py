"""The parts a FER method is made of, and the specs plugins register them with.

Components are ``torch.nn.Module`` subclasses with a fixed call signature, so a method can compose any
registered component by name: any classifier can be the Arabian GAN's frozen Cnet or the latent-VGG19
lens. Plugins return the ``*Spec`` records from the registration hooks in :mod:`ferbench.hookspecs`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from ferbench.checkpoint import TrainingCheckpoint
from ferbench.data import Dataset

COMPONENT_KINDS = ("encoder", "generator", "discriminator", "classifier")


# --- components -----------------------------------------------------------------------------------

class Encoder(nn.Module, ABC):
    """Image ``(N, C, S, S)`` -> latent/features ``(N, latent_dim)``."""

    latent_dim: int

    @abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor: ...


class Generator(nn.Module, ABC):
    """Latent ``(N, latent_dim)`` [+ labels ``(N,)``] -> image ``(N, out_chans, S, S)`` in [-1, 1]."""

    latent_dim: int
    out_chans: int
    image_size: int

    @abstractmethod
    def forward(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


class Discriminator(nn.Module, ABC):
    """Image [+ labels] -> one real-vs-generated logit per image, ``(N,)``."""

    @abstractmethod
    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


class Classifier(nn.Module, ABC):
    """Image ``(N, in_chans, S, S)`` -> class logits ``(N, num_classes)``; ``features`` gives the
    penultimate representation ``(N, feature_dim)`` that the logits are a linear function of."""

    num_classes: int
    in_chans: int
    feature_dim: int

    @abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor: ...


# --- methods --------------------------------------------------------------------------------------

T = TypeVar("T")


class Tracker(Protocol):
    """Wraps an iterable in a progress bar: ``for batch in ctx.track(batches, "epoch 3"): ...``."""

    def __call__(self, iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]: ...


@dataclass
class RunContext:
    """What the runner hands a method for one fold.

    ``config`` holds the resolved hyperparameters (plugin defaults < registry.yaml < command line),
    ``components`` the component name for each role. ``adaptation`` holds training images of the test
    domain for cross-dataset methods (None otherwise). A method reports per-epoch metrics through
    ``epoch_end`` (which feeds the ``ferbench_epoch_end`` hook) and writes artifacts into ``out_dir``;
    ``note`` prints a line to the run's console or log for what is not the method's own epoch (a frozen
    classifier or a lens it trains first, say), so that no stage of a long fit is silent. ``validation`` is
    the fold's validation split when the run asks for one (``--validation``), carved from its training data
    and not in ``train``: a method may fit a few numbers on it that must not see training faces (a mix's
    weights, say), never train networks on it.

    Surviving faults, in any training loop (supervised, a GAN's, ...):

    - ``checkpoint`` (:class:`~ferbench.checkpoint.TrainingCheckpoint`): call ``restore(state)`` once
      before the loop and ``save(epoch, state, history=...)`` after each epoch; ``ferbench run --resume``
      then continues a killed run from its last epoch and ends with the same numbers as an uninterrupted
      one. ``state`` names every module, optimizer, LR schedule and ``torch.Generator`` the loop uses; the
      global RNGs are saved for you. A method that never calls it still works: a resumed run retrains
      its interrupted fold from the start.
    - :class:`~ferbench.divergence.DivergenceGuard`: hand it each loss and network per step and call
      ``check(epoch)`` before ``save``; NaN/Inf losses or exploding gradients then stop the fold with a
      message naming the epoch, step and component, the fold's result records the failure, and the last
      good checkpoint stays on disk.

    :func:`ferbench.training.train_classifier` is the worked example of both.

    Time-to-accuracy curves: ``evaluate(method)`` scores the method as it stands on the fold's test splits
    and returns ``{split: accuracy}`` (None where the runner gives none). A loop that calls it between
    epochs, with its training clock stopped, puts the answer in its history entries as ``test_accuracy``
    beside ``epoch`` and ``train_seconds`` (cumulative training time); the runner draws the curve from
    the history the method's ``report`` returns (``extra["history"]``).
    """

    config: dict[str, Any]
    components: dict[str, str]
    seed: int
    device: torch.device
    out_dir: Path
    build: Callable[..., nn.Module]
    track: Tracker
    epoch_end: Callable[[int, dict[str, float]], None]
    adaptation: Dataset | None = None
    validation: Dataset | None = None
    checkpoint: TrainingCheckpoint = field(default_factory=TrainingCheckpoint)
    evaluate: Callable[["Method"], dict[str, float]] | None = None
    note: Callable[[str], None] = lambda line: None


class Method(ABC):
    """A FER method: fit on a training set, predict class probabilities for a test set.

    ``classes`` (set by ``fit``) are the canonical names the probability columns stand for; the runner
    scores predictions over the classes a test set shares with them.
    """

    classes: tuple[str, ...] = ()
    # True when ``fit`` trains one model across torchrun's processes (train_classifier shards each batch with
    # DistributedDataParallel); other methods are refused under torchrun rather than trained once per process.
    distributed: bool = False

    def check(self, train: Dataset, ctx: RunContext) -> None:
        """Fail fast (optional): raise :class:`~ferbench.errors.ConfigError` for settings this method cannot
        train with, such as an image size its networks cannot take (build them and push one tiny batch
        through). The runner calls it once, before any fold trains; ``ctx.out_dir`` does not exist yet."""

    @abstractmethod
    def fit(self, train: Dataset, ctx: RunContext) -> None: ...

    @abstractmethod
    def predict(self, data: Dataset) -> np.ndarray:
        """Probabilities ``(len(data), len(self.classes))``."""

    def report(self, test: Dataset, ctx: RunContext) -> dict[str, Any]:
        """Extra metrics for ``test`` beyond accuracy (JSON-serialisable); may write artifacts to ``ctx.out_dir``."""
        return {}

    def save(self, directory: Path) -> None:
        """Save what was trained so it can be reused without retraining (optional)."""


# --- registration records -------------------------------------------------------------------------

@dataclass(frozen=True)
class ComponentSpec:
    """A buildable component. ``build(**kwargs)`` returns the module.

    A *family* (``members`` set) registers a whole namespace: ``name`` is a prefix ending in ``:``
    (``"timm:"``), ``members()`` lists the valid suffixes, and ``build(member, **kwargs)`` gets the suffix.
    Classifiers are built with ``num_classes``, ``in_chans`` and ``image_size`` keyword arguments.
    """

    kind: str
    name: str
    build: Callable[..., nn.Module]
    summary: str = ""
    members: Callable[[], Iterable[str]] | None = None

    def __post_init__(self) -> None:
        if self.kind not in COMPONENT_KINDS:
            raise ValueError(f"component {self.name!r}: kind must be one of {COMPONENT_KINDS}, got {self.kind!r}")
        if self.members is not None and not self.name.endswith(":"):
            raise ValueError(f"component family {self.name!r}: a family name must end with ':'")


@dataclass(frozen=True)
class MethodSpec:
    """A method: ``build()`` returns a fresh :class:`Method`; ``defaults`` are its hyperparameters and
    ``components`` its default component name per role. ``inference`` (optional) builds the method's whole
    inference path, untrained, as one module from images to logits
    (``inference(num_classes=, in_chans=, image_size=)``), so ``ferbench bench`` can time it. ``protocol``
    is the protocol it runs under when ``--protocol`` is not given (None: the dataset's own), for methods
    that only make sense under one (a cross-dataset restyler)."""

    name: str
    build: Callable[[], Method]
    summary: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    components: Mapping[str, str] = field(default_factory=dict)
    inference: Callable[..., nn.Module] | None = None
    protocol: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset or a dataset format. ``load(**options)`` returns a :class:`Dataset`.

    Path-based loaders take a ``root`` option; registry.yaml binds a loader to paths and options under a
    dataset name. ``sniff(path)`` says whether a folder is in this loader's format, so that a folder can be
    given where a dataset name is expected. ``protocol`` is the dataset's default protocol.
    """

    name: str
    load: Callable[..., Dataset]
    summary: str = ""
    protocol: str = "holdout"
    options: Mapping[str, Any] = field(default_factory=dict)
    sniff: Callable[[Path], bool] | None = None


class FaceDetector(Protocol):
    """Finds faces: ``detector(image, min_side)`` takes a uint8 grey ``(H, W)`` or RGB ``(H, W, 3)`` photo
    and returns every face at least ``min_side`` pixels wide as :class:`ferbench.faces.Box` es (with a
    ``score`` in [0, 1] where the detector has one), in any order."""

    def __call__(self, image: np.ndarray, min_side: int) -> list: ...


@dataclass(frozen=True)
class DetectorSpec:
    """A face detector for ``ferbench predict`` and the loaders of photo datasets.

    ``build()`` loads it (weights, cascades) and returns a :class:`FaceDetector`; it raises
    :class:`~ferbench.errors.ConfigError` saying what to install when a library it needs is missing, and
    the ``auto`` choice then falls back to the next detector by ``priority`` (highest first). ``margin``
    is the crop margin (a fraction of the box's side on every side) that makes this detector's crops frame
    a face as FER2013's and CK+48's training crops do, measured with ``ferbench detectors --calibrate``.
    A built detector must keep working in a forked process (``ferbench predict`` forks its photo workers,
    with torch's OpenMP set to one thread first): a detector with a thread pool of its own should not
    start it before it is called.
    """

    name: str
    build: Callable[[], FaceDetector]
    margin: float
    summary: str = ""
    priority: int = 0


@dataclass(frozen=True)
class TrackerSpec:
    """An experiment tracker that ``ferbench run --track NAME`` turns on. The plugin that registers it does
    the logging in its lifecycle hooks (``ferbench_run_start``, ``ferbench_epoch_end``,
    ``ferbench_run_end``) for runs whose ``run["track"]`` names it; ``check()`` raises
    :class:`~ferbench.errors.ConfigError` saying what to install when its library is missing, so a run
    asked to track fails before training, not after."""

    name: str
    check: Callable[[], None]
    summary: str = ""


@dataclass(frozen=True)
class CorruptionSpec:
    """An image corruption for ``ferbench robustness``: ``apply(images, severity, rng)`` takes uint8
    ``(N, H, W)`` or ``(N, H, W, 3)`` images and returns corrupted images of the same shape and dtype.

    ``severity`` is 1 (mild) to 5 (strong). ``rng`` (a ``numpy.random.Generator``) is seeded the same for
    every severity of one corruption, and ``apply`` draws from it the same way at every severity, so the
    five severities are one random corruption at five strengths: deterministic for a seed and monotone.
    ``family`` groups corruptions in tables (noise, blur, digital, lighting, occlusion, geometric).
    """

    name: str
    apply: Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
    family: str
    summary: str = ""


@dataclass
class Fold:
    """One train/evaluate unit of a protocol: train on ``train``, score on each set in ``tests``.
    ``validation``, when the run asks for one, is carved from the training data (never from a test set):
    temperature scaling is fitted on it."""

    name: str
    train: Dataset
    tests: dict[str, Dataset]
    adaptation: Dataset | None = None
    validation: Dataset | None = None


@dataclass(frozen=True)
class ProtocolOptions:
    seed: int = 0
    folds: int = 10
    target: Dataset | None = None


@dataclass(frozen=True)
class ProtocolSpec:
    """An evaluation protocol: ``folds(dataset, options)`` yields the :class:`Fold` s to run."""

    name: str
    folds: Callable[[Dataset, ProtocolOptions], Iterable[Fold]]
    summary: str = ""
    needs_target: bool = False

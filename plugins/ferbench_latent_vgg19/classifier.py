"""The expression classifier: fine-tuned VGG19 on the reconstructed face, joined with the latent w.

Image branch: VGG19's convolutional layers (timm, from scratch or a local ImageNet file), global average
pooling, dropout between the last convolution and the fully connected layers (the paper's Fig. 5), then two
fully connected layers of ``fc_dim`` units as in VGG. Latent branch: one fully connected layer on w. The
two feature vectors are concatenated before the final layer, whose softmax gives the seven classes.

w enters the latent branch standardised with the training latents' per-dimension mean and standard
deviation (kept as buffers, so they travel with the weights). A StyleGAN's w has a large common part (the
mean face) and small per-image offsets: in the first CPU runs the spread of w over the images was about 1% of
its norm (per-dimension SD 0.16 against |w| 17), so the unscaled latent branch saw a near-constant input and
the classifier stayed at chance even though a logistic regression on the same w was well above it.

``latent_dropout`` hides w (sets its standardised value to 0, the training mean) from that share of each
training batch, so the image branch must classify those faces alone. Issue 17's CPU runs found why: the
optimised w of a training face is a near-unique code of that image, which the joined model can fit (100%
training accuracy) in place of the expression, and on new people it fails (see docs/latent-vgg19.md).

timm's VGG carries its fully connected layers as a 7x7 convolution sized for 224-pixel inputs; it is
replaced by global pooling and linear layers so 48-96 pixel faces do not pass through a 7x7 upsampling.

The image branch can also be any ferbench classifier (``image_net``, e.g. the compact ``fer-resnet``): its
``features`` (the penultimate vector) go to the final layer as they go to its own head, with no FC layers
between (``fc_dim`` is VGG's), so without w the model is that network unchanged and the network alone is the
exact no-latent baseline. (Issue 17's first runs put VGG's two FC layers of 256 units after fer-resnet-l's
features: on FER2013 it reached 77% training accuracy in the 30-minute recipe where fer-resnet-l alone
reaches 81%.) That is the CPU
configuration ``latent-fer-resnet`` (registry.yaml), labelled as such: VGG19 from scratch does not train in
CPU minutes, and the question the paper raises, whether w adds to what an image network reads, is asked of
a network that does.

``latent_training: image-first`` (``LatentCorrection``) asks it another way: the image network is trained
alone first, exactly as the no-latent baseline (same seed and recipe), then frozen, and w learns a
correction of its logits. Joint training lets w change what the image branch learns; this cannot, so the
run's accuracy minus its own baseline's (w hidden) is what w adds to a finished image network.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import timm
import torch
from torch import nn

from ferbench.checkpoint import TrainingCheckpoint
from ferbench.data import InputSpec
from ferbench.interfaces import Classifier
from ferbench.training import TrainingSet, predict_proba, train_classifier


class LatentInput(nn.Module):
    """What both classifiers do with w: standardise it with the training latents' statistics (buffers, so
    they travel with the weights) and, in training, hide it from a ``latent_dropout`` share of the faces."""

    def __init__(self, latent_dim: int, latent_dropout: float):
        super().__init__()
        self.latent_dim, self.latent_dropout = latent_dim, latent_dropout
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))

    @torch.no_grad()
    def fit_latent_scale(self, w: torch.Tensor) -> None:
        """Standardise the latent branch's input with the statistics of the training latents ``w``."""
        w = w.float()
        self.latent_mean.copy_(w.mean(0))
        self.latent_std.copy_(w.std(0, unbiased=False).clamp_min(1e-6) if len(w) > 1 else torch.ones_like(w[0]))

    def standardised(self, w: torch.Tensor) -> torch.Tensor:
        latent = (w.float() - self.latent_mean) / self.latent_std
        if self.training and self.latent_dropout:  # hide w from a share of the training faces (see above)
            keep = torch.rand(len(latent), 1, device=latent.device) >= self.latent_dropout
            latent = latent * keep
        return latent


class LatentVGG19(LatentInput):
    """``forward(images, w)`` -> logits ``(N, num_classes)``; ``features(images, w)`` is the concatenated
    vector ``(N, feature_dim)`` the final layer reads: the image branch's (``fc_dim`` for VGG, the image
    network's ``feature_dim`` otherwise), then ``latent_fc_dim`` from w."""

    def __init__(self, num_classes: int, in_chans: int, latent_dim: int = 512, backbone: str = "vgg19_bn",
                 fc_dim: int = 4096, latent_fc_dim: int = 512, drop_rate: float = 0.5,
                 image_net: Classifier | None = None, latent_dropout: float = 0.0):
        super().__init__(latent_dim, latent_dropout)
        self.num_classes, self.in_chans = num_classes, in_chans
        if image_net is None:  # the paper's: a timm VGG's convolutions, globally pooled
            image_net = timm.create_model(backbone, pretrained=False, num_classes=0, in_chans=in_chans)
            image_net.pre_logits, image_net.head = nn.Identity(), nn.Identity()  # see the module docstring
            conv_dim, self.pooled = image_net.feature_info[-1]["num_chs"], True
            self.image_fc = nn.Sequential(
                nn.Dropout(drop_rate), nn.Linear(conv_dim, fc_dim), nn.ReLU(inplace=True),
                nn.Dropout(drop_rate), nn.Linear(fc_dim, fc_dim), nn.ReLU(inplace=True))
            image_dim = fc_dim
        else:  # the network's own penultimate features, as its own head reads them (see the module docstring)
            self.pooled, self.image_fc, image_dim = False, nn.Identity(), image_net.feature_dim
        self.image_net = image_net
        self.latent_fc = nn.Sequential(nn.Linear(latent_dim, latent_fc_dim), nn.ReLU(inplace=True))
        self.feature_dim = image_dim + latent_fc_dim
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.feature_dim, num_classes))

    def features(self, images: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        conv = (self.image_net.forward_features(images).mean(dim=(2, 3)) if self.pooled
                else self.image_net.features(images))
        return torch.cat([self.image_fc(conv), self.latent_fc(self.standardised(w).to(conv.dtype))], dim=1)

    def forward(self, images: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images, w))


class LatentCorrection(LatentInput):
    """``latent_training: image-first``: a trained image network, frozen, plus a correction of its logits
    read from w: ``image_net(images) + latent(w)``, where ``latent`` is one hidden layer of
    ``latent_fc_dim`` units and has no biases, so w at the training mean (hidden) adds exactly nothing.

    The last layer starts at zero: before the correction trains, and whenever w is hidden, the model *is*
    the image network, so the no-latent baseline is measured inside the same run and the difference is
    what w adds. (Joint training, the paper's, let w change what the image branch learns: on CK+48 its
    image branch read 1-3 points less than the network trained alone; see docs/latent-vgg19.md.) The image
    network stays in eval mode while the correction trains, so its batch-norm statistics do not move."""

    def __init__(self, image_net: Classifier, num_classes: int, latent_dim: int = 512, latent_fc_dim: int = 512,
                 latent_dropout: float = 0.0):
        super().__init__(latent_dim, latent_dropout)
        self.num_classes, self.in_chans = num_classes, image_net.in_chans
        self.image_net = image_net.requires_grad_(False)
        self.latent = nn.Sequential(nn.Linear(latent_dim, latent_fc_dim, bias=False), nn.ReLU(inplace=True),
                                    nn.Linear(latent_fc_dim, num_classes, bias=False))
        nn.init.zeros_(self.latent[-1].weight)

    def train(self, mode: bool = True) -> "LatentCorrection":
        super().train(mode)
        self.image_net.eval()
        return self

    def forward(self, images: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        logits = self.image_net(images)
        return logits + self.latent(self.standardised(w).to(logits.dtype))


class LatentStack(LatentInput):
    """``latent_training: stacked``: stacked generalisation (Wolpert 1992) of two classifiers each trained
    alone, the image network and a logistic regression on the standardised w (``latent``), joined as
    ``mix[0] * log p_image(x) + mix[1] * (log p_latent(w) - log p_latent(mean w))``.

    The two weights are all that is fitted jointly, by NLL on predictions of faces that the networks
    scoring them did not train on (:func:`fit_mix`): out-of-fold training faces (``stack_on: out-of-fold``)
    or the run's validation split (``stack_on: validation``), so the mix learns how far each can be trusted
    on new faces. (The image-first correction learns from the image network's fit of its own training
    faces, near 100%, and a neural correction fitted to out-of-fold image logits learned to name the
    training faces by their w instead: -6.25 points on CK+48 subject fold 1.) w enters relative to the training mean, so w hidden adds nothing and the model ranks
    the classes as the image network alone does: the no-latent baseline inside the run, as in image-first."""

    def __init__(self, image_net: Classifier, num_classes: int, latent_dim: int = 512):
        super().__init__(latent_dim, 0.0)
        self.num_classes, self.in_chans = num_classes, image_net.in_chans
        self.image_net = image_net.requires_grad_(False)
        self.latent = nn.Linear(latent_dim, num_classes).requires_grad_(False)
        self.register_buffer("mix", torch.tensor([1.0, 0.0]))

    def forward(self, images: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        image = self.image_net(images).float().log_softmax(1)
        return self.mix[0] * image + self.mix[1] * latent_shift(self.latent, self.standardised(w.float()))


def latent_shift(regression: nn.Linear, z: torch.Tensor) -> torch.Tensor:
    """How far the standardised latents ``z`` move a linear classifier's log-probabilities from those of
    the mean face (z = 0)."""
    return regression(z).log_softmax(1) - regression.bias.log_softmax(0)


def identity_directions(z: torch.Tensor, labels: np.ndarray, subjects: np.ndarray, dims: int) -> torch.Tensor:
    """The ``dims`` directions of the standardised latents ``z`` along which the people of a training set
    differ most once their expressions are taken out: the leading principal axes of each person's mean
    residual (``z`` minus its class's mean), as an orthonormal ``(D, k)`` matrix, ``k = min(dims, people, D)``.

    Projecting them out of w before its regression (nuisance attribute projection, as speaker verification
    removes the recording channel) keeps w's regression from naming the training people, which is how w
    failed on new people in every CK+48 subject-fold run (docs/latent-vgg19.md). It needs no label or
    person of a test face: the directions come from the training people only."""
    residual = z.double().clone()
    for label in np.unique(labels):
        same_class = torch.from_numpy(labels == label)
        residual[same_class] -= residual[same_class].mean(0)
    people = np.unique(subjects)
    offsets = torch.stack([residual[torch.from_numpy(subjects == person)].mean(0) for person in people])
    _, _, axes = torch.linalg.svd(offsets, full_matrices=False)
    return axes[:dims].T.float().contiguous()


def fit_mix(labels: np.ndarray, image_log_probs: np.ndarray, latent_shifts: np.ndarray) -> tuple[float, float]:
    """The weights (each in [0, 10]) of the image network's log-probabilities and of w's shift that minimise
    the NLL of ``softmax(a * image + b * shift)`` on predictions of held-out faces."""
    from scipy.optimize import minimize

    image, shift = torch.from_numpy(image_log_probs).double(), torch.from_numpy(latent_shifts).double()
    target = torch.from_numpy(labels.astype(np.int64))

    def nll(weights: np.ndarray) -> tuple[float, np.ndarray]:
        mix = torch.from_numpy(weights).requires_grad_(True)
        loss = nn.functional.cross_entropy(mix[0] * image + mix[1] * shift, target)
        loss.backward()
        return float(loss.detach()), mix.grad.numpy()

    found = minimize(nll, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(0, 10), (0, 10)])
    return float(found.x[0]), float(found.x[1])


def train_latent_classifier(model: LatentInput, images: np.ndarray, w: torch.Tensor, labels: np.ndarray,
                            input_spec: InputSpec, config: dict[str, Any], device: torch.device, seed: int,
                            track: Callable = lambda it, *a, **k: it,
                            epoch_end: Callable[[int, dict[str, float]], None] = lambda e, m: None,
                            checkpoint: TrainingCheckpoint | None = None,
                            evaluate: Callable[[], dict[str, float]] | None = None) -> list[dict]:
    """Cross-entropy training on (uint8 image, w) pairs through the core's engine
    (:func:`ferbench.training.train_classifier`), with the latent as the model's second input. Augmentation
    moves the image only; w stays the image's code (MixUp/CutMix, if turned on, mix w with the label
    weight). The latent branch's standardisation is fitted to ``w`` first."""
    latents = w.to(device).float()
    model.fit_latent_scale(latents)
    data = TrainingSet.of_arrays(images, labels, device, extras=(latents,))
    return train_classifier(model, data, input_spec, config, device, seed, track, epoch_end, checkpoint,
                            evaluate, label="classifier epoch")


def predict_latent_proba(model: LatentInput, images: np.ndarray, w: torch.Tensor, input_spec: InputSpec,
                         device: torch.device, batch_size: int = 256, tta: str = "none") -> np.ndarray:
    """Probabilities over the ``tta`` views of each image; every view of an image keeps its w."""
    return predict_proba(model, images, input_spec, device, batch_size, tta=tta, extras=(w.float(),))

"""The Arabian GAN (Arabian & Moeller, "Generative Adversarial Network for Facial Emotion Recognition: a
feasibility study"): restyle images of an unseen *source* dataset so that classifiers trained on a *target*
dataset recognise their expressions.

Registers the components ``arabian-enet`` (encoder), ``arabian-gnet`` (generator) and ``arabian-dnet``
(discriminator), the methods ``arabian-gan`` (with our fix for the paper's collapse) and
``arabian-gan-paper`` (the paper's setting), the command ``ferbench restyle`` and a leaderboard section in
the paper's Table 2 format. Both methods run under ``cross-dataset`` by default::

    ferbench run --method arabian-gan --dataset synthetic-snapshot --target synthetic

(the classifiers and Dnet's real images come from ``--target``, the images to restyle from ``--dataset``).

Choices the paper leaves open, and why
--------------------------------------
- **Image size**: 48 px by default (``image_size``), 96 px (the paper's) with ``--set image_size=96``.
  ferbench's synthetic faces, FER2013 and CK+48 are all 48 px; upsampling them to 96 adds no information
  and four times the CPU time.
- **Layer widths**: the paper names AlexNet and "shallow" only. Enet keeps AlexNet's five convolutions and
  their proportions (96:256:384:384:256 as ``width x 1:2:3:3:2``) with batch norm as the normalization
  block, and the 4096-d output (``latent_dim``); Gnet and Dnet are DCGAN's generator and discriminator.
  ``width`` 16 (AlexNet's first layer has 96) so that a run fits on one CPU core; 32 or 64 on a GPU.
- **Gnet's upsampling**: nearest-neighbour + 3x3 convolution, not transposed convolutions, which painted a
  checkerboard into the restyled faces (see ``gnet.py``).
- **The label as a 4th channel**: a learned embedding mapped to an S x S plane (the conditional-GAN recipe
  of MATLAB's example, whose vocabulary the paper uses); the paper does not say how it embeds the label.
- **Optimizer**: Adam with beta1 0.5 (DCGAN's) for Enet, Gnet and Dnet (the paper says Adam only); one Dnet
  step, then one Enet+Gnet step, per batch of 64; 16 epochs over the source's training images.
  ``arabian-gan-paper`` uses DCGAN's lr 2e-4; ``arabian-gan`` 1e-3 (at 2e-4 and 8 epochs the guides'
  cross-entropy on restyled images stayed above chance, 2.4 for 7 classes).
- **Loss weights**: the paper sums the adversarial and the Cnet term and gives no weights; ``arabian-gan-paper``
  weights them 1:1. ``arabian-gan`` weights the guides' cross-entropy 5 (``classifier_weight``; at 1, in
  the tuning of an earlier default, surprise vanished on the synthetic pair) and the adversarial term 0.1 (``adversarial_weight``; at 1 Dnet
  won, d_fake fell below 0.1, and the generator answered with colour noise painted over the faces, which
  lowered every evaluator's score). docs/arabian-gan.md's tuning table has the runs.
- **Cnet**: the paper's Cnet is a model of its ref. [16] trained on OULU-CASIA (98 % validation accuracy).
  Here any registered classifier, trained from scratch on ``--target``'s training split minus a 10 % slice
  of its people (the validation slice, whose accuracy each result records), 10 epochs, lr 3e-3 (the
  ``classifier_*`` options: epochs, batch size, lr, augment, weight decay, erasing). The
  guides (the Cnets in the generator's loss, ``guide_classifiers``: timm's tiny ``test_resnet`` and
  ``test_efficientnet``, their cross-entropies averaged; the paper has one) and the three evaluators that
  Table 2 is measured with (``classifiers``: ``timm:resnet18``, ``timm:resnet10t``, ``timm:convnext_atto``)
  are different models, because an image optimised against one classifier can fool it without looking
  like the target; the paper evaluates with "the classification models of [16]" and does not say whether
  its Cnet was one of them. The guides are tiny (0.1-0.4 M parameters) because they run forward and
  backward in every generator step; the evaluators are standard backbones of three designs (residual,
  deep-stem residual, ConvNeXt) that reach 59-78 % on the studio test faces
  (``docs/synthetic-photometric-gap.py``), where timm's ``test_*`` nets reached 37-47 % on held-out studio
  people, too close to chance for before and after to differ by more than noise.
- **Grey sources**: the paper's JAFFE is grey and its other images colour; every image enters the GAN as
  three channels (grey repeated), and the restyled image is turned into the target's channel format
  (ITU-R 601 luma for a grey target) before a classifier sees it.

Our changes against the paper's collapse (``arabian-gan``; ``arabian-gan-paper`` has none of them):

- ``reconstruction_weight`` 10: a target image, in the source's channel format, restyled has to come back as
  it was (L1; CycleGAN's identity term). It keeps the restyler close to an identity on images that already
  look like the target, and so keeps the expression in the image.
- ``warmup_epochs`` 2: the first epochs train that term alone, so the GAN starts from a near-identity map.
- ``residual``: Gnet's output, times ``correction_scale`` 0.25, is a correction added to the input image
  rather than the image itself, so the face (and its expression) is there from the first step instead of
  being squeezed through the 4096-d code. (At scale 2, which lets a pixel reach any value, the correction
  painted texture over the faces.)
- ``photometric``: before the correction is added, the input image is normalised per image and channel and
  given a learned mean and spread (the target's look), which a head on the 4096-d vector modulates per
  image: adaptive instance normalisation (Huang & Belongie 2017), in Gnet (``gnet.py``). Exposure, contrast
  and colour cast become a few numbers to learn.
- ``label_matched_batches``: Dnet's real batch has the same labels as the generated batch, so the label
  channel carries information from the first step (with random real batches it does not, and Dnet can
  reward one class's look for every label).
- ``classifier_weight`` 5 and two guides (see *Loss weights* and *Cnet* above).
- ``guide_augment``: the guide sees each generated image after a random shift, rotation and flip, so the
  generator cannot satisfy it with a pixel pattern that only that one network reads as the class.
"""

from __future__ import annotations

from ferbench import hookimpl
from ferbench.interfaces import ComponentSpec, MethodSpec

from . import dnet, enet, gnet
from .method import DEFAULTS, PAPER_SETTING, ArabianGAN
from .restyler import Restyler

COMPONENTS = {"encoder": "arabian-enet", "generator": "arabian-gnet", "discriminator": "arabian-dnet"}
METHODS = ("arabian-gan", "arabian-gan-paper")


@hookimpl
def ferbench_register_components() -> list[ComponentSpec]:
    return [
        ComponentSpec("encoder", "arabian-enet", enet.build,
                      "Arabian GAN Enet: AlexNet-like CNN with batch norm, (N, 3, S, S) -> (N, 4096)"),
        ComponentSpec("generator", "arabian-gnet", gnet.build,
                      "Arabian GAN Gnet: shallow decoder, (N, 4096) -> (N, 3, S, S) in [-1, 1]"),
        ComponentSpec("discriminator", "arabian-dnet", dnet.build,
                      "Arabian GAN Dnet: image + label embedded as a 4th channel -> real/generated logit"),
    ]


def restyler_inference(settings: dict):
    """``ferbench bench``'s view of the method: its restyler (Enet -> Gnet) at the setting's sizes, untrained.
    The frozen classifiers it restyles for are benched as classifiers of their own."""
    def build(num_classes: int, in_chans: int, image_size: int) -> Restyler:
        shape = {"image_size": image_size, "latent_dim": settings["latent_dim"], "width": settings["width"]}
        generator = gnet.ArabianGnet(out_chans=3, photometric=settings["photometric"], **shape)
        return Restyler(enet.ArabianEnet(in_chans=3, **shape), generator, image_size,
                        target_channels=3, residual=settings["residual"],
                        correction_scale=settings["correction_scale"])
    return build


@hookimpl
def ferbench_register_methods() -> list[MethodSpec]:
    return [
        MethodSpec("arabian-gan", ArabianGAN, "Arabian GAN restyler with an identity term, label-matched real "
                   "batches and augmented guides (no class collapses on the synthetic pair)",
                   defaults=DEFAULTS, components=COMPONENTS, protocol="cross-dataset",
                   inference=restyler_inference(DEFAULTS)),
        MethodSpec("arabian-gan-paper", ArabianGAN, "Arabian GAN restyler exactly as the paper trains it "
                   "(adversarial BCE + Cnet cross-entropy)",
                   defaults=PAPER_SETTING, components=COMPONENTS, protocol="cross-dataset",
                   inference=restyler_inference(PAPER_SETTING)),
    ]


@hookimpl
def ferbench_register_commands(app) -> None:
    from .command import register

    register(app)


@hookimpl
def ferbench_leaderboard_sections(records, paper) -> list[str]:
    from .leaderboard import table2_sections

    return table2_sections(records, paper, METHODS)

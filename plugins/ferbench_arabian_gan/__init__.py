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
PLACEHOLDER
"""

from __future__ import annotations

from ferbench import hookimpl
from ferbench.interfaces import ComponentSpec, MethodSpec

from . import dnet, enet, gnet
from .method import DEFAULTS, PAPER_SETTING, ArabianGAN

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


@hookimpl
def ferbench_register_methods() -> list[MethodSpec]:
    return [
        MethodSpec("arabian-gan", ArabianGAN, "Arabian GAN restyler with an identity term, label-matched real "
                   "batches and augmented guides (no class collapses on the synthetic pair)",
                   defaults=DEFAULTS, components=COMPONENTS, protocol="cross-dataset"),
        MethodSpec("arabian-gan-paper", ArabianGAN, "Arabian GAN restyler exactly as the paper trains it "
                   "(adversarial BCE + Cnet cross-entropy)",
                   defaults=PAPER_SETTING, components=COMPONENTS, protocol="cross-dataset"),
    ]


@hookimpl
def ferbench_register_commands(app) -> None:
    from .command import register

    register(app)


@hookimpl
def ferbench_leaderboard_sections(records, paper) -> list[str]:
    from .leaderboard import table2_sections

    return table2_sections(records, paper, METHODS)

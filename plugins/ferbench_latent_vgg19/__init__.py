"""latent-vgg19: facial expression recognition through the latent space of a style-based GAN.

Abirami & Vincent, "Identity preserving multi-pose facial expression recognition using fine tuned VGG on
the latent space vector of generative adversarial network" (``../shared/seeds/003_10967bf3b2fc5b25.txt``). A query face is embedded in the W space of a StyleGAN: a
ResNet encoder gives a first estimate of w, gradient descent on w (generator frozen) refines it under an L2
loss in a classifier's feature space, and a fine-tuned VGG19 classifies the reconstructed face G(w) with
features of w concatenated before its last layer.

Files, one architecture each: ``stylegan.py`` (mapping, synthesis with AdaIN and noise, discriminator, GAN
training), ``encoder.py`` (ResNet z -> w regression on generated pairs), ``inversion.py`` (lenses and the
latent optimisation), ``classifier.py`` (VGG19 + latent branch), ``quality.py`` (PSNR, SSIM, the picture),
``method.py`` (the :class:`~ferbench.interfaces.Method` and the generator cache).

What the paper leaves open, what is chosen here, and why
---------------------------------------------------------
- **Generator weights.** The paper uses StyleGAN trained on FFHQ (1024 px, 18 x 512 styles). Nothing can be
  downloaded here, so the generator is trained by this plugin on face images: by default the fold's
  *training* images only (``gan_data=train``), so it never sees a test face, not even unlabelled; or another
  face dataset's train split (``gan_data=fer2013``), the closest thing to the paper's setting of a
  generator independent of the evaluation data, trained once and reused by every fold. A dataset without a
  train split is refused as ``gan_data`` for a run on itself. Every result records, under
  ``extra.generator.trained_on``, the dataset, split, image count and a fingerprint of the images.
- **Reuse.** Generator and encoder go to ``$FERBENCH_CACHE/latent-vgg19/<key>`` (``~/.cache/ferbench``)
  as safetensors, keyed by the images' fingerprint, the seed and every generator/encoder hyperparameter;
  the same fold, the other protocol's identical training set, or a rerun loads them. ``gan_checkpoint``
  loads a GAN folder (or a saved model of this method) instead.
- **Generator size.** 512-d z and w (the paper: "a styleGAN latent space has 512 dimensions"), 8 mapping
  layers as in StyleGAN; synthesis at ``gan_image_size`` (64 by default, as the issue asks; 48 in the CPU
  configuration, the datasets' own size) from a 3x3 or 4x4 constant; 128 channels at the coarse levels,
  halving at the fine ones. One w drives every layer (W, not W+), since the classifier reads one w.
  Output through tanh, to honour the Generator interface's [-1, 1].
- **GAN training.** StyleGAN's losses and optimiser (non-saturating logistic, R1 on reals, Adam betas
  (0, 0.99), lr 0.002, equalised learning rate, mapping at 0.01x), with R1 gamma 0.1 (StyleGAN2's rule
  gamma = 0.0002 res^2 / batch gives 0.01-0.03 at 48-64 px; 0.1 was chosen a little higher for the small
  data sets) applied lazily every 4 steps, and horizontal-flip augmentation of the real faces.
- **Encoder.** A timm ResNet-18 (the paper: "a ResNet"), predicting w as an offset from the generator's
  mean w, trained with MSE on fresh (G(w), w) pairs each step (random per-layer noise), AdamW, cosine decay.
- **Lens.** The paper looks through an ImageNet VGG's fully connected features. No ImageNet weights are
  available here, so by default the lens is a face classifier (``lens`` role, timm ResNet-18) trained on
  the fold's training split for ``lens_epochs`` at ``lens_size`` (unset: the classifier's ``image_size``, else
  the data's size), and its penultimate features are compared. With
  ``lens_weights=<local ImageNet VGG19 file>`` the paper's lens is used, at the ends of VGG19's first four
  convolution blocks (its fully connected layers need 224 px inputs; the conv layers are the standard
  perceptual loss at small sizes).
- **Latent optimisation.** Adam on w, lr 0.01 (Image2StyleGAN's setting), ``invert_steps`` steps (100; the
  paper gives none), loss = feature L2 + pixel L2 with weights 1 and 1 (the paper: "L2 feature-wise loss",
  with pixel L2 named as the first approach's loss), the generator's noise fixed to one stored sample so
  G(w) is deterministic.
- **Classifier.** VGG19 with batch norm from timm (trains from scratch, which plain VGG19 does poorly; the
  ``classifier`` role takes any timm VGG, e.g. ``timm:vgg19``; ``weights`` loads a local ImageNet file, the
  paper's "fine-tuned"). Dropout (0.5) between the last convolution and the fully connected layers and
  before the last layer; two FC layers of ``fc_dim`` (4096, VGG's) on globally pooled conv features; w
  passes one FC layer of ``latent_fc_dim`` (512) and is concatenated before the final layer; w enters it
  standardised with the training latents' per-dimension mean and SD (the paper says nothing of scaling; a
  StyleGAN w is mostly the mean face, and unscaled its per-image part was invisible: see below). The image
  branch sees the reconstruction G(w) (``image_branch=reconstruction``; ``query`` feeds the original face
  instead, for an ablation). Cross-entropy, trained like ferbench's supervised baselines (AdamW, one-cycle,
  label smoothing 0.1, random affine augmentation: the paper "augments the data" without saying how), so
  that ``timm:vgg19_bn`` is the like-for-like baseline without the latent branch.
- **The small CPU configuration** (registry.yaml; issue 6). The first one scored chance (13.9% on synthetic,
  train accuracy 14%). Diagnosed on its saved model: a logistic regression on the encoder's w reached 26% on
  the test faces and on real pixels 51%, on the reconstructions 18%; the spread of w over the images was ~1%
  of its norm, so the unscaled latent branch saw a constant (fixed: the standardisation above); the lens,
  trained one epoch, was itself at chance, so the feature loss carried no expression; 5 optimisation steps at
  lr 0.01 hardly moved w; and a 200-step GAN does not draw faces (PSNR 11 dB), so G(w) carries little. With a
  4-epoch lens and 10 steps at lr 0.03, w after optimisation reached 38% under the same logistic regression.
  The small configuration therefore spends its time on the lens (4 epochs) and the optimisation (6 steps, lr
  0.05), runs generator, lens and classifier at 32 px, and trains the classifier with batches of 32: 29.7% on
  synthetic (chance 14.3%). Its classifier, a from-scratch VGG19 given 2 epochs, is now the bottleneck
  (train accuracy 30%; timm:vgg19_bn alone, 3 epochs, stays near chance on CK+). A lens at the faces' 48 px
  (``lens_size=48``; 52% train accuracy against 33%) with lr 0.03 (at 0.05 the loss rose for 42% of the
  faces) reconstructs better (PSNR 16.1 against 13.3 dB) yet scored 23.8%, so it is not the default. The
  expression the classifier sees comes through the lens's features far more than through the generator's
  faces: a CPU-minutes GAN is not FFHQ's StyleGAN, and the results say so (PSNR/SSIM are recorded).
- **Protocols.** CK+: the paper's 10-fold over images is ``image-kfold``; the subject-independent
  ``kfold`` is reported beside it. FER2013: the paper reports one number, 72.38%, and shows confusion
  matrices for both public and private test without saying which the number is; ferbench scores both.
"""

from __future__ import annotations

from ferbench import hookimpl
from ferbench.interfaces import ComponentSpec, MethodSpec

from ferbench_latent_vgg19.encoder import StyleEncoder
from ferbench_latent_vgg19.method import COMPONENTS, DEFAULTS, LatentVGG19Method
from ferbench_latent_vgg19.quality import leaderboard_section
from ferbench_latent_vgg19.stylegan import StyleDiscriminator, StyleGenerator

__version__ = "0.1.0"


@hookimpl
def ferbench_register_components():
    return [
        ComponentSpec("generator", "stylegan", StyleGenerator,
                      "style-based generator: mapping z -> w, synthesis from a constant with AdaIN and noise"),
        ComponentSpec("discriminator", "stylegan-discriminator", StyleDiscriminator,
                      "the StyleGAN-style discriminator (minibatch std, equalised learning rate)"),
        ComponentSpec("encoder", "stylegan-encoder", StyleEncoder,
                      "a timm ResNet regressing the generator's w from an image"),
    ]


@hookimpl
def ferbench_register_methods():
    return [MethodSpec("latent-vgg19", LatentVGG19Method,
                       "GAN latent-space reconstruction (StyleGAN + encoder + optimisation) + fine-tuned VGG19",
                       defaults=DEFAULTS, components=COMPONENTS),
            # The CPU configuration: the same method with the compact fer-resnet as image network and lens
            # (the nets plugin's components, found by name), its settings in registry.yaml.
            MethodSpec("latent-fer-resnet", LatentVGG19Method,
                       "latent-vgg19 with the compact fer-resnet as image network (the CPU configuration)",
                       defaults=DEFAULTS, components={**COMPONENTS, "classifier": "fer-resnet",
                                                      "lens": "fer-resnet-s"})]


@hookimpl
def ferbench_register_commands(app) -> None:
    from ferbench_latent_vgg19.command import register

    register(app)


@hookimpl
def ferbench_leaderboard_sections(records, paper):
    return leaderboard_section(records)

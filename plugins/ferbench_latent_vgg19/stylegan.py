"""A small style-based generator (Karras, Laine & Aila, CVPR 2019) and the discriminator it trains against.

Mapping network: z (latent_dim) -> pixel norm -> ``mapping_layers`` fully connected layers -> w. Synthesis
network: a learned constant at ``base`` x ``base`` (``image_size / 2**k``, 3 or 4 pixels), then one block per
resolution, each two 3x3 convolutions followed by per-layer noise, leaky ReLU and AdaIN driven by w, a
bilinear 2x upsampling between blocks, and a 1x1 convolution to the output channels. As in StyleGAN, every
weight uses the equalised learning rate (stored N(0, 1), scaled at run time by He's constant) and the
mapping network learns 100x slower. Training: non-saturating logistic loss, lazy R1 penalty on real images
(StyleGAN2's every-4-steps schedule), Adam with betas (0, 0.99), horizontal flips of the real images.

Left out, for a generator that trains in minutes on a CPU: progressive growing, style mixing, truncation,
the blur filter after upsampling, and W+ (one w drives every layer).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ferbench import precision
from ferbench.checkpoint import TrainingCheckpoint
from ferbench.data import to_channels
from ferbench.errors import ConfigError, TrainingDiverged
from ferbench.interfaces import Discriminator, Generator


class EqualLinear(nn.Module):
    """A linear layer with the equalised learning rate; ``lr_mul`` slows it down (the mapping network)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """A same-padded convolution with the equalised learning rate."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_chans, in_chans, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_chans))
        self.scale = 1 / math.sqrt(in_chans * kernel_size ** 2)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    # The sqrt(2) gain keeps unit variance through the layer, which the equalised learning rate assumes.
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then ``layers`` fully connected layers with leaky ReLU."""

    def __init__(self, latent_dim: int = 512, layers: int = 8, lr_mul: float = 0.01):
        super().__init__()
        self.layers = nn.ModuleList(EqualLinear(latent_dim, latent_dim, lr_mul=lr_mul) for _ in range(layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = leaky_relu(layer(x))
        return x


class AdaIN(nn.Module):
    """Adaptive instance normalisation: normalise each channel of each image to zero mean and unit standard
    deviation, then scale and shift it by a style computed from w (y_s, y_b = A(w))."""

    def __init__(self, channels: int, latent_dim: int):
        super().__init__()
        self.style = EqualLinear(latent_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0  # start as the identity scale

    def styles(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = self.style(w).chunk(2, dim=1)
        return scale, shift

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        scale, shift = self.styles(w)
        return scale[:, :, None, None] * F.instance_norm(x, eps=1e-5) + shift[:, :, None, None]


class NoiseInjection(nn.Module):
    """Per-pixel Gaussian noise with a learned per-channel strength. ``fixed`` is one stored noise image,
    used for inversion and prediction so that G(w) is a deterministic function of w."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("fixed", torch.randn(1, 1, size, size))

    def forward(self, x: torch.Tensor, noise: str) -> torch.Tensor:
        if noise == "none":
            return x
        if noise == "random":
            sample = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        else:
            sample = self.fixed.to(x.dtype)
        return x + self.strength * sample


class StyleLayer(nn.Module):
    """3x3 convolution -> noise -> leaky ReLU -> AdaIN(w)."""

    def __init__(self, in_chans: int, out_chans: int, size: int, latent_dim: int):
        super().__init__()
        self.conv = EqualConv2d(in_chans, out_chans, 3)
        self.noise = NoiseInjection(out_chans, size)
        self.adain = AdaIN(out_chans, latent_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: str) -> torch.Tensor:
        return self.adain(leaky_relu(self.noise(self.conv(x), noise)), w)


def resolution_plan(image_size: int) -> tuple[int, int]:
    """``(base, upsamplings)`` with ``base * 2**upsamplings == image_size`` and base 3 or 4: 48 = 3*2**4,
    64 = 4*2**4, 96 = 3*2**5."""
    upsamplings = max(0, math.ceil(math.log2(image_size / 4))) if image_size >= 4 else 0
    if image_size < 8 or image_size % 2 ** upsamplings or image_size // 2 ** upsamplings not in (3, 4):
        raise ConfigError(f"gan_image_size must be 3 or 4 times a power of two, at least 8 (48, 64, 96, ...), "
                          f"got {image_size}")
    return image_size // 2 ** upsamplings, upsamplings


def block_widths(blocks: int, channels: int) -> list[int]:
    """Channels per resolution, coarse to fine: ``channels`` for the first three, halving after, at least 16."""
    return [max(channels >> max(0, i - 2), 16) for i in range(blocks)]


class SynthesisNetwork(nn.Module):
    """w -> image: a learned constant, one two-layer block per resolution, upsampling between blocks."""

    def __init__(self, image_size: int, out_chans: int, latent_dim: int, channels: int):
        super().__init__()
        base, upsamplings = resolution_plan(image_size)
        widths = block_widths(upsamplings + 1, channels)
        self.constant = nn.Parameter(torch.randn(1, widths[0], base, base))
        self.blocks = nn.ModuleList()
        in_chans = widths[0]
        for i, width in enumerate(widths):
            size = base * 2 ** i
            self.blocks.append(nn.ModuleList([StyleLayer(in_chans, width, size, latent_dim),
                                              StyleLayer(width, width, size, latent_dim)]))
            in_chans = width
        self.to_image = EqualConv2d(in_chans, out_chans, 1)

    def forward(self, w: torch.Tensor, noise: str = "random") -> torch.Tensor:
        x = self.constant.expand(w.shape[0], -1, -1, -1)
        for i, block in enumerate(self.blocks):
            if i:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            for layer in block:
                x = layer(x, w, noise)
        return torch.tanh(self.to_image(x))


class StyleGenerator(Generator):
    """The style-based generator: ``forward(z)`` = ``synthesis(mapping(z))``, images in [-1, 1].

    Unconditional (``labels`` are ignored): expressions live in w, which is what the classifier reads.
    ``w_avg`` tracks the mean w during training (StyleGAN's truncation centre); the encoder predicts offsets
    from it.
    """

    def __init__(self, image_size: int = 64, out_chans: int = 1, latent_dim: int = 512, mapping_layers: int = 8,
                 channels: int = 128):
        super().__init__()
        self.image_size, self.out_chans, self.latent_dim = image_size, out_chans, latent_dim
        self.mapping = MappingNetwork(latent_dim, mapping_layers)
        self.synthesis = SynthesisNetwork(image_size, out_chans, latent_dim, channels)
        self.register_buffer("w_avg", torch.zeros(latent_dim))

    def forward(self, latent: torch.Tensor, labels: torch.Tensor | None = None, noise: str = "random") -> torch.Tensor:
        return self.synthesis(self.mapping(latent), noise)

    @torch.no_grad()
    def track_w_avg(self, w: torch.Tensor, beta: float = 0.995) -> None:
        self.w_avg.lerp_(w.detach().float().mean(0), 1 - beta)


class StyleDiscriminator(Discriminator):
    """Real-vs-generated logit: 1x1 convolution from the image, two 3x3 convolutions and a 2x average pool
    per resolution, the minibatch standard deviation as an extra channel, then two fully connected layers."""

    def __init__(self, image_size: int = 64, in_chans: int = 1, channels: int = 128):
        super().__init__()
        base, downsamplings = resolution_plan(image_size)
        widths = block_widths(downsamplings + 1, channels)[::-1]  # fine to coarse
        self.from_image = EqualConv2d(in_chans, widths[0], 1)
        self.blocks = nn.ModuleList()
        for i in range(downsamplings):
            self.blocks.append(nn.ModuleList([EqualConv2d(widths[i], widths[i], 3),
                                              EqualConv2d(widths[i], widths[i + 1], 3)]))
        self.final_conv = EqualConv2d(widths[-1] + 1, widths[-1], 3)
        self.final_linear = EqualLinear(widths[-1] * base * base, widths[-1])
        self.logit = EqualLinear(widths[-1], 1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = leaky_relu(self.from_image(images))
        for first, second in self.blocks:
            x = F.avg_pool2d(leaky_relu(second(leaky_relu(first(x)))), 2)
        spread = x.std(dim=0, unbiased=False).mean().expand(x.shape[0], 1, x.shape[2], x.shape[3])
        x = leaky_relu(self.final_conv(torch.cat([x, spread], dim=1)))
        return self.logit(leaky_relu(self.final_linear(x.flatten(1)))).squeeze(1)


def to_gan_range(batch: torch.Tensor, chans: int, size: int) -> torch.Tensor:
    """uint8 ``(N, H, W[, 3])`` images -> float ``(N, chans, size, size)`` in [-1, 1], the generator's space."""
    x = to_channels(batch, chans).float().div_(127.5).sub_(1.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def train_gan(generator: StyleGenerator, discriminator: StyleDiscriminator, images: torch.Tensor, *, steps: int,
              batch_size: int, lr: float, r1_gamma: float, seed: int, device: torch.device,
              track: Callable = lambda it, *a, **k: it, r1_every: int = 4,
              checkpoint: TrainingCheckpoint | None = None) -> dict[str, Any]:
    """Adversarial training on uint8 ``images`` (already on ``device``); returns a short history. With a
    ``checkpoint`` the state is saved at each of the ten history points and a saved one is continued from
    (its "epoch" counts steps)."""
    generator.to(device).train()
    discriminator.to(device).train()
    g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.0, 0.99))
    random = torch.Generator().manual_seed(seed)
    n, size, chans = len(images), generator.image_size, generator.out_chans
    batch_size = min(batch_size, n)
    checkpoint = checkpoint or TrainingCheckpoint()
    state = {"generator": generator, "discriminator": discriminator, "g_opt": g_opt, "d_opt": d_opt, "random": random}
    start = checkpoint.restore(state)
    history, started = list(start.extra.get("history", [])), time.perf_counter()
    # Losses are summed on the device and read at the ten history points only: a host read per step
    # would make an accelerator wait for every step to finish.
    sums = torch.zeros(2, device=device)
    for step in track(range(start.epoch + 1, steps + 1), "GAN", total=steps - start.epoch):
        index = torch.randint(0, n, (batch_size,), generator=random).to(device)
        real = to_gan_range(images[index], chans, size)
        flip = (torch.rand(batch_size, generator=random) < 0.5).to(device)
        real = torch.where(flip[:, None, None, None], real.flip(3), real)
        z = torch.randn(batch_size, generator.latent_dim, generator=random).to(device)

        with precision.autocast(device):
            w = generator.mapping(z)
            fake = generator.synthesis(w)
            d_loss = F.softplus(discriminator(fake.detach()).float()).mean() \
                + F.softplus(-discriminator(real).float()).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        if r1_gamma > 0 and step % r1_every == 0:
            # R1: the gradient penalty on real images, lazily every r1_every steps and scaled up to match.
            real.requires_grad_(True)
            (gradient,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
            (r1_gamma / 2 * gradient.pow(2).sum(dim=(1, 2, 3)).mean() * r1_every).backward()
        d_opt.step()

        discriminator.requires_grad_(False)  # the generator's step needs no gradients for D's weights
        with precision.autocast(device):
            g_loss = F.softplus(-discriminator(fake).float()).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        discriminator.requires_grad_(True)
        generator.track_w_avg(w)

        sums += torch.stack([d_loss.detach(), g_loss.detach()])
        if step % max(1, steps // 10) == 0 or step == steps:
            every = step - (history[-1]["step"] if history else 0)
            d_sum, g_sum = sums.tolist()
            if not math.isfinite(d_sum + g_sum):
                component, value = ("discriminator loss", d_sum) if not math.isfinite(d_sum) else ("generator loss", g_sum)
                raise TrainingDiverged(f"GAN training diverged by step {step} (before the classifier's first epoch): "
                                       f"the {component} became {value}", epoch=0, step=step, component=component,
                                       value=value)
            history.append({"step": step, "d_loss": d_sum / every, "g_loss": g_sum / every,
                            "seconds": time.perf_counter() - started})
            sums.zero_()
            checkpoint.save(step, state, history=history)
    generator.eval()
    discriminator.eval()
    return {"steps": steps, "batch_size": batch_size, "images": n, "history": history,
            "seconds": time.perf_counter() - started}

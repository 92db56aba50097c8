"""The encoder: a ResNet (timm) that regresses w from an image, the initial estimate for latent optimisation.

Trained as the paper describes: sample z, map it to w, synthesise G(w) with random noise, and regress w
from the image (mean squared error). The network predicts an offset from the generator's mean w, so an
untrained encoder already starts the optimisation at the average face.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import timm
import torch
import torch.nn.functional as F

from ferbench import precision
from ferbench.checkpoint import TrainingCheckpoint
from ferbench.interfaces import Encoder


class StyleEncoder(Encoder):
    """Image in [-1, 1] ``(N, in_chans, S, S)`` -> w ``(N, latent_dim)``."""

    def __init__(self, latent_dim: int = 512, in_chans: int = 1, image_size: int = 64, backbone: str = "resnet18"):
        super().__init__()
        self.latent_dim, self.in_chans, self.image_size, self.backbone_name = latent_dim, in_chans, image_size, backbone
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=latent_dim, in_chans=in_chans)
        self.register_buffer("w_avg", torch.zeros(latent_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.w_avg + self.backbone(images)


def train_encoder(encoder: StyleEncoder, generator, *, steps: int, batch_size: int, lr: float, seed: int,
                  device: torch.device, track: Callable = lambda it, *a, **k: it,
                  checkpoint: TrainingCheckpoint | None = None) -> dict[str, Any]:
    """Fit ``encoder`` on freshly generated (G(w), w) pairs, with the generator frozen. With a
    ``checkpoint`` the state is saved at each of the ten history points and a saved one is continued from."""
    generator.to(device).eval().requires_grad_(False)
    encoder.to(device).train()
    encoder.w_avg.copy_(generator.w_avg)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=lr, weight_decay=1e-4, fused=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    random = torch.Generator().manual_seed(seed)
    checkpoint = checkpoint or TrainingCheckpoint()
    state = {"encoder": encoder, "optimizer": optimizer, "schedule": schedule, "random": random}
    start = checkpoint.restore(state)
    # The loss is summed on the device and read at the ten history points only (no per-step sync).
    history, loss_sum, started = list(start.extra.get("history", [])), torch.zeros((), device=device), time.perf_counter()
    for step in track(range(start.epoch + 1, steps + 1), "encoder", total=steps - start.epoch):
        z = torch.randn(batch_size, generator.latent_dim, generator=random).to(device)
        with torch.no_grad(), precision.autocast(device):
            w = generator.mapping(z).float()
            images = generator.synthesis(w).float()
        with precision.autocast(device):
            predicted = encoder(images)
        loss = F.mse_loss(predicted.float(), w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_sum += loss.detach()
        if step % max(1, steps // 10) == 0 or step == steps:
            every = step - (history[-1]["step"] if history else 0)
            history.append({"step": step, "w_mse": loss_sum.item() / every, "seconds": time.perf_counter() - started})
            loss_sum.zero_()
            checkpoint.save(step, state, history=history)
    generator.requires_grad_(True)
    encoder.eval()
    return {"steps": steps, "batch_size": batch_size, "history": history, "seconds": time.perf_counter() - started}

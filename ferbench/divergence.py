"""Stop training that has gone numerically bad, and say where: the epoch, the step and the component.

A training loop (supervised or a GAN's, with any number of losses and networks) hands the guard its
losses and networks as it goes; the guard keeps the values on the device, so watching costs no
device-host synchronisation per step, and :meth:`DivergenceGuard.check` looks at them once, at the end
of each epoch (or as often as the loop likes)::

    guard = DivergenceGuard(config["grad_norm_limit"])
    for epoch in ...:
        for step in range(steps):
            ...
            loss_d.backward()
            guard.loss(step, discriminator=loss_d)
            guard.gradients(step, discriminator=discriminator)
            ...
        guard.check(epoch)                       # raises TrainingDiverged
        ctx.checkpoint.save(epoch, state, ...)   # so only good states are ever saved

The runner turns :class:`~ferbench.errors.TrainingDiverged` into a failed result record that names the
step and the component, keeps the last good checkpoint, and makes ``ferbench run`` exit non-zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ferbench.errors import TrainingDiverged


class DivergenceGuard:
    """Watches losses (NaN/Inf) and gradient norms (NaN/Inf, or above ``grad_norm_limit``).

    ``step`` is the step's index within its epoch, counted from 0 as ``range`` gives it; messages count
    from 1. A limit of ``None`` stops only on NaN/Inf gradients.
    """

    def __init__(self, grad_norm_limit: float | None = None):
        self.grad_norm_limit = None if grad_norm_limit is None else float(grad_norm_limit)
        self._seen: list[tuple[int, str, torch.Tensor]] = []

    def loss(self, step: int, **losses: torch.Tensor) -> None:
        """Watch each loss, named by its component: ``guard.loss(step, generator=loss_g)``."""
        for component, value in losses.items():
            self._seen.append((step, f"{component} loss", value.detach().float().reshape(())))

    def gradients(self, step: int, **modules: nn.Module) -> None:
        """Watch the total gradient norm of each network, after ``backward()`` and before the step."""
        for component, module in modules.items():
            self._seen.append((step, f"{component} gradient norm", gradient_norm(module)))

    def check(self, epoch: int) -> None:
        """Raise :class:`TrainingDiverged` for the first bad value watched since the last check."""
        if not self._seen:
            return
        values = torch.stack([value.to(self._seen[0][2].device) for _, _, value in self._seen]).tolist()
        seen, self._seen = self._seen, []
        for (step, component, _), value in zip(seen, values):
            limit = self.grad_norm_limit if component.endswith("gradient norm") else None
            if math.isfinite(value) and (limit is None or value <= limit):
                continue
            if math.isfinite(value):
                why = (f"the {component} was {value:.3g}, above grad_norm_limit {limit:g} (exploding gradients; "
                       "lower --lr, or raise the limit with --set grad_norm_limit=...)")
            else:
                why = f"the {component} became {value} (lower --lr, or check the data for broken images)"
            raise TrainingDiverged(f"training diverged in epoch {epoch}, step {step + 1}: {why}",
                                   epoch=epoch, step=step + 1, component=component, value=value)


def gradient_norm(module: nn.Module) -> torch.Tensor:
    """The L2 norm of all of ``module``'s gradients together, as a tensor on their device."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: one fused kernel per device and dtype
        return torch.nn.utils.get_total_norm(grads).float()
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))

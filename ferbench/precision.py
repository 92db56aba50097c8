"""The one device policy every training and inference path follows: channels_last memory format, and
bf16 autocast on CUDA by default, on a CPU when asked for.

bf16 autocast keeps the weights, the optimizer and the loss in fp32 and runs convolutions and matrix
products in bf16. CUDA GPUs do that natively, and ``auto`` (the default) uses it there. CPUs with
AVX512-BF16 or AMX (Intel Sapphire Rapids and later, AMD Zen 4 and later) do too, and oneDNN's bf16
kernels trained fer-resnet 2.4x and fer-vgg8 2.7x faster than fp32 on this machine's AMX Xeon; but on the
same CPU timm's resnet18 and test_resnet diverged in bf16 within two epochs on 16-pixel squares (NaN or
exploding gradients) where fp32 trained, so on a CPU bf16 is opt-in: ``--precision bf16``, which the
CPU recipe uses (docs/cpu-recipe.md).

Choose with ``--precision`` (``ferbench run``, ``eval``, ``bench``, ``predict``) or ``FERBENCH_PRECISION``:
``auto`` (default), ``fp32`` or ``bf16``. Every record carries :func:`describe` under ``device.precision``.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch

from ferbench.errors import ConfigError

PRECISION_ENV = "FERBENCH_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16")


def choose(value: str | None) -> None:
    """Set the process's precision (None: leave the environment's or the default)."""
    if value is not None:
        check(value, "--precision")
        os.environ[PRECISION_ENV] = value


@contextlib.contextmanager
def using(value: str):
    """Run the block with the precision ``value``, then restore the process's own setting."""
    chosen = os.environ.get(PRECISION_ENV)
    os.environ[PRECISION_ENV] = check(value, "precision")
    try:
        yield
    finally:
        if chosen is None:
            os.environ.pop(PRECISION_ENV)
        else:
            os.environ[PRECISION_ENV] = chosen


def check(value: str, where: str) -> str:
    if value not in PRECISIONS:
        raise ConfigError(f"{where} must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def setting() -> str:
    return check(os.environ.get(PRECISION_ENV, "auto"), PRECISION_ENV)


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA with bf16 support; a CPU with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a torch build without oneDNN
            return False
    return False


def uses_bf16(device: torch.device) -> bool:
    chosen = setting()
    return chosen == "bf16" or (chosen == "auto" and device.type == "cuda" and bf16_native(device))


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The policy's autocast context for ``device``: bf16 where :func:`uses_bf16`, else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device))


def describe(device: torch.device) -> dict:
    """The policy in effect on ``device``, for its records; warns when bf16 is asked of a CPU that lacks it."""
    bf16, native = uses_bf16(device), bf16_native(device)
    if bf16 and not native:
        # oneDNN then emulates bf16: on an AVX2-only EPYC a fer-resnet run trained at a crawl in it.
        warnings.warn(f"bf16 autocast on a {device.type} without native bf16 (no AVX512-BF16 or AMX): it is "
                      "emulated and many times slower than fp32; use --precision fp32 here", RuntimeWarning,
                      stacklevel=2)
    return {"setting": setting(), "autocast": "bf16" if bf16 else "fp32", "bf16_native": native,
            "channels_last": True}

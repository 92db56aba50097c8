"""One training on several processes: ``torchrun`` starts them, DistributedDataParallel keeps them in step.

``torchrun --nproc_per_node N -m ferbench.cli run ...`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in
each process; :func:`setup` joins them into a process group (NCCL on CUDA, one GPU per process; gloo on
the CPU). Every rank loads the data and trains on its shard of each batch; rank 0 alone writes the run
folder, checkpoints and results. Without torchrun everything here is a no-op for a single process.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes: rank 0, or the only process."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes, once; returns this process's device (``cuda:LOCAL_RANK``)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
    return device


def describe() -> dict[str, Any]:
    """What a result records about the processes that trained it."""
    if not dist.is_initialized():
        return {"world_size": 1}
    return {"world_size": world_size(), "backend": dist.get_backend()}


def from_main(value: Any) -> Any:
    """Rank 0's ``value``, on every rank (a run folder's name, say)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over all ranks (in place)."""
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor

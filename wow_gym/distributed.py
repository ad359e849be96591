"""Data-parallel training under torchrun: which process this is, its shard of every batch, and the collectives.

`torchrun --nproc_per_node=N` starts N copies of a command with RANK, WORLD_SIZE and LOCAL_RANK set. Every
copy draws the same global batch from the same seeded generator and computes on its own contiguous block of
rows; gradients are averaged across the copies before each optimiser step, so every copy holds the same
parameters and a run at global batch B follows a one-process run at batch B (up to float reduction order).
Without torchrun there is one shard holding every row and every collective is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from wow_gym.devices import resolve_device

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's place among the torchrun processes, and its rows of a global batch."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, TensorBoard and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def check_batch(self, batch: int, what: str) -> None:
        """Raise unless a global batch of `batch` rows splits evenly over the processes."""
        if batch % self.world_size:
            raise ValueError(f"{what}: batch_size {batch} does not split over {self.world_size} processes; "
                             f"give a multiple of {self.world_size} (it is the global batch, summed over them)")

    def rows(self, batch: int) -> slice:
        """This process's contiguous block of a global batch of `batch` rows."""
        size = batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def take(self, x: T) -> T:
        """This process's rows of x (a tensor, array or list over the global batch's rows)."""
        return x[self.rows(len(x))]

    def take_each(self, batch: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor | None]:
        """This process's rows of every tensor in a batch dictionary (None stays None)."""
        return {k: None if v is None else self.take(v) for k, v in batch.items()}

    def masked_mean(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """This process's part of the mean of `values` over the entries a 0/1 `mask` selects.

        `values` holds this process's rows, `mask` the global batch's, so the denominator is the global count
        and averaging the processes' gradients gives the gradient of the global masked mean (a per-shard mean
        would weigh a shard with few selected rows as much as one with many). No selected entry: 0.
        """
        mask = mask.to(values.device, values.dtype)
        return (values * self.take(mask)).sum() * self.world_size / mask.sum().clamp_min(1)


def torchrun_shard() -> Shard:
    """The Shard torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) describes; one process without it."""
    try:
        return Shard(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                     int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError as error:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them): {error}") from None


def start(device: str) -> tuple[Shard, torch.device]:
    """Join torchrun's process group (gloo on the CPU, nccl on GPUs) when there is one; the device to use.

    `device` "auto" (or "cuda") under torchrun is the GPU numbered by the local rank, one per process.
    """
    shard = torchrun_shard()
    resolved = torch.device(resolve_device(device))
    if resolved.type == "cuda" and resolved.index is None and shard.distributed:
        resolved = torch.device("cuda", shard.local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if shard.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return shard, resolved


def stop() -> None:
    """Leave the process group once every process got here (a no-op in one process)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process got here (a no-op in one process)."""
    if dist.is_initialized():
        dist.barrier()


def broadcast_parameters(tensors: Iterable[torch.Tensor]) -> None:
    """Copy rank 0's values into every process's tensors (parameters, buffers)."""
    if not dist.is_initialized():
        return
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over the processes, in one all-reduce.

    A parameter without a gradient in every process keeps none (AdamW then leaves it alone, as one process
    would); one with a gradient somewhere gets the mean, counting the processes without one as zero.
    """
    if not dist.is_initialized():
        return
    world = dist.get_world_size()
    reference = next(iter(params))
    grads = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device, dtype=p.dtype)
             for p in params]
    present = torch.tensor([p.grad is not None for p in params], device=reference.device, dtype=reference.dtype)
    flat = torch.cat([*grads, present])
    dist.all_reduce(flat)
    offset = 0
    for p, seen in zip(params, flat[-len(params):].tolist()):
        n = p.numel()
        p.grad = (flat[offset:offset + n] / world).view_as(p).clone() if seen else None
        offset += n


def mean_over_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value's mean over the processes (the logs of a step; every process must pass the same keys)."""
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    flat = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(flat)
    return dict(zip(keys, (flat / dist.get_world_size()).tolist()))

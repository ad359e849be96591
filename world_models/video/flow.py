"""Rectified flow: the training target and a few-step Euler sampler with classifier-free guidance.

Noise x0 ~ N(0, I) at time 0 flows to data x1 at time 1 along x_t = (1 - t) x0 + t x1; the network
predicts the velocity x1 - x0. One Euler step from noise returns the conditional mean, so 1-2 steps are
already usable; more steps sharpen the sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def sample_time(batch: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu",
                uniform: float = 0.0) -> torch.Tensor:
    """Training times from a logit-normal(0, 1) (most weight mid-way, as in SD3's rectified flow), a share
    `uniform` of them from U(0, 1) instead: few-step sampling leans on the ends, which logit-normal starves."""
    logit_normal = torch.sigmoid(torch.randn(batch, generator=generator, device=device))
    if uniform <= 0:
        return logit_normal
    flat = torch.rand(batch, generator=generator, device=device)
    pick = torch.rand(batch, generator=generator, device=device) < uniform
    return torch.where(pick, flat, logit_normal)


def flow_pair(x1: torch.Tensor, time: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, target velocity) for data x1 at times `time` [B]."""
    t = time.view(-1, *([1] * (x1.dim() - 1)))
    return (1 - t) * noise + t * x1, x1 - noise


def euler_sample(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: tuple[int, ...],
    steps: int,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from noise at t=0 (`noise`, or drawn) to t=1 in `steps` Euler steps."""
    if steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    if noise is None:
        noise = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    x = noise.to(dtype)
    device = x.device
    for i in range(steps):
        t = torch.full((shape[0],), i / steps, device=device, dtype=dtype)
        x = x + velocity(x, t) / steps
    return x


def guided(conditional: torch.Tensor, unconditional: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: u + scale * (c - u); scale 1 is the plain conditional prediction."""
    return unconditional + scale * (conditional - unconditional)

"""Small learned models beside the DiT: pose dynamics, the object-state probe and the reward head.

- PoseDynamics carries `agent_pos` as state: (pose_t, pose_t - pose_{t-1}, a_t, a_{t-1}) -> pose change.
  Pixels never feed it, so the imagined arm's pose follows the actions, and the DiT is told this pose.
- LatentHead reads a vector off one frame latent (optionally with agent_pos): the object-state probe
  (trained on simulator frames only) and the reward/success head (trained on the simulator's reward).
All inputs and outputs are normalised with the data statistics kept in the checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn


class PoseDynamics(nn.Module):
    """Predicts the normalised change of agent_pos over one control step."""

    def __init__(self, pose_dim: int = 9, action_dim: int = 7, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * pose_dim + 2 * action_dim, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, pose_dim),
        )

    def forward(self, pose: torch.Tensor, velocity: torch.Tensor, action: torch.Tensor,
                prev_action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([pose, velocity, action, prev_action], dim=-1))


class LatentHead(nn.Module):
    """A small conv + MLP over one latent frame (and optionally agent_pos) -> `out_dim` values."""

    def __init__(self, latent_channels: int, latent_size: int, out_dim: int, pose_dim: int = 0,
                 width: int = 128) -> None:
        super().__init__()
        self.pose_dim = pose_dim
        self.conv = nn.Sequential(
            nn.Conv2d(latent_channels, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1, stride=2), nn.SiLU(),
        )
        flat = width * ((latent_size + 1) // 2) ** 2
        self.mlp = nn.Sequential(nn.Linear(flat + pose_dim, 256), nn.SiLU(), nn.Linear(256, out_dim))

    def forward(self, latent: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        features = self.conv(latent).flatten(1)
        if self.pose_dim:
            if pose is None:
                raise ValueError("this head needs agent_pos")
            features = torch.cat([features, pose], dim=-1)
        return self.mlp(features)

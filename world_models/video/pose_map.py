"""Where the end effector is in the picture: the pose condition drawn onto the DiT's token grid.

The pose dynamics knows where the gripper goes in 3-D; the DiT draws pixels. A global pose vector leaves
the DiT to learn the camera projection from data, which a small CPU model hardly does (the first shipped
model moved the pose but not the pictured arm). With the task camera's 3x4 projection saved in the
checkpoint, every target token is told how far it lies from the gripper now and next, in pixels:
a Gaussian bump and a clipped offset per pose. Hand-written because no library draws such maps.
"""

from __future__ import annotations

import torch

FEATURES = 6  # per token: for each pose (now, next) a bump, a column offset and a row offset


def project(camera: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """World points [..., 3] -> pixel (column, row) [..., 2] through the 3x4 projection `camera`."""
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1) @ camera.T
    return homogeneous[..., :2] / homogeneous[..., 2:].clamp_min(1e-6)


def pose_map(camera: torch.Tensor, eef: torch.Tensor, image_size: int, grid: int) -> torch.Tensor:
    """Per-token features [B, grid*grid, 6] of end-effector positions eef [B, 2, 3] (now, next).

    Token (i, j) covers a square of image_size/grid pixels; its features for each pose are
    exp(-d^2 / 2 sigma^2) with sigma half a token, and the pose's offset from the token centre in tokens,
    clipped to [-2, 2].
    """
    cell = image_size / grid
    centres = (torch.arange(grid, device=eef.device, dtype=eef.dtype) + 0.5) * cell
    rows, cols = torch.meshgrid(centres, centres, indexing="ij")
    centre = torch.stack([cols.flatten(), rows.flatten()], dim=-1)  # [N, 2] as (column, row)
    uv = project(camera.to(eef), eef)  # [B, 2, 2]
    offset = (uv[:, :, None] - centre[None, None]) / cell  # [B, 2, N, 2]
    bump = torch.exp(-(offset ** 2).sum(-1, keepdim=True) / (2 * 0.5 ** 2))
    features = torch.cat([bump, offset.clamp(-2, 2)], dim=-1)  # [B, 2, N, 3]
    return features.permute(0, 2, 1, 3).flatten(2)

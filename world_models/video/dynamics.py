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


def object_features(object_dim: int) -> int:
    """How many numbers WorldModel._object_features gives for a carried object state of `object_dim`: all
    but its x, y (height, orientation or joint angles, ...) and its offset from the gripper (3)."""
    return object_dim - 2 + 3


class PoseDynamics(nn.Module):
    """Predicts the normalised change of agent_pos over one control step; with `object_features`, also from
    the carried object's features (WorldModel._object_features). Without them the fingers cannot tell a
    grasp from a miss: trained on data where closing mostly meets the cube, they stop at the cube's width
    even where there is nothing between them, and an imagined miss looks like a grasp."""

    def __init__(self, pose_dim: int = 9, action_dim: int = 7, width: int = 256, object_features: int = 0) -> None:
        super().__init__()
        self.object_features = object_features
        self.net = nn.Sequential(
            nn.Linear(2 * pose_dim + 2 * action_dim + object_features, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, pose_dim),
        )

    def forward(self, pose: torch.Tensor, velocity: torch.Tensor, action: torch.Tensor,
                prev_action: torch.Tensor, objects: torch.Tensor | None = None) -> torch.Tensor:
        if (objects is None) != (self.object_features == 0):
            raise ValueError(f"this pose dynamics reads {self.object_features} object features; got "
                             f"{None if objects is None else objects.shape[-1]}")
        inputs = [pose, velocity, action, prev_action] + ([] if objects is None else [objects])
        return self.net(torch.cat(inputs, dim=-1))


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


class ObjectDynamics(nn.Module):
    """Predicts the normalised change of the task object's state over one control step: its pose (position,
    quaternion), or its position and the rest of its state (Door: the door's position, the hinge's and the
    handle's angles).

    Inputs (normalised): the gripper now and its change to the next step (agent_pos: position, orientation,
    finger joints), the object's height and orientation (not its x, y: pushing and carrying look the same
    anywhere on the table), the object's offset from the gripper and the action. Contact, grasp, carry,
    slip and drop are functions of these few numbers; pixels never feed it.

    Its last output is a logit: does the object move at all this step? Where it says no, the object keeps its
    pose exactly (WorldModel._object_step), so an untouched object cannot creep: a regression alone leaks a
    fraction of a millimetre a step, and over a hundred steps that lifts a resting cube off the table.
    """

    def __init__(self, pose_dim: int = 9, object_dim: int = 7, action_dim: int = 7, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * pose_dim + object_features(object_dim) + action_dim, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, object_dim + 1),
        )

    def forward(self, pose: torch.Tensor, pose_change: torch.Tensor, object_features: torch.Tensor,
                action: torch.Tensor) -> torch.Tensor:
        """object_features [B, object_dim + 1]: the object's normalised state but x, y, and its offset.
        Returns [B, object_dim + 1]: the normalised change, then the moving logit."""
        return self.net(torch.cat([pose, pose_change, object_features, action], dim=-1))


class PixelProbe(nn.Module):
    """Object state read off a uint8 frame: convolutions, a spatial softmax (one expected image position
    per feature map, as in deep visuomotor policies) and an MLP. Reads positions far more exactly than a
    head on the 8x8 latent, which is what starting an imagined episode from pixels needs."""

    def __init__(self, out_dim: int, keypoints: int = 32, width: int = 32) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(5, width // 2, 5, stride=2, padding=2), nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, keypoints, 1),
        )
        self.mlp = nn.Sequential(nn.Linear(3 * keypoints, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(),
                                 nn.Linear(256, out_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,H,W] in [-1, 1] -> [B, out_dim]."""
        b, _, h, w = images.shape
        rows = torch.linspace(-1, 1, h, device=images.device, dtype=images.dtype)
        cols = torch.linspace(-1, 1, w, device=images.device, dtype=images.dtype)
        grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))[None].expand(b, -1, -1, -1)
        features = self.conv(torch.cat([images, grid], dim=1))  # coordinates in: CoordConv
        fh, fw = features.shape[2:]
        attention = torch.softmax(features.flatten(2), dim=-1)  # [B,K,fh*fw]
        ys = torch.linspace(-1, 1, fh, device=images.device, dtype=features.dtype).repeat_interleave(fw)
        xs = torch.linspace(-1, 1, fw, device=images.device, dtype=features.dtype).repeat(fh)
        points = torch.stack([(attention * xs).sum(-1), (attention * ys).sum(-1)], dim=-1)  # [B,K,2]
        presence = features.flatten(2).amax(-1, keepdim=True)  # [B,K,1]: how strongly each map fires
        return self.mlp(torch.cat([points, presence], dim=-1).flatten(1))

"""FM-IDM: a Flow-Mask inverse dynamics model, video frames -> 7-DoF OSC actions.

For each step t it reads the frames t-1, t, t+1 and optionally later ones (the earlier frame tells the
arm's velocity, which the OSC controller carries over between steps; later frames show the rest of the
command's effect), the dense optical flow between consecutive frames, and arm masks, and predicts the action a_t that moved frame t to frame t+1. Flow is classical (OpenCV's DIS, no
downloaded weights). Masks come from a small mask head trained on MuJoCo's exact segmentation; at
evaluation the mask head supplies the mask of every frame, ground-truth and imagined alike, so nothing
simulator-only leaks into a comparison.

An optional pose head (a spatial-softmax PixelProbe) reads the end effector's world position off a single
frame. Open-loop replay of decoded actions drifts, since each step's small error is integrated; with the
pose head, `track` in wow_gym/physics_check.py steers the executing arm back toward where the video shows
the end effector, using the arm's own proprioception.

The variants of the paper's ablation share one network and differ only in their input channels:
plain (frames), flow (+ flow), mask (+ masks), fm-idm (+ flow + masks + the flow inside the arm mask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wow_gym.checks import check_frames
from wow_gym.world_models.checkpoint import (
    CONFIG_FILE,
    CheckpointError,
    load_weights,
    read_meta,
    save_checkpoint,
)
from wow_gym.world_models.idm.config import FORMAT_VERSION, IDMConfig
from wow_gym.world_models.video.dynamics import PixelProbe

TRAIN_COMMAND = "wow-gym train-idm"
FLOW_SCALE = 0.5  # flow in pixels per step is ~0-4 at 64 px; this brings it near unit scale


def optical_flow(frames: np.ndarray) -> np.ndarray:
    """Dense flow between consecutive frames: uint8 [T+1, H, W, 3] -> float32 [T, H, W, 2] in pixels."""
    import cv2

    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flows = [dis.calc(a, b, None) for a, b in zip(gray[:-1], gray[1:])]
    if not flows:
        return np.zeros((0, *frames.shape[1:3], 2), np.float32)
    return np.stack(flows).astype(np.float32)


def _conv(inp: int, out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, out, 3, stride, 1), nn.GroupNorm(4, out), nn.SiLU())


class MaskHead(nn.Module):
    """A small U-Net: frames [B,3,H,W] in [-1,1] -> arm-mask logits [B,1,H,W]."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.down1 = nn.Sequential(_conv(5, width, 1), _conv(width, width, 1))
        self.down2 = nn.Sequential(_conv(width, 2 * width, 2), _conv(2 * width, 2 * width, 1))
        self.down3 = nn.Sequential(_conv(2 * width, 4 * width, 2), _conv(4 * width, 4 * width, 1))
        self.up2 = nn.Sequential(_conv(6 * width, 2 * width, 1))
        self.up1 = nn.Sequential(_conv(3 * width, width, 1), nn.Conv2d(width, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x1 = self.down1(torch.cat([images, _coords(images)], dim=1))
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        y2 = self.up2(torch.cat([F.interpolate(x3, scale_factor=2.0), x2], dim=1))
        return self.up1(torch.cat([F.interpolate(y2, scale_factor=2.0), x1], dim=1))


class IDMNet(nn.Module):
    """Stacked input channels [B, C, H, W] -> normalised action [B, 7]."""

    def __init__(self, config: IDMConfig) -> None:
        super().__init__()
        w = config.width
        self.features = nn.Sequential(  # 64 -> 32 -> 16 -> 8 -> 4 px
            _conv(config.in_channels, w, 2), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w, 1),
            _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w, 1), _conv(4 * w, 8 * w, 2),
        )
        cells = (config.image_size // 16) ** 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * w * cells, 256), nn.SiLU(),
                                  nn.Linear(256, config.action_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _coords(images: torch.Tensor) -> torch.Tensor:
    b, _, h, w = images.shape
    ys = torch.linspace(-1, 1, h, device=images.device, dtype=images.dtype)
    xs = torch.linspace(-1, 1, w, device=images.device, dtype=images.dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))
    return grid[None].expand(b, -1, -1, -1)


def to_images(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1]."""
    return frames.float().movedim(-1, -3) / 127.5 - 1.0


class InverseDynamics(nn.Module):
    """Mask head + IDM network + action statistics: `predict(frames)` decodes a video into actions."""

    def __init__(self, config: IDMConfig, stats: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        self.config = config
        self.mask_head = MaskHead()
        self.net = IDMNet(config)
        self.pose_head = PixelProbe(3) if config.pose_head else None
        stats = {"action_mean": [0.0] * config.action_dim, "action_std": [1.0] * config.action_dim,
                 "eef_mean": [0.0] * 3, "eef_std": [1.0] * 3, **(stats or {})}
        self.stats = {k: [float(x) for x in v] for k, v in stats.items()}
        for name in ("action_mean", "action_std", "eef_mean", "eef_std"):
            self.register_buffer(f"_{name}", torch.tensor(self.stats[name]), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._action_mean.device

    # -- inputs ------------------------------------------------------------------------------------------

    def check_frames(self, frames: Any) -> np.ndarray:
        """uint8 [T+1, H, W, 3] (T >= 1) at the model's size, or a ValueError (wow_gym.checks' rules)."""
        return check_frames(frames, "FM-IDM's video", size=self.config.image_size, min_frames=2)

    @torch.no_grad()
    def masks(self, frames: np.ndarray, batch: int = 256) -> torch.Tensor:
        """The mask head's arm probabilities [T, H, W] for uint8 frames [T, H, W, 3]."""
        out = []
        for i in range(0, len(frames), batch):
            images = to_images(torch.as_tensor(frames[i:i + batch], device=self.device))
            out.append(torch.sigmoid(self.mask_head(images))[:, 0])
        return torch.cat(out)

    def stack_inputs(self, frames: torch.Tensor, flows: torch.Tensor | None, masks: torch.Tensor | None
                     ) -> torch.Tensor:
        """Network input [B, C, H, W] from frames [B,n,H,W,3] uint8 (t-1, t, t+1, ...), flows [B,n-1,H,W,2]
        between them in pixels and masks [B,n,H,W] in [0, 1] (each None when the variant does not use it)."""
        images = to_images(frames).flatten(1, 2)  # [B, 3n, H, W]
        parts = [images, _coords(images)]
        if self.config.uses_flow:
            flow = (flows.float() * FLOW_SCALE).movedim(-1, -3).flatten(1, 2)  # [B, 2(n-1), H, W]
            parts.append(flow)
        if self.config.uses_mask:
            parts.append(masks.float())
        if self.config.uses_flow and self.config.uses_mask:
            parts.append(flow * masks[:, :-1].float().repeat_interleave(2, dim=1))
        return torch.cat(parts, dim=1)

    def windows(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, torch.Tensor | None]:
        """Per-step inputs of a video [T+1, H, W, 3]: frames [T,n,...] (t-1 .. t+1+future), the flows
        between them [T,n-1,...] and their masks [T,n,...].

        Step 0 has no earlier frame and the last steps no later ones: the video's first and last frames
        repeat there (zero flow), as at episode ends in training.
        """
        n, steps = self.config.frames, len(frames) - 1
        padded = np.concatenate([frames[:1], frames, np.repeat(frames[-1:], self.config.future, axis=0)])
        index = np.arange(steps)[:, None] + np.arange(n)[None]  # padded rows of frames t-1 .. t+1+future
        flows = masks = None
        if self.config.uses_flow:
            zero = np.zeros((1, *frames.shape[1:3], 2), np.float32)
            flow = np.concatenate([zero, optical_flow(frames), np.repeat(zero, self.config.future, axis=0)])
            flows = flow[index[:, :-1]]  # flow from padded row i to row i+1
        if self.config.uses_mask:
            mask = self.masks(padded)
            masks = mask[torch.as_tensor(index, device=self.device)]
        return padded[index], flows, masks

    # -- prediction --------------------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, frames: Any, batch: int = 256) -> np.ndarray:
        """Actions [T, 7] in [-1, 1] that take each frame of the video [T+1, H, W, 3] to the next."""
        frames = self.check_frames(frames)
        stacks, flows, masks = self.windows(frames)
        out = []
        for i in range(0, len(stacks), batch):
            x = self.stack_inputs(
                torch.as_tensor(stacks[i:i + batch], device=self.device),
                None if flows is None else torch.as_tensor(flows[i:i + batch], device=self.device),
                None if masks is None else masks[i:i + batch])
            out.append(self.denormalize(self.net(x)))
        return torch.cat(out).clamp(-1, 1).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def eef_positions(self, frames: Any, batch: int = 256) -> np.ndarray:
        """The pose head's end-effector world position [T, 3] (metres) in each frame of [T, H, W, 3]."""
        if self.pose_head is None:
            raise CheckpointError(f"this FM-IDM ({self.config.task}) has no pose head, so it cannot track a "
                                  f"video; add one with `{TRAIN_COMMAND} task={self.config.task.lower()} "
                                  "variants=[fm-idm] init=<this checkpoint>` (pose_head.steps > 0) or replay "
                                  "open loop")
        frames = check_frames(frames, "frames to read the end effector from", size=self.config.image_size,
                              min_frames=1)
        out = [self.pose_head(to_images(torch.as_tensor(frames[i:i + batch], device=self.device)))
               for i in range(0, len(frames), batch)]
        return (torch.cat(out) * self._eef_std + self._eef_mean).cpu().numpy().astype(np.float32)

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions - self._action_mean) / self._action_std

    def denormalize(self, actions: torch.Tensor) -> torch.Tensor:
        return actions * self._action_std + self._action_mean

    # -- persistence -------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        meta = {"format_version": FORMAT_VERSION, "config": self.config.to_dict(), "stats": self.stats}
        return save_checkpoint(directory, self, meta, torch.float16)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> InverseDynamics:
        """Load a checkpoint directory; every problem raises CheckpointError saying what to do."""
        meta = read_meta(directory, "FM-IDM", TRAIN_COMMAND, FORMAT_VERSION)
        try:
            config = IDMConfig(**meta["config"])
            model = cls(config, meta["stats"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{Path(directory) / CONFIG_FILE} does not describe an FM-IDM ({exc}); "
                                  f"retrain with `{TRAIN_COMMAND}`") from None
        load_weights(directory, model, TRAIN_COMMAND)
        return model.to(device).eval()

    def check_compatible(self, image_size: int, source: str = "") -> None:
        if image_size != self.config.image_size:
            raise CheckpointError(f"FM-IDM{f' ({source})' if source else ''} reads {self.config.image_size} px "
                                  f"frames, the video has {image_size} px; train an IDM at {image_size} px")

"""IDMConfig: the shape and inputs of an inverse dynamics model (FM-IDM or an ablation variant), saved as
config.json beside its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_VERSION = 1
VARIANTS: dict[str, tuple[bool, bool]] = {  # name -> (uses flow, uses masks)
    "plain": (False, False),
    "flow": (True, False),
    "mask": (False, True),
    "fm-idm": (True, True),
}


@dataclass
class IDMConfig:
    """Shape and inputs of an inverse dynamics model; saved as config.json beside the weights."""

    variant: str = "fm-idm"
    task: str = "Lift"
    image_size: int = 64
    action_dim: int = 7
    width: int = 32
    # frames after t+1 that are read too: the OSC controller carries a command's effect into the next step
    future: int = 0
    # smooth-L1 weight of each normalised action dimension (x, y, z, roll, pitch, yaw, gripper)
    loss_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 1.0])
    # a pose head that reads the end effector's world position off one frame (what tracking a video needs)
    pose_head: bool = False
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown IDM variant {self.variant!r}; expected one of {sorted(VARIANTS)}")
        if self.future < 0:
            raise ValueError(f"future must be >= 0 frames, got {self.future}")
        if len(self.loss_weights) != self.action_dim:
            raise ValueError(f"loss_weights needs {self.action_dim} values, got {len(self.loss_weights)}")

    @property
    def uses_flow(self) -> bool:
        return VARIANTS[self.variant][0]

    @property
    def uses_mask(self) -> bool:
        return VARIANTS[self.variant][1]

    @property
    def frames(self) -> int:
        """Frames read per step: t-1, t, t+1 and `future` more."""
        return 3 + self.future

    @property
    def in_channels(self) -> int:
        n = self.frames
        channels = 3 * n + 2  # the frames and two coordinate channels
        if self.uses_flow:
            channels += 2 * (n - 1)  # flow between consecutive frames
        if self.uses_mask:
            channels += n  # arm masks of the frames
        if self.uses_flow and self.uses_mask:
            channels += 2 * (n - 1)  # each flow inside the arm mask of its first frame
        return channels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""The one record every producer and consumer speaks: a time-major episode, simulated or imagined."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Source = Literal["sim", "imagined", "imagined_verified", "real"]
SOURCES: tuple[str, ...] = ("sim", "imagined", "imagined_verified", "real")
ACTION_DIM = 7


@dataclass
class Rollout:
    """One episode: T actions and T+1 observations (frame t is seen before action t is taken)."""

    pixels: np.ndarray  # [T+1, H, W, 3] uint8
    agent_pos: np.ndarray  # [T+1, D] float32: end-effector position, orientation (quaternion), gripper
    action: np.ndarray  # [T, 7] float32, robosuite OSC_POSE deltas + gripper, in [-1, 1]
    reward: np.ndarray  # [T] float32
    terminated: np.ndarray  # [T] bool
    truncated: np.ndarray  # [T] bool
    source: str = "sim"
    env_id: str = ""
    task: str = ""
    instruction: str = ""
    seed: int = -1
    pair_id: str = ""
    is_success: np.ndarray | None = None  # [T] bool, info["is_success"] after each step
    environment_state: np.ndarray | None = None  # [T+1, E] float32, privileged object state (sim only)
    sim_state: np.ndarray | None = None  # [T+1, S] float64, MuJoCo state to restore any step
    subtask: list[str] | None = None  # [T] the expert's sub-instruction for each action
    reward_terms: dict[str, np.ndarray] = field(default_factory=dict)  # named [T] float32 terms
    idm_action: np.ndarray | None = None  # [T, 7] float32, actions decoded by FM-IDM
    critic_reward: np.ndarray | None = None  # [T] float32
    physics: dict[str, float] = field(default_factory=dict)  # physics-check figures (wow_gym/physics_check.py)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_steps(self) -> int:
        """T, the number of actions."""
        return int(self.action.shape[0])

    @property
    def success(self) -> bool:
        """Whether the task was solved at any step of the episode."""
        return bool(self.is_success is not None and np.any(self.is_success))

    def validate(self) -> None:
        """Raise ValueError naming the field when shapes, dtypes or provenance are inconsistent."""
        if self.action.ndim != 2 or self.action.shape[1] != ACTION_DIM:
            raise ValueError(f"Rollout.action must be [T, {ACTION_DIM}], got shape {self.action.shape}")
        steps = self.action.shape[0]
        _expect(self.pixels, "pixels", (steps + 1,), np.uint8)
        if self.pixels.ndim != 4 or self.pixels.shape[-1] != 3:
            raise ValueError(f"Rollout.pixels must be [T+1, H, W, 3] uint8, got shape {self.pixels.shape}")
        _expect(self.agent_pos, "agent_pos", (steps + 1,), np.float32)
        for name in ("reward", "terminated", "truncated"):
            _expect(getattr(self, name), name, (steps,), None)
        optional = {
            "is_success": steps, "environment_state": steps + 1, "sim_state": steps + 1,
            "idm_action": steps, "critic_reward": steps,
        }
        for name, length in optional.items():
            value = getattr(self, name)
            if value is not None:
                _expect(value, name, (length,), None)
        for name, term in self.reward_terms.items():
            _expect(term, f"reward_terms[{name!r}]", (steps,), None)
        if self.subtask is not None and len(self.subtask) != steps:
            raise ValueError(f"Rollout.subtask must hold {steps} strings, got {len(self.subtask)}")
        if self.source not in SOURCES:
            raise ValueError(f"Rollout.source must be one of {SOURCES}, got {self.source!r}")

    def slice(self, start: int, stop: int) -> "Rollout":
        """The steps start..stop-1 with their observations start..stop, as a Rollout of its own (a Segment)."""
        if not 0 <= start < stop <= self.num_steps:
            raise ValueError(f"slice [{start}, {stop}) is outside the rollout's {self.num_steps} steps")
        obs_fields = {"pixels", "agent_pos", "environment_state", "sim_state"}
        changes: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[start : stop + 1] if f.name in obs_fields else value[start:stop]
        changes["reward_terms"] = {k: v[start:stop] for k, v in self.reward_terms.items()}
        if self.subtask is not None:
            changes["subtask"] = self.subtask[start:stop]
        changes["physics"] = {}  # figures of the whole rollout do not describe a slice
        return dataclasses.replace(self, **changes)


def _expect(value: np.ndarray, name: str, leading: tuple[int, ...], dtype: type | None) -> None:
    if not isinstance(value, np.ndarray):
        raise ValueError(f"Rollout.{name} must be a numpy array, got {type(value).__name__}")
    if value.shape[: len(leading)] != leading:
        raise ValueError(f"Rollout.{name} must start with shape {leading}, got {value.shape}")
    if dtype is not None and value.dtype != dtype:
        raise ValueError(f"Rollout.{name} must be {np.dtype(dtype).name}, got {value.dtype}")

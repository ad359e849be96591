"""The phase machine every scripted expert shares: phases with targets read from privileged simulator state,
plus the noise and deliberate failures that make its demonstrations varied."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from wow_gym.envs.experts.control import OPEN, UP, down_orientation, gripper_yaw, pose_action

FAILURE_KINDS = ("miss_grasp", "release_early", "stop_halfway")  # the default choice of a deliberate failure
# A near miss closes a little above the object, or 2.5-4.5 cm beside it, so that a finger lands on it or
# passes just beside it, then carries on as if it held it: the failure a learned policy makes (and an
# imagination or a critic must not call a lift). Chosen only when noise.failure_kinds names it.
NEAR_MISS = "near_miss"
ALL_FAILURE_KINDS = (*FAILURE_KINDS, NEAR_MISS)
NEAR_MISS_HIGH = (0.02, 0.05)  # metres above the grasp point (the fingertips reach 9 mm below it)
NEAR_MISS_SIDE = (0.025, 0.045)  # metres beside it
MAX_REGRASPS = 2  # how often an expert that dropped its object goes back for it
GRIPPER_STEPS = 10  # the Panda gripper needs about 10 steps to close from fully open, or to open
RELEASE_LIFT = 0.10  # metres a deliberate early release backs away upward


@dataclass(frozen=True)
class ExpertNoiseConfig:
    """How far a scripted expert strays from its clean demonstration."""

    action_std: float = 0.0  # Gaussian noise added to every action (then clipped to [-1, 1])
    pause_prob: float = 0.0  # chance per step to start a pause (zero motion, gripper held) ...
    pause_steps: int = 5  # ... lasting this many steps
    target_jitter: float = 0.0  # metres: std of a per-episode perturbation of each phase's target position
    failure_prob: float = 0.0  # chance per episode of a deliberate failure, of a kind chosen at random ...
    failure_kinds: tuple[str, ...] = FAILURE_KINDS  # ... among these (ALL_FAILURE_KINDS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failure_kinds", tuple(self.failure_kinds))  # a list from a config is fine
        unknown = [k for k in self.failure_kinds if k not in ALL_FAILURE_KINDS]
        if unknown or not self.failure_kinds:
            raise ValueError("ExpertNoiseConfig.failure_kinds must be a non-empty subset of "
                             f"{list(ALL_FAILURE_KINDS)}, got {list(self.failure_kinds)}")
        for name in ("action_std", "target_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"ExpertNoiseConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("pause_prob", "failure_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ExpertNoiseConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.pause_steps < 1:
            raise ValueError(f"ExpertNoiseConfig.pause_steps must be >= 1, got {self.pause_steps}")


@dataclass(frozen=True)
class Phase:
    """One step of a script: drive the gripper to a target, then move on."""

    subtask: str  # the sub-instruction shown for every step of this phase
    target: Callable[[], np.ndarray]  # world position for the gripper site, read from the simulator
    gripper: float  # OPEN or CLOSE
    orientation: Callable[[], np.ndarray] | None = None  # gripper rotation matrix; None: point down, keep yaw
    tolerance: float = 0.01  # metres: the phase is done once the gripper is this close ...
    min_steps: int = 1  # ... and has spent at least this many steps in it ...
    max_steps: int = 50  # ... or has spent this many
    fixed_target: bool = False  # read the target once on entering the phase (for motions relative to it)
    approach: bool = False  # a deliberate missed grasp offsets this phase's target
    holding: bool = False  # the object should be in hand; an early release opens the gripper here
    essential: bool = True  # a deliberate stop may happen here (False once the task is already done)
    done: Callable[[], bool] | None = None  # replaces "close to the target" as the end test when given


class ScriptedExpert(ABC):
    """A phase-based expert with privileged access to a robosuite task's simulator state."""

    task: str = ""

    def __init__(
        self, noise: ExpertNoiseConfig | None = None, rng: np.random.Generator | None = None
    ) -> None:
        self.noise = noise or ExpertNoiseConfig()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.robosuite: Any = None
        self.failure: str | None = None

    @property
    def failing(self) -> bool:
        """Whether this episode was chosen as a deliberate failure."""
        return self.failure is not None

    # -- task hooks --------------------------------------------------------------------------------------

    @abstractmethod
    def build_phases(self) -> list[Phase]:
        """The task's script, built once the env is known."""

    def lost_object(self) -> bool:
        """Whether the object the script is holding has slipped away (it then goes back for it)."""
        return False

    def miss_offset(self) -> np.ndarray:
        """Where a deliberately missed grasp goes instead: a horizontal offset of 5-8 cm."""
        angle = self.rng.uniform(0, 2 * np.pi)
        return self.rng.uniform(0.05, 0.08) * np.array([np.cos(angle), np.sin(angle), 0.0])

    def near_miss_offset(self) -> np.ndarray:
        """Where a near miss goes instead: a little above the grasp point, or just beside it (NEAR_MISS)."""
        if self.rng.random() < 0.5:
            return np.array([0.0, 0.0, self.rng.uniform(*NEAR_MISS_HIGH)])
        angle = self.rng.uniform(0, 2 * np.pi)
        return self.rng.uniform(*NEAR_MISS_SIDE) * np.array([np.cos(angle), np.sin(angle), 0.0])

    # -- simulator state ---------------------------------------------------------------------------------

    @property
    def eef_pos(self) -> np.ndarray:
        """World position of the gripper site (between the fingertips)."""
        return self.data.site_xpos[self._eef_site].copy()

    @property
    def eef_mat(self) -> np.ndarray:
        """World rotation matrix of the gripper site; its x axis is the fingers' closing direction."""
        return self.data.site_xmat[self._eef_site].reshape(3, 3).copy()

    def body_pos(self, body_id: int) -> np.ndarray:
        return self.data.xpos[body_id].copy()

    def body_mat(self, body_id: int) -> np.ndarray:
        return self.data.xmat[body_id].reshape(3, 3).copy()

    # -- episode -----------------------------------------------------------------------------------------

    def reset(self, env: gym.Env) -> None:
        """Start an episode on env (wrapped or not), just after env.reset()."""
        unwrapped = env.unwrapped
        task = getattr(unwrapped, "task", None)
        if task != self.task:
            raise ValueError(f"the {self.task} expert cannot act in env {env} (task {task!r}); make the "
                             f"expert with make_expert({task!r}), or a WoW/{self.task}-v0 env")
        self.robosuite = unwrapped.robosuite
        self.model: mujoco.MjModel = unwrapped.model
        self.data: mujoco.MjData = unwrapped.data
        self._eef_site = self.robosuite.robots[0].eef_site_id["right"]
        self.phases = self.build_phases()
        self.failure = None
        if self.rng.random() < self.noise.failure_prob:
            self.failure = str(self.rng.choice(self.noise.failure_kinds))
        self._jitter = self.rng.normal(0.0, self.noise.target_jitter, (len(self.phases), 3))
        self._miss = {"miss_grasp": self.miss_offset, NEAR_MISS: self.near_miss_offset}.get(
            self.failure, lambda: np.zeros(3))()
        essential = [i for i, p in enumerate(self.phases) if p.essential and i > 0]
        self._stop_at = int(self.rng.choice(essential)) if self.failure == "stop_halfway" else None
        self._regrasps = 0
        self._pause_left = 0
        self._last_gripper = OPEN
        self._release_from: np.ndarray | None = None
        self._enter(0)

    def _enter(self, index: int) -> None:
        self.index = min(index, len(self.phases) - 1)
        self._steps_in_phase = 0
        self._orientation = down_orientation(gripper_yaw(self.eef_mat))
        self._target = self.phases[self.index].target() if self.phases[self.index].fixed_target else None

    def act(self, observation: Any = None) -> tuple[np.ndarray, str]:
        """The next action (float32, shape (7,), in [-1, 1]) and the sub-instruction it serves."""
        if self.robosuite is None:
            raise RuntimeError("call expert.reset(env) after env.reset() before asking for actions")
        self._advance()
        phase = self.phases[self.index]
        if self._pause_left > 0 or self._stopped():
            self._pause_left = max(self._pause_left - 1, 0)
            action = np.zeros(7, dtype=np.float32)
            action[6] = self._last_gripper
        else:
            action = self._release_action() if self._released() else self._phase_action(phase)
            self._steps_in_phase += 1
            if self.rng.random() < self.noise.pause_prob:
                self._pause_left = self.noise.pause_steps
        self._last_gripper = float(action[6])
        if self.noise.action_std > 0:
            action = action + self.rng.normal(0.0, self.noise.action_std, 7)
        return np.clip(action, -1.0, 1.0).astype(np.float32), phase.subtask

    def _stopped(self) -> bool:
        """A deliberate stop: frozen from the chosen phase on."""
        return self._stop_at is not None and self.index >= self._stop_at

    def _released(self) -> bool:
        """A deliberate early release: the object is let go as soon as it is held."""
        return self.failure == "release_early" and self.phases[self.index].holding

    def _release_action(self) -> np.ndarray:
        """Open the gripper where it is, then back away upward and stay there."""
        if self._release_from is None:
            self._release_from = self.eef_pos
        lift = RELEASE_LIFT if self._steps_in_phase >= GRIPPER_STEPS else 0.0
        target = self._release_from + lift * UP
        return pose_action(self.eef_pos, self.eef_mat, target, self._orientation, OPEN)

    def _phase_target(self, phase: Phase) -> np.ndarray:
        target = self._target if phase.fixed_target else phase.target()
        offset = self._jitter[self.index] + (self._miss if phase.approach else 0.0)
        return target + offset

    def _phase_action(self, phase: Phase) -> np.ndarray:
        orientation = phase.orientation() if phase.orientation is not None else self._orientation
        return pose_action(self.eef_pos, self.eef_mat, self._phase_target(phase), orientation, phase.gripper)

    def _advance(self) -> None:
        """Move to the next phase once this one is done; go back for a dropped object."""
        phase = self.phases[self.index]
        if phase.holding and not self.failing and self._regrasps < MAX_REGRASPS and self.lost_object():
            self._regrasps += 1
            self._enter(next(i for i, p in enumerate(self.phases) if p.approach))
            return
        frozen = self._pause_left > 0 or self._stopped() or self._released()
        if frozen or self.index == len(self.phases) - 1:
            return
        if phase.done is not None:
            finished = phase.done()
        else:
            finished = bool(np.linalg.norm(self._phase_target(phase) - self.eef_pos) < phase.tolerance)
        if self._steps_in_phase >= phase.max_steps or (self._steps_in_phase >= phase.min_steps and finished):
            self._enter(self.index + 1)

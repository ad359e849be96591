"""The safety layer between a policy and an arm: what every action passes through, and why a run stops.

Shield turns the policy's action into the one sent: clipped to [-1, 1], smoothed, kept inside the
workspace box, capped per step (position, rotation, speed); it stops on a non-finite action. Watchdog
stops the arm from its own thread when the control loop hangs (a camera, the policy or the network).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from wow_gym.policies.spec import RobotConfig

WORKSPACE_MODES = ("clip", "stop")


class StopReason(str, enum.Enum):
    """Why an episode ended; the value is what the step log and results.json say."""

    MAX_STEPS = "max_steps"
    SUCCESS = "success"
    ESTOP = "estop"
    WATCHDOG = "watchdog"
    BAD_OBSERVATION = "bad_observation"
    STALE_OBSERVATION = "stale_observation"
    NON_FINITE_ACTION = "non_finite_action"
    WORKSPACE = "workspace"
    DEADLINE = "deadline"
    ARM_ERROR = "arm_error"
    INTERRUPTED = "interrupted"


@dataclass
class ShieldConfig:
    """How actions are filtered and when a run stops (the arm's own limits live in RobotConfig)."""

    smoothing: float = 1.0  # weight of the new action in exponential smoothing of the arm dims (1.0: none)
    workspace: str = "clip"  # a target outside the workspace box: clip it onto the box, or stop
    max_observation_age: float = 0.25  # seconds from an observation's timestamp to its action being sent
    watchdog_timeout: float = 0.5  # seconds without a finished control step before the arm is stopped

    def __post_init__(self) -> None:
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"shield.smoothing must be in (0, 1] (1.0: no smoothing), got {self.smoothing}")
        if self.workspace not in WORKSPACE_MODES:
            raise ValueError(f"shield.workspace must be one of {WORKSPACE_MODES}, got {self.workspace!r}")
        for name in ("max_observation_age", "watchdog_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"shield.{name} must be positive seconds, got {getattr(self, name)}")


@dataclass
class ShieldedAction:
    """What the shield made of a policy action: the action to send (None: stop) and what it changed."""

    action: np.ndarray | None
    stop: StopReason | None = None
    interventions: list[str] = field(default_factory=list)  # clipped, smoothed, workspace, position_cap, ...


class Shield:
    """Filters each action for one arm; stateful (smoothing), so reset() it at every episode start."""

    def __init__(self, config: ShieldConfig, robot: RobotConfig) -> None:
        self.config = config
        self.robot = robot
        self._low = np.asarray(robot.workspace_low)
        self._high = np.asarray(robot.workspace_high)
        # A per-step position cap from both the step limit and the speed limit, in metres.
        self._position_cap = min(robot.max_position_delta, robot.max_velocity * robot.period)
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None

    def filter(self, action: np.ndarray, agent_pos: np.ndarray) -> ShieldedAction:
        """The safe version of a policy action, given the end effector's position (agent_pos[:3])."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,):
            raise ValueError(f"a policy action must have shape (7,) (OSC_POSE deltas and gripper), got "
                             f"{action.shape}")
        if not np.all(np.isfinite(action)):
            return ShieldedAction(None, StopReason.NON_FINITE_ACTION, ["rejected"])
        done: list[str] = []
        safe = self._mark(done, "clipped", action, np.clip(action, -1.0, 1.0))
        if self.config.smoothing < 1.0 and self._previous is not None:
            smoothed = safe.copy()  # the gripper is an open/close command: smoothing would only delay it
            weight = self.config.smoothing
            smoothed[:6] = weight * safe[:6] + (1.0 - weight) * self._previous[:6]
            safe = self._mark(done, "smoothed", safe, smoothed)
        eef = np.asarray(agent_pos, dtype=np.float64)[:3]
        target = eef + safe[:3] * self.robot.position_scale
        inside = np.clip(target, self._low, self._high)
        if not np.allclose(inside, target, rtol=0.0, atol=1e-9):
            if self.config.workspace == "stop":
                return ShieldedAction(None, StopReason.WORKSPACE, [*done, "workspace"])
            moved = safe.copy()
            moved[:3] = (inside - eef) / self.robot.position_scale
            safe = self._mark(done, "workspace", safe, moved)
        safe = self._cap(done, "position_cap", safe, slice(0, 3),
                         self._position_cap / self.robot.position_scale)
        safe = self._cap(done, "rotation_cap", safe, slice(3, 6),
                         self.robot.max_rotation_delta / self.robot.rotation_scale)
        safe = np.clip(safe, -1.0, 1.0)
        self._previous = safe
        return ShieldedAction(safe.astype(np.float32), None, done)

    @staticmethod
    def _mark(done: list[str], name: str, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        if not np.array_equal(before, after):
            done.append(name)
        return after

    def _cap(self, done: list[str], name: str, action: np.ndarray, dims: slice, limit: float) -> np.ndarray:
        """Scale action[dims] down to norm `limit` (action units), keeping its direction."""
        norm = float(np.linalg.norm(action[dims]))
        if norm <= limit:
            return action
        capped = action.copy()
        capped[dims] *= limit / norm
        done.append(name)
        return capped


class Watchdog:
    """Calls on_timeout once, from its own thread, when kick() has not come for `timeout` seconds."""

    def __init__(self, timeout: float, on_timeout: Callable[[], None]) -> None:
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.fired = threading.Event()
        self._kicked = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._watch, name="wow-gym-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        self._kicked.set()
        self._thread.join()

    def kick(self) -> None:
        self._kicked.set()

    def _watch(self) -> None:
        while not self._closed:
            if not self._kicked.wait(self.timeout):
                self.fired.set()
                self.on_timeout()
                return
            self._kicked.clear()

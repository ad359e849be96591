"""Exploration policies for data collection: uniform random and smooth random walk.

They speak the scripted experts' interface (reset(env), act(observation) -> (action, subtask)) so the
collector treats every data source alike. Uniform random OSC actions barely move the arm; the random walk
keeps a slowly drifting velocity so the data carries visible, action-driven motion.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np


class ScriptedPolicy(Protocol):
    """What the collector runs: an expert or an exploration policy."""

    def reset(self, env: gym.Env) -> None: ...

    def act(self, observation: dict[str, np.ndarray]) -> tuple[np.ndarray, str]: ...


class RandomPolicy:
    """Uniform random actions in [-1, 1]^7."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def reset(self, env: gym.Env) -> None:
        """Nothing to reset."""

    def act(self, observation: dict[str, Any]) -> tuple[np.ndarray, str]:
        """A fresh uniform action."""
        return self.rng.uniform(-1.0, 1.0, 7).astype(np.float32), "move randomly"


class RandomWalkPolicy:
    """An Ornstein-Uhlenbeck walk in action space: smooth, persistent arm motion with gripper toggles."""

    def __init__(self, rng: np.random.Generator, theta: float = 0.15, sigma: float = 0.3,
                 gripper_switch_prob: float = 0.05) -> None:
        self.rng = rng
        self.theta, self.sigma, self.gripper_switch_prob = theta, sigma, gripper_switch_prob
        self._action = np.zeros(7)

    def reset(self, env: gym.Env) -> None:
        """Start from a random velocity and a random gripper command."""
        self._action = self.rng.uniform(-0.5, 0.5, 7)
        self._action[6] = self.rng.choice([-1.0, 1.0])

    def act(self, observation: dict[str, Any]) -> tuple[np.ndarray, str]:
        """Drift the previous action toward zero with Gaussian kicks; flip the gripper now and then."""
        arm = self._action[:6]
        arm += -self.theta * arm + self.sigma * self.rng.standard_normal(6)
        self._action[:6] = np.clip(arm, -1.0, 1.0)
        if self.rng.random() < self.gripper_switch_prob:
            self._action[6] = -self._action[6]
        return self._action.astype(np.float32), "move randomly"

    def hold_gripper(self, command: float) -> None:
        """Keep the gripper at `command` (its sign: open or close) until the walk flips it."""
        self._action[6] = np.sign(command) or 1.0


class ExpertThenWalk:
    """The scripted expert up to a step drawn per episode, then the random walk from wherever the expert left
    the arm, with the expert's last gripper command: raised, tilted and wandering grippers near the object,
    holding it or having left it on the table, that neither the expert nor a walk from the start pose shows
    (hard negatives for a success critic)."""

    def __init__(self, expert: ScriptedPolicy, rng: np.random.Generator, switch_steps: tuple[int, int] = (15, 70)
                 ) -> None:
        if not 0 <= switch_steps[0] <= switch_steps[1]:
            raise ValueError(f"switch_steps must be (low, high) with 0 <= low <= high, got {switch_steps}")
        self.expert, self.rng, self.switch_steps = expert, rng, switch_steps
        self.walk = RandomWalkPolicy(rng)

    def reset(self, env: gym.Env) -> None:
        """Reset both; draw the step at which the walk takes over."""
        self.expert.reset(env)
        self.walk.reset(env)
        self.switch = int(self.rng.integers(self.switch_steps[0], self.switch_steps[1] + 1))
        self.steps = 0

    def act(self, observation: dict[str, Any]) -> tuple[np.ndarray, str]:
        """The expert's action before the switch, the walk's after it."""
        self.steps += 1
        if self.steps <= self.switch:
            action, subtask = self.expert.act(observation)
            self.walk.hold_gripper(action[6])  # the walk starts with the gripper as the expert left it
            return action, subtask
        return self.walk.act(observation)

"""Collect episodes with a trained policy (the task's shipped policy or an SB3 zip), with action noise.

The scripted experts' datasets show what the experts do. A world model that must imagine a learned policy's
episodes (RL in imagination) also needs what that policy does under its own action statistics: its
approaches, misses and regrasps (DAgger-style data), and the states it visits, for imagined starts
(`train-policy imagined_starts=`). envs/ cannot load policies (the layering), so this module hands
envs.collection.collect a factory; `wow-gym collect policy=shipped|sb3` runs it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from wow_gym.envs.collection import TRAINED_POLICIES, CollectConfig, CollectResult, make_env
from wow_gym.envs.collection import collect as collect_episodes
from wow_gym.policies.evaluation import Policy, PolicyEntry, make_policy
from wow_gym.registry import task_info
from wow_gym.rollout import ACTION_DIM


class TrainedPolicyFactory:
    """Makes the collector's policy for each episode. The trained policy is loaded here (so a bad path fails
    before any episode) and once in each worker process: pickling leaves the loaded model behind."""

    def __init__(self, config: CollectConfig) -> None:
        self.entry = PolicyEntry(name=config.policy, kind=config.policy, path=config.policy_path)
        self.task, self.action_std = config.task, config.noise.action_std
        self._policy: Policy | None = None
        env = make_env(config)
        try:
            self.load(env.observation_space)
        finally:
            env.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_policy": None}

    def load(self, observation_space: gym.spaces.Dict) -> Policy:
        if self._policy is None:
            self._policy = make_policy(self.entry, observation_space, self.task)
        return self._policy

    def __call__(self, config: CollectConfig, rng: np.random.Generator) -> TrainedPolicy:
        return TrainedPolicy(self, rng)


class TrainedPolicy:
    """The collector's interface (reset(env), act(observation) -> (action, subtask)) over a trained policy:
    its deterministic action plus seeded Gaussian noise of std action_std, clipped to [-1, 1]."""

    def __init__(self, factory: TrainedPolicyFactory, rng: np.random.Generator) -> None:
        self.factory, self.rng = factory, rng
        self.policy: Policy | None = None
        self.instruction = task_info(factory.task).instruction

    def reset(self, env: gym.Env) -> None:
        self.policy = self.factory.load(env.observation_space)
        self.policy.reset(1, int(self.rng.integers(2**31 - 1)))

    def act(self, observation: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
        if self.policy is None:
            raise RuntimeError("reset(env) before act()")
        action = self.policy.act({key: np.asarray(value)[None] for key, value in observation.items()})[0]
        if self.factory.action_std > 0:
            action = np.clip(action + self.rng.normal(0.0, self.factory.action_std, ACTION_DIM), -1.0, 1.0)
        return action.astype(np.float32), self.instruction


def policy_factory(config: CollectConfig) -> TrainedPolicyFactory | None:
    """The factory of a trained policy (policy=shipped | sb3), loaded and checked; None for scripted ones."""
    return TrainedPolicyFactory(config) if config.policy in TRAINED_POLICIES else None


def collect(config: CollectConfig) -> CollectResult:
    """envs.collection.collect for every kind of policy, trained ones included."""
    return collect_episodes(config, policy_factory=policy_factory(config))

"""Measure a scripted expert: success over seeded episodes that run the full TimeLimit horizon."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from wow_gym.envs.experts.catalog import make_expert
from wow_gym.envs.experts.scripted import ExpertNoiseConfig
from wow_gym.registry import task_info


@dataclass(frozen=True)
class ExpertEvaluation:
    """Per-seed outcomes of a scripted expert on one task."""

    task: str
    noise: ExpertNoiseConfig
    seeds: tuple[int, ...]
    successes: tuple[bool, ...]  # is_success at any step of the episode
    episode_lengths: tuple[int, ...]  # steps run (the TimeLimit horizon)
    success_steps: tuple[int | None, ...]  # the first step (1-based) with is_success, None if never
    failures: tuple[str | None, ...]  # the deliberate failure the expert chose per episode, None if none

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0

    @property
    def mean_episode_length(self) -> float:
        return float(np.mean(self.episode_lengths)) if self.episode_lengths else 0.0

    @property
    def successes_by_seed(self) -> dict[int, bool]:
        return dict(zip(self.seeds, self.successes))


def evaluate_expert(
    task: str, seeds: Sequence[int], noise: ExpertNoiseConfig | None = None, progress: bool = True
) -> ExpertEvaluation:
    """Run the task's expert once per seed (env and expert seeded alike), without rendering."""
    name = task_info(task).name
    noise = noise or ExpertNoiseConfig()
    env = gym.make(task_info(task).env_id, use_camera=False)
    rows = []
    try:
        for seed in tqdm(seeds, desc=f"{name} expert", disable=not progress):
            rows.append(_run_episode(env, name, int(seed), noise))
    finally:
        env.close()
    successes, lengths, success_steps, failures = zip(*rows) if rows else ((), (), (), ())
    return ExpertEvaluation(name, noise, tuple(int(s) for s in seeds), successes, lengths, success_steps,
                            failures)


def _run_episode(
    env: gym.Env, task: str, seed: int, noise: ExpertNoiseConfig
) -> tuple[bool, int, int | None, str | None]:
    """One episode to truncation: (success at any step, steps, first success step, deliberate failure)."""
    expert = make_expert(task, noise, np.random.default_rng(seed))
    observation, _ = env.reset(seed=seed)
    expert.reset(env)
    first_success, steps, done = None, 0, False
    while not done:
        action, _ = expert.act(observation)
        observation, _, terminated, truncated, info = env.step(action)
        steps += 1
        if info["is_success"] and first_success is None:
            first_success = steps
        done = terminated or truncated
    return first_success is not None, steps, first_success, expert.failure

"""A policy in the simulator from fixed start states: episodes stepped in lockstep so the policy acts on one
batch, optionally under domain randomization (the training ranges or ranges never seen in training)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from wow_gym.envs.wrappers import DomainRandomizationConfig, RandomizeDomain
from wow_gym.registry import task_info

Actor = Callable[[dict[str, np.ndarray]], np.ndarray]  # batched observation -> actions [n, 7]

# Randomization never seen in training: every range lies beyond DomainRandomizationConfig's defaults (the
# training ranges), on both sides where the parameter has two (light 0.6-1.4 -> 0.3-1.8, friction and mass
# 0.8-1.2 -> 0.5-1.5) and with about twice the camera, light-position and colour noise.
UNSEEN_RANDOMIZATION = DomainRandomizationConfig(
    camera_position_std=0.04, camera_angle_std=0.06, light_scale=(0.3, 1.8), light_position_std=0.4,
    color_std=0.15, friction_scale=(0.5, 1.5), mass_scale=(0.5, 1.5), damping_scale=(0.5, 1.5))
RANDOMIZATIONS: dict[str, DomainRandomizationConfig | None] = {
    "none": None, "train": DomainRandomizationConfig(), "unseen": UNSEEN_RANDOMIZATION}


@dataclass
class SimEvalConfig:
    """Which start states (seed + i for episode i), how many, how long, under which randomization."""

    every_steps: int = 2048  # while training: env steps between evaluations (0: only at start and end)
    episodes: int = 8
    seed: int = 950_000  # held out: the datasets use seeds below 950000
    max_steps: int | None = None  # None: the task's horizon
    randomize: str = "none"  # none | train | unseen
    terminate_on_success: bool = True
    parallel: int = 8  # simulators stepped in lockstep (each holds ~0.5 GB); more episodes run in waves


@dataclass
class EpisodeResult:
    """One simulated episode of a policy."""

    seed: int
    success: bool
    sim_return: float
    length: int
    frames: np.ndarray | None = field(default=None, repr=False)  # [T+1, H, W, 3] uint8 when kept


def make_sim(task: str, randomize: str = "none", **kwargs: Any) -> gym.Env:
    """The task's sim env, wrapped in RandomizeDomain for randomize=train|unseen."""
    if randomize not in RANDOMIZATIONS:
        raise ValueError(f"randomize must be one of {sorted(RANDOMIZATIONS)}, got {randomize!r}")
    env = gym.make(task_info(task).env_id, **kwargs)
    scene = RANDOMIZATIONS[randomize]
    return env if scene is None else RandomizeDomain(env, scene)


def run_sim_episodes(actor: Actor, task: str, config: SimEvalConfig, keep_frames: bool = False,
                     envs: list[gym.Env] | None = None, progress: bool = True) -> list[EpisodeResult]:
    """`config.episodes` episodes, episode i from seed config.seed + i, the actor acting on all running
    episodes as one batch, `config.parallel` simulators at a time. Pass `envs` (made by make_sim) to
    reuse simulators across calls."""
    if config.episodes < 1 or config.parallel < 1:
        raise ValueError(f"episodes and parallel must be >= 1, got {config.episodes} and {config.parallel}")
    own = envs is None
    envs = envs or [make_sim(task, config.randomize) for _ in range(min(config.parallel, config.episodes))]
    seeds = [config.seed + i for i in range(config.episodes)]
    results: list[EpisodeResult] = []
    try:
        with tqdm(total=config.episodes, desc="sim twin", unit="episode", leave=False,
                  disable=not progress) as bar:
            for first in range(0, len(seeds), len(envs)):
                wave = seeds[first:first + len(envs)]
                results += _wave(actor, envs[:len(wave)], wave, config.max_steps or task_info(task).max_episode_steps,
                                 config.terminate_on_success, keep_frames)
                bar.update(len(wave))
    finally:
        if own:
            for env in envs:
                env.close()
    return results


def _wave(actor: Actor, envs: list[gym.Env], seeds: list[int], horizon: int, stop_on_success: bool,
          keep_frames: bool) -> list[EpisodeResult]:
    """One episode per env, stepped in lockstep."""
    observations = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds)]
    frames = [[o["pixels"]] for o in observations] if keep_frames else None
    success = np.zeros(len(envs), bool)
    returns, lengths = np.zeros(len(envs)), np.zeros(len(envs), int)
    running = np.ones(len(envs), bool)
    for _ in range(horizon):
        rows = np.flatnonzero(running)
        if not len(rows):
            break
        batch = {key: np.stack([observations[i][key] for i in rows]) for key in ("pixels", "agent_pos")}
        actions = np.asarray(actor(batch), dtype=np.float32)
        for action, i in zip(actions, rows):
            observations[i], reward, terminated, truncated, step_info = envs[i].step(action)
            returns[i] += reward
            lengths[i] += 1
            success[i] |= bool(step_info.get("is_success", False))
            if frames is not None:
                frames[i].append(observations[i]["pixels"])
            if terminated or truncated or (stop_on_success and success[i]):
                running[i] = False
    return [EpisodeResult(seed, bool(s), float(r), int(n), np.stack(frames[i]) if frames else None)
            for i, (seed, s, r, n) in enumerate(zip(seeds, success, returns, lengths))]


def sb3_actor(model: Any) -> Actor:
    """An SB3 model's deterministic action on the observation keys its policy reads."""
    # an asymmetric critic's policy (policies/features.py) names the keys its actor reads
    keys = list(getattr(model.policy, "actor_keys", model.observation_space.spaces))

    def act(observation: dict[str, np.ndarray]) -> np.ndarray:
        action, _ = model.predict({key: observation[key] for key in keys}, deterministic=True)
        return action

    return act

"""Random Rollouts with every field filled, for tests of anything that stores or consumes Rollouts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wow_gym.data.dataset_writer import DatasetWriter
from wow_gym.rollout import ACTION_DIM, Rollout


def random_rollout(
    seed: int = 0,
    steps: int = 12,
    image_size: tuple[int, int] = (32, 48),
    full: bool = True,
    instruction: str = "lift the red cube",
) -> Rollout:
    """A Rollout of random data; full=False leaves every optional field empty."""
    rng = np.random.default_rng(seed)
    frames = steps + 1
    rollout = Rollout(
        pixels=rng.integers(0, 256, (frames, *image_size, 3), dtype=np.uint8),
        agent_pos=rng.standard_normal((frames, 9)).astype(np.float32),
        action=rng.uniform(-1, 1, (steps, ACTION_DIM)).astype(np.float32),
        reward=rng.standard_normal(steps).astype(np.float32),
        terminated=rng.random(steps) < 0.3,
        truncated=rng.random(steps) < 0.3,
        source="imagined" if full else "sim",
        env_id="WoW/Lift-v0",
        task="Lift",
        instruction=instruction,
        seed=seed,
        pair_id=f"pair-{seed}" if full else "",
    )
    if full:
        rollout.is_success = rng.random(steps) < 0.5
        rollout.environment_state = rng.standard_normal((frames, 10)).astype(np.float32)
        rollout.sim_state = rng.standard_normal((frames, 250))
        rollout.subtask = [f"subtask {i % 3}" for i in range(steps)]
        rollout.reward_terms = {
            name: rng.standard_normal(steps).astype(np.float32) for name in ("reach", "sim")
        }
        rollout.idm_action = rng.uniform(-1, 1, (steps, ACTION_DIM)).astype(np.float32)
        rollout.critic_reward = rng.standard_normal(steps).astype(np.float32)
        rollout.validate()
    return rollout


def write_random_dataset(root: str | Path, steps: Sequence[int], image_size: tuple[int, int] = (32, 48)) -> Path:
    """A dataset at `root` of random episodes of these step counts, episode i instructed "task i"."""
    writer = DatasetWriter(root)
    for seed, count in enumerate(steps):
        writer.write(random_rollout(seed=seed, steps=count, image_size=image_size, instruction=f"task {seed}"))
    return Path(root)

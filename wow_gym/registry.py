"""The Gymnasium env ids of the wow_gym tasks (the tasks themselves live in wow_gym/tasks)."""

from __future__ import annotations

import gymnasium as gym

from wow_gym.tasks import IMAGINED_VERSION, SIM_VERSION, TASKS, task_info

__all__ = ["CONTROL_FREQ", "IMAGINED_VERSION", "MAX_POSITION_STEP", "MAX_ROTATION_STEP", "SIM_VERSION",
           "TASKS", "imagined_env_ids", "register_envs",
           "sim_env_ids", "task_info"]

CONTROL_FREQ = 20  # Hz; one dataset frame per control step
MAX_POSITION_STEP = 0.05  # metres per action at |a| = 1 (the OSC_POSE controller's output_max)
MAX_ROTATION_STEP = 0.5  # radians per action at |a| = 1


def sim_env_ids() -> list[str]:
    """Every registered simulator env id."""
    return [t.env_id for t in TASKS.values()]


def imagined_env_ids() -> list[str]:
    """Every registered learned (world-model) env id."""
    return [t.imagined_env_id for t in TASKS.values()]


def register_envs() -> None:
    """Register WoW/<Task>-v0 and WoW/<Task>-Imagined-v0 for every task; safe to call twice."""
    for info in TASKS.values():
        if info.env_id not in gym.registry:
            gym.register(
                id=info.env_id,
                entry_point="wow_gym.envs.robosuite_env:RobosuiteEnv",
                max_episode_steps=info.max_episode_steps,
                kwargs={"task": info.name, "instruction": info.instruction},
            )
        if info.imagined_env_id not in gym.registry:
            gym.register(
                id=info.imagined_env_id,
                entry_point="wow_gym.envs.imagined_env:ImaginedEnv",
                vector_entry_point="wow_gym.envs.imagined_env:ImaginedVectorEnv",
                max_episode_steps=info.max_episode_steps,
                kwargs={"task": info.name},
            )

"""The registry of wow_gym tasks and their Gymnasium env ids."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

SIM_VERSION = 0
IMAGINED_VERSION = 0
CONTROL_FREQ = 20  # Hz; one dataset frame per control step


@dataclass(frozen=True)
class TaskInfo:
    """A task: its robosuite environment, instruction, camera and horizon."""

    name: str
    robosuite_env: str
    instruction: str
    camera: str = "agentview"
    max_episode_steps: int = 200

    @property
    def env_id(self) -> str:
        return f"WoW/{self.name}-v{SIM_VERSION}"

    @property
    def imagined_env_id(self) -> str:
        return f"WoW/{self.name}-Imagined-v{IMAGINED_VERSION}"


TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("Lift", "Lift", "lift the red cube", max_episode_steps=100),
        TaskInfo("Stack", "Stack", "stack the red cube on the green cube", max_episode_steps=200),
        TaskInfo("Door", "Door", "open the door", max_episode_steps=200),
        TaskInfo("PickPlaceCan", "PickPlaceCan", "put the can in the bin", max_episode_steps=250),
    )
}


def task_info(name: str) -> TaskInfo:
    """The TaskInfo for a task name, case-insensitive ('lift', 'Lift', 'pickplacecan' ...)."""
    by_lower = {k.lower(): v for k, v in TASKS.items()}
    try:
        return by_lower[name.lower()]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}") from None


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

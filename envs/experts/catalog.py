"""The scripted expert for each wow_gym task."""

from __future__ import annotations

import numpy as np

from wow_gym.envs.experts.door import DoorExpert
from wow_gym.envs.experts.pick_place import LiftExpert, PickPlaceCanExpert, StackExpert
from wow_gym.envs.experts.scripted import ExpertNoiseConfig, ScriptedExpert

EXPERTS: dict[str, type[ScriptedExpert]] = {
    expert.task: expert for expert in (LiftExpert, StackExpert, DoorExpert, PickPlaceCanExpert)
}


def make_expert(
    task: str, noise: ExpertNoiseConfig | None = None, rng: np.random.Generator | None = None
) -> ScriptedExpert:
    """The scripted expert for a task name (case-insensitive); rng None means np.random.default_rng(0)."""
    by_lower = {name.lower(): expert for name, expert in EXPERTS.items()}
    if task.lower() not in by_lower:
        raise ValueError(f"no scripted expert for task {task!r}; supported tasks: {sorted(EXPERTS)}")
    return by_lower[task.lower()](noise, rng)

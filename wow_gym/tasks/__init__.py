"""Task knowledge in one place: one module per task, each defining a `Task`; `TASKS` holds them by name.

Adding a task means one module here (its `TASK`, listed below) plus its scripted expert in
envs/experts; every generic module reads the task through `task_info`.
"""

from __future__ import annotations

from wow_gym.tasks import door, lift, pick_place, stack
from wow_gym.tasks.base import (
    IMAGINED_VERSION,
    SIM_VERSION,
    CriticStage,
    StageLabeller,
    Task,
    stages_by_distance,
)

# In this order: the critic's negative instructions follow it, and with them its seeded training batches.
TASKS: dict[str, Task] = {t.name: t for t in (lift.TASK, stack.TASK, door.TASK, pick_place.TASK)}


def task_info(name: str) -> Task:
    """The Task for a task name, case-insensitive ('lift', 'Lift', 'pickplacecan' ...)."""
    by_lower = {k.lower(): v for k, v in TASKS.items()}
    try:
        return by_lower[name.lower()]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}") from None


def register_task(task: Task) -> Task:
    """Add a task (e.g. one defined outside this package); wow_gym.registry.register_envs gives it env ids."""
    if task.name.lower() in {k.lower() for k in TASKS}:
        raise ValueError(f"task {task.name!r} is already registered; pick another name or unregister_task it")
    TASKS[task.name] = task
    return task


def unregister_task(name: str) -> Task:
    """Remove a task added by register_task (its Gymnasium ids stay until removed from gym.registry)."""
    return TASKS.pop(task_info(name).name)


__all__ = ["IMAGINED_VERSION", "SIM_VERSION", "TASKS", "CriticStage", "StageLabeller", "Task",
           "register_task", "stages_by_distance", "task_info", "unregister_task"]

"""One world model for several tasks: a shared autoencoder, DiT and pose dynamics, per-task heads.

WoW conditions one model on the task's instruction across tasks. Here the parts that draw and move are
shared (the autoencoder, the DiT and its one-step copy, the arm's pose dynamics) and trained on every task's
episodes; each task keeps what is its own: its camera (the DiT's gripper map), its data statistics, and its
heads (the latent probe of its environment_state, its reward and success). On disk it is one checkpoint:
model.safetensors holds each shared tensor once and each task's heads under `tasks.<Task>.`; config.json
holds each task's WorldModelConfig and statistics. Loading it for a task (WorldModel.load(path, task=...))
gives an ordinary single-task WorldModel, so every env, evaluation and tool takes it as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from wow_gym.registry import task_info
from wow_gym.world_models.checkpoint import CONFIG_FILE, CheckpointError, save_checkpoint

SHARED_MODULES = ("autoencoder", "dit", "one_step_dit", "pose")  # one of each for every task
SHARED_PARTS = tuple(f"{name}." for name in SHARED_MODULES)  # their state_dict prefixes, held once
TASK_PREFIX = "tasks.{task}."


def is_shared(name: str) -> bool:
    return name.startswith(SHARED_PARTS)


def save_shared(models: dict[str, Any], directory: str | Path, format_version: int,
                dtype: torch.dtype = torch.float16) -> Path:
    """Write the task models (WorldModels sharing their autoencoder, DiT and pose dynamics modules) as one
    checkpoint. ValueError when they do not share those modules: the file would keep only one task's."""
    if not models:
        raise ValueError("save_shared needs at least one task model")
    first = next(iter(models.values()))
    for name, model in models.items():
        for part in SHARED_MODULES:
            if getattr(model, part) is not getattr(first, part):
                raise ValueError(f"the {name} model's {part} is not the shared one: a shared checkpoint "
                                 "holds one of each; build the task models on the same modules (as "
                                 "SharedTrainer does)")
    tensors = {k: v for k, v in first.state_dict().items() if is_shared(k)}
    parts = sorted({k.split(".")[0] for k in tensors})
    meta: dict[str, Any] = {"format_version": format_version, "shared": parts, "tasks": {}}
    for name, model in models.items():
        task = model.config.task
        prefix = TASK_PREFIX.format(task=task)
        tensors |= {prefix + k: v for k, v in model.state_dict().items() if not is_shared(k)}
        meta["tasks"][task] = {"config": model.config.to_dict(), "stats": model.stats}
    return save_checkpoint(directory, tensors, meta, dtype)


def select_task(directory: str | Path, meta: dict[str, Any], task: str | None,
                tensors: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A shared checkpoint's section for `task` ({config, stats}) and the tensors of that task's model (the
    shared ones and its own heads, named as in a single-task checkpoint). CheckpointError naming the tasks it
    holds for a task it does not, or for task=None with more than one."""
    sections = meta.get("tasks")
    if not isinstance(sections, dict) or not sections:
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE} names no tasks; the shared checkpoint is "
                              "corrupt, retrain or restore it")
    if task is None:
        if len(sections) > 1:
            raise CheckpointError(f"{directory} is a world model shared by {sorted(sections)}: say "
                                  "which task to imagine (task=...)")
        name = next(iter(sections))
    else:
        name = task_info(task).name
        if name not in sections:
            raise CheckpointError(f"the shared world model {directory} holds {sorted(sections)}, not {name}; "
                                  f"train one with `wow-gym train-world-model task={name.lower()}` or pass "
                                  "its checkpoint")
    prefix = TASK_PREFIX.format(task=name)
    own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return sections[name], {k: v for k, v in tensors.items() if is_shared(k)} | own

"""Policies shipped with wow_gym: an SB3 policy's weights as safetensors plus a JSON config, no pickles.

SB3's own zip holds pickled objects (schedules, spaces), which the repository does not ship; a shipped
policy is its state_dict and the JSON needed to rebuild the same SB3 algorithm around it, on any env with
the policy's spaces. `wow-gym train-policy` runs write SB3 zips; `wow-gym ship-policy` turns one into a
shipped policy (save_policy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
from safetensors.torch import load_model, save_model
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from wow_gym.policies.features import ImageProprioExtractor
from wow_gym.policies.spec import POLICY_KEYS
from wow_gym.provenance import atomic_write_text, git_commit
from wow_gym.registry import task_info
from wow_gym.world_models.checkpoint import shipped_checkpoint

CHECKPOINT_ROOT = Path(__file__).resolve().parent / "checkpoints"
FORMAT_VERSION = 1
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"PPO": PPO, "SAC": SAC}


def shipped_policy(task: str) -> Path:
    """The shipped policy's folder of a task; CheckpointError naming the tasks that have one otherwise."""
    return shipped_checkpoint(task, "policy", CHECKPOINT_ROOT)


def save_policy(model: BaseAlgorithm, folder: str | Path, task: str, notes: dict[str, Any] | None = None) -> Path:
    """Write model.safetensors + config.json for a policy on ImageProprioExtractor; returns the folder."""
    name = type(model).__name__
    if name not in ALGORITHMS:
        raise ValueError(f"only {sorted(ALGORITHMS)} policies can be shipped, got {name}")
    if model.policy_kwargs.get("features_extractor_class") is not ImageProprioExtractor:
        raise ValueError("a shipped policy must use ImageProprioExtractor (train it with wow-gym train-policy)")
    kwargs = dict(model.policy_kwargs)
    kwargs.pop("features_extractor_class", None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model.safetensors.tmp"
    save_model(model.policy, str(tmp))  # save_model: PPO's actor and critic share the extractor's tensors
    tmp.replace(folder / "model.safetensors")
    config = {"format_version": FORMAT_VERSION, "algorithm": name, "task": task_info(task).name,
              "policy_kwargs": kwargs, "observation_keys": list(POLICY_KEYS),
              "image_size": int(model.observation_space["pixels"].shape[1]),
              "agent_pos_dim": int(model.observation_space["agent_pos"].shape[0]),
              "commit": git_commit()["commit"], **({"notes": notes} if notes else {})}
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return folder


def load_policy(folder: str | Path | None = None, task: str = "lift", env: Any = None, device: str = "cpu",
                **hyperparameters: Any) -> BaseAlgorithm:
    """The shipped policy of `task` (or the one in `folder`) as a ready SB3 algorithm on `env` (a Gym env or
    SB3 VecEnv with pixels and agent_pos; None: the task's simulator). hyperparameters go to the algorithm,
    for fine-tuning (PPO's n_steps, learning_rate ...)."""
    folder = Path(folder) if folder is not None else shipped_policy(task)
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped policy at {folder} (config.json missing); train one with "
                                f"`wow-gym train-policy` and ship it with `wow-gym ship-policy`")
    config = json.loads(path.read_text())
    if config.get("format_version") != FORMAT_VERSION or config.get("algorithm") not in ALGORITHMS:
        raise ValueError(f"{path}: format_version {config.get('format_version')} / algorithm "
                         f"{config.get('algorithm')!r}; this wow_gym reads version {FORMAT_VERSION} of "
                         f"{sorted(ALGORITHMS)}")
    if env is None:
        env = gym.wrappers.FilterObservation(gym.make(task_info(config["task"]).env_id), list(POLICY_KEYS))
    space = env.observation_space
    size = space["pixels"].shape[1] if space["pixels"].shape[0] == 3 else space["pixels"].shape[0]
    if size != config["image_size"] or space["agent_pos"].shape != (config["agent_pos_dim"],):
        raise ValueError(f"the policy in {folder} reads {config['image_size']} px frames and "
                         f"{config['agent_pos_dim']}-D agent_pos; the env gives {size} px and "
                         f"{space['agent_pos'].shape}")
    kwargs = {**config["policy_kwargs"], "features_extractor_class": ImageProprioExtractor}
    model = ALGORITHMS[config["algorithm"]]("MultiInputPolicy", env, policy_kwargs=kwargs, device=device,
                                            **hyperparameters)
    load_model(model.policy, str(folder / "model.safetensors"), device=str(model.device))
    return model

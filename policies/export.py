"""Export a stable-baselines3 policy to ONNX: the deterministic actor over {pixels, agent_pos}, and its spec.

The graph does everything `model.predict(observation, deterministic=True)` does between the camera and the
action: the HWC -> CHW transpose of SB3's VecTransposeImage, the uint8 -> float / 255 normalisation, the mean
action, tanh squashing and rescaling (SAC, TD3, gSDE) or clipping (PPO, A2C). A robot feeds it the raw uint8
frame and the proprioception, with any batch size.
"""

from __future__ import annotations

import io
import json
import logging
import time
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy

from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.policies.spec import (
    ACTION_NAMES,
    AGENT_POS_NAMES,
    CONTROLLER,
    ONNX_FILE,
    POLICY_KEYS,
    SIM_POSITION_SCALE,
    SIM_ROTATION_SCALE,
    SPEC_FILE,
    SPEC_VERSION,
)
from wow_gym.provenance import atomic_write_text, git_commit
from wow_gym.registry import CONTROL_FREQ, task_info

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3}


class _DeterministicActor(torch.nn.Module):
    """The policy as a module: raw tensors per key in, the action predict(deterministic=True) gives out."""

    def __init__(self, policy: BasePolicy, keys: Sequence[str], transpose: Sequence[bool]) -> None:
        super().__init__()
        self.policy = policy
        self.keys = list(keys)
        self.transpose = list(transpose)
        box = policy.action_space
        self.register_buffer("low", torch.as_tensor(box.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(box.high, dtype=torch.float32))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        observation = {key: x.permute(0, 3, 1, 2) if transpose else x
                       for key, x, transpose in zip(self.keys, inputs, self.transpose)}
        action = self._mean_action(observation)
        if self.policy.squash_output:  # tanh output in [-1, 1], rescaled to the action box (unscale_action)
            return self.low + 0.5 * (action + 1.0) * (self.high - self.low)
        return torch.clamp(action, self.low, self.high)

    def _mean_action(self, observation: dict[str, torch.Tensor]) -> torch.Tensor:
        policy = self.policy
        if isinstance(policy, ActorCriticPolicy):
            features = BasePolicy.extract_features(policy, observation, policy.pi_features_extractor)
            mean = policy.action_net(policy.mlp_extractor.forward_actor(features))
            bijector = getattr(policy.action_dist, "bijector", None)  # gSDE with squash_output: tanh
            return torch.tanh(mean) if bijector is not None else mean
        if isinstance(policy, SACPolicy):
            mean, _, _ = policy.actor.get_action_dist_params(observation)
            return torch.tanh(mean)
        return policy.actor(observation)  # TD3: mu ends in tanh


def export_policy(model: BaseAlgorithm | BasePolicy, out_dir: str | Path, task: str = "lift",
                  instruction: str | None = None, checkpoint: str | Path | None = None) -> Path:
    """Write <out_dir>/policy.onnx and policy.json for a PPO/A2C/SAC/TD3 policy; return the ONNX path."""
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    keys, inputs = _check_spaces(policy)
    info = task_info(task)
    actor = _DeterministicActor(policy, keys, [i["transpose"] for i in inputs.values()]).eval()
    examples = tuple(torch.as_tensor(np.zeros((2, *i["shape"]), dtype=i["dtype"])) for i in inputs.values())
    batch = torch.export.Dim("batch", min=1)
    # The exporter logs a warning per torchvision op it cannot register; torchvision is not used here.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's deprecation chatter about its own internals
        program = torch.onnx.export(actor, examples, input_names=keys, output_names=["action"], dynamo=True,
                                    dynamic_shapes=(tuple({0: batch} for _ in keys),), verbose=False)
    proto = program.model_proto
    out_dir = Path(out_dir)
    onnx_path = out_dir / ONNX_FILE
    atomic_write_bytes(onnx_path, proto.SerializeToString())
    spec = {
        "format_version": SPEC_VERSION,
        "task": info.name,
        "env_id": info.env_id,
        "instruction": instruction or info.instruction,
        "algorithm": type(model).__name__ if isinstance(model, BaseAlgorithm) else type(policy).__name__,
        "source_checkpoint": str(checkpoint) if checkpoint is not None else None,
        "git": git_commit(),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "control_freq": CONTROL_FREQ,
        "deterministic": True,
        "observation": {key: {k: v for k, v in i.items() if k != "transpose"} for key, i in inputs.items()},
        "action": {
            "shape": [len(ACTION_NAMES)], "dtype": "float32", "names": list(ACTION_NAMES),
            "low": policy.action_space.low.tolist(), "high": policy.action_space.high.tolist(),
            "controller": CONTROLLER,
            "semantics": "robosuite OSC_POSE deltas: end-effector target position offset (x, y, z, base "
                         "frame), axis-angle rotation offset (base frame), gripper (-1 open, +1 close)",
            "position_scale": SIM_POSITION_SCALE, "rotation_scale": SIM_ROTATION_SCALE,
        },
        "onnx": {"file": ONNX_FILE, "inputs": keys, "outputs": ["action"], "batch_axis": 0,
                 "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))},
    }
    if "pixels" in inputs:
        spec["image_size"] = list(inputs["pixels"]["shape"][:2])
    atomic_write_text(out_dir / SPEC_FILE, json.dumps(spec, indent=2) + "\n")
    return onnx_path


def _check_spaces(policy: BasePolicy) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The ONNX inputs of a policy's spaces: shape, dtype, layout, normalisation per key."""
    space, action_space = policy.observation_space, policy.action_space
    if not isinstance(policy, (ActorCriticPolicy, SACPolicy, TD3Policy)):
        raise TypeError(f"cannot export a {type(policy).__name__}; expected a PPO/A2C ActorCriticPolicy or a "
                        f"SAC/TD3 policy")
    if not isinstance(action_space, spaces.Box) or action_space.shape != (len(ACTION_NAMES),):
        raise ValueError(f"the policy's action space is {action_space}; expected Box(-1, 1, (7,)), the "
                         f"OSC_POSE deltas {list(ACTION_NAMES)}")
    if not isinstance(space, spaces.Dict):
        raise TypeError(f"the policy reads a {type(space).__name__} observation; expected a Dict with keys "
                        f"{list(POLICY_KEYS)} (train with MultiInputPolicy)")
    if "environment_state" in space.spaces:
        raise ValueError("the policy reads 'environment_state', the simulator's privileged object state, "
                         "which a real robot does not have; train it on pixels and agent_pos only, e.g. on "
                         "gymnasium.wrappers.FilterObservation(env, ['pixels', 'agent_pos'])")
    unknown = sorted(set(space.spaces) - set(POLICY_KEYS))
    if unknown:
        raise ValueError(f"the policy reads {unknown}; an exported policy may read only {list(POLICY_KEYS)}")
    inputs: dict[str, dict[str, Any]] = {}
    if "pixels" in space.spaces:
        inputs["pixels"] = _pixels_input(space["pixels"], policy.normalize_images)
    if "agent_pos" in space.spaces:
        agent_pos = space["agent_pos"]
        if agent_pos.shape != (len(AGENT_POS_NAMES),):
            raise ValueError(f"agent_pos has shape {agent_pos.shape}; expected ({len(AGENT_POS_NAMES)},): "
                             f"{list(AGENT_POS_NAMES)}")
        inputs["agent_pos"] = {"shape": [len(AGENT_POS_NAMES)], "dtype": "float32",
                               "names": list(AGENT_POS_NAMES), "transpose": False}
    return list(inputs), inputs


def _pixels_input(box: spaces.Space, normalize: bool) -> dict[str, Any]:
    if not is_image_space(box):
        raise ValueError(f"pixels space is {box}; expected a uint8 image Box(0, 255, (H, W, 3) or (3, H, W))")
    channels_first = is_image_space_channels_first(box)
    height, width, channels = (box.shape[1], box.shape[2], box.shape[0]) if channels_first else box.shape
    return {"shape": [height, width, channels], "dtype": "uint8", "layout": "HWC", "range": [0, 255],
            "normalisation": "x / 255 inside the graph" if normalize else "none", "transpose": channels_first}


def check_parity(model: BaseAlgorithm | BasePolicy, onnx_path: str | Path,
                 observations: Sequence[Mapping[str, np.ndarray]]) -> float:
    """Max |ONNX - SB3 predict(deterministic=True)| over single observations, run as one batch on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    batch = {key: np.stack([np.asarray(o[key]) for o in observations]) for key in names}
    if "agent_pos" in batch:
        batch["agent_pos"] = batch["agent_pos"].astype(np.float32)
    (onnx_action,) = session.run(["action"], batch)
    sb3_action, _ = model.predict(batch, deterministic=True)
    return float(np.max(np.abs(onnx_action - sb3_action)))


def load_sb3(checkpoint: str | Path, algo: str = "auto") -> BaseAlgorithm:
    """Load an SB3 zip on the CPU; algo 'auto' reads PPO/A2C/SAC/TD3 from the zip's saved attributes."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected a stable-baselines3 zip (model.save)")
    name = _algorithm_of(path) if algo == "auto" else algo.lower()
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algo {algo!r}; expected auto or one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name].load(path, device="cpu")


def _algorithm_of(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.load(io.TextIOWrapper(archive.open("data")))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        message = f"{path} is not a stable-baselines3 zip ({error}); pass algo=ppo|a2c|sac|td3"
        raise ValueError(message) from None
    policy_module = data.get("policy_class", {}).get("__module__", "")
    for name in ("sac", "td3"):
        if f"stable_baselines3.{name}." in policy_module:
            return name
    if "stable_baselines3.common.policies" in policy_module:
        return "ppo" if "clip_range" in data else "a2c"
    raise ValueError(f"cannot tell the algorithm of {path} (policy module {policy_module!r}); pass "
                     f"algo=ppo|a2c|sac|td3")

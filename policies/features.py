"""The image + proprioception feature extractor for stable-baselines3 policies on wow_gym's 64 px frames.

SB3's own CombinedExtractor runs NatureCNN, sized for 84 px Atari frames, over the image and flattens the
rest. This extractor is hand-written because SB3 has nothing that locates objects in a small frame: three
stride-2 convolutions keep a 16 x 16 feature map (at 64 px), and a spatial soft-argmax turns each of its
channels into an (x, y) keypoint (Levine et al., "End-to-End Training of Deep Visuomotor Policies", 2016),
the usual choice for visuomotor manipulation policies. `agent_pos` is standardised with statistics fixed at
construction (saved with the policy, so the exported ONNX graph standardises the same way).

Use with `policy_kwargs=policy_kwargs(observation_space)` on a Dict space {pixels, agent_pos}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from wow_gym.policies.spec import POLICY_KEYS

VALUE_STATE_KEY = "environment_state"  # what the asymmetric critic reads beside agent_pos


class SpatialSoftArgmax(nn.Module):
    """[B, C, H, W] feature maps -> [B, 2C] expected (x, y) in [-1, 1] of each channel's softmax."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], 1))  # [HW, 2]
        self.temperature = nn.Parameter(torch.ones(1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, channels = features.shape[:2]
        weights = torch.softmax(features.reshape(batch, channels, -1) / self.temperature, dim=-1)
        return (weights @ self.grid).reshape(batch, 2 * channels)


class ImageProprioExtractor(BaseFeaturesExtractor):
    """pixels (channel-first, as SB3 hands them over) -> keypoints + pooled features; agent_pos -> MLP."""

    def __init__(self, observation_space: gym.spaces.Dict, channels: int = 32, features_dim: int = 256,
                 agent_pos_mean: Sequence[float] | None = None, agent_pos_std: Sequence[float] | None = None
                 ) -> None:
        pixels, agent_pos = _check_space(observation_space)
        super().__init__(observation_space, features_dim)
        in_channels, height, width = pixels.shape
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, channels, 5, stride=2, padding=2), nn.GroupNorm(8, channels), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.GroupNorm(8, channels), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, stride=1, padding=1), nn.GroupNorm(8, channels), nn.SiLU(),
        )
        with torch.no_grad():
            map_shape = self.cnn(torch.zeros(1, in_channels, height, width)).shape
        self.keypoints = SpatialSoftArgmax(map_shape[2], map_shape[3])
        dim = agent_pos.shape[0]
        mean = np.zeros(dim) if agent_pos_mean is None else np.asarray(agent_pos_mean, dtype=np.float64)
        std = np.ones(dim) if agent_pos_std is None else np.asarray(agent_pos_std, dtype=np.float64)
        if mean.shape != (dim,) or std.shape != (dim,) or not np.all(np.isfinite(mean)) or np.any(~(std > 0)):
            raise ValueError(f"agent_pos_mean / agent_pos_std must be {dim} finite numbers (std > 0), got "
                             f"{mean.tolist()} / {std.tolist()}")
        self.register_buffer("agent_pos_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("agent_pos_std", torch.as_tensor(std, dtype=torch.float32))
        self.proprio = nn.Sequential(nn.Linear(dim, 64), nn.SiLU())
        self.head = nn.Sequential(nn.Linear(3 * channels + 64, features_dim), nn.SiLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        maps = self.cnn(observations["pixels"])  # SB3 has already scaled the uint8 frame to [0, 1]
        image = torch.cat([self.keypoints(maps), maps.mean(dim=(2, 3))], dim=1)
        proprio = self.proprio((observations["agent_pos"] - self.agent_pos_mean) / self.agent_pos_std)
        return self.head(torch.cat([image, proprio], dim=1))


def _standardiser(values: Sequence[float] | None, dim: int, default: float, name: str) -> torch.Tensor:
    array = np.full(dim, default) if values is None else np.asarray(values, dtype=np.float64)
    if array.shape != (dim,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be {dim} finite numbers, got {np.asarray(values).tolist()}")
    return torch.as_tensor(array, dtype=torch.float32)


class StateExtractor(BaseFeaturesExtractor):
    """agent_pos + the world's object state (`environment_state`) -> an MLP's features, for a value function
    only: the asymmetric critic of AsymmetricActorCriticPolicy. Both are standardised with statistics fixed
    at construction (the demonstrations'); a standard deviation below `min_std` is raised to it."""

    def __init__(self, observation_space: gym.spaces.Dict, features_dim: int = 256,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 min_std: float = 1e-2) -> None:
        if not isinstance(observation_space, gym.spaces.Dict) or not {"agent_pos", VALUE_STATE_KEY} <= set(
                observation_space.spaces):
            keys = sorted(observation_space.spaces) if isinstance(observation_space, gym.spaces.Dict) else \
                type(observation_space).__name__
            raise ValueError(f"StateExtractor reads agent_pos and {VALUE_STATE_KEY}, got {keys}; keep "
                             f"{VALUE_STATE_KEY} in the training env's observations")
        super().__init__(observation_space, features_dim)
        dim = observation_space["agent_pos"].shape[0] + observation_space[VALUE_STATE_KEY].shape[0]
        self.register_buffer("mean", _standardiser(mean, dim, 0.0, "StateExtractor's mean"))
        self.register_buffer("std", _standardiser(std, dim, 1.0, "StateExtractor's std").clamp_min(min_std))
        self.net = nn.Sequential(nn.Linear(dim, features_dim), nn.SiLU(),
                                 nn.Linear(features_dim, features_dim), nn.SiLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        state = torch.cat([observations["agent_pos"], observations[VALUE_STATE_KEY]], dim=1)
        return self.net((state - self.mean) / self.std)


class AsymmetricActorCriticPolicy(MultiInputActorCriticPolicy):
    """PPO's policy with an asymmetric critic (Pinto et al., "Asymmetric Actor Critic for Image-Based Robot
    Learning", 2018): the actor reads pixels and agent_pos through ImageProprioExtractor as every wow_gym
    policy does, the value function reads agent_pos and the world's object state through StateExtractor.
    Training only: the value function is thrown away at deployment (`copy_actor` puts the actor into a
    standard policy), so the exported policy still reads what a real robot gives.

    Why: warm-started from BC, PPO's value function must learn returns from 64 px frames; over a 30-minute
    Lift run its explained variance was at most 0.47 in either world. The object state is in both worlds'
    observations (the simulator's, and the imagined one the world model carries). With it the explained
    variance rose (README, `make policy-compare-30-asymmetric`), though that run gained in neither world.
    SB3 has no asymmetric policy; this builds the critic's extractor on SB3's own non-shared-extractor
    path."""

    actor_keys = POLICY_KEYS  # what predict() needs: the actor's keys only

    def __init__(self, observation_space: gym.spaces.Dict, action_space: gym.spaces.Space, lr_schedule: Any,
                 value_extractor_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.value_extractor_kwargs = dict(value_extractor_kwargs or {})
        kwargs["share_features_extractor"] = False
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        """The actor's extractor, on pixels and agent_pos only (the keys a deployed policy reads)."""
        actor_space = gym.spaces.Dict({key: self.observation_space[key] for key in POLICY_KEYS})
        return self.features_extractor_class(actor_space, **self.features_extractor_kwargs)

    def _build(self, lr_schedule: Any) -> None:
        self.vf_features_extractor = StateExtractor(self.observation_space, self.features_dim,
                                                    **self.value_extractor_kwargs)
        super()._build(lr_schedule)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(value_extractor_kwargs=self.value_extractor_kwargs)
        data.pop("share_features_extractor", None)
        return data


# the actor's parameters; SB3 names the actor's extractor features_extractor whether or not it is shared
# (pi_features_extractor is the same module under a second name)
ACTOR_PREFIXES = ("features_extractor.", "mlp_extractor.policy_net.", "action_net.", "log_std")


def copy_actor(source: nn.Module, target: nn.Module) -> None:
    """Copy the actor (extractor, policy MLP, action head, log-std) of one SB3 actor-critic policy into
    another, shared or asymmetric; the target's value function is left as it is."""
    actor = {name: value for name, value in source.state_dict().items() if name.startswith(ACTOR_PREFIXES)}
    wanted = {name for name in target.state_dict() if name.startswith(ACTOR_PREFIXES)}
    if set(actor) != wanted:
        raise ValueError(f"the policies' actors differ: {sorted(set(actor) ^ wanted)[:4]}")
    target.load_state_dict(actor, strict=False)


def _check_space(space: gym.spaces.Space) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    if not isinstance(space, gym.spaces.Dict) or set(space.spaces) != {"pixels", "agent_pos"}:
        keys = sorted(space.spaces) if isinstance(space, gym.spaces.Dict) else type(space).__name__
        raise ValueError(f"ImageProprioExtractor reads a Dict of exactly pixels and agent_pos, got {keys}; "
                         "keep only those keys (SB3VecEnv(env, keys=POLICY_KEYS))")
    pixels, agent_pos = space["pixels"], space["agent_pos"]
    if not is_image_space(pixels, check_channels=True) or pixels.shape[0] != 3:
        raise ValueError(f"pixels must be a channel-first uint8 RGB image space (SB3 transposes HWC frames), "
                         f"got shape {pixels.shape} dtype {pixels.dtype}")
    if len(agent_pos.shape) != 1:
        raise ValueError(f"agent_pos must be a flat vector, got shape {agent_pos.shape}")
    return pixels, agent_pos


def policy_kwargs(agent_pos_mean: Sequence[float] | None = None, agent_pos_std: Sequence[float] | None = None,
                  features_dim: int = 256, net_arch: Sequence[int] = (256, 256), algo: str = "ppo"
                  ) -> dict[str, Any]:
    """policy_kwargs for an SB3 MultiInputPolicy using ImageProprioExtractor (PPO/A2C share the extractor
    between actor and critic; SAC/TD3 take the same layers)."""
    extractor = {"features_dim": features_dim,
                 "agent_pos_mean": None if agent_pos_mean is None else [float(v) for v in agent_pos_mean],
                 "agent_pos_std": None if agent_pos_std is None else [float(v) for v in agent_pos_std]}
    kwargs: dict[str, Any] = {"features_extractor_class": ImageProprioExtractor,
                              "features_extractor_kwargs": extractor}
    if algo in ("ppo", "a2c"):
        kwargs["net_arch"] = {"pi": list(net_arch), "vf": list(net_arch)}
        kwargs["log_std_init"] = -1.0
    else:
        kwargs["net_arch"] = list(net_arch)
    return kwargs

"""Wrappers for wow_gym sim envs, one concern each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

# robosuite's DomainRandomizationWrapper re-uploads textures through its own render context and
# reseeds the global RNG; these few model fields are all we perturb, so they are written directly.
_MODEL_FIELDS = ("cam_pos", "cam_quat", "light_diffuse", "light_ambient", "light_pos", "geom_rgba",
                 "mat_rgba", "geom_friction", "body_mass", "body_inertia", "dof_damping")


@dataclass(frozen=True)
class DomainRandomizationConfig:
    """Which parts of the scene to perturb on every reset, and by how much."""

    camera: bool = True
    lighting: bool = True
    colors: bool = True
    dynamics: bool = True
    camera_position_std: float = 0.02  # metres
    camera_angle_std: float = 0.03  # radians, about a random axis
    light_scale: tuple[float, float] = (0.6, 1.4)
    light_position_std: float = 0.2  # metres
    color_std: float = 0.08  # per RGB channel, on a 0..1 scale
    friction_scale: tuple[float, float] = (0.8, 1.2)
    mass_scale: tuple[float, float] = (0.8, 1.2)
    damping_scale: tuple[float, float] = (0.8, 1.2)


class RandomizeDomain(gym.Wrapper):
    """Perturb camera pose, lighting, colours and dynamics at every reset (seeded by the reset seed).

    Off by default: wrap an env to use it. A sim_state records the physical state only; to replay a
    randomized episode exactly, reset with the same seed (which redraws the same scene) before restoring.
    """

    def __init__(self, env: gym.Env, config: DomainRandomizationConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or DomainRandomizationConfig()
        self.model: mujoco.MjModel = env.unwrapped.model
        self._nominal = {name: getattr(self.model, name).copy() for name in _MODEL_FIELDS}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Draw a new scene from the wrapper's RNG, then reset the wrapped env."""
        if seed is not None:
            self.np_random, _ = gym.utils.seeding.np_random(seed)
        self._randomize(self.np_random)
        return self.env.reset(seed=seed, options=options)

    def _randomize(self, rng: np.random.Generator) -> None:
        for name, value in self._nominal.items():
            getattr(self.model, name)[:] = value
        cfg = self.config
        if cfg.camera:
            self._randomize_cameras(rng)
        if cfg.lighting:
            model = self.model
            scale = rng.uniform(*cfg.light_scale, size=(model.nlight, 1))
            model.light_diffuse[:] = np.clip(model.light_diffuse * scale, 0.0, 1.0)
            model.light_ambient[:] = np.clip(model.light_ambient * scale, 0.0, 1.0)
            model.light_pos[:] += rng.normal(0.0, cfg.light_position_std, model.light_pos.shape)
        if cfg.colors:
            for rgba in (self.model.geom_rgba, self.model.mat_rgba):
                rgba[:, :3] = np.clip(rgba[:, :3] + rng.normal(0.0, cfg.color_std, rgba[:, :3].shape), 0, 1)
        if cfg.dynamics:
            model = self.model
            model.geom_friction[:, 0] *= rng.uniform(*cfg.friction_scale, size=model.ngeom)
            mass = rng.uniform(*cfg.mass_scale, size=model.nbody)
            model.body_mass[:] *= mass
            model.body_inertia[:] *= mass[:, None]
            model.dof_damping[:] *= rng.uniform(*cfg.damping_scale, size=model.nv)

    def _randomize_cameras(self, rng: np.random.Generator) -> None:
        cfg, model = self.config, self.model
        model.cam_pos[:] += rng.normal(0.0, cfg.camera_position_std, model.cam_pos.shape)
        for i in range(model.ncam):
            axis = rng.normal(size=3)
            turn = np.empty(4)
            mujoco.mju_axisAngle2Quat(turn, axis / np.linalg.norm(axis), rng.normal(0.0, cfg.camera_angle_std))
            mujoco.mju_mulQuat(model.cam_quat[i], turn, model.cam_quat[i].copy())


class CriticReward(gym.Wrapper):
    """SOPHIA's critic reward on a sim env, beside the simulator's: the same reward the imagined env
    returns, computed from the sim's own frames, so both can be compared on one rollout.

    info gets reward_sim (the simulator's reward), reward_critic_progress / _success / _plausible and
    critic_success. `use="critic"` (default) returns the critic's reward, `use="sim"` the simulator's.
    """

    def __init__(self, env: gym.Env, reward_model: Any = None, use: str = "critic",
                 instruction: str | None = None) -> None:
        super().__init__(env)
        if use not in ("critic", "sim"):
            raise ValueError(f"use must be 'critic' or 'sim', got {use!r}")
        if "pixels" not in env.observation_space.spaces:
            raise ValueError("the critic reads frames; make the sim env with its camera on (use_camera=True)")
        if reward_model is None:
            from wow_gym.world_models.critic.model import CriticRewardModel

            reward_model = CriticRewardModel(task=env.unwrapped.task)
        self.reward_model, self.use = reward_model, use
        self.instruction = instruction or env.unwrapped.instruction

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        observation, info = self.env.reset(seed=seed, options=options)
        _, success, _ = self._score(observation, np.array([0]))
        return observation, {**info, "critic_success": bool(success[0])}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        critic, success, terms = self._score(observation, None)
        info = {**info, "reward_sim": float(reward), "critic_success": bool(success[0]),
                **{f"reward_{name}": float(value[0]) for name, value in terms.items()}}
        return observation, float(critic[0]) if self.use == "critic" else reward, terminated, truncated, info

    def _score(self, observation: dict[str, np.ndarray], rows: np.ndarray | None):
        frame = _Frame(observation["pixels"][None])
        reward, success, *terms = self.reward_model(frame, [self.instruction], rows=rows, batch_size=1)
        return reward, success, terms[0] if terms else {}


@dataclass
class _Frame:
    """What a RewardModel reads of a step, for a sim frame (the critic needs only the pixels)."""

    pixels: np.ndarray

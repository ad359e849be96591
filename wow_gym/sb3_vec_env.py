"""The one stable-baselines3 adapter: any Gymnasium VectorEnv as an SB3 VecEnv.

SB3 does not accept Gymnasium vector envs. This adapter gives SB3 its semantics on top of any of them
(ImaginedVectorEnv, or a SyncVectorEnv of simulator envs): an env that finishes is reset within the same
`step_wait`, its last observation is in `infos[i]["terminal_observation"]` and `TimeLimit.truncated` says
whether the episode was cut by the time limit. Dict observations stay dicts of batched arrays; `keys`
keeps only some of their entries (a policy that must not read the simulator's `environment_state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn


class SB3VecEnv(VecEnv):
    """A Gymnasium VectorEnv seen by stable-baselines3 (same-step or next-step autoreset underneath)."""

    def __init__(self, env: gym.vector.VectorEnv, keys: Sequence[str] | None = None) -> None:
        self.env = env  # set first: VecEnv.__init__ reads render_mode through get_attr
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset_mode = mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)
        space = env.single_observation_space
        self.keys = None if keys is None else tuple(keys)
        if self.keys is not None:
            if not isinstance(space, gym.spaces.Dict):
                raise ValueError(f"keys={list(self.keys)} needs a Dict observation space, got {space}")
            missing = sorted(set(self.keys) - set(space.spaces))
            if missing:
                raise ValueError(f"the env observes {sorted(space.spaces)}; keys {missing} are not among them")
            space = gym.spaces.Dict({key: space.spaces[key] for key in self.keys})
        super().__init__(env.num_envs, space, env.single_action_space)
        self._actions: np.ndarray | None = None

    # -- stepping ------------------------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        """Reset every env with the seeds and options set by seed() / set_options()."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        observation, info = self.env.reset(seed=seeds, options=self._shared_options())
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = unbatch_info(info, self.num_envs)
        return self._view(observation)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every env; a finished env comes back already reset, as SB3 expects."""
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        observation, reward, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        done = np.logical_or(terminated, truncated)
        final_obs, final_info = info.pop("final_obs", None), info.pop("final_info", {})
        info.pop("_final_obs", None), info.pop("_final_info", None)
        infos = unbatch_info(info, self.num_envs)
        rows = np.flatnonzero(done)
        if len(rows) and self.autoreset_mode == AutoresetMode.SAME_STEP:
            final_infos = unbatch_info(final_info, self.num_envs)
            for i in rows:
                self.reset_infos[i] = infos[i]
                infos[i] = dict(final_infos[i], terminal_observation=self._view(final_obs[i]))
        elif len(rows):  # next-step or disabled autoreset: reset the finished envs now
            for i in rows:
                infos[i]["terminal_observation"] = self._view(_row(observation, i))
            observation, reset_info = self.env.reset(options={"reset_mask": done.copy()})
            reset_infos = unbatch_info(reset_info, self.num_envs)
            for i in rows:
                self.reset_infos[i] = reset_infos[i]
        for i, item in enumerate(infos):
            item["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return self._view(observation), np.asarray(reward, dtype=np.float32), done, infos

    def close(self) -> None:
        self.env.close()

    # -- attributes and methods ----------------------------------------------------------------------------

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Per-env attributes of a vector of envs; a batched env's own attribute, repeated per index."""
        indices = list(self._get_indices(indices))
        if hasattr(self.env, "get_attr"):
            values = self.env.get_attr(attr_name)
            return [values[i] for i in indices]
        return [getattr(self.env, attr_name)] * len(indices)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set a per-env attribute; a batched env shares its attributes, so it takes indices=None."""
        if hasattr(self.env, "set_attr"):
            values = list(self.env.get_attr(attr_name)) if indices is not None else [value] * self.num_envs
            for i in self._get_indices(indices):
                values[i] = value
            self.env.set_attr(attr_name, values)
            return
        if indices is not None and sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(f"{type(self.env).__name__} runs its envs as one batch and shares {attr_name!r} "
                             "across them; call set_attr with indices=None")
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call a method of every sub-env (vector of envs) or once on a batched env; results per index."""
        indices = list(self._get_indices(indices))
        if hasattr(self.env, "call"):
            results = self.env.call(method_name, *method_args, **method_kwargs)
            return [results[i] for i in indices]
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(indices)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Whether each sub-env is wrapped in wrapper_class (a batched env has no sub-env wrappers)."""
        from stable_baselines3.common.env_util import is_wrapped

        indices = list(self._get_indices(indices))
        envs = getattr(self.env, "envs", None)
        if envs is None:
            return [False] * len(indices)
        return [is_wrapped(envs[i], wrapper_class) for i in indices]

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.env.render()
        return [None] * self.num_envs if frames is None else list(frames)

    def _view(self, observation: Any) -> Any:
        """A copy of the observation, with only `keys` when they are set."""
        if self.keys is not None:
            observation = {key: observation[key] for key in self.keys}
        return _copy(observation)

    def _shared_options(self) -> dict[str, Any] | None:
        """Gymnasium vector envs take one options dict for all envs; SB3 keeps one per env."""
        first = self._options[0]
        if any(options != first for options in self._options[1:]):
            raise ValueError("Gymnasium vector envs take one options dict for every env; pass the same "
                             "options to set_options() for all of them (batched values where the env "
                             "expects them)")
        return dict(first) or None


def unbatch_info(info: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's batched info (value arrays with '_key' masks, nested dicts) -> one dict per env."""
    infos: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = np.asarray(info.get(f"_{key}", np.ones(num_envs, dtype=bool)))
        per_env = unbatch_info(value, num_envs) if isinstance(value, dict) else None
        for i in np.flatnonzero(mask):
            infos[i][key] = per_env[i] if per_env is not None else value[i]
    return infos


def _row(observation: Any, i: int) -> Any:
    if isinstance(observation, dict):
        return {key: np.array(value[i]) for key, value in observation.items()}
    return np.array(observation[i])


def _copy(observation: Any) -> Any:
    if isinstance(observation, dict):
        return {key: np.array(value) for key, value in observation.items()}
    return np.array(observation)

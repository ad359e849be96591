"""The learned twin: a world model behind the Gymnasium API, as one env or as N envs in one model batch.

`WoW/<Task>-Imagined-v0` has exactly the observation and action spaces of its simulator twin
`WoW/<Task>-v0`. An episode starts from real frames (see imagined_starts: a simulator state or a fresh
seeded layout, a stored episode, or given frames); from then on every step is imagined by the world model
and the simulator is never touched again. Reward and success come from a pluggable `RewardModel`:
by default SOPHIA's critic reading the imagined frames (progress + success, with the named terms in
info["reward_<term>"]); "heads" selects the world model's own heads, trained on the simulator's reward;
"state" computes the simulator's shaped reward on the imagined object state (a model that carries it), so
reward and success follow what the imagination does to the object.

`ImaginedEnv` (one episode) and `ImaginedVectorEnv` (N episodes, one model call per step) share one
engine, `ImaginedBatch`, which drives a world-model backend (wow_gym.backends): by default the task's DiT
(world_models.video.backend.DiTBackend, the one imagination path), or `backend=` any backend that steps
under actions and predicts state, a user's `module:Class` included. `world_model_options` sets the DiT's
imagination switches on the loaded checkpoint (WorldModel.set_options), e.g. {"arm_physics": True,
"finger_rule": True}: the robot's own arm in MuJoCo and the finger rule.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from wow_gym.backends import BackendStep, WorldModelBackend, make_backend, require, require_env_backend
from wow_gym.checks import check_actions
from wow_gym.envs.imagined_starts import (Context, ContextSource, StartPool, known_states, split_options,
                                          stack_contexts)
from wow_gym.envs.robosuite_env import AGENT_POS_DIM
from wow_gym.registry import CONTROL_FREQ, task_info
from wow_gym.rollout import ACTION_DIM
from wow_gym.world_models import StepOutput, WorldModel
from wow_gym.world_models.checkpoint import shipped_tasks
from wow_gym.world_models.critic.model import CriticRewardModel
from wow_gym.world_models.video.backend import DiTBackend
from wow_gym.world_models.video.imagination import load_world_model

SOURCE = "imagined"
logger = logging.getLogger(__name__)


# -- reward -------------------------------------------------------------------------------------------------


class RewardModel(Protocol):
    """Scores imagined frames: (reward [n] float32, success [n] bool) or, with named reward terms, (reward,
    success, {name: [n]}). `rows` is given when rows of a batch of `batch_size` (re)start, with their first
    frames in `output`; it is None for a step of every row. Stateful models (the critic) use it."""

    def __call__(self, output: StepOutput | BackendStep, instructions: Sequence[str],
                 rows: np.ndarray | None = None, batch_size: int | None = None) -> tuple[np.ndarray, ...]: ...


class HeadRewardModel:
    """The world model's own reward and success heads (trained on the simulator's shaped reward)."""

    def __call__(self, output: StepOutput | BackendStep, instructions: Sequence[str],
                 rows: np.ndarray | None = None, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        missing = [name for name in ("reward", "success") if getattr(output, name) is None]
        if missing:
            raise ValueError("reward_model='heads' needs a world model with reward and success heads; this "
                             "backend predicts no reward: use 'critic'")
        return np.asarray(output.reward, dtype=np.float32), np.asarray(output.success, dtype=bool)


class StateRewardModel:
    """The simulator's shaped reward computed on the imagined state (the task's `state_reward`: for Lift reach,
    grasp and lift, named in info as reward_state_<term>); success is the carried object's (StepOutput)."""

    def __init__(self, task: str) -> None:
        self.reward = task_info(task).state_reward
        if self.reward is None:
            raise ValueError(f"task {task!r} has no state_reward in wow_gym/tasks; use reward_model='critic'")

    def __call__(self, output: StepOutput | BackendStep, instructions: Sequence[str],
                 rows: np.ndarray | None = None, batch_size: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        success = np.asarray(output.success, dtype=bool)
        terms = self.reward(np.asarray(output.environment_state), np.asarray(output.agent_pos), success)
        reward = np.sum(list(terms.values()), axis=0).astype(np.float32)
        return reward, success, {f"state_{name}": value for name, value in terms.items()}


def make_reward_model(task: str, reward_model: RewardModel | str | None,
                      model: WorldModel | None = None) -> RewardModel:
    """`reward_model` as given, or by name: "critic" (SOPHIA), "heads" (the world model's own reward and
    success heads) or "state" (the shaped reward on the imagined object state; needs a `model` that carries
    it). None: the critic where the task has a shipped one, else the heads (with a warning)."""
    if reward_model is None and task_info(task).name not in shipped_tasks("critic"):
        logger.warning("no shipped SOPHIA critic for %s: the imagined env's reward comes from the world model's "
                       "heads; train a critic with `wow-gym train-critic task=%s`", task, task.lower())
        reward_model = "heads"
    if reward_model is None or reward_model == "critic":  # on the world model's device, with its autocast
        return CriticRewardModel(task=task, device=model.device if model is not None else "cpu",
                                 autocast=model is not None and model.autocast)
    if reward_model == "heads":
        return HeadRewardModel()
    if reward_model == "state":
        if model is not None and model.config.object_dims is None:
            raise ValueError("reward_model='state' needs a world model that carries the object state "
                             "(object_dims in its config); this one reads it off frames: use 'critic'")
        return StateRewardModel(task)
    if isinstance(reward_model, str) or not callable(reward_model):
        raise ValueError(f"reward_model must be 'critic', 'heads', 'state' or a RewardModel, got {reward_model!r}")
    return reward_model


# -- model and spaces ---------------------------------------------------------------------------------------


def imagined_spaces(model: WorldModel | WorldModelBackend) -> tuple[spaces.Dict, spaces.Box]:
    """The sim twin's observation and action spaces, built from the model's config or the backend's
    declared frame size and state sizes (no simulator)."""
    if isinstance(model, WorldModel):
        size, env_state_dim = model.config.image_size, model.config.env_state_dim
    else:
        size, env_state_dim = model.capabilities.resolution[0], model.capabilities.state_dims[1]
    observation_space = spaces.Dict({
        "pixels": spaces.Box(0, 255, (size, size, 3), np.uint8),
        "agent_pos": spaces.Box(-np.inf, np.inf, (AGENT_POS_DIM,), np.float32),
        "environment_state": spaces.Box(-np.inf, np.inf, (env_state_dim,), np.float32),
    })
    return observation_space, spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)


# -- the engine ---------------------------------------------------------------------------------------------


def resolve_backend(task: str, backend: WorldModelBackend | str | None, checkpoint: str | Path | None,
                    model: WorldModel | None, sampling_steps: int | None, **load: Any
                    ) -> tuple[WorldModelBackend, WorldModel | None]:
    """(the backend the env drives, the DiT behind it or None): `backend` as given or by name
    (wow_gym.backends.make_backend), else the task's DiT (`model`, else `checkpoint`, else shipped), with
    load's `options` (the DiT's imagination switches, WorldModel.set_options) set on it."""
    if backend is None:
        model = load_world_model(task, checkpoint, model=model, agent_pos_dim=AGENT_POS_DIM, **load)
        return DiTBackend(task, model=model, sampling_steps=sampling_steps), model
    if checkpoint is not None or model is not None:
        raise ValueError("pass either backend= or the DiT's checkpoint= / model=, not both")
    dit_only = {"sampling_steps": sampling_steps is not None, "compile": bool(load.get("compile")),
                "world_model_options": any(v is not None for v in (load.get("options") or {}).values())}
    if any(dit_only.values()):
        given = [k for k, v in dit_only.items() if v]
        raise ValueError(f"{' and '.join(given)} set the shipped DiT's sampler, and backend= replaces it; "
                         "give them to the backend instead (e.g. make_backend('dit', task, sampling_steps=1))")
    if isinstance(backend, str):
        backend = make_backend(backend, task)
    require_env_backend(backend)
    size = load.get("image_size")
    if size is not None and backend.capabilities.resolution != (size, size):
        raise ValueError(f"backend {backend.name!r} gives {backend.capabilities.resolution} frames, not the "
                         f"{size}x{size} asked for")
    if backend.capabilities.state_dims[0] != AGENT_POS_DIM:
        raise ValueError(f"backend {backend.name!r} predicts {backend.capabilities.state_dims[0]}-D agent_pos; "
                         f"the sim twin has {AGENT_POS_DIM}-D agent_pos")
    return backend, getattr(backend, "wm", None)


class ImaginedBatch:
    """B imagined episodes in one backend batch: start rows from contexts, step all rows, score them."""

    def __init__(self, backend: WorldModelBackend, reward_model: RewardModel, instruction: str) -> None:
        self.backend, self.reward_model, self.instruction = backend, reward_model, instruction
        self.imagination = getattr(backend, "imagination", None)  # the DiT's episodes in flight, to inspect
        self.started = False

    def seed(self, rng: np.random.Generator) -> None:
        """Seed the backend's sampler from the env's RNG (same seed, same actions: same frames)."""
        self.backend.seed(int(rng.integers(2**63 - 1)))

    def start(self, rows: np.ndarray, contexts: Sequence[Context], batch_size: int
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(Re)start `rows` from their contexts: their observations [n, ...] and success [n]."""
        pixels, agent_pos, actions = stack_contexts(contexts, self.backend.capabilities.context_frames)
        every = len(rows) == batch_size  # every row, in order
        if not (every or self.started):
            raise RuntimeError("start every row (reset without reset_mask) before restarting some of them")
        instructions = [self.instruction] * len(rows)
        extra = {} if every else {"rows": rows}
        states = known_states(contexts) if self.backend.capabilities.starts_from_state else None
        if states is not None:  # the backend decides whether to use them (the DiT's known_state option)
            extra["environment_state"] = states
        self.backend.start(pixels, agent_pos, actions, instructions, **extra)
        self.started = True
        output = self.backend.observe(None if every else rows)
        _, success, _ = self._judge(output, rows, batch_size)
        observation = {"pixels": pixels[:, -1], "agent_pos": agent_pos[:, -1],
                       "environment_state": output.environment_state}
        return observation, success

    def step(self, actions: np.ndarray
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """One imagined step of every row: observations [B, ...], reward [B], success [B], reward terms."""
        if not self.started:
            raise RuntimeError("call reset() before step()")
        output = self.backend.step(actions)
        reward, success, terms = self._judge(output)
        observation = {"pixels": output.pixels, "agent_pos": output.agent_pos,
                       "environment_state": output.environment_state}
        return observation, reward, success, terms

    def _judge(self, output: StepOutput | BackendStep, rows: np.ndarray | None = None, batch_size: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        b = len(output.pixels)
        result = self.reward_model(output, [self.instruction] * b, rows=rows, batch_size=batch_size)
        reward, success = np.asarray(result[0], dtype=np.float32), np.asarray(result[1], dtype=bool)
        terms = {k: np.asarray(v, dtype=np.float32) for k, v in (result[2] if len(result) > 2 else {}).items()}
        if reward.shape != (b,) or success.shape != (b,) or any(v.shape != (b,) for v in terms.values()):
            raise ValueError(f"{type(self.reward_model).__name__} must return reward, success (and reward terms) "
                             f"of shape ({b},), got {reward.shape}, {success.shape}, "
                             f"{ {k: v.shape for k, v in terms.items()} }")
        return reward, success, terms


def _check_render_mode(render_mode: str | None) -> str | None:
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    return render_mode


# -- the envs -----------------------------------------------------------------------------------------------


def start_pool(starts: StartPool | str | Sequence[str] | None, steps: Sequence[int] = (0, 0)) -> StartPool | None:
    """The StartPool of `starts`: one given, or the episodes of dataset roots, started at steps in `steps`."""
    if starts is None or isinstance(starts, StartPool):
        return starts
    return StartPool.from_datasets(starts, steps)


class ImaginedEnv(gym.Env):
    """One imagined episode at a time, with the sim twin's spaces; truncation comes from the TimeLimit."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(self, task: str = "Lift", checkpoint: str | Path | None = None,
                 model: WorldModel | None = None, image_size: int | None = None,
                 sampling_steps: int | None = None, device: str = "auto", autocast: bool | str = "auto",
                 compile: bool = False,
                 terminate_on_success: bool = False, reward_model: RewardModel | str | None = None,
                 instruction: str | None = None, render_mode: str | None = None,
                 starts: StartPool | str | Sequence[str] | None = None,
                 start_steps: Sequence[int] = (0, 0), backend: WorldModelBackend | str | None = None,
                 world_model_options: dict[str, Any] | None = None) -> None:
        info = task_info(task)
        self.render_mode = _check_render_mode(render_mode)
        self.task, self.instruction = info.name, instruction or info.instruction
        self.terminate_on_success = terminate_on_success
        backend, self.model = resolve_backend(info.name, backend, checkpoint, model, sampling_steps, device=device,
                                              autocast=autocast, compile=compile, image_size=image_size,
                                              options=world_model_options)
        self.observation_space, self.action_space = imagined_spaces(backend)
        k = backend.capabilities.context_frames
        self.source = ContextSource(self.task, self.instruction, self.observation_space, k,
                                    start_pool(starts, start_steps))
        self.batch = ImaginedBatch(backend, make_reward_model(info.name, reward_model, self.model),
                                   self.instruction)
        self._history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=k)  # for generate()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode from real frames; by default the first frame of a seeded simulator layout (with
        `starts`: a random step in `start_steps` of a random stored episode).

        options: exactly one of 'sim_state' (a simulator state), 'episode' (a Rollout, + 'start' step) or
        'pixels' [k,H,W,3] uint8 + 'agent_pos' [k,9] (+ 'actions' [k-1,7]).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        if "reset_mask" in options:
            raise ValueError("reset_mask is a vector-env option; ImaginedEnv runs one episode")
        context = self.source.context(options, self.np_random)
        self.batch.seed(self.np_random)
        observation, success = self.batch.start(np.array([0]), [context], 1)
        self._history.clear()
        self._history.extend(zip(context.pixels, context.agent_pos))
        return self._single(observation), self._info(success[0])

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """One imagined control step; the simulator is not touched."""
        action = check_actions(action, (ACTION_DIM,), "action")
        observation, reward, success, terms = self.batch.step(action[None])
        observation = self._single(observation)
        self._history.append((observation["pixels"], observation["agent_pos"]))
        terminated = bool(self.terminate_on_success and success[0])
        info = self._info(success[0])
        info.update({f"reward_{name}": float(value[0]) for name, value in terms.items()})
        return observation, float(reward[0]), terminated, False, info

    def render(self) -> np.ndarray | None:
        """The last frame (rgb_array), or None when render_mode is None or before reset."""
        if self.render_mode is None or not self._history:
            return None
        return self._history[-1][0].copy()

    def generate(self, horizon: int, instruction: str | None = None) -> np.ndarray:
        """An instruction-conditioned plan from the current context (no actions): frames [horizon,H,W,3]."""
        if not self._history:
            raise RuntimeError("call reset() before generate()")
        require(self.batch.backend, "plans_from_instruction")
        pixels, agent_pos = (np.stack(x)[None] for x in zip(*self._history))
        return self.batch.backend.plan(pixels, agent_pos, [instruction or self.instruction], horizon)[0]

    def close(self) -> None:
        self.source.close()

    def _single(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: np.array(value[0]) for key, value in observation.items()}

    def _info(self, success: bool) -> dict[str, Any]:
        return {"is_success": bool(success), "instruction": self.instruction, "source": SOURCE}


class ImaginedVectorEnv(VectorEnv):
    """N imagined episodes stepped in one model batch, with same-step autoreset and per-env truncation.

    An env that terminates or reaches max_episode_steps is reset in the same step (from a fresh seeded
    simulator layout, or a stored episode's state with `starts`); its last observation and info are in
    info['final_obs'] / info['final_info'].
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ,
                                          "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, task: str = "Lift", checkpoint: str | Path | None = None,
                 model: WorldModel | None = None, image_size: int | None = None,
                 sampling_steps: int | None = None, device: str = "auto", autocast: bool | str = "auto",
                 compile: bool = False,
                 terminate_on_success: bool = False,
                 reward_model: RewardModel | str | None = None, instruction: str | None = None,
                 render_mode: str | None = None, max_episode_steps: int | None = None,
                 starts: StartPool | str | Sequence[str] | None = None,
                 start_steps: Sequence[int] = (0, 0), backend: WorldModelBackend | str | None = None,
                 world_model_options: dict[str, Any] | None = None) -> None:
        info = task_info(task)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.render_mode = _check_render_mode(render_mode)
        self.task, self.instruction = info.name, instruction or info.instruction
        self.terminate_on_success = terminate_on_success
        # gym.make_vec passes the registered horizon; built directly, the task's horizon applies too.
        self.max_episode_steps = info.max_episode_steps if max_episode_steps is None else max_episode_steps
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")
        backend, self.model = resolve_backend(info.name, backend, checkpoint, model, sampling_steps, device=device,
                                              autocast=autocast, compile=compile, image_size=image_size,
                                              options=world_model_options)
        self.single_observation_space, self.single_action_space = imagined_spaces(backend)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.source = ContextSource(self.task, self.instruction, self.single_observation_space,
                                    backend.capabilities.context_frames, start_pool(starts, start_steps))
        self.batch = ImaginedBatch(backend, make_reward_model(info.name, reward_model, self.model),
                                   self.instruction)
        self.episode_steps = np.zeros(num_envs, dtype=np.int64)
        self._observation: dict[str, np.ndarray] | None = None

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset every env, or only those in options['reset_mask'] (a bool array [N]).

        Other options as in ImaginedEnv.reset, with one entry per env being reset (sim_state [n,S], pixels
        [n,k,H,W,3], a list of n Rollouts or one for all ...). A list of seeds seeds with its first.
        """
        if isinstance(seed, Sequence):
            seed = seed[0]
        super().reset(seed=seed)
        options = dict(options or {})
        rows = self._rows_to_reset(options.pop("reset_mask", None))
        if len(rows) == self.num_envs:
            self.batch.seed(self.np_random)
        contexts = [self.source.context(row, self.np_random) for row in split_options(options, len(rows))]
        return self._start(rows, contexts, {})

    def step(self, actions: np.ndarray
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One imagined step of every env (one model call); finished envs are reset in the same step."""
        actions = check_actions(actions, (self.num_envs, ACTION_DIM))
        observation, reward, success, terms = self.batch.step(actions)
        self._observation = observation
        self.episode_steps += 1
        terminated = success & self.terminate_on_success
        truncated = self.episode_steps >= self.max_episode_steps
        info = self._info(np.arange(self.num_envs), success)
        for name, value in terms.items():  # named reward terms, in gymnasium's batched layout
            info[f"reward_{name}"], info[f"_reward_{name}"] = value, np.ones(self.num_envs, dtype=bool)
        done = terminated | truncated
        if done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = {key: value[i].copy() for key, value in observation.items()}
            final_info = {key: value.copy() for key, value in info.items()}
            for key in (k for k in final_info if k.startswith("_")):
                final_info[key] = done.copy()
            rows = np.flatnonzero(done)
            contexts = [self.source.context({}, self.np_random) for _ in rows]
            info = dict(info, final_obs=final_obs, _final_obs=done, final_info=final_info)
            observation, info = self._start(rows, contexts, info)
        return observation, reward.astype(np.float64), terminated, truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:
        """The last frame of every env (rgb_array), or None."""
        if self.render_mode is None or self._observation is None:
            return None
        return tuple(frame.copy() for frame in self._observation["pixels"])

    def close_extras(self, **kwargs: Any) -> None:
        self.source.close()

    def _rows_to_reset(self, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            return np.arange(self.num_envs)
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self.num_envs,) or not mask.any():
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with "
                             f"at least one True, got {mask.dtype} {mask.shape}")
        if self._observation is None:
            raise RuntimeError("reset every env (no reset_mask) before resetting some of them")
        return np.flatnonzero(mask)

    def _start(self, rows: np.ndarray, contexts: list[Context], info: dict[str, Any]
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        observation, success = self.batch.start(rows, contexts, self.num_envs)
        if self._observation is None:
            self._observation = {key: np.zeros(s.shape, s.dtype) for key, s in self.observation_space.items()}
        self._observation = {key: value.copy() for key, value in self._observation.items()}
        for key, value in observation.items():
            self._observation[key][rows] = value
        self.episode_steps[rows] = 0
        reset_info = self._info(rows, success)
        for key, value in reset_info.items():  # a reset env's info is its reset info, as in gymnasium
            if key.startswith("_"):
                info[key] = value | info[key] if key in info else value
            else:
                merged = info[key].copy() if key in info else value
                merged[rows] = value[rows]
                info[key] = merged
        return {key: value.copy() for key, value in self._observation.items()}, info

    def _info(self, rows: np.ndarray, success: np.ndarray) -> dict[str, Any]:
        """Batched info in gymnasium's layout: a value array and a '_key' mask per key."""
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[rows] = True
        is_success = np.zeros(self.num_envs, dtype=bool)
        is_success[rows] = success
        instruction = np.full(self.num_envs, None, dtype=object)
        instruction[rows] = self.instruction
        source = np.full(self.num_envs, None, dtype=object)
        source[rows] = SOURCE
        return {"is_success": is_success, "_is_success": mask.copy(), "instruction": instruction,
                "_instruction": mask.copy(), "source": source, "_source": mask.copy()}

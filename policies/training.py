"""`wow-gym train-policy`: a stable-baselines3 policy trained in imagination or in the simulator, watched in
the sim twin while it trains.

One recipe for any wow_gym env id: an optional behaviour-cloning warm start (policies/bc.py), then PPO or SAC
on N envs as one SB3 VecEnv (the imagined env runs its N envs as one world-model batch), with the image +
proprioception extractor of policies/features.py. The policy reads `pixels` and `agent_pos` only, so it can
be exported and run on a real arm. Every `eval.every_steps` the deterministic policy runs from fixed held-out
start states in the simulator, so the imagined curve (the critic's reward and success) and the real one (the
simulator's) are drawn together, in TensorBoard and in curves.png.

Run folder (`out`): bc.zip (the warm start), checkpoints/rl_<steps>_steps.zip (+ SAC's replay buffer),
final.zip, curves.json / curves.png, tensorboard/, state.json (wall-clock spent, for `max_minutes`), the
resolved config and commit. Rerunning the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import FilterObservation
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import (
    SubprocVecEnv,
    VecEnv,
    VecEnvWrapper,
    VecMonitor,
    is_vecenv_wrapped,
)
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from wow_gym.data import DatasetReader
from wow_gym.devices import resolve_device
from wow_gym.envs.imagined_starts import check_start_steps
from wow_gym.envs.wrappers import DomainRandomizationConfig, RandomizeDomain
from wow_gym.policies.bc import (
    BCConfig,
    BCDataset,
    bc_batch,
    bc_loss,
    behaviour_clone,
    load_bc_dataset,
    object_state_dims,
)
from wow_gym.policies.features import (
    VALUE_STATE_KEY,
    AsymmetricActorCriticPolicy,
    copy_actor,
    policy_kwargs,
)
from wow_gym.policies.shipped import load_policy
from wow_gym.policies.sim_eval import SimEvalConfig, make_sim, run_sim_episodes, sb3_actor
from wow_gym.policies.spec import POLICY_KEYS
from wow_gym.provenance import atomic_write_text
from wow_gym.registry import TASKS
from wow_gym.sb3_vec_env import SB3VecEnv
from wow_gym.world_models.plots import line_plot, save_png
from wow_gym.world_models.video.model import WorldModel, checkpoint_options

logger = logging.getLogger(__name__)
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
CHECKPOINT = re.compile(r"rl_(\d+)_steps\.zip$")


@dataclass
class PPOConfig:
    """PPO's knobs; the defaults are for fine-tuning a warm-started policy (small steps, clipped)."""

    n_steps: int = 128  # per env, per rollout
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 1e-4
    clip_range: float = 0.1
    ent_coef: float = 0.0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    target_kl: float | None = 0.05


@dataclass
class SACConfig:
    buffer_size: int = 50_000
    learning_starts: int = 1000
    batch_size: int = 128
    learning_rate: float = 3e-4
    train_freq: int = 1
    gradient_steps: int = 1
    gamma: float = 0.99


@dataclass
class TrainPolicyConfig:
    """What `wow-gym train-policy` trains, on what, for how long."""

    env: str = "WoW/Lift-Imagined-v0"  # any wow_gym id: imagined (WoW/<Task>-Imagined-v0) or sim (WoW/<Task>-v0)
    out: str = "outputs/policies/lift-imagined"
    algo: str = "ppo"  # ppo | sac
    n_envs: int = 8
    total_timesteps: int = 20_000  # RL steps after the warm start (0: BC only)
    max_minutes: float | None = None  # wall-clock budget of the RL phase (summed over resumes); None: none
    terminate_on_success: bool = True
    # With terminate_on_success, a success ends the episode and with it every reward after it: under a dense
    # reward (robosuite's shaped reward pays ~0.5 a step for reaching and grasping) an agent then earns more
    # by never finishing. absorbing_success adds, at a terminating success, the discounted reward of staying
    # in that success step to the task's time limit (AbsorbingSuccess), so finishing, and finishing early,
    # is always worth the most. false: the env's reward as it is (every RL figure before 2026-12-05).
    absorbing_success: bool = True
    randomize: bool = False  # sim training only: RandomizeDomain at every reset
    # sim training only: "sync" steps the n_envs simulators in turn in this process; "subproc" runs each in
    # its own process (SB3's SubprocVecEnv), so N cores step N simulators at once
    sim_vec_env: str = "sync"
    world_model: str | None = None  # imagined envs: a checkpoint dir; None: the shipped one
    # imagined envs: imagination switches set on that checkpoint (WorldModel.set_options; None keeps the
    # checkpoint's), e.g. arm_physics: the robot's own arm, stepped in MuJoCo
    world_model_options: dict[str, Any] = field(default_factory=checkpoint_options)
    reward_model: str | None = None  # imagined envs: critic | heads | state; None: the shipped critic
    sampling_steps: int | None = None
    autocast: bool | str = "auto"  # imagined envs: bf16 autocast (true | false | auto: GPUs, CPUs with bf16 units)
    compile: bool = False  # imagined envs: torch.compile the world model's DiTs (WorldModel.compile_samplers)
    # imagined envs: start episodes from random steps (imagined_start_steps: first, last) of the episodes in
    # these LeRobot datasets (for example the start policy's own rollouts, `wow-gym collect policy=shipped`)
    # instead of fresh layouts, and cut them after imagined_horizon steps (None: the task's horizon); a cut
    # episode is truncated, so PPO bootstraps its value
    imagined_starts: list[str] | None = None
    imagined_start_steps: list[int] = field(default_factory=lambda: [0, 0])
    imagined_horizon: int | None = None
    init: str | None = None  # start from this SB3 zip (e.g. another run's bc.zip) or shipped policy folder
    bc: BCConfig = field(default_factory=BCConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    eval: SimEvalConfig = field(default_factory=SimEvalConfig)
    value_warmup_steps: int = 0  # PPO: env steps of RL that train only the value function (a fresh critic
    #                              behind a warm-started actor would otherwise steer it with noise)
    bc_steps_per_update: int = 0  # BC gradient steps on bc.datasets after every RL update (keeps RL near the data)
    # Self-imitation: BC gradient steps after every RL update on the run's own successful training episodes
    # (in an imagined env: those the imagination calls successes), kept in a buffer of the newest
    # `self_imitation_frames` frames. 0: off.
    self_imitation_steps: int = 0
    self_imitation_frames: int = 20_000
    self_imitation_lr: float = 1e-4
    # Keep the image + proprio feature extractor as the warm start left it: RL (and its BC steps) train only
    # the layers after it, so training on imagined frames cannot tune the features to the imagination's
    # rendering instead of the simulator's.
    freeze_features: bool = False
    # PPO only: an asymmetric critic. The value function reads agent_pos and the world's object state
    # (`environment_state`: the simulator's, or the one the world model imagines) instead of the frames; the
    # actor still reads pixels and agent_pos, and final.zip holds the actor alone in a standard policy.
    value_state: bool = False
    checkpoint_every: int = 2048  # env steps
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    progress: bool = True


def parse_env_id(env_id: str) -> tuple[str, bool]:
    """(task name, imagined?) of a wow_gym env id, or a ValueError listing the ids."""
    for info in TASKS.values():
        if env_id == info.env_id:
            return info.name, False
        if env_id == info.imagined_env_id:
            return info.name, True
    known = [i for t in TASKS.values() for i in (t.env_id, t.imagined_env_id)]
    raise ValueError(f"unknown env {env_id!r}; expected one of {known}")


def make_train_env(config: TrainPolicyConfig, world_model: Any = None) -> VecEnv:
    """The training VecEnv: N imagined envs in one world-model batch, or N simulators stepped in turn; it
    hands the policy pixels and agent_pos only."""
    task, imagined = parse_env_id(config.env)
    options = {name: value for name, value in config.world_model_options.items() if value is not None}
    if options and not imagined and not config.bc.imagined:
        raise ValueError(f"world_model_options {sorted(options)} set the imagined env's world model (or the "
                         f"one bc.imagined clones through); {config.env} is the simulator (train in "
                         "WoW/<Task>-Imagined-v0, set bc.imagined=true, or leave them null)")
    if imagined:
        if config.randomize:
            raise ValueError("randomize=true perturbs the simulator's scene; the imagined env has none to "
                             "perturb (train in WoW/<Task>-v0 with randomize=true)")
        kwargs: dict[str, Any] = {"terminate_on_success": config.terminate_on_success,
                                  "sampling_steps": config.sampling_steps, "reward_model": config.reward_model,
                                  "autocast": config.autocast, "compile": config.compile,
                                  "world_model_options": options}
        if config.imagined_starts:
            kwargs.update(starts=list(config.imagined_starts), start_steps=list(config.imagined_start_steps))
        if config.imagined_horizon is not None:
            kwargs["max_episode_steps"] = config.imagined_horizon
        if world_model is not None:
            kwargs["model"] = world_model
        elif config.world_model is not None:
            kwargs["checkpoint"] = config.world_model
        env = gym.make_vec(config.env, num_envs=config.n_envs, **kwargs)
    elif config.sim_vec_env == "subproc":
        # SB3's own process-per-env VecEnv; it resets finished envs itself, so the keys are kept per env
        venv = SubprocVecEnv([partial(_sim_env, config, keep=training_keys(config))
                              for _ in range(config.n_envs)],
                             start_method="forkserver")
        venv.seed(config.seed)
        return _absorbing(config, VecMonitor(venv))
    else:
        env = gym.vector.SyncVectorEnv([partial(_sim_env, config) for _ in range(config.n_envs)])
    venv = SB3VecEnv(env, keys=training_keys(config))
    venv.seed(config.seed)
    return _absorbing(config, VecMonitor(venv))


def training_keys(config: TrainPolicyConfig) -> tuple[str, ...]:
    """The observation keys the training VecEnv hands over: the policy's, and the object state for an
    asymmetric critic (value_state)."""
    return (*POLICY_KEYS, VALUE_STATE_KEY) if config.value_state else POLICY_KEYS


def _absorbing(config: TrainPolicyConfig, venv: VecEnv) -> VecEnv:
    """AbsorbingSuccess outside VecMonitor (its episode returns stay the env's own), when the config asks."""
    if not (config.absorbing_success and config.terminate_on_success):
        return venv
    gamma = config.ppo.gamma if config.algo == "ppo" else config.sac.gamma
    return AbsorbingSuccess(venv, gamma, TASKS[parse_env_id(config.env)[0]].max_episode_steps)


class AbsorbingSuccess(VecEnvWrapper):
    """Success as an absorbing state when the env terminates on it: the step that terminates in success is
    paid, on top of its reward r, the discounted reward of staying there until the task's time limit,
    r * (gamma + ... + gamma^n) for the n steps left, and says so in info["success_bonus"].

    Without it, terminate_on_success and a dense per-step reward disagree: robosuite's shaped Lift reward
    pays 1 a step once lifted but up to 0.56 a step for reaching and grasping, so an episode that lifts at
    step 40 and ends there earns less than one that holds the cube on the table for 100 steps; PPO runs from
    the BC policy showed the symptom in both worlds (return up, success down). The return with the bonus is
    the return of an episode that stays lifted, so the task's own ranking holds and episodes stay short. The
    steps left are counted from the episode's own first step (an imagined start mid-episode is given the
    whole horizon). Necessary, not sufficient: at PPO's lr 1e-4 a run with it still lost in the simulator.
    SB3 has no such wrapper; gymnasium's act on single envs, not on the SB3 VecEnv both worlds train
    through."""

    def __init__(self, venv: VecEnv, gamma: float, horizon: int) -> None:
        if not 0 < gamma < 1 or horizon < 1:
            raise ValueError(f"AbsorbingSuccess needs 0 < gamma < 1 and a horizon >= 1, got {gamma}, "
                             f"{horizon}")
        if not is_vecenv_wrapped(venv, VecMonitor):
            raise ValueError("AbsorbingSuccess wraps a VecMonitor: it reads the episode's length from "
                             "info['episode']")
        super().__init__(venv)
        self.gamma, self.horizon = gamma, horizon

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        observation, rewards, dones, infos = self.venv.step_wait()
        rewards = np.asarray(rewards, dtype=np.float32).copy()
        for i in np.flatnonzero(dones):
            if infos[i].get("is_success", False) and not infos[i].get("TimeLimit.truncated", False):
                left = max(self.horizon - int(infos[i]["episode"]["l"]), 0)  # VecMonitor's episode length
                bonus = float(rewards[i]) * self.gamma * (1 - self.gamma ** left) / (1 - self.gamma)
                rewards[i] += bonus
                infos[i]["success_bonus"] = bonus
        return observation, rewards, dones, infos


def _sim_env(config: TrainPolicyConfig, keep: tuple[str, ...] | None = None) -> gym.Env:
    """One training simulator (module level: SubprocVecEnv pickles it into its worker)."""
    sim = gym.make(config.env, terminate_on_success=config.terminate_on_success)
    if config.randomize:
        sim = RandomizeDomain(sim, DomainRandomizationConfig())
    return FilterObservation(sim, list(keep)) if keep is not None else sim


def latest_checkpoint(out: Path) -> Path | None:
    """The RL checkpoint with the most steps under out/checkpoints, or None."""
    found = [(int(m.group(1)), p) for p in (out / "checkpoints").glob("rl_*_steps.zip")
             if (m := CHECKPOINT.search(p.name))]
    return max(found)[1] if found else None


class SimTwinEval(BaseCallback):
    """Every `every_steps` env steps, the deterministic policy in the simulator from fixed start states;
    logs sim/* beside imagined/* (or train/* for a sim-trained policy) and appends to curves.json."""

    def __init__(self, config: SimEvalConfig, task: str, curves: list[dict[str, Any]], out: Path,
                 train_label: str, progress: bool) -> None:
        super().__init__()
        self.config, self.task, self.curves, self.out = config, task, curves, out
        self.train_label, self.progress = train_label, progress
        self._episodes: list[tuple[bool, float]] = []  # finished training episodes since the last point
        self._running: np.ndarray | None = None
        self._next = (curves[-1]["timesteps"] if curves else 0) + config.every_steps
        self.seconds = 0.0  # spent evaluating, which the wall-clock budget leaves out
        self.clock: Callable[[], float] | None = None  # RL seconds so far (WallClock.elapsed)
        self._envs: list[gym.Env] = []  # simulators kept for every evaluation of the run

    def _on_training_start(self) -> None:
        if not self.curves:
            self.evaluate()

    def _on_training_end(self) -> None:
        if self.curves[-1]["timesteps"] != self.num_timesteps:
            self.evaluate()
        self.close()

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs = []

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        if self._running is None:
            self._running = np.zeros(len(dones), bool)
        for i, info in enumerate(infos):
            self._running[i] |= bool(info.get("is_success", False))
            if dones[i]:  # VecMonitor's return: the env's own reward, without AbsorbingSuccess's bonus
                self._episodes.append((bool(self._running[i]), float(info["episode"]["r"])))
                self._running[i] = False
        if self.config.every_steps > 0 and self.num_timesteps >= self._next:
            self._next += self.config.every_steps
            self.evaluate()
        return True

    def evaluate(self) -> dict[str, Any]:
        started = time.monotonic()
        if not self._envs:
            self._envs = [make_sim(self.task, self.config.randomize)
                          for _ in range(min(self.config.parallel, self.config.episodes))]
        results = run_sim_episodes(sb3_actor(self.model), self.task, self.config, envs=self._envs,
                                   progress=self.progress)
        self.seconds += time.monotonic() - started
        point: dict[str, Any] = {"timesteps": int(self.num_timesteps),
                                 "sim_success_rate": float(np.mean([r.success for r in results])),
                                 "sim_return": float(np.mean([r.sim_return for r in results]))}
        if self.clock is not None:
            point["rl_seconds"] = float(self.clock())
        if self._episodes:
            point[f"{self.train_label}_success_rate"] = float(np.mean([s for s, _ in self._episodes]))
            point[f"{self.train_label}_return"] = float(np.mean([r for _, r in self._episodes]))
            point[f"{self.train_label}_episodes"] = len(self._episodes)
        self._episodes = []
        for name, value in point.items():
            if name not in ("timesteps", "rl_seconds"):
                self.logger.record(name.replace("_", "/", 1), value)
        self.logger.dump(self.num_timesteps)
        self.curves.append(point)
        atomic_write_text(self.out / "curves.json", json.dumps(self.curves, indent=2) + "\n")
        logger.info("sim twin at %d steps: %s", self.num_timesteps, point)
        return point


class WallClock(BaseCallback):
    """Stops learn() once the RL phase has used `max_minutes` in all (state.json keeps the sum across
    resumes) and saves a checkpoint every `every` env steps (SAC: with its replay buffer). Time spent in
    the sim-twin evaluations does not count: the budget is collecting experience and learning from it."""

    def __init__(self, out: Path, max_minutes: float | None, every: int, spent: float,
                 evaluation: SimTwinEval | None = None) -> None:
        super().__init__()
        self.out, self.max_seconds, self.every, self.spent = out, (max_minutes or 0) * 60 or None, every, spent
        self.evaluation = evaluation
        self._started = time.monotonic()
        self._stopped: float | None = None
        self._evaluating = self._evaluated = 0.0
        self._next = 0

    def _on_training_start(self) -> None:
        self._started, self._stopped = time.monotonic(), None
        self._evaluating = self.evaluation.seconds if self.evaluation else 0.0
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_training_end(self) -> None:  # runs before the final sim-twin evaluation
        self._stopped, self._evaluated = time.monotonic(), self._evaluation_seconds()

    def _evaluation_seconds(self) -> float:
        return self.evaluation.seconds - self._evaluating if self.evaluation else 0.0

    def elapsed(self) -> float:
        if self._stopped is not None:
            return self.spent + self._stopped - self._started - self._evaluated
        return self.spent + time.monotonic() - self._started - self._evaluation_seconds()

    def _on_step(self) -> bool:
        out_of_time = self.max_seconds is not None and self.elapsed() >= self.max_seconds
        if self.num_timesteps >= self._next or out_of_time:
            self._next += self.every
            self.save()
        return not out_of_time

    def save(self) -> Path:
        path = self.out / "checkpoints" / f"rl_{self.num_timesteps}_steps.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(path)
        if isinstance(self.model, SAC):
            self.model.save_replay_buffer(path.with_suffix(".replay.pkl"))
        write_state(self.out, {"rl_seconds": self.elapsed(), "timesteps": int(self.num_timesteps)})
        return path


def value_parameter(name: str) -> bool:
    """A parameter of PPO's value function: value_net, mlp_extractor.value_net, and an asymmetric critic's own
    extractor (vf_features_extractor; a shared extractor's parameters are named features_extractor)."""
    return "value" in name or name.startswith("vf_features_extractor.")


class ValueWarmup(BaseCallback):
    """PPO/A2C: for the first `steps` env steps only the value function learns (the actor, its log-std and
    the shared extractor are frozen), so the warm-started actor is not pushed around by a critic that has
    not yet seen a return."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self._frozen: list[torch.nn.Parameter] = []

    def _on_rollout_end(self) -> None:  # runs just before each update
        warming = self.num_timesteps <= self.steps
        if warming and not self._frozen:
            self._frozen = [p for name, p in self.model.policy.named_parameters()
                            if p.requires_grad and not value_parameter(name)]
            for parameter in self._frozen:
                parameter.requires_grad_(False)
        elif not warming and self._frozen:
            for parameter in self._frozen:
                parameter.requires_grad_(True)
            self._frozen = []

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        for parameter in self._frozen:
            parameter.requires_grad_(True)
        self._frozen = []


class BCRegularizer(BaseCallback):
    """`steps` behaviour-cloning gradient steps after every RL update: RL fine-tuning that stays near the
    demonstrations (the alternating form of BC-regularised policy gradients, as in DAPG)."""

    name = "bc"  # the TensorBoard key: train/<name>_loss

    def __init__(self, data: BCDataset | None, config: BCConfig, steps: int, seed: int, lr: float | None = None
                 ) -> None:
        super().__init__()
        self.data, self.config, self.steps = data, config, steps
        self.lr = config.lr * 0.1 if lr is None else lr
        self.rng, self.generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        self.optimizer: torch.optim.Optimizer | None = None

    def _dataset(self) -> BCDataset | None:
        return self.data

    def _on_rollout_start(self) -> None:  # runs after each update (and once before the first rollout)
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(
                [p for name, p in self.model.policy.named_parameters() if not value_parameter(name)],
                lr=self.lr, weight_decay=self.config.weight_decay)
            return
        data = self._dataset()
        if data is None or self.steps == 0:
            return
        if not any(p.requires_grad for group in self.optimizer.param_groups for p in group["params"]):
            return  # the actor is frozen (value warm-up): nothing to clone into yet
        self.model.policy.set_training_mode(True)
        losses = []
        for _ in range(self.steps):
            index = self.rng.integers(0, len(data), self.config.batch_size)
            loss = bc_loss(self.model, *bc_batch(data, index, self.config.shift, self.generator, self.model.device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.model.policy.set_training_mode(False)
        self.logger.record(f"train/{self.name}_loss", float(np.mean(losses)))

    def _on_step(self) -> bool:
        return True


class SelfImitation(BCRegularizer):
    """BCRegularizer's steps on the run's own successful episodes instead of a dataset (self-imitation,
    Oh et al. 2018, in its success-filtered form): the sampled actions of every training episode that ended
    in success are cloned back into the actor, so exploration that found a success is kept even when the
    policy-gradient step from a sparse, noisy return is small. SB3 has no such thing.

    Episodes are gathered per env from the frames the actions were taken on (SB3 hands the callback the
    step's actions and keeps the pre-step observation in `model._last_obs`); only finished, successful
    episodes enter the buffer, which keeps the newest `frames` frames. The buffer is not saved: a resumed
    run starts it empty."""

    name = "self_imitation"

    def __init__(self, steps: int, frames: int, lr: float, config: BCConfig, seed: int) -> None:
        if steps < 0 or frames < 1 or not lr > 0:
            raise ValueError(f"self_imitation_steps must be >= 0, self_imitation_frames >= 1 and "
                             f"self_imitation_lr > 0, got {steps}, {frames}, {lr}")
        super().__init__(None, config, steps, seed, lr)
        self.frames = frames
        self._open: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []  # per env: this episode so far
        self._succeeded = np.zeros(0, bool)  # per env: has this episode succeeded yet
        self._successes: deque[tuple[np.ndarray, ...]] = deque()  # (pixels, agent_pos, action) per episode
        self.episodes = 0  # successful episodes taken in

    def _on_step(self) -> bool:
        obs, actions = self.model._last_obs, np.asarray(self.locals["actions"], dtype=np.float32)
        dones, infos = self.locals["dones"], self.locals["infos"]
        if not self._open:
            self._open, self._succeeded = [[] for _ in range(len(dones))], np.zeros(len(dones), bool)
        low, high = self.model.action_space.low, self.model.action_space.high
        for i, steps in enumerate(self._open):
            # SB3 hands the policy channel-first frames; BCDataset keeps them as the envs give them
            steps.append((np.ascontiguousarray(obs["pixels"][i].transpose(1, 2, 0)), obs["agent_pos"][i].copy(),
                          np.clip(actions[i], low, high)))
            self._succeeded[i] |= bool(infos[i].get("is_success", False))  # at any step of the episode
            if dones[i]:
                if self._succeeded[i]:
                    self._take(steps)
                self._open[i], self._succeeded[i] = [], False
        return True

    def _take(self, steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        self._successes.append(tuple(np.stack(column) for column in zip(*steps)))
        self.episodes += 1
        while sum(len(e[2]) for e in self._successes) - len(self._successes[0][2]) >= self.frames:
            self._successes.popleft()  # keep the newest episodes that fill `frames`
        self.data = None  # rebuilt at the next update
        self.logger.record("train/self_imitation_episodes", self.episodes)

    def _dataset(self) -> BCDataset | None:
        if self.data is None and self._successes:
            pixels, agent_pos, action = (np.concatenate(c)[-self.frames:] for c in zip(*self._successes))
            episode = np.concatenate([np.full(len(e[2]), i) for i, e in enumerate(self._successes)])[-self.frames:]
            self.data = BCDataset(pixels, agent_pos.astype(np.float32), action, episode)
        return self.data


class KeepKeys(VecEnvWrapper):
    """A Dict-observation VecEnv seen through some of its keys: how an asymmetric run loads a warm start
    that reads only the policy's keys onto an env that also hands over the object state. SB3's
    VecExtractDictObs keeps one key and drops the Dict; this keeps a Dict of several."""

    def __init__(self, venv: VecEnv, keys: tuple[str, ...]) -> None:
        missing = [key for key in keys if key not in venv.observation_space.spaces]
        if missing:
            raise ValueError(f"the env has no observation keys {missing}; it has "
                             f"{sorted(venv.observation_space.spaces)}")
        super().__init__(venv, observation_space=gym.spaces.Dict(
            {key: venv.observation_space[key] for key in keys}))
        self.keys = keys

    def _keep(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: observation[key] for key in self.keys}

    def reset(self) -> Any:
        return self._keep(self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        observation, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = self._keep(info["terminal_observation"])
        return self._keep(observation), rewards, dones, infos


def value_state_statistics(datasets: list[str], space: gym.spaces.Dict) -> dict[str, Any]:
    """StateExtractor's standardisation: agent_pos and environment_state's mean and std from the first of
    `datasets` whose meta/stats.json has them (wow-gym collect writes it); none found: none (raw inputs)."""
    dims = (space["agent_pos"].shape[0], space[VALUE_STATE_KEY].shape[0])
    for root in datasets:
        stats = DatasetReader(root).stats() or {}
        parts = [stats.get(name) for name in ("observation.state", "observation.environment_state")]
        if all(part is not None for part in parts) and tuple(len(part["mean"]) for part in parts) == dims:
            return {"mean": [float(v) for part in parts for v in part["mean"]],
                    "std": [float(v) for part in parts for v in part["std"]]}
    logger.warning("no dataset among %s has agent_pos and environment_state statistics; the asymmetric "
                   "critic reads them unstandardised", datasets)
    return {}


def write_state(out: Path, values: dict[str, Any]) -> None:
    state = read_state(out)
    state.update(values)
    atomic_write_text(out / "state.json", json.dumps(state, indent=2) + "\n")


def read_state(out: Path) -> dict[str, Any]:
    path = out / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


class PolicyTrainer:
    """Warm start, RL, sim-twin evaluation, checkpoints and resume for one run folder."""

    def __init__(self, config: TrainPolicyConfig) -> None:
        if config.algo not in ALGORITHMS:
            raise ValueError(f"algo must be one of {sorted(ALGORITHMS)}, got {config.algo!r}")
        if config.sim_vec_env not in ("sync", "subproc"):
            raise ValueError(f"sim_vec_env must be 'sync' (one process) or 'subproc' (a process per simulator), "
                             f"got {config.sim_vec_env!r}")
        if config.n_envs < 1 or config.total_timesteps < 0:
            raise ValueError(f"n_envs must be >= 1 and total_timesteps >= 0, got {config.n_envs}, "
                             f"{config.total_timesteps}")
        self.task, self.imagined = parse_env_id(config.env)
        if isinstance(config.bc.aux_state_dims, str):
            if config.bc.aux_state_dims != "object":
                raise ValueError(f"bc.aux_state_dims must be a list of environment_state indices, null (all) or "
                                 f"'object' (the task's object position and offset), got "
                                 f"{config.bc.aux_state_dims!r}")
            config = replace(config, bc=replace(config.bc, aux_state_dims=object_state_dims(self.task)))
        self.config = config
        if not self.imagined and (config.imagined_starts or config.imagined_horizon is not None):
            raise ValueError("imagined_starts and imagined_horizon shape the imagined env's episodes; "
                             f"{config.env} is the simulator (use WoW/{self.task}-Imagined-v0)")
        if config.imagined_horizon is not None and config.imagined_horizon < 1:
            raise ValueError(f"imagined_horizon must be >= 1 (imagined steps per episode), got "
                             f"{config.imagined_horizon}")
        check_start_steps(config.imagined_start_steps)
        for root in config.imagined_starts or []:
            DatasetReader(root)  # a clear DatasetError now, not in the middle of the run
        self.out = Path(config.out)
        self.stage_dir = self.out / "checkpoints"  # what an interrupted run says to resume from
        self.out.mkdir(parents=True, exist_ok=True)

    def run(self, world_model: Any = None) -> dict[str, Any]:
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        venv = make_train_env(cfg, world_model)
        curves: list[dict[str, Any]] = json.loads((self.out / "curves.json").read_text()) \
            if (self.out / "curves.json").exists() else []
        model, bc = self._model(venv)
        state = read_state(self.out)
        label = "imagined" if self.imagined else "train"
        evaluation = SimTwinEval(cfg.eval, self.task, curves, self.out, label, cfg.progress)
        clock = WallClock(self.out, cfg.max_minutes, max(cfg.checkpoint_every, cfg.n_envs),
                          float(state.get("rl_seconds", 0.0)), evaluation)
        evaluation.clock = clock.elapsed  # each sim-twin point records the RL seconds spent by then
        if cfg.freeze_features:
            for name, parameter in model.policy.named_parameters():
                # PPO's shared one, SAC's actor's and critic's; an asymmetric critic's state MLP still learns
                if "features_extractor" in name and not value_parameter(name):
                    parameter.requires_grad_(False)
        remaining = cfg.total_timesteps - model.num_timesteps
        learn = remaining > 0 and not (clock.max_seconds and clock.spent >= clock.max_seconds)
        # while SB3's bar is live it is the run's one progress display; a sim-twin bar would write over it
        evaluation.progress = cfg.progress and not learn
        if learn:
            model.learn(remaining, callback=CallbackList([clock, evaluation, *self._regularizers(venv)]),
                        reset_num_timesteps=False,
                        tb_log_name="rl", progress_bar=cfg.progress)
            clock.save()
        elif not curves or curves[-1]["timesteps"] != model.num_timesteps:  # BC only, or the budget is spent
            model.set_logger(configure(str(self.out / "tensorboard" / "sim-twin"), ["tensorboard"]))
            evaluation.init_callback(model)
            evaluation.evaluate()
            evaluation.close()
        self._deployable(model).save(self.out / "final.zip")
        venv.close()
        state = read_state(self.out)  # the clock has written the RL time spent
        summary = {"env": cfg.env, "algo": cfg.algo, "timesteps": int(model.num_timesteps),
                   "rl_seconds": state.get("rl_seconds", 0.0), "bc": bc, "bc_seconds": state.get("bc_seconds"),
                   "final_sim_success_rate": curves[-1]["sim_success_rate"] if curves else None,
                   "curves": curves, "final": str(self.out / "final.zip")}
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        _plot_curves(curves, self.out / "curves.png", label)
        return summary

    def _hyperparameters(self) -> dict[str, Any]:
        cfg = self.config
        hyper = asdict(cfg.ppo if cfg.algo == "ppo" else cfg.sac)
        if cfg.algo == "ppo":
            hyper["batch_size"] = min(hyper["batch_size"], hyper["n_steps"] * cfg.n_envs)
        return hyper

    def _asymmetric(self, venv: VecEnv, device: torch.device) -> BaseAlgorithm:
        """This run's bc.zip actor in a PPO whose critic reads the object state (AsymmetricActorCriticPolicy);
        the critic starts fresh (value_warmup_steps lets it learn before the actor moves)."""
        cfg = self.config
        warm = PPO.load(self.out / "bc.zip", device=device)
        kwargs = {name: value for name, value in warm.policy_kwargs.items()
                  if name != "share_features_extractor"}
        kwargs["value_extractor_kwargs"] = value_state_statistics(cfg.bc.datasets, venv.observation_space)
        model = PPO(AsymmetricActorCriticPolicy, venv, policy_kwargs=kwargs, seed=cfg.seed, device=device,
                    tensorboard_log=str(self.out / "tensorboard"), **self._hyperparameters())
        copy_actor(warm.policy, model.policy)
        return model

    def _bc_world_model(self) -> WorldModel:
        """The world model that imagines bc.datasets' episodes for bc.imagined: the task's (world_model=, else
        the shipped checkpoint) with world_model_options, whichever world the run trains in."""
        from wow_gym.world_models.video.imagination import load_world_model

        cfg = self.config  # set_options keeps the checkpoint's switch wherever an option is None
        return load_world_model(self.task, cfg.world_model, device=resolve_device(cfg.device),
                                options=cfg.world_model_options)

    def _deployable(self, model: BaseAlgorithm) -> BaseAlgorithm:
        """The model final.zip holds: as trained, or for an asymmetric critic its actor in the warm start's
        standard policy (pixels and agent_pos only, as evaluate, ship-policy and export read it)."""
        if not isinstance(model.policy, AsymmetricActorCriticPolicy):
            return model
        standard = PPO.load(self.out / "bc.zip", device=model.device)
        copy_actor(model.policy, standard.policy)
        standard.num_timesteps = model.num_timesteps
        return standard

    def _regularizers(self, venv: VecEnv) -> list[BaseCallback]:
        cfg, callbacks = self.config, []
        if cfg.value_warmup_steps > 0:
            if cfg.algo != "ppo":
                raise ValueError("value_warmup_steps is for PPO (SAC's critic learns off-policy from the start)")
            callbacks.append(ValueWarmup(cfg.value_warmup_steps))
        if cfg.bc_steps_per_update > 0:
            if not cfg.bc.datasets:
                raise ValueError("bc_steps_per_update needs bc.datasets to clone from")
            data = load_bc_dataset(cfg.bc.datasets, cfg.bc.successful_only, cfg.bc.max_episodes,
                                   image_size=venv.observation_space["pixels"].shape[1], progress=cfg.progress)
            callbacks.append(BCRegularizer(data, cfg.bc, cfg.bc_steps_per_update, cfg.seed))
        if cfg.self_imitation_steps > 0:
            callbacks.append(SelfImitation(cfg.self_imitation_steps, cfg.self_imitation_frames,
                                           cfg.self_imitation_lr, cfg.bc, cfg.seed))
        return callbacks

    def _model(self, venv: VecEnv) -> tuple[BaseAlgorithm, dict[str, float] | None]:
        cfg, algorithm = self.config, ALGORITHMS[self.config.algo]
        device = resolve_device(cfg.device)
        resume = latest_checkpoint(self.out)
        if resume is not None:
            logger.info("resuming from %s", resume)
            model = algorithm.load(resume, env=venv, device=device, tensorboard_log=str(self.out / "tensorboard"),
                                   **self._hyperparameters())
            replay = resume.with_suffix(".replay.pkl")
            if isinstance(model, SAC) and replay.exists():
                model.load_replay_buffer(replay)
            return model, read_state(self.out).get("bc")
        bc_path = self.out / "bc.zip"
        if cfg.value_state and (cfg.algo != "ppo" or cfg.init is None):
            raise ValueError("value_state (an asymmetric critic) fine-tunes a warm start with PPO: set "
                             "algo=ppo and init= (a shipped policy folder or an SB3 zip)")
        # the warm start reads the policy's keys; an asymmetric run's env also hands over the object state
        policy_env = KeepKeys(venv, POLICY_KEYS) if cfg.value_state else venv
        if cfg.init is not None and not bc_path.exists():  # a shared warm start: this run's bc.zip
            init = Path(cfg.init)
            if (init / "config.json").is_file():  # a shipped policy (wow-gym ship-policy)
                model = load_policy(init, env=policy_env, device=device)
            elif init.is_file():
                model = algorithm.load(cfg.init, env=policy_env, device=device)
            else:
                raise ValueError(f"init={cfg.init!r} is neither an SB3 zip (a run's bc.zip or final.zip) nor a "
                                 "shipped policy folder (e.g. policies/checkpoints/lift-policy)")
            if type(model) is not algorithm:
                raise ValueError(f"init={cfg.init!r} holds a {type(model).__name__} policy; set algo="
                                 f"{type(model).__name__.lower()}")
            model.save(bc_path)
            source = read_state(Path(cfg.init).parent)
            write_state(self.out, {"init": str(cfg.init), "bc": source.get("bc"),
                                   "bc_seconds": source.get("bc_seconds")})
        if bc_path.exists():
            if cfg.value_state:
                model = self._asymmetric(venv, device)
            else:
                # this run's hyperparameters, not those the warm start was saved with
                model = algorithm.load(bc_path, env=venv, device=device,
                                       tensorboard_log=str(self.out / "tensorboard"),
                                       **self._hyperparameters())
            # SB3's load seeds nothing: without this, action sampling and the envs' first reset drew from
            # fresh entropy and a warm-started run gave another policy each time
            model.set_random_seed(cfg.seed)
            return model, read_state(self.out).get("bc")
        data = None
        if cfg.bc.epochs > 0 and cfg.bc.datasets:
            data = load_bc_dataset(cfg.bc.datasets, cfg.bc.successful_only, cfg.bc.max_episodes,
                                   image_size=venv.observation_space["pixels"].shape[1],
                                   progress=cfg.progress, with_state=cfg.bc.aux_state_weight > 0,
                                   imagined_by=self._bc_world_model() if cfg.bc.imagined else None)
        mean, std = data.agent_pos_stats() if data is not None else (None, None)
        hyper = self._hyperparameters()
        model = algorithm("MultiInputPolicy", venv, policy_kwargs=policy_kwargs(mean, std, algo=cfg.algo),
                          seed=cfg.seed, device=device, tensorboard_log=str(self.out / "tensorboard"), **hyper)
        bc = None
        if data is not None:
            from torch.utils.tensorboard import SummaryWriter

            started = time.monotonic()
            with SummaryWriter(str(self.out / "tensorboard" / "bc")) as writer:
                bc = behaviour_clone(model, data, cfg.bc, writer, seed=cfg.seed, progress=cfg.progress)
            write_state(self.out, {"bc": bc, "bc_seconds": time.monotonic() - started,
                                   "bc_frames": len(data)})
        model.save(bc_path)
        return model, bc


def _plot_curves(curves: list[dict[str, Any]], path: Path, label: str) -> None:
    if not curves:
        return
    series = {"sim twin (simulator's success)": ([c["timesteps"] for c in curves],
                                                [c["sim_success_rate"] for c in curves])}
    points = [c for c in curves if f"{label}_success_rate" in c]
    if points:
        name = "imagined (critic's success)" if label == "imagined" else "training envs"
        series[name] = ([c["timesteps"] for c in points], [c[f"{label}_success_rate"] for c in points])
    save_png(line_plot(series, "success rate while training", "env steps", "success rate"), path)

"""Paired evaluation of policies in the imagined env and in its simulator twin, from the same start states.

Every policy runs `n_episodes` episodes in each world. Episode i starts from the simulator layout of seed
`seed + i`; the imagined env starts from exactly that physical state (its `sim_state`), so each pair of
episodes differs only in who steps the world: MuJoCo or the world model. Per policy: success rate and
return in each world, the critic's return on the simulator's own frames, exploitability (how much more
the critic pays in imagination than on real physics for the same policy) and per-episode agreement. Across
policies: how well the imagined ranking predicts the simulator's (Pearson, Spearman, MMRV).

Domain randomization (`randomize`) perturbs the simulator side only; the world model has none, so the
imagined episode starts from the nominal rendering of the same physical state.

With `ray.address` set, the simulator side of every (policy, wave) runs on Ray actors that keep their
simulators, while this process rolls the imagined side in one world-model batch as each simulated wave
arrives. A wave is the same unit of work in both paths (same envs, same seeds, same policy batch), so the
results are those of the serial run. In both paths the critic scores a simulated wave here, from its frames,
after the wave has run: so a worker needs no critic and one torch thread (more threads per worker only
fight over the cores), and the critic's figures are computed the same way, on the same thread count, in
both paths.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from tqdm import tqdm

from wow_gym.envs.imagined_env import ImaginedVectorEnv, imagined_spaces
from wow_gym.metrics import psnr
from wow_gym.policies.export import load_sb3
from wow_gym.policies.shipped import load_policy
from wow_gym.policies.sim_eval import (
    RANDOMIZATIONS,
    UNSEEN_RANDOMIZATION,  # noqa: F401  (what randomize=unseen draws from)
    make_sim,
    sb3_actor,
)
from wow_gym.registry import task_info
from wow_gym.rollout import ACTION_DIM
from wow_gym.scale import RayConfig, map_ordered
from wow_gym.world_models.checkpoint import CheckpointError, shipped_checkpoint
from wow_gym.world_models.critic.model import CriticRewardModel, LearnedCritic
from wow_gym.world_models.video.imagination import load_world_model
from wow_gym.world_models.video.model import checkpoint_options

POLICY_KINDS = ("random", "zero", "sb3", "run", "shipped")
IMAGINED_REWARDS = ("auto", "critic", "state", "heads")
_STEPS_IN_NAME = re.compile(r"_(\d+)_steps$")


# -- config ------------------------------------------------------------------------------------------------


@dataclass
class PolicyEntry:
    """One policy to evaluate: kind random | zero | sb3 (a zip at `path`) | run (a training-run folder) |
    shipped (the task's shipped policy, or the shipped-format folder at `path`)."""

    name: str | None = None  # None: the kind, the zip's stem or the run folder's name
    kind: str = "random"
    path: str | None = None
    noise_std: float = 0.0  # > 0: seeded Gaussian noise on the actions, clipped to [-1, 1]

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"policy {self.name!r}: unknown kind {self.kind!r}; expected one of "
                             f"{list(POLICY_KINDS)}")
        if self.kind in ("sb3", "run") and not self.path:
            raise ValueError(f"policy {self.name!r} of kind {self.kind} needs a path (an SB3 zip for sb3, a "
                             "training-run folder for run)")
        if not self.noise_std >= 0:
            raise ValueError(f"policy {self.name!r}: noise_std must be >= 0, got {self.noise_std}")
        if self.name is None:
            path = Path(self.path or "")
            self.name = {"sb3": path.stem, "run": path.name}.get(self.kind, self.kind)


@dataclass
class EvaluateConfig:
    """See experiments/conf/evaluate.yaml for the meaning of each key."""

    task: str = "lift"
    policies: list[PolicyEntry] = field(default_factory=lambda: [PolicyEntry("random", "random"),
                                                                 PolicyEntry("zero", "zero"),
                                                                 PolicyEntry("shipped", "shipped")])
    run: str | list[str] | None = None  # training-run folders added as kind-run entries
    sb3: str | list[str] | None = None  # SB3 zips added as kind-sb3 entries
    n_episodes: int = 16
    max_steps: int = 100
    seed: int = 0
    randomize: str = "none"
    world_model: str | None = None
    # its imagination switches (WorldModel.set_options; None keeps the checkpoint's)
    world_model_options: dict[str, Any] = field(default_factory=checkpoint_options)
    critic: str | None = None
    sampling_steps: int | None = None
    # the imagined env's reward and success: critic (SOPHIA on the imagined frames), state (the simulator's
    # shaped reward on the imagined object state), heads (the world model's reward and success heads, which
    # read the imagined latents and arm pose) or auto (state for a model that carries it, else critic)
    imagined_reward: str = "auto"
    parallel: int = 8  # simulators (and imagined envs) at a time; episodes run in waves of this many
    gifs: bool = True
    progress: bool = True
    ray: RayConfig = field(default_factory=RayConfig)  # address set: the simulator side runs on Ray actors

    def __post_init__(self) -> None:
        self.policies = [_entry(p) for p in self.policies]
        for kind in ("run", "sb3"):
            paths = getattr(self, kind)
            self.policies += [PolicyEntry(kind=kind, path=str(p)) for p in
                              ([] if paths is None else [paths] if isinstance(paths, str) else paths)]
        if self.n_episodes < 1:
            raise ValueError(f"n_episodes must be >= 1 (start states per policy), got {self.n_episodes}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.parallel < 1:
            raise ValueError(f"parallel must be >= 1 (simulators at a time), got {self.parallel}")
        if self.randomize not in RANDOMIZATIONS:
            raise ValueError(f"randomize must be one of {list(RANDOMIZATIONS)}, got {self.randomize!r}")
        if not self.policies:
            raise ValueError("no policies to evaluate; give policies=[...], +run=<folder> or +sb3=<zip>")
        if self.imagined_reward not in IMAGINED_REWARDS:
            raise ValueError(f"imagined_reward must be one of {list(IMAGINED_REWARDS)}, got {self.imagined_reward!r}")


def _entry(value: PolicyEntry | dict[str, Any]) -> PolicyEntry:
    if isinstance(value, PolicyEntry):
        return value
    unknown = sorted(set(value) - set(PolicyEntry.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown policy keys {unknown} in {value}; expected name, kind, path, noise_std")
    return PolicyEntry(**value)


# -- policies ----------------------------------------------------------------------------------------------


class Policy(Protocol):
    """Acts on a batch of observations: act({key: [n, ...]}) -> actions [n, 7] float32."""

    def reset(self, n: int, seed: int) -> None: ...

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray: ...


class RandomPolicy:
    """Uniform in the action box, seeded by reset."""

    def reset(self, n: int, seed: int) -> None:
        self.n, self.rng = n, np.random.default_rng(seed)

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (self.n, ACTION_DIM)).astype(np.float32)


class ZeroPolicy:
    """The all-zero action: the arm holds its pose, the gripper stays."""

    def reset(self, n: int, seed: int) -> None:
        self.n = n

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.zeros((self.n, ACTION_DIM), np.float32)


class SB3Policy:
    """A stable-baselines3 model, deterministic, fed only the observation keys it was trained on."""

    def __init__(self, model: Any) -> None:
        self.actor = sb3_actor(model)

    def reset(self, n: int, seed: int) -> None:
        pass

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.actor(observation), np.float32).reshape(-1, ACTION_DIM)


class NoisyPolicy:
    """Another policy's actions plus seeded Gaussian noise, clipped to [-1, 1]."""

    def __init__(self, policy: Policy, std: float) -> None:
        self.policy, self.std = policy, std

    def reset(self, n: int, seed: int) -> None:
        self.policy.reset(n, seed)
        self.rng = np.random.default_rng([seed, 1])  # a stream apart from the random policy's

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        action = self.policy.act(observation)
        return np.clip(action + self.rng.normal(0.0, self.std, action.shape), -1.0, 1.0).astype(np.float32)


def run_checkpoints(folder: str | Path) -> list[Path]:
    """A training run's policies in training order: bc.zip, checkpoints/*.zip by step, final.zip."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"run folder {folder} not found; expected a training-run folder holding "
                         "checkpoints/*.zip, bc.zip or final.zip")

    def step(path: Path) -> tuple[float, str]:
        match = _STEPS_IN_NAME.search(path.stem)
        return (int(match.group(1)) if match else math.inf, path.stem)

    found = [folder / "bc.zip"] if (folder / "bc.zip").is_file() else []
    found += sorted((folder / "checkpoints").glob("*.zip"), key=step)
    found += [folder / "final.zip"] if (folder / "final.zip").is_file() else []
    if not found:
        raise ValueError(f"run folder {folder} holds no policies; expected checkpoints/*.zip (e.g. "
                         "rl_4096_steps.zip), bc.zip or final.zip")
    return found


def expand_entries(entries: list[PolicyEntry]) -> list[PolicyEntry]:
    """Each kind-run entry becomes one sb3 entry per checkpoint, named <name>@<file stem>; names are unique."""
    expanded = []
    for entry in entries:
        if entry.kind == "run":
            expanded += [PolicyEntry(f"{entry.name}@{p.stem}", "sb3", str(p), entry.noise_std)
                         for p in run_checkpoints(entry.path)]
        else:
            expanded.append(entry)
    names = [e.name for e in expanded]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"policy names {repeated} appear more than once; give each policy its own name")
    return expanded


def make_policy(entry: PolicyEntry, observation_space: spaces.Dict, task: str = "lift") -> Policy:
    """The Policy of an entry (sb3 zips loaded and checked against the envs' observation space)."""
    if entry.kind == "random":
        policy: Policy = RandomPolicy()
    elif entry.kind == "zero":
        policy = ZeroPolicy()
    elif entry.kind == "shipped":
        try:
            model = load_policy(entry.path, task=task)
        except (FileNotFoundError, CheckpointError) as error:
            raise ValueError(f"policy {entry.name!r}: {error}") from None
        check_policy_spaces(entry.name, model.observation_space, model.action_space, observation_space)
        policy = SB3Policy(model)
    elif entry.kind == "sb3":
        if not Path(entry.path).is_file():
            raise ValueError(f"policy {entry.name!r}: {entry.path} not found; expected a stable-baselines3 "
                             "zip (model.save)")
        model = load_sb3(entry.path, "auto")
        check_policy_spaces(entry.name, model.observation_space, model.action_space, observation_space)
        policy = SB3Policy(model)
    else:
        raise ValueError(f"policy {entry.name!r}: cannot act with kind {entry.kind!r}; expand runs first")
    return NoisyPolicy(policy, entry.noise_std) if entry.noise_std > 0 else policy


def check_policy_spaces(name: str, policy_space: spaces.Space, action_space: spaces.Space,
                        env_space: spaces.Dict) -> None:
    """An error unless the policy reads some of the envs' keys, with their shapes, and acts in Box (7,)."""
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first

    if not isinstance(action_space, spaces.Box) or action_space.shape != (ACTION_DIM,):
        raise ValueError(f"policy {name!r} acts in {action_space}; the envs expect Box(-1, 1, "
                         f"({ACTION_DIM},)) OSC_POSE deltas")
    if not isinstance(policy_space, spaces.Dict):
        raise TypeError(f"policy {name!r} reads a {type(policy_space).__name__}; expected a Dict of "
                         f"{sorted(env_space.spaces)} (train with MultiInputPolicy)")
    missing = sorted(set(policy_space.spaces) - set(env_space.spaces))
    if missing:
        raise ValueError(f"policy {name!r} reads {missing}, which the envs do not give; they give "
                         f"{sorted(env_space.spaces)}")
    for key, box in policy_space.spaces.items():
        shape, want = box.shape, env_space[key].shape
        if is_image_space(box) and is_image_space_channels_first(box):
            shape = (*shape[1:], shape[0])  # SB3 stores images channels first; the envs give H x W x C
        if shape != want:
            what = (f"{shape[0]}x{shape[1]} frames; the envs render {want[0]}x{want[1]}: retrain at that "
                    "size or use a world model of that size" if key == "pixels" and len(shape) == 3 else
                    f"shape {shape}; the envs give {want}")
            raise ValueError(f"policy {name!r} reads {key} of {what}")


# -- metrics -----------------------------------------------------------------------------------------------


@dataclass
class Correlation:
    """Imagined vs simulated figures across policies; None (with a note saying why) where undefined."""

    pearson: float | None
    spearman: float | None
    mmrv: float | None
    note: str = ""


def mmrv(sim: np.ndarray, imagined: np.ndarray) -> float | None:
    """Mean maximum rank violation (SIMPLER, Li et al. 2024) of the imagined figures against the sim's.

    MMRV = (1/N) sum_i max_j |s_i - s_j| * 1[(v_i < v_j) != (s_i < s_j)], with s the sim figures and v the
    imagined ones: each policy's worst ranking mistake, weighted by how far apart the two really are, and
    averaged. Ties: a pair tied in the sim never counts (its weight |s_i - s_j| is 0); a pair tied in
    imagination but not in the sim counts once (in the row of the policy that is worse in the sim), as the
    imagined env failed to separate them. 0 is a perfect ranking. None for fewer than 2 policies.
    """
    s, v = np.asarray(sim, np.float64), np.asarray(imagined, np.float64)
    if len(s) < 2:
        return None
    violated = (v[:, None] < v[None, :]) != (s[:, None] < s[None, :])
    return float(np.mean(np.max(np.abs(s[:, None] - s[None, :]) * violated, axis=1)))


def correlation(sim: np.ndarray, imagined: np.ndarray) -> Correlation:
    """How well imagined figures across policies track the simulator's (see Correlation)."""
    from scipy.stats import pearsonr, spearmanr

    s, v = np.asarray(sim, np.float64), np.asarray(imagined, np.float64)
    if len(s) < 2:
        return Correlation(None, None, None, f"{len(s)} policy: correlations need at least 2")
    flat = [world for world, x in (("sim", s), ("imagined", v)) if not np.all(np.isfinite(x)) or np.ptp(x) == 0]
    if flat:
        note = (f"the {' and '.join(flat)} figures are the same for every policy (no variance) or not finite, "
                "so correlations are undefined")
        return Correlation(None, None, mmrv(s, v), note)
    return Correlation(float(pearsonr(s, v)[0]), float(spearmanr(s, v)[0]), mmrv(s, v))


# -- paired rollouts ---------------------------------------------------------------------------------------


@dataclass
class PairedEpisode:
    """One start state run in both worlds: the sim episode and the imagined one, as results.json holds it."""

    seed: int
    sim_success: bool
    imagined_success: bool
    sim_return: float  # the simulator's shaped reward
    imagined_return: float  # the imagined env's reward (the critic on imagined frames, or the state reward)
    sim_critic_return: float  # the same critic's reward on the simulator's frames
    sim_critic_success: bool
    start_psnr: float  # imagined first frame vs sim first frame (100: identical)


@dataclass
class PolicyResult:
    name: str
    kind: str
    path: str | None
    noise_std: float
    episodes: list[PairedEpisode]
    imagined_success_rate: float
    sim_success_rate: float
    imagined_return: float
    sim_return: float
    sim_critic_return: float
    exploitability: float  # mean(imagined return - the same reward on the simulator's episode)
    agreement: float  # fraction of start states where imagined success == sim success
    frames: dict[str, np.ndarray] = field(default_factory=dict, metadata={"json": False})  # episode 0


@dataclass
class EvaluateResults:
    task: str
    world_model: str
    critic: str
    n_episodes: int
    max_steps: int
    seed: int
    randomize: str
    policies: list[PolicyResult]
    success: Correlation  # success rates, imagined vs sim
    returns: Correlation  # imagined return vs the simulator's return
    seconds: float
    imagined_reward: str = "critic"  # the imagined env's reward and success: critic, state or heads
    cpu_seconds: float = 0.0  # this process's CPU time, all its threads (not Ray's workers): cores busy = / seconds


class PairedEnvs:
    """Up to `parallel` sim envs stepped in lockstep (one SyncVectorEnv) and as many imagined envs (one model
    batch), reset to the same start states. The n_episodes run in waves of that size, so memory stays that
    of `parallel` simulators (each robosuite env holds about 0.5 GB) however many episodes are asked for; a
    last, partial wave runs full size and its extra rows are dropped. The simulators are bare; the critic
    scores their frames after each wave (`score_sim`); without a critic (critic=None) the imagined env's
    reward is the state reward."""

    def __init__(self, config: EvaluateConfig, model: Any, critic: Any) -> None:
        self.seed, self.n_episodes = config.seed, config.n_episodes
        self.size, self.critic, self.instruction = wave_size(config), critic, task_info(config.task).instruction
        self.sim = sim_vector_env(config, model.config.image_size)
        self.reward = imagined_reward(config.imagined_reward, model)
        self.imagined = imagined_vector_env(config, model, critic)

    @property
    def waves(self) -> list[tuple[int, int]]:
        """(first episode, episodes kept) of each wave."""
        return waves(self.n_episodes, self.size)

    def reset(self, first: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Row j of both worlds from the sim layout of seed + first + j (randomized first, then restored)."""
        sim_observation, _ = self.sim.reset(seed=wave_seeds(self.seed, first, self.size))
        states = np.stack([env.unwrapped.get_sim_state() for env in self.sim.envs])
        imagined_observation, _ = self.imagined.reset(seed=self.seed + first, options={"sim_state": states})
        return sim_observation, imagined_observation

    def close(self) -> None:
        self.sim.close()
        self.imagined.close()


def wave_size(config: EvaluateConfig) -> int:
    """Episodes per wave: the envs of each world stepped in lockstep."""
    return min(config.parallel, config.n_episodes)


def waves(n_episodes: int, size: int) -> list[tuple[int, int]]:
    """(first episode, episodes kept) of each wave of `size` envs over n_episodes start states."""
    return [(first, min(size, n_episodes - first)) for first in range(0, n_episodes, size)]


def wave_seeds(seed: int, first: int, size: int) -> list[int]:
    """The reset seed of each row of the wave that starts at episode `first`: row j is episode first + j."""
    return [seed + first + j for j in range(size)]


def sim_vector_env(config: EvaluateConfig, image_size: int) -> gym.vector.SyncVectorEnv:
    """A wave's simulators in lockstep (bare: the critic scores their frames afterwards, `score_sim`)."""
    make = partial(make_sim, task_info(config.task).name, config.randomize, image_size=image_size,
                   max_episode_steps=config.max_steps)
    return gym.vector.SyncVectorEnv([make for _ in range(wave_size(config))])


def imagined_vector_env(config: EvaluateConfig, model: Any, critic: Any) -> ImaginedVectorEnv:
    """A wave's imagined envs: one world-model batch, rewarded by the critic, by the imagined state or by the
    world model's own reward and success heads."""
    reward = imagined_reward(config.imagined_reward, model)
    if critic is None and reward == "critic":
        raise ValueError("the critic reward needs a critic; pass one or imagined_reward=state")
    # One step past max_steps: the episodes end where we stop stepping, never in a same-step autoreset.
    return ImaginedVectorEnv(num_envs=wave_size(config), task=task_info(config.task).name, model=model,
                             reward_model=CriticRewardModel(critic=critic) if reward == "critic" else reward,
                             sampling_steps=config.sampling_steps, max_episode_steps=config.max_steps + 1)


def imagined_reward(name: str, model: Any) -> str:
    """critic or state: `name`, or for auto the state where the model carries the object state and its task
    has a shaped reward on it (Task.state_reward: every shipped task has one), else the critic."""
    if name == "auto":
        carries = model.config.object_dims is not None
        return "state" if carries and task_info(model.config.task).state_reward is not None else "critic"
    return name


def score_sim(result: dict[str, np.ndarray], critic: Any, instruction: str) -> dict[str, np.ndarray]:
    """A simulated wave's rollout (with all_frames) read by SOPHIA: `reward` becomes the critic's reward and
    `critic_success` its verdict, what a CriticReward wrapper would have paid step by step, with the
    simulator's own reward in `reward_sim`; the frames kept are row 0's. Scored in one critic batch for the
    wave (critic=None: the simulator's reward and success stand)."""
    frames = result["frames"]
    result = {**result, "reward_sim": result["reward"], "frames": frames[0]}
    if critic is not None:
        reward, success = CriticRewardModel(critic=critic).score_episodes(frames, instruction)
        result.update(reward=reward, critic_success=success.any(1))
    return result


def rollout(env: gym.vector.VectorEnv, policy: Policy, observation: dict[str, np.ndarray], steps: int,
            seed: int, bar: tqdm | None = None, all_frames: bool = False) -> dict[str, np.ndarray]:
    """Step a vector env `steps` times under a policy: success [n], critic and sim rewards [n,T], and the
    frames [T+1,H,W,3] of row 0 (of every row, [n,T+1,H,W,3], with all_frames)."""
    n = env.num_envs
    policy.reset(n, seed)
    frames, success, critic_success = [observation["pixels"]], np.zeros(n, bool), np.zeros(n, bool)
    reward, reward_sim = np.zeros((n, steps)), np.full((n, steps), np.nan)
    for t in range(steps):
        observation, reward[:, t], _, _, info = env.step(policy.act(observation))
        success |= np.asarray(info["is_success"], bool)
        critic_success |= np.asarray(info.get("critic_success", info["is_success"]), bool)
        if "reward_sim" in info:
            reward_sim[:, t] = info["reward_sim"]
        frames.append(observation["pixels"])
        if bar is not None:
            bar.update(1)
    return {"success": success, "critic_success": critic_success, "reward": reward, "reward_sim": reward_sim,
            "frames": np.stack(frames, axis=1) if all_frames else np.stack(frames)[:, 0]}


@dataclass
class WavePair:
    """One wave of one policy in both worlds: start-frame PSNR and each world's rollout, `count` rows kept."""

    first: int
    count: int
    start_psnr: np.ndarray
    sim: dict[str, np.ndarray]
    imagined: dict[str, np.ndarray]


def evaluate_policy(entry: PolicyEntry, policy: Policy, envs: PairedEnvs, max_steps: int, bar: tqdm,
                    keep_frames: bool = True) -> PolicyResult:
    """Both worlds from the same start states, wave by wave; before each world of a wave the policy is reset
    with the same seed, so random and noisy policies draw the same noise in both."""
    pairs = []
    for first, count in envs.waves:
        sim_observation, imagined_observation = envs.reset(first)
        seed = envs.seed + first
        bar.set_description(f"{entry.name} sim")
        sim = score_sim(rollout(envs.sim, policy, sim_observation, max_steps, seed, bar, all_frames=True),
                        envs.critic, envs.instruction)
        bar.set_description(f"{entry.name} imagined")
        imagined = rollout(envs.imagined, policy, imagined_observation, max_steps, seed, bar)
        pairs.append(WavePair(first, count, psnr(sim_observation["pixels"], imagined_observation["pixels"])[:count],
                              sim, imagined))
    return policy_result(entry, pairs, envs.seed, envs.reward, keep_frames)


def policy_result(entry: PolicyEntry, pairs: list[WavePair], seed: int, reward: str,
                  keep_frames: bool = True) -> PolicyResult:
    """A policy's figures from its waves in both worlds (the frames of episode 0 when keep_frames)."""
    frames = {world: getattr(pairs[0], world)["frames"] for world in ("sim", "imagined")} if keep_frames else {}
    starts = np.concatenate([p.start_psnr for p in pairs])
    sim, imagined = ({k: np.concatenate([getattr(p, world)[k][:p.count] for p in pairs])
                      for k in ("success", "critic_success", "reward", "reward_sim")} for world in ("sim", "imagined"))
    sim_return, sim_critic, imagined_return = (x.sum(1) for x in (sim["reward_sim"], sim["reward"],
                                                                   imagined["reward"]))
    episodes = [PairedEpisode(seed + i, bool(sim["success"][i]), bool(imagined["success"][i]),
                              float(sim_return[i]), float(imagined_return[i]), float(sim_critic[i]),
                              bool(sim["critic_success"][i]), float(starts[i])) for i in range(len(starts))]
    return PolicyResult(
        entry.name, entry.kind, entry.path, entry.noise_std, episodes,
        imagined_success_rate=float(imagined["success"].mean()),
        sim_success_rate=float(sim["success"].mean()),
        imagined_return=float(imagined_return.mean()), sim_return=float(sim_return.mean()),
        sim_critic_return=float(sim_critic.mean()),
        # how much more the imagined env pays than the same reward on the simulator's episode
        exploitability=float(np.mean(imagined_return - (sim_critic if reward == "critic" else sim_return))),
        agreement=float(np.mean(imagined["success"] == sim["success"])), frames=frames)


# -- the simulator side on Ray -----------------------------------------------------------------------------


@dataclass
class SimWave:
    """The simulator side of one wave of one policy: its start states and first frames, and the rollout."""

    states: np.ndarray
    pixels: np.ndarray
    result: dict[str, np.ndarray]


class SimWorker:
    """A worker process's wave of bare simulators and the policies, built on demand; called with (policy
    entry, first episode), it rolls that wave exactly as the serial run does and returns every row's frames
    for the caller's critic. One torch thread: the workers already fill the cores, and a policy's actions
    do not depend on the thread count (the Ray test holds the episodes to the serial run's)."""

    def __init__(self, config: EvaluateConfig, image_size: int, observation_space: spaces.Dict) -> None:
        torch.set_num_threads(1)
        self.config, self.observation_space = config, observation_space
        self.env = sim_vector_env(config, image_size)
        self.policies: dict[str, Policy] = {}

    def __call__(self, job: tuple[PolicyEntry, int]) -> SimWave:
        entry, first = job
        if entry.name not in self.policies:
            self.policies[entry.name] = make_policy(entry, self.observation_space, self.config.task)
        size, seed = self.env.num_envs, self.config.seed + first
        observation, _ = self.env.reset(seed=wave_seeds(self.config.seed, first, size))
        states = np.stack([env.unwrapped.get_sim_state() for env in self.env.envs])
        result = rollout(self.env, self.policies[entry.name], observation, self.config.max_steps, seed,
                         all_frames=True)
        return SimWave(states, observation["pixels"], result)

    def close(self) -> None:
        self.env.close()


def start_states(config: EvaluateConfig, image_size: int, parts: list[tuple[int, int]]
                 ) -> dict[int, np.ndarray]:
    """Every wave's start states [size, state], read off one simulator here: a start state is a function of
    its seed alone (`wave_seeds`, as the actors reset their simulators), so these are the states the actors
    start from, and the imagined side need not wait for them."""
    env = make_sim(task_info(config.task).name, config.randomize, image_size=image_size, use_camera=False,
                   max_episode_steps=config.max_steps)
    try:
        states = {}
        for first, _ in parts:
            rows = []
            for seed in wave_seeds(config.seed, first, wave_size(config)):
                env.reset(seed=seed)
                rows.append(env.unwrapped.get_sim_state())
            states[first] = np.stack(rows)
        return states
    finally:
        env.close()


def evaluate_on_ray(config: EvaluateConfig, entries: list[PolicyEntry], policies: list[Policy], model: Any,
                    critic: Any, bar: tqdm) -> list[PolicyResult]:
    """The simulator side of every (policy, wave) on Ray actors, all queued at once; meanwhile the imagined
    side runs here, one world-model batch per wave, from the same start states (`start_states`), so both
    sides run at the same time. Each simulated wave is checked to have started where its imagined wave did."""
    observation_space, _ = imagined_spaces(model)
    parts = waves(config.n_episodes, wave_size(config))
    jobs = [(entry, first) for entry in entries for first, _ in parts]
    worker = partial(SimWorker, config, model.config.image_size, observation_space)
    instruction = task_info(config.task).instruction
    simulated = map_ordered(worker, jobs, config.ray)  # the actors start now
    reward = imagined_reward(config.imagined_reward, model)
    try:
        states = start_states(config, model.config.image_size, parts)
        imagined_env = imagined_vector_env(config, model, critic)
        imagined = {}
        try:
            for entry, policy in zip(entries, policies):
                for first, _ in parts:
                    bar.set_description(f"{entry.name} imagined")
                    observation, _ = imagined_env.reset(seed=config.seed + first,
                                                        options={"sim_state": states[first]})
                    result = rollout(imagined_env, policy, observation, config.max_steps, config.seed + first,
                                     bar)
                    if first != parts[0][0]:
                        result["frames"] = None  # only the first wave's frames are kept (policy_result)
                    imagined[entry.name, first] = observation["pixels"], result
        finally:
            imagined_env.close()
        results = []
        for entry in entries:
            pairs = []
            for first, count in parts:
                bar.set_description(f"{entry.name} sim (ray)")
                sim = next(simulated)
                if not np.array_equal(sim.states, states[first]):
                    raise RuntimeError(f"the simulators of wave {first} of {entry.name} started from other "
                                       "states than their seeds give here; the workers' simulator differs from "
                                       "the driver's (same wow_gym, robosuite and mujoco on every node?)")
                bar.update(config.max_steps)
                pixels, imagined_result = imagined[entry.name, first]
                pairs.append(WavePair(first, count, psnr(sim.pixels, pixels)[:count],
                                      score_sim(sim.result, critic, instruction), imagined_result))
            results.append(policy_result(entry, pairs, config.seed, reward, config.gifs))
    finally:
        simulated.close()
    return results


def evaluate(config: EvaluateConfig) -> EvaluateResults:
    """Every policy of the config in both worlds; the world model and critic are loaded once for all."""
    start, cpu_start = time.time(), time.process_time()
    entries = expand_entries(config.policies)
    model = load_world_model(config.task, config.world_model, options=config.world_model_options)
    critic = LearnedCritic.load(config.critic, config.task)
    observation_space, _ = imagined_spaces(model)
    policies = [make_policy(entry, observation_space, config.task) for entry in entries]  # fail before the envs
    reward = imagined_reward(config.imagined_reward, model)
    total = 2 * len(entries) * len(waves(config.n_episodes, wave_size(config))) * config.max_steps
    with tqdm(total=total, disable=not config.progress, unit="step") as bar:
        if config.ray.enabled:
            results = evaluate_on_ray(config, entries, policies, model, critic, bar)
        else:
            envs = PairedEnvs(config, model, critic)
            try:
                results = [evaluate_policy(entry, policy, envs, config.max_steps, bar, config.gifs)
                           for entry, policy in zip(entries, policies)]
            finally:
                envs.close()
    figure = {key: np.array([getattr(r, key) for r in results]) for key in
              ("sim_success_rate", "imagined_success_rate", "sim_return", "imagined_return")}
    world_model = config.world_model or shipped_checkpoint(config.task, "world-model")
    return EvaluateResults(
        task_info(config.task).name, str(world_model), str(config.critic or shipped_checkpoint(config.task, "critic")),
        config.n_episodes, config.max_steps, config.seed, config.randomize, results,
        success=correlation(figure["sim_success_rate"], figure["imagined_success_rate"]),
        returns=correlation(figure["sim_return"], figure["imagined_return"]), seconds=time.time() - start,
        imagined_reward=reward, cpu_seconds=time.process_time() - cpu_start)

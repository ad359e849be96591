"""Collect episodes from scripted or trained policies into a LeRobot v3.0 dataset, in parallel and resumable.

Episode i always uses seed `config.seed + i`, so an interrupted collection resumes where it stopped and
produces the same dataset as an uninterrupted one, however the episodes were spread over workers. Worker
processes (local, or Ray actors when `ray.address` is set) simulate; the parent writes each finished episode
atomically and in order, so Ctrl-C loses nothing but the episodes in flight.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from wow_gym.data import DatasetWriter
from wow_gym.envs.experts import ExpertNoiseConfig, make_expert
from wow_gym.envs.exploration import ExpertThenWalk, RandomPolicy, RandomWalkPolicy, ScriptedPolicy
from wow_gym.envs.wrappers import DomainRandomizationConfig, RandomizeDomain
from wow_gym.provenance import write_run_metadata
from wow_gym.registry import CONTROL_FREQ, task_info
from wow_gym.rollout import Rollout
from wow_gym.scale import RayConfig, map_ordered

POLICIES = ("expert", "random", "walk", "expert-walk")
# trained policies (the task's shipped policy, or an SB3 zip): loaded by the policies layer, which hands
# collect() a factory (wow_gym.policies.collection.collect; envs/ may not import policies/)
TRAINED_POLICIES = ("shipped", "sb3")


@dataclass
class CollectConfig:
    """What to collect and where; see experiments/conf/collect.yaml for the meaning of each key."""

    task: str = "lift"
    episodes: int = 200
    policy: str = "expert"
    policy_path: str | None = None  # policy=sb3: the zip; policy=shipped: a shipped-format folder (None: the task's)
    noise: ExpertNoiseConfig = field(default_factory=ExpertNoiseConfig)
    root: str = "outputs/datasets/lift-expert"
    seed: int = 0
    workers: int = 2  # local simulator processes (when ray.address is null)
    image_size: int = 64
    max_steps: int | None = None
    domain_randomization: DomainRandomizationConfig | None = None
    progress: bool = True
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        task_info(self.task)  # raises with the list of tasks
        if self.policy not in POLICIES + TRAINED_POLICIES:
            raise ValueError(f"policy must be one of {POLICIES + TRAINED_POLICIES}, got {self.policy!r}")
        if self.policy == "sb3" and not self.policy_path:
            raise ValueError("policy=sb3 needs policy_path=<an SB3 zip> (a train-policy run's final.zip)")
        if self.policy in TRAINED_POLICIES:
            scripted = [k for k in ("pause_prob", "target_jitter", "failure_prob") if getattr(self.noise, k)]
            if scripted:
                raise ValueError(f"noise.{', noise.'.join(scripted)} shape the scripted expert's plan; a trained "
                                 "policy takes noise.action_std only")
        if self.episodes < 1 or self.workers < 1:
            raise ValueError(f"episodes and workers must be >= 1, got {self.episodes} and {self.workers}")


@dataclass(frozen=True)
class CollectResult:
    """What a collect call did."""

    root: Path
    written: int
    skipped: int
    successes: int
    seconds: float
    interrupted: bool


def make_env(config: CollectConfig) -> gym.Env:
    """The sim env a collection runs in (domain randomization when configured)."""
    info = task_info(config.task)
    kwargs: dict[str, Any] = {"image_size": config.image_size}
    if config.max_steps is not None:
        kwargs["max_episode_steps"] = config.max_steps
    env = gym.make(info.env_id, **kwargs)
    if config.domain_randomization is not None:
        env = RandomizeDomain(env, config.domain_randomization)
    return env


PolicyFactory = Callable[[CollectConfig, np.random.Generator], ScriptedPolicy]


def make_policy(config: CollectConfig, rng: np.random.Generator,
                factory: PolicyFactory | None = None) -> ScriptedPolicy:
    """The policy named by config.policy (a trained one made by `factory`)."""
    if config.policy in TRAINED_POLICIES:
        if factory is None:
            raise ValueError(f"policy={config.policy} is a trained policy: collect it with "
                             "wow_gym.policies.collection.collect (what `wow-gym collect` runs)")
        return factory(config, rng)
    if config.policy == "expert":
        return make_expert(config.task, config.noise, rng)
    if config.policy == "expert-walk":
        return ExpertThenWalk(make_expert(config.task, config.noise, rng), rng)
    return RandomPolicy(rng) if config.policy == "random" else RandomWalkPolicy(rng)


def record_episode(env: gym.Env, policy: ScriptedPolicy, seed: int, pair_id: str = "",
                   interrupt: _DeferredInterrupt | None = None) -> Rollout:
    """Run one episode from reset(seed) to termination or truncation and return it as a Rollout.

    With `interrupt`, a Ctrl-C received during the episode raises KeyboardInterrupt between two steps.
    """
    observation, info = env.reset(seed=seed)
    policy.reset(env)
    sim = env.unwrapped
    observations, sim_states = [observation], [sim.get_sim_state()]
    actions, rewards, terminated, truncated, successes, subtasks = [], [], [], [], [], []
    done = False
    while not done:
        if interrupt is not None:
            interrupt.check()
        action, subtask = policy.act(observation)
        observation, reward, term, trunc, info = env.step(action)
        observations.append(observation)
        sim_states.append(sim.get_sim_state())
        actions.append(np.asarray(action, np.float32))
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc)
        successes.append(info["is_success"])
        subtasks.append(subtask)
        done = term or trunc
    return Rollout(
        pixels=np.stack([o["pixels"] for o in observations]),
        agent_pos=np.stack([o["agent_pos"] for o in observations]),
        environment_state=np.stack([o["environment_state"] for o in observations]),
        sim_state=np.stack(sim_states),
        action=np.stack(actions),
        reward=np.asarray(rewards, np.float32),
        terminated=np.asarray(terminated, bool),
        truncated=np.asarray(truncated, bool),
        is_success=np.asarray(successes, bool),
        subtask=subtasks,
        source="sim",
        env_id=env.spec.id if env.spec else "",
        task=sim.task,
        instruction=info["instruction"],
        seed=seed,
        pair_id=pair_id,
    )


# -- worker processes -----------------------------------------------------------------------------------


class _DeferredInterrupt:
    """A SIGINT handler that only records Ctrl-C; `check()` raises KeyboardInterrupt at a safe point.

    A KeyboardInterrupt raised asynchronously inside robosuite's numba-compiled controller surfaces as a
    SystemError ("returned a result with an exception set") instead, so in-process collection never lets
    the signal interrupt simulator code.
    """

    def __init__(self) -> None:
        self.received = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.received = True

    def check(self) -> None:
        if self.received:
            raise KeyboardInterrupt


class CollectWorker:
    """One simulator collecting episodes by index: episode i from seed config.seed + i, whichever process runs it."""

    def __init__(self, config: CollectConfig, interrupt: _DeferredInterrupt | None = None,
                 policy_factory: PolicyFactory | None = None) -> None:
        self.config, self.interrupt, self.policy_factory = config, interrupt, policy_factory
        self.env = make_env(config)

    def __call__(self, episode_index: int) -> tuple[int, Rollout]:
        seed = self.config.seed + episode_index
        policy = make_policy(self.config, np.random.default_rng(seed), self.policy_factory)
        pair_id = f"{self.config.task.lower()}-{self.config.policy}-seed{seed}"
        return episode_index, record_episode(self.env, policy, seed, pair_id, self.interrupt)

    def close(self) -> None:
        self.env.close()


def collect(config: CollectConfig, policy_factory: PolicyFactory | None = None) -> CollectResult:
    """Collect config.episodes episodes into config.root, skipping those already there; `policy_factory`
    makes the trained policies (policy=shipped | sb3)."""
    from torch.utils.tensorboard import SummaryWriter  # tensorboard is heavy; import only when collecting

    root = Path(config.root)
    writer = DatasetWriter(root, fps=CONTROL_FREQ, camera=task_info(config.task).camera)
    todo = [i for i in range(config.episodes) if i not in writer.completed_episodes]
    skipped = config.episodes - len(todo)
    run_dir = root / "runs" / time.strftime("%Y%m%d-%H%M%S")
    write_run_metadata(run_dir, dataclasses.asdict(config))
    board = SummaryWriter(str(run_dir))
    start, written, successes, interrupted = time.time(), 0, 0, False
    bar = tqdm(total=config.episodes, initial=skipped, desc=f"collect {config.task}/{config.policy}",
               unit="ep", disable=not config.progress)
    try:
        for index, rollout in _run(config, todo, policy_factory):
            writer.write(rollout, episode_index=index)
            written += 1
            successes += rollout.success
            board.add_scalar("collect/return", float(rollout.reward.sum()), index)
            board.add_scalar("collect/success", float(rollout.success), index)
            bar.set_postfix(success=f"{successes}/{written}")
            bar.update()
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted: {written} new episodes are safe in {root}; run the same command to resume")
    finally:
        bar.close()
        board.close()
    return CollectResult(root, written, skipped, successes, time.time() - start, interrupted)


def _run(config: CollectConfig, todo: list[int], policy_factory: PolicyFactory | None = None):
    """Yield (episode_index, Rollout) in order: from Ray actors, local worker processes, or in-process for
    workers=1 (where Ctrl-C is deferred to a safe point between two steps)."""
    if not todo:
        return
    if config.ray.enabled or config.workers > 1:
        yield from map_ordered(partial(CollectWorker, config, policy_factory=policy_factory), todo, config.ray,
                               processes=config.workers)
        return
    interrupt = _DeferredInterrupt()
    worker = CollectWorker(config, interrupt, policy_factory)
    signal.signal(signal.SIGINT, interrupt)
    try:
        for index in todo:
            yield worker(index)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        worker.close()

"""Measure simulator throughput: env steps per second per task, camera setting and process count."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from wow_gym.registry import TASKS, task_info

# name -> env kwargs. "full" is robosuite's look (shadows, reflections, skybox); "fast" is our default.
CAMERA_SETTINGS: dict[str, dict] = {
    "none": {"use_camera": False},
    "64px-fast": {"image_size": 64},
    "64px-full": {"image_size": 64, "shadows": True, "reflections": True, "skybox": True},
    "128px-fast": {"image_size": 128},
}


@dataclass
class SimBenchConfig:
    """Which tasks and settings to time, and for how many steps."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    settings: list[str] = field(default_factory=lambda: list(CAMERA_SETTINGS))
    vector_settings: list[str] = field(default_factory=lambda: ["none", "64px-fast"])
    num_envs: int = 2
    steps: int = 200
    warmup_steps: int = 20
    seed: int = 0
    progress: bool = True


@dataclass(frozen=True)
class BenchRow:
    """One measurement."""

    task: str
    setting: str
    processes: int
    steps_per_second: float


def _time_steps(env: gym.Env | gym.vector.VectorEnv, steps: int, warmup: int, seed: int) -> float:
    """Env steps per second over `steps` random actions (summed over sub-envs of a vector env)."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    shape = env.action_space.shape
    for _ in range(warmup):
        env.step(rng.uniform(-1, 1, shape).astype(np.float32))
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, shape).astype(np.float32))
    elapsed = time.perf_counter() - start
    copies = getattr(env, "num_envs", 1)
    return steps * copies / elapsed


def bench_sim(config: SimBenchConfig) -> list[BenchRow]:
    """Time every task under every setting in one process, then vectorized over config.num_envs processes."""
    unknown = sorted(set(config.settings + config.vector_settings) - set(CAMERA_SETTINGS))
    if unknown:
        raise ValueError(f"unknown bench settings {unknown}; expected some of {list(CAMERA_SETTINGS)}")
    plan = [(t, s, 1) for t in config.tasks for s in config.settings]
    plan += [(t, s, config.num_envs) for t in config.tasks for s in config.vector_settings]
    rows = []
    for task, setting, processes in tqdm(plan, desc="bench sim", disable=not config.progress):
        env_id, kwargs = task_info(task).env_id, CAMERA_SETTINGS[setting]
        if processes == 1:
            env = gym.make(env_id, **kwargs)
        else:
            env = gym.make_vec(env_id, num_envs=processes, vectorization_mode="async",
                               vector_kwargs={"context": "spawn"}, **kwargs)
        try:
            rate = _time_steps(env, config.steps, config.warmup_steps, config.seed)
        finally:
            env.close()
        rows.append(BenchRow(task_info(task).name, setting, processes, rate))
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """A markdown table of the measurements."""
    lines = ["| task | camera | processes | env steps/s |", "|---|---|---:|---:|"]
    lines += [f"| {r.task} | {r.setting} | {r.processes} | {r.steps_per_second:.1f} |" for r in rows]
    return "\n".join(lines)

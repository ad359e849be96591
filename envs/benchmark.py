"""Measure simulator throughput: env steps per second per task, camera setting and process count."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from wow_gym.envs.collection import record_episode
from wow_gym.envs.exploration import RandomWalkPolicy
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


@dataclass
class DataBenchConfig:
    """A dataset round trip on real sim episodes, then the window loader's throughput."""

    task: str = "lift"
    episodes: int = 20
    steps: int = 50
    root: str | None = None  # None: a temporary folder
    context: int = 2
    action_chunk: int = 4
    horizon: int = 1
    batch_size: int = 64
    seconds: float = 5.0
    seed: int = 0


@dataclass(frozen=True)
class DataBenchResult:
    """Round-trip exactness, codec error and loader throughput."""

    episodes: int
    frames: int
    exact_fields: dict[str, bool]
    psnr_db: float
    max_abs_error: int
    write_seconds_per_episode: float
    windows: int
    samples_per_second: float


def bench_data(config: DataBenchConfig) -> DataBenchResult:
    """Record random-walk episodes, write and read them back, compare, and time the window loader."""
    import tempfile

    from wow_gym.data import DatasetReader, DatasetWriter, WindowDataset, benchmark_windows, frame_error

    root = config.root or tempfile.mkdtemp(prefix="wow-gym-bench-data-")
    env = gym.make(task_info(config.task).env_id, max_episode_steps=config.steps)
    writer, originals, write_time = DatasetWriter(root), [], 0.0
    for i in tqdm(range(config.episodes), desc="record + write"):
        rollout = record_episode(env, RandomWalkPolicy(np.random.default_rng(config.seed + i)), config.seed + i)
        start = time.perf_counter()
        writer.write(rollout)
        write_time += time.perf_counter() - start
        originals.append(rollout)
    env.close()
    reader = DatasetReader(root)
    stored = [reader[i] for i in range(len(reader))]
    fields = ("action", "agent_pos", "environment_state", "sim_state", "reward", "is_success")
    exact = {f: all(np.array_equal(getattr(a, f), getattr(b, f)) for a, b in zip(originals, stored))
             for f in fields}
    exact["instruction"] = all(a.instruction == b.instruction for a, b in zip(originals, stored))
    exact["subtask"] = all(a.subtask == b.subtask for a, b in zip(originals, stored))
    psnr, max_error = frame_error(np.concatenate([r.pixels for r in originals]),
                                  np.concatenate([r.pixels for r in stored]))
    windows = WindowDataset(reader, context=config.context, action_chunk=config.action_chunk,
                            horizon=config.horizon)
    rate = benchmark_windows(windows, batch_size=config.batch_size, seconds=config.seconds)
    frames = sum(r.pixels.shape[0] for r in originals)
    return DataBenchResult(len(stored), frames, exact, psnr, max_error, write_time / config.episodes,
                           len(windows), rate)

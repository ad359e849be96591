"""Imagined steps per second: the batched world model at several batch sizes and sampling-step counts.

`wow-gym bench imagine` (experiments/bench.py) sets these beside the simulator's own steps/s, timed by
envs/benchmark.py with a camera at the model's resolution (world_models does not import envs).

Memory: resident set size (RSS, from /proc/self/statm) sampled after every timed step, the most seen in
each row; on a GPU also torch.cuda.max_memory_allocated. ru_maxrss (the process's lifetime peak) is
reported once for the whole run. tracemalloc is not used: it sees Python objects, not torch's tensors.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from wow_gym.world_models.video.model import OPTIONS, WorldModel, checkpoint_options


@dataclass
class ImagineBenchConfig:
    """See experiments/conf/bench_imagine.yaml for the meaning of each key."""

    checkpoint: str | None = None
    task: str = "lift"
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32, 128])
    sampling_steps: list[int] = field(default_factory=lambda: [1, 2, 4])
    steps: int = 20
    warmup_steps: int = 2
    repeats: int = 1
    vector_env: bool = True
    sim_steps: int = 100
    sim_warmup_steps: int = 10
    sim_num_envs: int = 2
    device: str = "auto"
    autocast: bool | str = "auto"
    compile: bool = False
    arm_physics: bool | None = None  # short for world_model_options.arm_physics
    finger_rule: bool | None = None  # short for world_model_options.finger_rule
    seed: int = 0
    progress: bool = True
    world_model_options: dict[str, Any] = field(default_factory=checkpoint_options)

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1 (alternating rounds of simulator and imagined rows), "
                             f"got {self.repeats}")

    def options(self) -> dict[str, Any]:
        """The imagination switches to set (WorldModel.set_options): world_model_options with the two short
        forms; ValueError where a short form and world_model_options ask different things."""
        options = {**checkpoint_options(), **(self.world_model_options or {})}
        for name in ("arm_physics", "finger_rule"):
            short = getattr(self, name)
            if short is not None and options.get(name) not in (None, short):
                raise ValueError(f"{name}={short} and world_model_options.{name}={options[name]} disagree; "
                                 f"give one of them")
            if short is not None:
                options[name] = short
        return options


@dataclass(frozen=True)
class ImagineRow:
    """One imagined measurement: steps/s summed over the batch, and the memory seen meanwhile."""

    path: str  # "WorldModel.step" (the batched model) or "ImaginedVectorEnv" (through the Gymnasium env)
    batch_size: int
    sampling_steps: int
    steps_per_second: float
    ms_per_batched_step: float
    peak_rss_mb: float
    peak_cuda_mb: float | None
    state_kib_per_env: float | None = None  # what one imagined episode's state holds (WorldModel.step rows)
    rss_mib_per_env: float | None = None  # RSS growth over the row's start, per env (allocators keep memory)
    reset_ms_per_env: float | None = None  # ImaginedVectorEnv rows: one reset of every env (fresh layouts), per env


@dataclass
class ImagineBenchResult:
    """Simulator rates (label -> env steps/s), imagined rows, and what they ran on."""

    task: str
    image_size: int
    device: str
    parameters: int
    sim: dict[str, float]
    imagined: list[ImagineRow]
    max_rss_mb: float  # ru_maxrss: the peak over the whole process
    autocast: bool = False  # the model ran under bf16 autocast
    compiled: bool = False  # its DiTs were torch.compiled (WorldModel.compile_samplers)
    repeats: int = 1  # alternating rounds (simulator, then imagined) each rate is the median of
    switches: list[str] = field(default_factory=list)  # every imagination switch on (model.OPTIONS)


def switches_on(wm: WorldModel) -> list[str]:
    """The names of the model's imagination switches that are on (a deadband: above 0 levels)."""
    return [name for name in OPTIONS if getattr(wm.config, name)]


def rss_mb() -> float:
    """The current resident set size in MiB (Linux /proc; elsewhere the lifetime peak ru_maxrss)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return max_rss_mb()


def max_rss_mb() -> float:
    """The process's peak resident set size in MiB (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(step: Callable[[np.ndarray], object], batch_size: int, steps: int, warmup: int,
           rng: np.random.Generator, device: torch.device) -> tuple[float, float, float | None]:
    """(seconds, peak RSS MiB, peak CUDA MiB) of `steps` calls of step(random actions [B, 7])."""
    for _ in range(warmup):
        step(rng.uniform(-1, 1, (batch_size, 7)).astype(np.float32))
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    peak, elapsed = rss_mb(), 0.0
    for _ in range(steps):
        action = rng.uniform(-1, 1, (batch_size, 7)).astype(np.float32)
        begin = time.perf_counter()
        step(action)  # returns numpy arrays: the device is synchronised
        elapsed += time.perf_counter() - begin
        peak = max(peak, rss_mb())
    return elapsed, peak, torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None


def time_imagination(wm: WorldModel, batch_size: int, sampling_steps: int, steps: int, warmup: int,
                     seed: int = 0) -> ImagineRow:
    """Imagined steps/s of WorldModel.step at one batch size and sampling-step count (random actions).

    The context is random frames and the mean pose: the model's speed does not depend on content.
    """
    rng = np.random.default_rng(seed)
    k, size, p = wm.config.context_frames, wm.config.image_size, wm.config.agent_pos_dim
    pixels = rng.integers(0, 256, (batch_size, k, size, size, 3), dtype=np.uint8)
    pose = np.broadcast_to(np.asarray(wm.stats["pose_mean"], np.float32), (batch_size, k, p))
    before = rss_mb()
    state = wm.start(pixels, pose, np.zeros((batch_size, k - 1, wm.config.action_dim), np.float32))
    generator = torch.Generator(device=wm.device).manual_seed(seed)
    elapsed, peak, cuda = _timed(lambda a: wm.step(state, a, generator, sampling_steps), batch_size, steps,
                                 warmup, rng, wm.device)
    return ImagineRow("WorldModel.step", batch_size, sampling_steps, batch_size * steps / elapsed,
                      1000 * elapsed / steps, peak, cuda, state.bytes_per_episode() / 1024,
                      max(peak - before, 0.0) / batch_size)


def time_vector_env(env: gym.vector.VectorEnv, sampling_steps: int, steps: int, warmup: int, seed: int = 0,
                    device: torch.device | None = None, time_reset: bool = False) -> ImagineRow:
    """Steps/s through a Gymnasium vector env (reset from its default start, random actions); with
    time_reset, also one reset of every env, per env. Make the env with a horizon past warmup + steps to time
    steps within episodes, as the simulator's rate is (a reset of the imagined default start renders a
    fresh simulator layout per env: time_reset measures it on its own)."""
    rng = np.random.default_rng(seed)
    before = rss_mb()
    env.reset(seed=seed)  # the first reset also builds what the env starts from (the start source's simulator)
    reset_ms = None
    if time_reset:
        begin = time.perf_counter()
        env.reset(seed=seed + 1)
        reset_ms = 1000 * (time.perf_counter() - begin) / env.num_envs
    elapsed, peak, cuda = _timed(env.step, env.num_envs, steps, warmup, rng, device or torch.device("cpu"))
    return ImagineRow(type(env.unwrapped).__name__, env.num_envs, sampling_steps,
                      env.num_envs * steps / elapsed, 1000 * elapsed / steps, peak, cuda,
                      rss_mib_per_env=max(peak - before, 0.0) / env.num_envs, reset_ms_per_env=reset_ms)


def bench_imagination(wm: WorldModel, config: ImagineBenchConfig,
                      make_vector_env: Callable[[int, int], gym.vector.VectorEnv] | None = None
                      ) -> list[ImagineRow]:
    """Every (batch size, sampling steps) row of the model; also through make_vector_env(batch, steps)."""
    plan = [(b, s) for s in config.sampling_steps for b in config.batch_sizes]
    rows = []
    for b, s in tqdm(plan, desc="bench imagine", disable=not config.progress):
        rows.append(time_imagination(wm, b, s, config.steps, config.warmup_steps, config.seed))
        if make_vector_env is not None:
            env = make_vector_env(b, s)
            try:
                rows.append(time_vector_env(env, s, config.steps, config.warmup_steps, config.seed,
                                            wm.device, time_reset=True))
            finally:
                env.close()
    return rows


def median_rows(rounds: list[list[ImagineRow]]) -> list[ImagineRow]:
    """One row per measurement of several rounds of the same rows: the median rate and time, the most memory."""
    def median(values: list[float | None]) -> float | None:
        return None if values[0] is None else float(np.median(values))

    def most(values: list[float | None]) -> float | None:
        return None if values[0] is None else max(values)

    return [dataclasses.replace(
        same[0], steps_per_second=median([r.steps_per_second for r in same]),
        ms_per_batched_step=median([r.ms_per_batched_step for r in same]),
        reset_ms_per_env=median([r.reset_ms_per_env for r in same]),
        peak_rss_mb=most([r.peak_rss_mb for r in same]), peak_cuda_mb=most([r.peak_cuda_mb for r in same]),
        rss_mib_per_env=most([r.rss_mib_per_env for r in same])) for same in zip(*rounds)]


def format_imagine_table(result: ImagineBenchResult) -> str:
    """Markdown: the simulator rates, then imagined rows with their ratio to each simulator rate."""
    lines = [(f"{result.task}, {result.image_size}x{result.image_size} frames, world model of "
              f"{result.parameters / 1e6:.2f}M parameters on {result.device}"
              f"{', bf16 autocast' if result.autocast else ''}{', torch.compile' if result.compiled else ''}"
              f"{', switches on: ' + ', '.join(result.switches) if result.switches else ''}"), "",
             "| simulator | env steps/s |", "|---|---:|"]
    lines += [f"| {label} | {rate:.1f} |" for label, rate in result.sim.items()]
    ratios = "".join(f" x sim ({label}) |" for label in result.sim)
    lines += ["", (f"| imagined via | batch | sampling steps | steps/s | ms per batched step |{ratios} "
                   "peak RSS MiB | RSS growth MiB per env | state KiB per env | reset ms per env | peak CUDA MiB |"),
              "|---|" + "---:|" * (9 + len(result.sim))]

    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for r in result.imagined:
        cells = "".join(f" {r.steps_per_second / rate:.1f} |" for rate in result.sim.values())
        lines.append(f"| {r.path} | {r.batch_size} | {r.sampling_steps} | {r.steps_per_second:.1f} | "
                     f"{r.ms_per_batched_step:.1f} |{cells} {r.peak_rss_mb:.0f} | {cell(r.rss_mib_per_env, 2)} | "
                     f"{cell(r.state_kib_per_env, 1)} | {cell(r.reset_ms_per_env, 1)} | {cell(r.peak_cuda_mb, 0)} |")
    lines += ["", (f"peak RSS per row: sampled after every timed step (/proc/self/statm); process peak "
                   f"(ru_maxrss) {result.max_rss_mb:.0f} MiB. RSS growth per env: the row's peak over the "
                   "RSS at its start, per env (0 once earlier rows left the allocator that memory). State per "
                   "env: the tensors one imagined episode carries between steps. Steps/s of both worlds are "
                   "timed within episodes (no reset inside the timed steps); reset ms per env: one reset of "
                   "every imagined env from fresh simulator layouts, which renders them in a simulator."
                   + (f" Every rate is the median of {result.repeats} alternating rounds (the simulator, then "
                      "the imagined rows)." if result.repeats > 1 else ""))]
    return "\n".join(lines)

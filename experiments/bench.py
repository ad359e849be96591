"""wow-gym bench {sim,data,imagine}: throughput and fidelity figures, written with the config and commit.

  sim      env steps/s per task, with and without a camera, at 64 and 128 px, one process and vectorized
  data     dataset round trip on real sim episodes (exactness, codec error) and window-loader samples/s
  imagine  imagined steps/s of the world model (batch sizes x sampling steps, directly and through
           ImaginedVectorEnv) against the simulator with a camera at the model's resolution
"""

from __future__ import annotations

import dataclasses
import json
import statistics

import gymnasium as gym

from wow_gym.envs.benchmark import (
    CAMERA_SETTINGS,
    DataBenchConfig,
    SimBenchConfig,
    bench_data,
    bench_sim,
    format_table,
)
from wow_gym.experiments.config_loading import start_run, to_dataclass
from wow_gym.provenance import atomic_write_text
from wow_gym.registry import task_info

TARGETS = ("sim", "data", "imagine")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGETS + ("-h", "--help"):
        print(f"usage: wow-gym bench {{{','.join(TARGETS)}}} [key=value ...]; got {argv[:1]}")
        return 2
    if argv[0] in ("-h", "--help"):
        argv = argv[1:] + ["--help"]
    target = argv[0] if argv[0] in TARGETS else "sim"
    argv = argv[1:] if argv[0] in TARGETS else argv
    started = start_run(f"bench_{target}", argv, __doc__, f"bench-{target}")
    if started is None:
        return 0
    cfg, out = started  # out: the `out` key, else outputs/bench-<target>/<timestamp>; config and commit in it
    if target == "data":
        return _bench_data(to_dataclass(DataBenchConfig, cfg), out)
    if target == "imagine":
        return _bench_imagine(cfg, out)
    config = to_dataclass(SimBenchConfig, cfg)
    rows = bench_sim(config)
    table = format_table(rows)
    atomic_write_text(out / "bench_sim.md", table + "\n")
    atomic_write_text(out / "bench_sim.json", json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    print(table)
    print(f"\nwritten to {out}")
    return 0


def _bench_data(config: DataBenchConfig, out) -> int:
    result = bench_data(config)
    exact = ", ".join(f"{k} {'exact' if v else 'DIFFERS'}" for k, v in result.exact_fields.items())
    report = "\n".join([
        f"episodes {result.episodes}, frames {result.frames}",
        f"round trip: {exact}",
        f"video codec: PSNR {result.psnr_db:.2f} dB (inf = lossless), max abs error {result.max_abs_error}",
        f"write: {result.write_seconds_per_episode * 1000:.0f} ms per episode",
        f"window loader: {result.samples_per_second:,.0f} samples/s over {result.windows} windows "
        f"(batch {config.batch_size}, context {config.context}, chunk {config.action_chunk}, horizon {config.horizon})",
    ])
    atomic_write_text(out / "bench_data.txt", report + "\n")
    atomic_write_text(out / "bench_data.json", json.dumps(dataclasses.asdict(result), indent=2))
    print(report)
    print(f"\nwritten to {out}")
    return 0 if all(result.exact_fields.values()) else 1


def _bench_imagine(cfg, out) -> int:
    # imported here: torch and the world model are not needed by `bench sim` and `bench data`
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.video.benchmark import (
        ImagineBenchConfig,
        ImagineBenchResult,
        bench_imagination,
        format_imagine_table,
        max_rss_mb,
        median_rows,
        switches_on,
    )
    from wow_gym.world_models.video.imagination import load_world_model

    try:
        config = to_dataclass(ImagineBenchConfig, cfg)
    except ValueError as error:
        raise SystemExit(f"wow-gym bench imagine: {error}") from None
    try:
        wm = load_world_model(config.task, config.checkpoint, device=config.device, autocast=config.autocast,
                              compile=config.compile, options=config.options())
    except (CheckpointError, ValueError) as error:
        raise SystemExit(f"wow-gym bench imagine: {error}") from None
    setting = f"{wm.config.image_size}px-fast"  # the default look, at the model's resolution
    if setting not in CAMERA_SETTINGS:
        raise SystemExit(f"wow-gym bench imagine: envs/benchmark.py has no camera setting {setting!r} for "
                         f"this {wm.config.image_size}px model (settings: {list(CAMERA_SETTINGS)}); add one")
    vector = [setting] if config.sim_num_envs > 1 else []
    sim_config = SimBenchConfig(
        tasks=[wm.config.task], settings=[setting], vector_settings=vector,
        num_envs=max(config.sim_num_envs, 2), steps=config.sim_steps, warmup_steps=config.sim_warmup_steps,
        seed=config.seed, progress=config.progress)
    env_id = task_info(wm.config.task).imagined_env_id

    def make_vector_env(batch: int, steps: int) -> gym.vector.VectorEnv:
        # a horizon past the timed steps: no reset inside them, as in the simulator's rate
        return gym.make_vec(env_id, num_envs=batch, vectorization_mode="vector_entry_point", model=wm,
                            sampling_steps=steps, device=str(wm.device),
                            max_episode_steps=config.warmup_steps + config.steps + 1)

    # Alternate the two worlds `repeats` times and keep each rate's median: a shared machine's slow spells
    # then fall on both sides of the ratio.
    sim_rounds, rounds = [], []
    for _ in range(config.repeats):
        sim_rounds.append({f"{r.setting}, {r.processes} proc": r.steps_per_second for r in bench_sim(sim_config)})
        rounds.append(bench_imagination(wm, config, make_vector_env if config.vector_env else None))
    sim = {label: float(statistics.median(r[label] for r in sim_rounds)) for label in sim_rounds[0]}
    result = ImagineBenchResult(wm.config.task, wm.config.image_size, str(wm.device),
                                sum(p.numel() for p in wm.parameters()), sim, median_rows(rounds),
                                max_rss_mb(), wm.autocast, wm.compiled, config.repeats, switches_on(wm))
    table = format_imagine_table(result)
    atomic_write_text(out / "bench_imagine.md", table + "\n")
    atomic_write_text(out / "bench_imagine.json", json.dumps(dataclasses.asdict(result), indent=2))
    print(table)
    print(f"\nwritten to {out}")
    return 0

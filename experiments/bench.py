"""wow-gym bench {sim,data}: throughput and fidelity figures, printed and written with the config and commit.

  sim   env steps/s per task, with and without a camera, at 64 and 128 px, one process and vectorized
  data  dataset round trip on real sim episodes (exactness, codec error) and window-loader samples/s
"""

from __future__ import annotations

import dataclasses
import json

from wow_gym.envs.benchmark import DataBenchConfig, SimBenchConfig, bench_data, bench_sim, format_table
from wow_gym.experiments.config_loading import load_config, run_dir, to_dataclass
from wow_gym.provenance import atomic_write_text, write_run_metadata

TARGETS = ("sim", "data")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGETS + ("-h", "--help"):
        print(f"usage: wow-gym bench {{{','.join(TARGETS)}}} [key=value ...]; got {argv[:1]}")
        return 2
    if argv[0] in ("-h", "--help"):
        argv = argv[1:] + ["--help"]
    target = argv[0] if argv[0] in TARGETS else "sim"
    cfg = load_config(f"bench_{target}", argv[1:] if argv[0] in TARGETS else argv, __doc__)
    if cfg is None:
        return 0
    out = run_dir(f"bench-{target}")
    if target == "data":
        return _bench_data(to_dataclass(DataBenchConfig, cfg), out)
    config = to_dataclass(SimBenchConfig, cfg)
    write_run_metadata(out, dataclasses.asdict(config))
    rows = bench_sim(config)
    table = format_table(rows)
    atomic_write_text(out / "bench_sim.md", table + "\n")
    atomic_write_text(out / "bench_sim.json", json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    print(table)
    print(f"\nwritten to {out}")
    return 0


def _bench_data(config: DataBenchConfig, out) -> int:
    write_run_metadata(out, dataclasses.asdict(config))
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

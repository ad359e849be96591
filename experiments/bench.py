"""wow-gym bench sim: env steps/s per task, with and without a camera, at 64 and 128 px, in one
process and vectorized over processes. Prints a markdown table and writes it with the config and commit."""

from __future__ import annotations

import dataclasses
import json

from wow_gym.envs.benchmark import SimBenchConfig, bench_sim, format_table
from wow_gym.experiments.config_loading import load_config, run_dir, to_dataclass
from wow_gym.provenance import atomic_write_text, write_run_metadata

TARGETS = ("sim",)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGETS + ("-h", "--help"):
        print(f"usage: wow-gym bench {{{','.join(TARGETS)}}} [key=value ...]; got {argv[:1]}")
        return 2
    if argv[0] in ("-h", "--help"):
        argv = argv[1:] + ["--help"]
    cfg = load_config("bench_sim", argv[1:] if argv[0] == "sim" else argv, __doc__)
    if cfg is None:
        return 0
    config = to_dataclass(SimBenchConfig, cfg)
    out = run_dir("bench-sim")
    write_run_metadata(out, dataclasses.asdict(config))
    rows = bench_sim(config)
    table = format_table(rows)
    atomic_write_text(out / "bench_sim.md", table + "\n")
    atomic_write_text(out / "bench_sim.json", json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    print(table)
    print(f"\nwritten to {out}")
    return 0

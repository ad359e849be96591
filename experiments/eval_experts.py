"""wow-gym eval-experts: success rate of each task's scripted expert over many seeds (full horizon)."""

from __future__ import annotations

import numpy as np
from omegaconf import OmegaConf

from wow_gym.envs.experts import ExpertNoiseConfig, evaluate_expert
from wow_gym.experiments.config_loading import load_config, run_dir, to_dataclass
from wow_gym.provenance import atomic_write_text, write_run_metadata


def main(argv: list[str]) -> int:
    cfg = load_config("eval_experts", argv, __doc__)
    if cfg is None:
        return 0
    noise = to_dataclass(ExpertNoiseConfig, cfg.noise)
    seeds = range(cfg.first_seed, cfg.first_seed + cfg.seeds)
    out = run_dir("eval-experts")
    write_run_metadata(out, OmegaConf.to_container(cfg, resolve=True))
    lines = ["| task | seeds | success rate | median steps to success |", "|---|---:|---:|---:|"]
    for task in cfg.tasks:
        result = evaluate_expert(task, list(seeds), noise=noise)
        steps = [s for s in result.success_steps if s is not None]
        median = f"{np.median(steps):.0f}" if steps else "-"
        lines.append(f"| {task} | {len(seeds)} | {result.success_rate:.0%} | {median} |")
        print(lines[-1], flush=True)
    atomic_write_text(out / "eval_experts.md", "\n".join(lines) + "\n")
    print("\n" + "\n".join(lines) + f"\n\nwritten to {out}")
    return 0

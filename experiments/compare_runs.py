"""wow-gym compare-runs: train-policy runs side by side, sim-twin success against minutes of RL.

One plot for all runs (compare.png), a table (compare.md) and the figures (compare.json) in `out`: start,
best and final sim-twin success, the gain in points, RL steps and minutes. Typical use: the same recipe run
in imagination and in the simulator for the same `max_minutes` (make policy-compare).
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from wow_gym.experiments.config_loading import load_config


def main(argv: list[str]) -> int:
    cfg = load_config("compare_runs", argv, __doc__)
    if cfg is None:
        return 0
    values = OmegaConf.to_container(cfg, resolve=True)
    from wow_gym.policies.compare import compare_runs

    try:
        runs = compare_runs(values["runs"] or [], values["out"], values["names"])
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"wow-gym compare-runs: {error}") from None
    for run in runs:
        s = run.summary
        print(f"{run.name} ({run.env}): sim-twin success {100 * s['start']:.0f}% -> {100 * s['final']:.0f}% "
              f"({s['gain_points']:+.0f} points; best {100 * s['best']:.0f}%) in {run.rl_minutes:.1f} min of RL, "
              f"{run.timesteps[-1]:,} steps")
    print(f"plot and table: {values['out']}/compare.png, compare.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

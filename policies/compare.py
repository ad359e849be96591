"""Side by side: train-policy runs judged in the sim twin, against the RL wall-clock each spent.

Reads each run folder's curves.json (the sim-twin evaluations) and state.json (the RL seconds), and writes
one plot of sim-twin success against minutes of RL for every run (compare.png), a table (compare.md) and the
figures (compare.json): the start, the best and the final success, RL steps and minutes. Equal-time
comparisons (`max_minutes`) read straight off it: which recipe gets further in the same wall-clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from wow_gym.provenance import atomic_write_text
from wow_gym.world_models.plots import fmt, line_plot, save_png


@dataclass
class RunCurve:
    """One run's sim-twin curve: minutes of RL at each evaluation, success there, and its totals."""

    name: str
    folder: str
    env: str
    minutes: list[float]
    timesteps: list[int]
    success: list[float]
    rl_minutes: float
    episodes: int | None

    @property
    def summary(self) -> dict[str, float]:
        return {"start": self.success[0], "best": max(self.success), "final": self.success[-1],
                "gain_points": 100 * (self.success[-1] - self.success[0]), "rl_minutes": self.rl_minutes,
                "timesteps": float(self.timesteps[-1])}


def read_run(folder: str | Path, name: str | None = None) -> RunCurve:
    """A train-policy run's curve; clear errors for a folder that is not one. Points written before
    curves carried `rl_seconds` are placed by their step count at the run's mean steps per second."""
    folder = Path(folder)
    curves_path, state_path = folder / "curves.json", folder / "state.json"
    if not curves_path.is_file() or not state_path.is_file():
        raise FileNotFoundError(f"{folder} is not a train-policy run (no curves.json / state.json); give the "
                                "`out` folder of a `wow-gym train-policy` run")
    curves = json.loads(curves_path.read_text())
    state = json.loads(state_path.read_text())
    if not curves:
        raise ValueError(f"{folder}/curves.json holds no sim-twin evaluation yet")
    total_s, total_steps = float(state.get("rl_seconds", 0.0)), max(int(state.get("timesteps", 0)), 1)
    minutes = [(p["rl_seconds"] if "rl_seconds" in p else p["timesteps"] * total_s / total_steps) / 60
               for p in curves]
    config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    env, episodes = config.get("env", "?"), (config.get("eval") or {}).get("episodes")
    return RunCurve(name or folder.name, str(folder), env, minutes, [int(p["timesteps"]) for p in curves],
                    [float(p["sim_success_rate"]) for p in curves], total_s / 60, episodes)


def compare_runs(folders: list[str | Path], out: str | Path, names: list[str] | None = None) -> list[RunCurve]:
    """Write compare.png, compare.md and compare.json for the runs into `out`; returns their curves."""
    if not folders:
        raise ValueError("give at least one train-policy run folder: runs=[outputs/policies/a,outputs/policies/b]")
    if names is not None and len(names) != len(folders):
        raise ValueError(f"names must name each of the {len(folders)} runs, got {len(names)}")
    runs = [read_run(f, None if names is None else names[i]) for i, f in enumerate(folders)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # minutes to one decimal: line_plot labels every distinct x, and a long legend is cut at the plot's edge
    plot = line_plot({r.name: ([round(m, 1) for m in r.minutes], [100 * s for s in r.success]) for r in runs},
                     "sim-twin success while training", "minutes of RL (sim-twin evaluations excluded)",
                     "sim success %")
    save_png(plot, out / "compare.png")
    lines = ["| run | env | sim-twin episodes | start | best | final | gain (points) | RL steps | RL minutes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        s = r.summary
        lines.append(f"| {r.name} | {r.env} | {r.episodes or '?'} | {fmt(s['start'], 100, 0)}% | {fmt(s['best'], 100, 0)}% | "
                     f"{fmt(s['final'], 100, 0)}% | {s['gain_points']:+.0f} | {r.timesteps[-1]:,} | "
                     f"{r.rl_minutes:.1f} |")
    atomic_write_text(out / "compare.md", "\n".join(["# Sim-twin success against RL wall-clock", "",
                                                       *lines, "", "![curves](compare.png)", ""]))
    atomic_write_text(out / "compare.json", json.dumps(
        [{"name": r.name, "folder": r.folder, "env": r.env, "minutes": r.minutes, "timesteps": r.timesteps,
          "sim_success_rate": r.success, **r.summary} for r in runs], indent=1) + "\n")
    return runs

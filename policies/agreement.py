"""Paired agreement pooled over tasks: several `wow-gym evaluate` runs, one ranking question.

Each evaluate run folder holds results.json: per policy, its success rate in the imagined env and in the
simulator from the same held-out starts. This reads several (typically one per task), and asks whether
imagination ranks the (policy, task) points as the simulator does: Pearson, Spearman and MMRV per task and
pooled over every point, one scatter coloured by task (agreement.png), a table (agreement.md) and the
figures (agreement.json).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wow_gym.policies.evaluation import Correlation, correlation
from wow_gym.policies.evaluation_report import scatter_plot
from wow_gym.provenance import atomic_write_text
from wow_gym.world_models.plots import fmt, save_png


@dataclass
class EvaluationRun:
    """One evaluate run's per-policy success rates, imagined and simulated, and where they came from."""

    folder: str
    task: str
    names: list[str]
    sim: list[float]
    imagined: list[float]
    n_episodes: int
    seed: int
    world_model: str


def read_evaluation(folder: str | Path) -> EvaluationRun:
    """An evaluate run's results.json; clear errors for a folder that is not one, or one with no policy."""
    folder = Path(folder)
    path = folder / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not an evaluate run (no results.json); give the `out` folder "
                                "of a finished `wow-gym evaluate` run")
    try:
        results = json.loads(path.read_text())
        policies = results["policies"]
        names = [str(p["name"]) for p in policies]
        sim = [float(p["sim_success_rate"]) for p in policies]
        imagined = [float(p["imagined_success_rate"]) for p in policies]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is not an evaluate results file ({type(exc).__name__}: {exc}); expected "
                         "`policies` with `sim_success_rate` and `imagined_success_rate` each") from None
    if not policies:
        raise ValueError(f"{path} holds no policy")
    return EvaluationRun(str(folder), str(results.get("task", "?")), names, sim, imagined,
                         int(results.get("n_episodes", 0)), int(results.get("seed", 0)),
                         str(results.get("world_model", "?")))


def pool_agreement(folders: list[str | Path], out: str | Path) -> dict[str, Correlation]:
    """Write agreement.png, agreement.md and agreement.json into `out` for the evaluate runs in `folders`;
    returns the correlations per task and over all points ("pooled")."""
    if not folders:
        raise ValueError("give evaluate run folders: runs=[outputs/evaluate/lift,outputs/evaluate/stack]")
    if len({Path(f).resolve() for f in folders}) != len(folders):
        raise ValueError(f"a run folder is given twice in {list(map(str, folders))}: its points would count "
                         "twice")
    runs = [read_evaluation(f) for f in folders]
    tasks = [r.task for r in runs]
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"two runs of the same task ({tasks}): pool one run per task, or merge their "
                         "policies into one evaluate run so that each (policy, task) point counts once")
    by_task = {r.task: correlation(np.array(r.sim), np.array(r.imagined)) for r in runs}
    sim = np.concatenate([r.sim for r in runs])
    imagined = np.concatenate([r.imagined for r in runs])
    figures = {**by_task, "pooled": correlation(sim, imagined)}

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = {f"{r.task}: {name}": (s, v) for r in runs for name, s, v in zip(r.names, r.sim, r.imagined)}
    groups = [r.task for r in runs for _ in r.names]
    save_png(scatter_plot(points, "success per (policy, task): imagined vs sim (grey: y = x)", "sim success",
                          "imagined success", (0.0, 1.0), groups=groups), out / "agreement.png")
    atomic_write_text(out / "agreement.md", "\n".join(report_lines(runs, figures)))
    atomic_write_text(out / "agreement.json", json.dumps(
        {"runs": [asdict(r) for r in runs], "points": len(sim),
         "correlations": {k: asdict(c) for k, c in figures.items()}}, indent=1) + "\n")
    return figures


def report_lines(runs: list[EvaluationRun], figures: dict[str, Correlation]) -> list[str]:
    """The markdown: correlations per task and pooled, then every point."""
    n = sum(len(r.names) for r in runs)
    lines = ["# Does imagination rank policies as the simulator does, over tasks?", "",
             f"{n} (policy, task) points from {len(runs)} evaluate runs.", "",
             "| tasks | points | Pearson | Spearman | MMRV |", "|---|---:|---:|---:|---:|"]
    counts = {r.task: len(r.names) for r in runs}
    for name, c in figures.items():
        if name == "pooled" and len(runs) == 1:
            continue  # one task: the pooled figures are that task's
        label = "pooled over " + ", ".join(counts) if name == "pooled" else name
        lines.append(f"| {label} | {n if name == 'pooled' else counts[name]} | "
                     + " | ".join(fmt(x, digits=3) for x in (c.pearson, c.spearman, c.mmrv)) + " |")
    lines += [f"\n{name}: {c.note}." for name, c in figures.items() if c.note]
    lines += ["", "![success per policy and task](agreement.png)", "",
              "| task | policy | imagined success | sim success | run (start seeds) |",
              "|---|---|---:|---:|---|"]
    for r in runs:
        seeds = f"{r.seed}..{r.seed + r.n_episodes - 1}"
        lines += [f"| {r.task} | {name} | {fmt(v)} | {fmt(s)} | `{r.folder}` ({seeds}) |"
                  for name, s, v in zip(r.names, r.sim, r.imagined)]
    return lines + [""]

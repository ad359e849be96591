"""The paired evaluation's outputs: summary tables, report.md, results.json, scatter plots, GIFs, TensorBoard."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from wow_gym.contact_sheet import save_gif
from wow_gym.policies.evaluation import EvaluateResults
from wow_gym.provenance import atomic_write_text, git_commit
from wow_gym.world_models.plots import COLORS, fmt, panel, save_png, to_json

NOTES = """Success: any step's `is_success` (imagined: SOPHIA's critic on the imagined frames; with the
state or heads reward the world model's success: the task's test on the imagined object state where the model
carries it (Lift: the object above the task's height; Stack, Door, PickPlaceCan: `Task.state_success`), else
its success head; sim: the simulator). Returns are sums over the episode: imagined = the imagined env's reward
(the critic's on imagined frames, the simulator's shaped reward computed on the imagined object state, or the
world model's reward head), sim = the simulator's shaped reward, sim critic = the critic's reward on the
simulator's own frames. Exploitability = mean(imagined return - the same reward on the simulator's episode:
sim critic return with the critic reward, else sim return): what the imagined env pays beyond what the same
policy earns on real physics. Agreement = the fraction of start states where imagined and sim success agree.
MMRV (mean maximum rank violation, SIMPLER) = (1/N) sum_i max_j |s_i - s_j| 1[(v_i < v_j) != (s_i < s_j)],
s = sim, v = imagined: 0 is a perfect ranking. Domain randomization, if any, is on the simulator side only;
the imagined episode starts from the nominal rendering of the same physical state."""


def summary_lines(results: EvaluateResults) -> list[str]:
    """One markdown row per policy: success, returns, exploitability and agreement in both worlds."""
    head = ("policy", "imagined success", "sim success", "imagined return", "sim return", "sim critic return",
            "exploitability", "agreement")
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * 7]
    lines += [f"| {r.name} | {fmt(r.imagined_success_rate)} | {fmt(r.sim_success_rate)} | "
              f"{fmt(r.imagined_return)} | {fmt(r.sim_return)} | {fmt(r.sim_critic_return)} | "
              f"{fmt(r.exploitability)} | {fmt(r.agreement)} |" for r in results.policies]
    return lines


def correlation_lines(results: EvaluateResults) -> list[str]:
    """Pearson, Spearman and MMRV of imagined vs sim success rates and returns across policies."""
    lines = ["| across policies | Pearson | Spearman | MMRV |", "|---|---:|---:|---:|"]
    rows = {"success rate": results.success, "return": results.returns}
    lines += [f"| {name} | " + " | ".join(fmt(x, digits=3) for x in (c.pearson, c.spearman, c.mmrv)) + " |"
              for name, c in rows.items()]
    return lines + [f"\n{name}: {c.note}." for name, c in rows.items() if c.note]


def scatter_plot(points: dict[str, tuple[float, float]], title: str, x_label: str, y_label: str,
                 bounds: tuple[float, float] | None = None, size: int = 460,
                 groups: list[str] | None = None) -> Any:
    """A square scatter of named (x, y) points over the y = x diagonal, each point numbered in the legend.
    With `groups` (one label per point, e.g. its task) the points are coloured by group, unnumbered, and the
    legend names the groups: for more points than a legend can list."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    finite = [v for p in points.values() for v in p if math.isfinite(v)]
    ticks = np.linspace(*(bounds or (min(finite, default=0.0), max(finite, default=1.0))), 6)
    pad = 0.05 * (ticks[-1] - ticks[0] or abs(ticks[-1]) or 1.0)
    low, high = ticks[0] - pad, ticks[-1] + pad
    image = Image.new("RGB", (size + 200, size), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 60, 44, size - 20, size - 50

    def at(x: float, y: float) -> tuple[float, float]:
        scale = lambda value, a, b: a + (value - low) / (high - low) * (b - a)  # noqa: E731
        return scale(x, left, right), scale(y, bottom, top)

    draw.rectangle([left, top, right, bottom], outline="black")
    for v in ticks:
        (px, _), (_, py) = at(v, low), at(low, v)
        draw.line([left + 1, py, right - 1, py], fill=(230, 230, 230))
        draw.text((px, bottom + 6), f"{v:.3g}", fill="black", font=font, anchor="mt")
        draw.text((left - 6, py), f"{v:.3g}", fill="black", font=font, anchor="rm")
    draw.line([at(low, low), at(high, high)], fill=(150, 150, 150), width=1)
    draw.text(((left + right) / 2, 6), title, fill="black", font=font, anchor="mt")
    draw.text(((left + right) / 2, size - 8), x_label, fill="black", font=font, anchor="mb")
    draw.text((6, top - 18), y_label, fill="black", font=font)
    if groups is not None:
        if len(groups) != len(points):
            raise ValueError(f"groups must label each of the {len(points)} points, got {len(groups)}")
        names = list(dict.fromkeys(groups))
        for (x, y), group in zip(points.values(), groups):
            color, (px, py) = COLORS[names.index(group) % len(COLORS)], at(x, y)
            draw.ellipse([px - 4, py - 4, px + 4, py + 4], outline=color, width=2)
        for i, group in enumerate(names):
            draw.text((size, top + 16 * i), f"o {group} ({groups.count(group)})"[:32],
                      fill=COLORS[i % len(COLORS)], font=font)
        return image
    for i, (name, (x, y)) in enumerate(points.items()):
        color, (px, py) = COLORS[i % len(COLORS)], at(x, y)
        draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=color)
        draw.text((px + 6, py - 6), str(i + 1), fill=color, font=font)
        draw.text((size, top + 16 * i), f"{i + 1} {name}"[:32], fill=color, font=font)
    return image


def write_report(results: EvaluateResults, out_dir: str | Path) -> Path:
    """Write report.md, results.json, agreement.png, returns.png and the GIFs; return report.md's path."""
    import json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "results.json", json.dumps(to_json(results), indent=1) + "\n")
    for name, key, what, bounds in (("agreement.png", "success_rate", "success rate", (0.0, 1.0)),
                                    ("returns.png", "return", "return", None)):
        points = {p.name: (getattr(p, f"sim_{key}"), getattr(p, f"imagined_{key}")) for p in results.policies}
        save_png(scatter_plot(points, f"{what} per policy: imagined vs sim (grey: y = x)", f"sim {what}",
                               f"imagined {what}", bounds), out_dir / name)
    r, commit = results, git_commit().get("commit", "unknown")
    lines = [f"# Policies in imagination and in the simulator: {r.task}", "",
             (f"world model `{r.world_model}`, critic `{r.critic}`, imagined reward `{r.imagined_reward}`, "
              f"commit `{commit}`; {r.n_episodes} start "
              f"states (seeds {r.seed}..{r.seed + r.n_episodes - 1}), {r.max_steps} steps, sim randomization "
              f"`{r.randomize}`, {r.seconds:.0f} s"), "",
             "## Per policy", "", *summary_lines(r), "", NOTES, "",
             "## Does imagination rank policies as the simulator does?", "", *correlation_lines(r), "",
             "![success rates](agreement.png) ![returns](returns.png)", ""]
    if r.policies and r.policies[0].frames:
        lines += ["## Episode 0 of each policy: simulator | imagined", ""]
        for policy in r.policies:
            name = "episode0_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", policy.name) + ".gif"
            save_gif([panel(policy.frames["sim"], "sim"), panel(policy.frames["imagined"], "imagined")],
                     out_dir / name, fps=10)
            lines += [f"**{policy.name}**\n\n![{policy.name}]({name})\n"]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def write_tensorboard(results: EvaluateResults, log_dir: str | Path) -> None:
    """Per-policy figures, the policy's index as the step (a run's checkpoints make a curve); correlations."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(log_dir))
    keys = ("imagined_success_rate", "sim_success_rate", "imagined_return", "sim_return", "sim_critic_return",
            "exploitability", "agreement")
    for i, policy in enumerate(results.policies):
        for key in keys:
            writer.add_scalar(f"policies/{key}", getattr(policy, key), i)
    for figure, c in (("success", results.success), ("return", results.returns)):
        for name in ("pearson", "spearman", "mmrv"):
            if getattr(c, name) is not None:
                writer.add_scalar(f"across_policies/{figure}_{name}", getattr(c, name), 0)
    writer.close()

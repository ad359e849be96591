"""The evaluation report: report.md with tables, PNG plots, side-by-side GIFs, results.json, TensorBoard.

Plots are drawn with PIL (matplotlib is not a dependency of wow_gym).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wow_gym.contact_sheet import save_gif
from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.provenance import atomic_write_text, git_commit
from wow_gym.rollout import Rollout
from wow_gym.world_models.evaluation import PSNR_CAP_DB, EvalResults, Example

LABELS = {"model": "model", "copy_last": "copy-last", "shuffled": "shuffled actions"}
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def to_json(value: Any) -> Any:
    """A JSON-ready copy: dataclasses as dicts (fields marked json=False left out), NaN/inf as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.metadata.get("json", True)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (np.generic, float)):
        value = value.item() if isinstance(value, np.generic) else value
        return value if not isinstance(value, float) or math.isfinite(value) else None
    return value


# -- plots -------------------------------------------------------------------------------------------------


def line_plot(series: dict[str, tuple[list[float], list[float]]], title: str, x_label: str, y_label: str,
              size: tuple[int, int] = (640, 420)) -> Image.Image:
    """A line chart of named (x, y) series with axes, ticks and a legend; non-finite points are skipped."""
    font = ImageFont.load_default(size=13)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 70, 36, size[0] - 20, size[1] - 50
    points = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if _finite(y)]
    if not points:
        draw.text((left, top), f"{title}: no finite values", fill="black", font=font)
        return image
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    pad = 0.08 * (y1 - y0 or abs(y1) or 1.0)
    y0, y1, x1 = y0 - pad, y1 + pad, x1 if x1 > x0 else x0 + 1

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline="black")
    for x in sorted({p[0] for p in points}):
        px = at(x, y0)[0]
        draw.line([px, bottom, px, bottom + 4], fill="black")
        draw.text((px, bottom + 6), f"{x:g}", fill="black", font=font, anchor="mt")
    for y in np.linspace(y0, y1, 6):
        py = at(x0, y)[1]
        draw.line([left - 4, py, left, py], fill="black")
        draw.line([left + 1, py, right - 1, py], fill=(230, 230, 230))
        draw.text((left - 6, py), f"{y:.3g}", fill="black", font=font, anchor="rm")
    draw.text(((left + right) / 2, 10), title, fill="black", font=font, anchor="mt")
    draw.text(((left + right) / 2, size[1] - 8), x_label, fill="black", font=font, anchor="mb")
    draw.text((6, top - 20), y_label, fill="black", font=font)
    for i, (name, (xs, ys)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        line = [at(x, y) for x, y in zip(xs, ys) if _finite(y)]
        if len(line) > 1:
            draw.line(line, fill=color, width=2)
        for px, py in line:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
        draw.line([right - 170, top + 12 + 18 * i, right - 150, top + 12 + 18 * i], fill=color, width=3)
        draw.text((right - 145, top + 12 + 18 * i), name, fill="black", font=font, anchor="lm")
    return image


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _save_png(image: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _plots(results: EvalResults, out_dir: Path) -> list[str]:
    m, hs = results.open_loop.metrics["all"], results.open_loop.horizons
    plots = {
        "psnr_vs_horizon.png": line_plot({LABELS[p]: (hs, v) for p, v in m["psnr"].items()},
                                         "PSNR vs horizon (all sources)", "horizon (steps)", "PSNR (dB)"),
        "eef_error_vs_horizon.png": line_plot({LABELS[p]: (hs, [1000 * x for x in v])
                                               for p, v in m["eef_error"].items()},
                                              "end-effector error vs horizon", "horizon (steps)",
                                              "error (mm)"),
    }
    if results.plan is not None:
        steps = list(range(1, results.plan.horizon + 1))
        plots["plan_psnr.png"] = line_plot({"plan": (steps, results.plan.psnr["plan"]),
                                            "copy-first-frame": (steps, results.plan.psnr["copy_first"])},
                                           "instruction-conditioned plan vs expert", "plan step", "PSNR (dB)")
    for name, image in plots.items():
        _save_png(image, out_dir / name)
    return list(plots)


# -- GIFs --------------------------------------------------------------------------------------------------


def _panel(frames: np.ndarray, source: str) -> Rollout:
    """Frames as a Rollout (save_gif's record); only the pixels mean anything."""
    steps = frames.shape[0] - 1
    return Rollout(pixels=np.ascontiguousarray(frames), agent_pos=np.zeros((steps + 1, 9), np.float32),
                   action=np.zeros((steps, 7), np.float32), reward=np.zeros(steps, np.float32),
                   terminated=np.zeros(steps, bool), truncated=np.zeros(steps, bool), source=source)


def write_gifs(examples: list[Example], out_dir: Path) -> list[tuple[str, str]]:
    """One GIF per example: simulator | imagined | |difference|; returns (file name, caption) pairs."""
    written = []
    for i, example in enumerate(examples):
        difference = np.abs(example.simulated.astype(np.int16) - example.imagined.astype(np.int16))
        difference = difference.astype(np.uint8)
        name = f"example_{i}.gif"
        save_gif([_panel(example.simulated, "sim"), _panel(example.imagined, "imagined"),
                  _panel(difference, "sim")], out_dir / name, fps=4)
        written.append((name, example.name))
    return written


# -- markdown ----------------------------------------------------------------------------------------------


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def horizon_table(metrics: dict[str, dict[str, list[float]]], horizons: list[int]) -> list[str]:
    """One row per horizon: PSNR, SSIM, exact frames (%), eef and object error (mm) for model, copy-last and
    shuffled."""
    cols = [("psnr", "PSNR dB", 1.0, 2), ("ssim", "SSIM", 1.0, 3), ("exact", "exact %", 100.0, 0),
            ("eef_error", "eef mm", 1000.0, 1), ("object_error", "object mm", 1000.0, 1)]
    short = {"model": "model", "copy_last": "copy", "shuffled": "shuf"}
    head = ["h"] + [f"{title} {short[p]}" for _, title, _, _ in cols for p in short] + ["probe mm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for i, h in enumerate(horizons):
        cells = [str(h)] + [_fmt(metrics[key][p][i], scale, d) for key, _, scale, d in cols for p in short]
        cells.append(_fmt(metrics["probe_error"]["sim_probe"][i], 1000.0, 1))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _percent_lower(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.0f}% lower" if value >= 0 else f"{-value:.0f}% higher"


def acceptance_lines(figures: dict[str, float]) -> list[str]:
    """The headline figures as a markdown table (also what `wow-gym eval-world-model` prints)."""
    lines = ["| figure | model | baseline | difference |", "|---|---:|---:|---:|"]
    for h in (4, 8, 16):
        if f"psnr_h{h}_model" in figures:
            a, b = figures[f"psnr_h{h}_model"], figures[f"psnr_h{h}_copy_last"]
            lines.append(f"| PSNR h={h} vs copy-last (dB) | {_fmt(a)} | {_fmt(b)} | {_fmt(a - b)} dB |")
    for key, a in figures.items():
        if key.startswith("eef_error_h") and key.endswith("_true"):
            h = key[len("eef_error_h"):-len("_true")]
            b = figures[f"eef_error_h{h}_shuffled"]
            lines.append(f"| eef error h={h}, true vs shuffled actions (mm) | {_fmt(a, 1000, 1)} | "
                         f"{_fmt(b, 1000, 1)} | {_percent_lower(figures[f'eef_error_h{h}_lower_pct'])} |")
            a, b = figures[f"psnr_h{h}_true"], figures[f"psnr_h{h}_shuffled"]
            lines.append(f"| PSNR h={h}, true vs shuffled actions (dB) | {_fmt(a)} | {_fmt(b)} | "
                         f"{_fmt(a - b)} dB |")
    if "plan_psnr" in figures:
        a, b = figures["plan_psnr"], figures["plan_psnr_copy_first"]
        lines.append(f"| plan PSNR, mean over the plan vs copy-first-frame (dB) | {_fmt(a)} | {_fmt(b)} | "
                     f"{_fmt(a - b)} dB |")
    return lines


def _sections(results: EvalResults) -> list[str]:
    ol = results.open_loop
    lines = []
    for group, metrics in ol.metrics.items():
        roots = ", ".join(f"`{r}`" for r in results.datasets.get(group, []))
        title = "All sources" if group == "all" else f"Source: {group} ({roots})"
        lines += [f"### {title}: {ol.starts[group]} starts", "", *horizon_table(metrics, ol.horizons), ""]
    if results.plan is not None:
        plan = results.plan
        lines += ["## Instruction-conditioned plans", "",
                  (f"{plan.episodes} held-out expert episodes, plan of {plan.horizon} steps from the first "
                   "context frames, no actions. PSNR against the expert's simulated frames:"), "",
                  "| plan step | plan | copy-first-frame |", "|---:|---:|---:|"]
        lines += [f"| {i + 1} | {_fmt(a)} | {_fmt(b)} |"
                  for i, (a, b) in enumerate(zip(plan.psnr["plan"], plan.psnr["copy_first"]))]
        lines += ["", "![plan PSNR](plan_psnr.png)", ""]
    lines += ["## Sampling steps: quality and time", "",
              "| sampling steps | batch | PSNR at h | ms per batched step | imagined steps/s |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.sampling_steps} | {r.batch_size} | {_fmt(r.psnr)} (h={r.horizon}) | "
              f"{r.ms_per_batched_step:.1f} | {r.imagined_steps_per_second:.1f} |" for r in results.sweep]
    return lines + [""]


NOTES = """## How these figures are measured

- Open loop: from each start t (t >= context_frames-1, so the recorded context exists) the model gets the
  recorded context frames, agent_pos and previous actions, then imagines max(horizons) steps under the
  recorded actions; imagined frame t+h is compared with the simulator's frame t+h.
- Baselines: *copy-last* holds frame t (and the end effector where it was at t); *shuffled* is the same
  model fed the window's actions in a random time order (a fixed-seed permutation per start): the gap to it
  measures how much the model follows the actions.
- PSNR is per frame and averaged; identical frames count as {cap:g} dB instead of infinity. *exact %* is
  the share of starts whose frame is the simulator's exactly: each adds the full {cap:g} dB to the mean, so
  a still scene (copy-last, or the model's residual deadband) can lift a mean PSNR on its own.
  SSIM: Gaussian window 11x11, sigma 1.5, channels averaged.
- eef error: L2 distance of agent_pos[:3] (metres in results.json, mm here); the model's pose comes from its
  pose dynamics, not from pixels.
- object error: the object position (the first 3 values of environment_state; for Lift the cube) read by the
  model's object-state probe from the imagined frame vs read by the same probe from the simulator's frame.
  The probe was trained on simulator frames only; its own error (probe on the simulator's frame vs the true
  environment_state) is the *probe mm* column.
"""


def write_report(results: EvalResults, out_dir: str | Path, examples: list[Example] | None = None) -> Path:
    """Write report.md, results.json, plots and GIFs into out_dir (atomically); returns report.md's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if examples is None:
        examples = results.open_loop.examples + (results.plan.examples if results.plan else [])
    atomic_write_text(out_dir / "results.json", json.dumps(to_json(results), indent=1) + "\n")
    plots = _plots(results, out_dir)
    gifs = write_gifs(examples, out_dir)
    ol = results.open_loop
    lines = [
        f"# World-model evaluation: {results.task}", "",
        (f"checkpoint `{results.checkpoint}`, commit `{git_commit()['commit']}`, "
         f"{ol.sampling_steps} sampling steps, residual deadband {results.residual_deadband:g} levels, "
         f"{sum(results.episodes.values())} held-out episodes "
         f"({', '.join(f'{s} {n}' for s, n in results.episodes.items())}), {results.seconds:.0f} s"), "",
        "## Headline figures (all sources)", "", *acceptance_lines(results.acceptance), "",
        "## Open loop against the simulator", "",
        ("Columns: model (recorded actions), copy = copy-last-frame, shuf = the model fed time-shuffled "
         "actions; errors in mm; probe = the object probe's own error on simulator frames."), "",
    ]
    lines += [f"![{p}]({p})" for p in plots if p != "plan_psnr.png"] + [""]
    lines += _sections(results)
    lines += ["## Examples", "",
              "Each GIF: simulator | imagined | absolute difference; the first frame is the last context "
              "frame.",
              ""]
    lines += [f"**{caption}**\n\n![{caption}]({name})\n" for name, caption in gifs]
    lines += [NOTES.format(cap=PSNR_CAP_DB)]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def write_tensorboard(results: EvalResults, log_dir: str | Path) -> None:
    """Scalars per group/metric/predictor with the horizon as the step; plan PSNR per plan step."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(log_dir))
    ol = results.open_loop
    for group, metrics in ol.metrics.items():
        for metric, predictors in metrics.items():
            for predictor, values in predictors.items():
                for h, value in zip(ol.horizons, values):
                    if math.isfinite(value):
                        writer.add_scalar(f"open_loop/{group}/{metric}/{predictor}", value, h)
    if results.plan is not None:
        for name, values in results.plan.psnr.items():
            for step, value in enumerate(values, 1):
                writer.add_scalar(f"plan/psnr/{name}", value, step)
    for row in results.sweep:
        writer.add_scalar("sampling_steps/psnr", row.psnr, row.sampling_steps)
        writer.add_scalar("sampling_steps/ms_per_batched_step", row.ms_per_batched_step, row.sampling_steps)
    writer.close()

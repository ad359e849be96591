"""The evaluation report: report.md with tables, PNG plots, side-by-side GIFs, results.json, TensorBoard.

Plots are drawn with PIL (matplotlib is not a dependency of wow_gym).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from wow_gym.contact_sheet import save_gif
from wow_gym.metrics import PSNR_CAP_DB
from wow_gym.provenance import atomic_write_text, git_commit
from wow_gym.world_models.plots import fmt, line_plot, panel, save_png, to_json
from wow_gym.world_models.video.evaluation import EvalResults, Example

LABELS = {"model": "model", "copy_last": "copy-last", "shuffled": "shuffled actions"}



# -- plots -------------------------------------------------------------------------------------------------


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
        save_png(image, out_dir / name)
    return list(plots)


# -- GIFs --------------------------------------------------------------------------------------------------


def write_gifs(examples: list[Example], out_dir: Path) -> list[tuple[str, str]]:
    """One GIF per example: simulator | imagined | |difference|; returns (file name, caption) pairs."""
    written = []
    for i, example in enumerate(examples):
        difference = np.abs(example.simulated.astype(np.int16) - example.imagined.astype(np.int16))
        difference = difference.astype(np.uint8)
        name = f"example_{i}.gif"
        save_gif([panel(example.simulated, "sim"), panel(example.imagined, "imagined"),
                  panel(difference, "sim")], out_dir / name, fps=4)
        written.append((name, example.name))
    return written


# -- markdown ----------------------------------------------------------------------------------------------


def horizon_table(metrics: dict[str, dict[str, list[float]]], horizons: list[int]) -> list[str]:
    """One row per horizon: PSNR, SSIM, exact frames (%), eef and object error (mm) for model, copy-last and
    shuffled."""
    cols = [("psnr", "PSNR dB", 1.0, 2), ("ssim", "SSIM", 1.0, 3), ("exact", "exact %", 100.0, 0),
            ("eef_error", "eef mm", 1000.0, 1), ("object_error", "object mm", 1000.0, 1)]
    short = {"model": "model", "copy_last": "copy", "shuffled": "shuf"}
    head = ["h"] + [f"{title} {short[p]}" for _, title, _, _ in cols for p in short] + ["probe mm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for i, h in enumerate(horizons):
        cells = [str(h)] + [fmt(metrics[key][p][i], scale, d) for key, _, scale, d in cols for p in short]
        cells.append(fmt(metrics["probe_error"]["sim_probe"][i], 1000.0, 1))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _readings(figures: dict[str, float]) -> tuple[list[str], str]:
    """The readings an interaction result holds (the state, then the video and the critic where read) and
    what they count: lifts (Lift: the object's height) or successes (a task without a success height)."""
    kinds = [k for k in ("state", "video", "critic") if f"seen_{k}" in figures]
    return kinds, "lifts" if "seen_video" in figures else "successes"


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
            lines.append(f"| PSNR h={h} vs copy-last (dB) | {fmt(a)} | {fmt(b)} | {fmt(a - b)} dB |")
    for key, a in figures.items():
        if key.startswith("eef_error_h") and key.endswith("_true"):
            h = key[len("eef_error_h"):-len("_true")]
            b = figures[f"eef_error_h{h}_shuffled"]
            lines.append(f"| eef error h={h}, true vs shuffled actions (mm) | {fmt(a, 1000, 1)} | "
                         f"{fmt(b, 1000, 1)} | {_percent_lower(figures[f'eef_error_h{h}_lower_pct'])} |")
            a, b = figures[f"psnr_h{h}_true"], figures[f"psnr_h{h}_shuffled"]
            low, high = (figures.get(f"psnr_h{h}_action_gain_{end}_db") for end in ("low", "high"))
            spread = "" if low is None else f" (95 % CI {fmt(low)} to {fmt(high)})"
            lines.append(f"| PSNR h={h}, true vs shuffled actions (dB) | {fmt(a)} | {fmt(b)} | "
                         f"{fmt(a - b)} dB{spread} |")
    if "interaction_seen_state" in figures:
        f = {k.removeprefix("interaction_"): v for k, v in figures.items() if k.startswith("interaction_")}
        kinds, event = _readings(f)
        cells = {side: " | ".join(fmt(f[f"{side}_{k}"], 1, 1) for k in kinds) + " |" * (3 - len(kinds))
                 for side in ("seen", "false")}
        lines += [(f"| {event} seen in imagination, of {f['sim_lifts']:.0f} simulated {event} (%): "
                   f"{' / '.join(kinds)} | {cells['seen']}"),
                  (f"| false {event}, of {f['episodes'] - f['sim_lifts']:.0f} episodes without one (%): "
                   f"{' / '.join(kinds)} | {cells['false']}"),
                  (f"| imagined env success agrees with the simulator's (% of {f['episodes']:.0f} episodes) | "
                   f"{fmt(f['success_agreement'], 1, 1)} | | |")]
        for at in ("h16", "end"):
            a, b = f[f"object_error_state_{at}_mm"], f[f"object_error_copy_last_{at}_mm"]
            lines.append(f"| object error at {'h=16' if at == 'h16' else 'the episode end'} vs copy-last (mm) | "
                         f"{fmt(a, 1, 1)} | {fmt(b, 1, 1)} | {_percent_lower(100 * (1 - a / b) if b else math.nan)} |")
    if "plan_psnr" in figures:
        a, b = figures["plan_psnr"], figures["plan_psnr_copy_first"]
        lines.append(f"| plan PSNR, mean over the plan vs copy-first-frame (dB) | {fmt(a)} | {fmt(b)} | "
                     f"{fmt(a - b)} dB |")
    return lines


def _sections(results: EvalResults) -> list[str]:
    ol = results.open_loop
    lines = []
    for group, metrics in ol.metrics.items():
        roots = ", ".join(f"`{r}`" for r in results.datasets.get(group, []))
        title = "All sources" if group == "all" else f"Source: {group} ({roots})"
        lines += [f"### {title}: {ol.starts[group]} starts", "", *horizon_table(metrics, ol.horizons), ""]
    if results.interaction is not None:
        kinds, event = _readings(next(iter(results.interaction.figures.values())))
        read = " / ".join(kinds)
        lines += ["## Interaction: whole episodes from their first frame", "",
                  ("Each held-out episode imagined from its first frame under its recorded actions, the object "
                   "state read off that frame by the probe (as the imagined env starts). *seen*: % of the "
                   "episodes whose simulated object rises above the task's success height where the imagined "
                   "object does too (state: the carried object state; video: the probe on the imagined "
                   "frames; critic: SOPHIA's critic's success verdict on the imagined video, where one was "
                   "read); *false*: % of the other episodes where it does. *simulated arm*: the same for the "
                   "model's object dynamics following the simulator's recorded arm from the same start instead "
                   "of the imagined one (where the state lifts and this does not, the imagined arm's drift "
                   "made the lift). Object error in mm against the simulator's true state. A task without a "
                   "success height (Stack, Door, PickPlaceCan) counts successes instead: the simulator's "
                   "against the imagined env's (state: the task's test on the carried state, or the success "
                   "head of a model that carries none), the task's test on the probe's reading of the "
                   "imagined video (video) and the critic's verdict."), "",
                  (f"| source | episodes | sim {event} | seen {read} % | false {read} % | seen / false "
                   "with the simulated arm % | success agrees % | object mm h=16 state / video / copy-last | "
                   "object mm end state / video / copy-last |"), "|---|" + "---:|" * 8]
        for group, f in results.interaction.figures.items():
            err = {at: " / ".join(fmt(f[f"object_error_{p}_{at}_mm"], 1, 1) for p in ("state", "video", "copy_last"))
                   for at in ("h16", "end")}
            seen, false = (" / ".join(fmt(f[f"{side}_{k}"], 1, 1) for k in kinds)
                           for side in ("seen", "false"))
            arm = (f"{fmt(f['seen_sim_arm'], 1, 1)} / {fmt(f['false_sim_arm'], 1, 1)}" if "seen_sim_arm" in f
                   else "-")
            lines.append(f"| {group} | {f['episodes']:.0f} | {f['sim_lifts']:.0f} | {seen} | {false} | {arm} | "
                         f"{fmt(f['success_agreement'], 1, 1)} | {err['h16']} | {err['end']} |")
        lines.append("")
    if results.plan is not None:
        plan = results.plan
        lines += ["## Instruction-conditioned plans", "",
                  (f"{plan.episodes} held-out expert episodes, plan of {plan.horizon} steps from the first "
                   "context frames, no actions. PSNR against the expert's simulated frames:"), "",
                  "| plan step | plan | copy-first-frame |", "|---:|---:|---:|"]
        lines += [f"| {i + 1} | {fmt(a)} | {fmt(b)} |"
                  for i, (a, b) in enumerate(zip(plan.psnr["plan"], plan.psnr["copy_first"]))]
        lines += ["", "![plan PSNR](plan_psnr.png)", ""]
    lines += ["## Sampling steps: quality and time", "",
              "| sampling steps | batch | PSNR at h | ms per batched step | imagined steps/s |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.sampling_steps} | {r.batch_size} | {fmt(r.psnr)} (h={r.horizon}) | "
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
- object error: the task object's position (Task.object_position; for Lift the cube) read by the
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
    start = "the simulator's object state" if results.known_state else "the probe's reading"
    lines = [
        f"# World-model evaluation: {results.task}", "",
        (f"checkpoint `{results.checkpoint}`, commit `{git_commit()['commit']}`, "
         f"{ol.sampling_steps} sampling steps, residual deadband {results.residual_deadband:g} levels, "
         f"object layer {results.object_layer}, arm contact {'on' if results.arm_contact else 'off'}, "
         f"finger rule {'on' if results.finger_rule else 'off'}, "
         f"robot arm in MuJoCo {'on' if results.arm_physics else 'off'}, arm layer {results.arm_layer}, "
         f"whole episodes start from {start}, "
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

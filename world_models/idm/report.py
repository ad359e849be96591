"""The FM-IDM report: report.md with the ablation, replay and physics-check tables, plots, GIFs of imagined
video beside its MuJoCo replay, results.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wow_gym.contact_sheet import save_gif
from wow_gym.provenance import git_commit
from wow_gym.world_models.idm.evaluation import IDMResults
from wow_gym.world_models.plots import add_scalars, fmt, line_plot, panel, save_png, save_report

DIMENSIONS = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")


def acceptance_lines(results: IDMResults) -> list[str]:
    """The issue's acceptance figures, one line each."""
    lines = ["normalised action RMSE on held-out expert + noisy frames (mean over dimensions, lower is "
             "better): " + ", ".join(
        f"{k} {v:.3f}" for k, v in results.action_nrmse_mean.items())]
    for source, row in results.replay.items():
        oracle, fm = row["oracle"], row.get("fm-idm", float("nan"))

        def of_oracle(rate: float) -> str:
            return f"{100 * (rate / oracle if oracle else float('nan')):.1f}% of the oracle"

        lines.append(f"replay success from ground-truth video ({source}, {int(row['episodes'])} episodes): "
                     f"FM-IDM {100 * fm:.1f}% vs oracle {100 * oracle:.1f}% ({of_oracle(fm)})")
        if "fm-idm-tracked" in row:
            lines.append(f"  tracking the video with the pose head: {100 * row['fm-idm-tracked']:.1f}% "
                         f"({of_oracle(row['fm-idm-tracked'])})")
    for mode, figures in results.imagined.items():
        lines.append(f"success of FM-IDM actions decoded from imagined {results.task} video ({mode}, {int(figures['cases'])} "
                     f"starts), executed in MuJoCo: {100 * figures.get('replay_success', float('nan')):.1f}%")
    if results.cases:
        lines.append(f"verified imagined trajectories written: {results.verified_written} ({results.verified_root})")
    return lines


def _gifs(results: IDMResults, out_dir: Path, per_mode: int = 2) -> list[tuple[str, str]]:
    written = []
    for mode in sorted({c.mode for c in results.cases}):
        for case in [c for c in results.cases if c.mode == mode][:per_mode]:
            imagined, replayed = case.rollout.pixels, case.check.replayed.pixels
            difference = np.abs(imagined.astype(np.int16) - replayed.astype(np.int16)).astype(np.uint8)
            name = f"{mode}_{case.episode}.gif"
            save_gif([panel(imagined, "imagined"), panel(replayed, "sim"), panel(difference, "sim")],
                     out_dir / name, fps=8)
            verdict = "replay succeeds" if case.check.replay_success else "replay fails"
            written.append((name, f"{mode}, start {case.episode}: imagined | MuJoCo replay of FM-IDM's actions | "
                                  f"difference ({verdict})"))
    return written


def write_idm_report(results: IDMResults, config: dict, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dims = list(range(1, len(DIMENSIONS) + 1))
    save_png(line_plot({k: (dims, v) for k, v in results.action_nrmse.items()},
                        "normalised action RMSE per dimension (1-3 xyz, 4-6 rotation, 7 gripper)",
                        "action dimension", "RMSE / std"), out_dir / "action_nrmse.png")
    commit = git_commit().get("commit", "unknown")
    lines = [f"# FM-IDM evaluation: {config.get('task', '')}", "",
             f"commit `{commit}`, {results.seconds:.0f} s", "", "## Acceptance figures", ""]
    lines += [f"- {line}" for line in acceptance_lines(results)]
    lines += ["", "## Action error per ablation variant (held-out ground-truth frames)", "",
              "Normalised RMSE: RMSE of the decoded action over the std of the recorded action, per dimension, "
              f"on the held-out {' + '.join(config.get('headline_sources', []))} episodes.", "",
              "| variant | " + " | ".join(DIMENSIONS) + " | mean |", "|---|" + "---:|" * (len(DIMENSIONS) + 1)]
    for name, values in results.action_nrmse.items():
        lines.append(f"| {name} | " + " | ".join(fmt(v, digits=3) for v in values)
                     + f" | {fmt(results.action_nrmse_mean[name], digits=3)} |")
    variants = list(results.action_nrmse)
    lines += ["", "Per held-out source (mean over dimensions). Random and random-walk actions often push the arm "
              "against its workspace limits, where the action leaves no trace in the video, so part of their "
              "error cannot be removed by any inverse dynamics model.", "",
              "| source | " + " | ".join(variants) + " |", "|---|" + "---:|" * len(variants)]
    for source, row in results.action_nrmse_by_source.items():
        lines.append(f"| {source} | " + " | ".join(fmt(float(np.mean(row[v])), digits=3) for v in variants) + " |")
    lines += ["", "![action_nrmse.png](action_nrmse.png)", "",
              "## Replay in MuJoCo from ground-truth video", "",
              "Each held-out episode's actions decoded from its own frames, replayed from its first simulator "
              "state; the oracle replays the recorded actions. fm-idm-tracked: FM-IDM's actions, each "
              "corrected toward the end-effector position its pose head reads off the video "
              "(wow_gym/physics_check.py).", ""]
    names = ["oracle", *results.action_nrmse, *(["fm-idm-tracked"] if any(
        "fm-idm-tracked" in row for row in results.replay.values()) else [])]
    lines += ["| source | episodes | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for source, row in results.replay.items():
        lines.append(f"| {source} | {int(row['episodes'])} | "
                     + " | ".join(fmt(row.get(n), 100, 1) + "%" for n in names) + " |")
    if results.cases:
        keys = ["replay_success", "imagined_success", "success_agrees", "verified", "psnr", "ssim",
                "eef_mean_mm", "eef_dtw_mm", "eef_frechet_mm", "object_mean_mm", "object_dtw_mm", "object_frechet_mm"]
        lines += ["", "## Physics check of imagined video", "",
                  "The world model imagines from held-out start states (`actions`: under the recorded expert "
                  "actions; `plan`: from the instruction alone); FM-IDM decodes the video and MuJoCo replays "
                  "the actions from the same state. Means over starts; errors in mm, imagined vs replayed.", "",
                  "| figure | " + " | ".join(results.imagined) + " |", "|---|" + "---:|" * len(results.imagined)]
        for key in keys:
            lines.append(f"| {key} | " + " | ".join(fmt(results.imagined[m].get(key), digits=3)
                                                    for m in results.imagined) + " |")
        lines += [""] + [f"![{name}]({name})  \n{caption}\n" for name, caption in _gifs(results, out_dir)]
    return save_report(out_dir, lines, results)


def write_idm_tensorboard(results: IDMResults, log_dir: str | Path) -> None:
    """The headline figures as TensorBoard scalars (step 0), beside the report."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as tb:
        add_scalars(tb, "action_nrmse", results.action_nrmse_mean)
        for source, row in results.replay.items():
            add_scalars(tb, f"replay_success_{source}", row)
        for mode, figures in results.imagined.items():
            add_scalars(tb, f"imagined_{mode}", figures)

"""The critic's calibration report: report.md with the acceptance figures and tables, a plot of critic
progress against the simulator's reward, GIFs of refinement rounds with their critiques, results.json."""

from __future__ import annotations

from pathlib import Path

from wow_gym.contact_sheet import save_gif
from wow_gym.provenance import git_commit
from wow_gym.world_models.critic.evaluation import CriticResults, critique_summary
from wow_gym.world_models.plots import add_scalars, fmt, line_plot, panel, save_png, save_report


def acceptance_lines(r: CriticResults) -> list[str]:
    """The issue's acceptance figures, one line each."""
    s, i, a, f = r.sim_episodes, r.imagined, r.plausibility_auc, r.refinement
    lines = [f"success detection on {int(s['n'])} held-out sim rollouts: accuracy {100 * s['accuracy']:.1f}%, "
             f"F1 {s['f1']:.3f}, false-positive rate {100 * s['false_positive_rate']:.1f}% "
             f"(per frame: accuracy {100 * r.sim_frames['accuracy']:.1f}%, FPR "
             f"{100 * r.sim_frames['false_positive_rate']:.1f}%)"]
    u = r.unseen_kinds
    if u:
        failures = int(u["n"] - u["positives"])
        called = (f" ({round(u['false_positive_rate'] * failures)} of {failures} failures called successes)"
                  if failures else "")
        lines.append(f"success detection on {int(u['n'])} sim rollouts of action kinds absent from training "
                     f"({', '.join(r.unseen_sources)}): accuracy {100 * u['accuracy']:.1f}%, "
                     f"F1 {fmt(u['f1'], digits=3)}, false-positive rate "
                     f"{fmt(u['false_positive_rate'], 100, 1)}%{called}")
    if i:
        lines.append(f"success detection on {int(i['n'])} imagined rollouts vs the simulator's verdict on the paired "
                     f"replay: accuracy {100 * i['accuracy']:.1f}%, F1 {fmt(i['f1'], digits=3)}, false-positive rate "
                     f"{fmt(i['false_positive_rate'], 100, 1)}%")
    p = r.progress_spearman
    lines.append(f"Spearman(critic progress, simulator shaped reward) along held-out rollouts: mean per episode "
                 f"{p['mean_per_episode']:.3f} over {int(p['episodes'])} episodes, pooled {p['pooled']:.3f}")
    lines.append(f"plausibility AUC on corrupted clips: all {a['all']:.3f}, kinds trained on {fmt(a['trained_kinds'], digits=3)}, "
                 f"kinds left out of training ({', '.join(r.held_out_kinds) or 'none'}) {fmt(a['held_out_kinds'], digits=3)}")
    if f:
        lines.append(f"refinement, {int(f['starts'])} start states: physics-verified success (FM-IDM replay in MuJoCo) "
                     f"without the refiner {100 * f['baseline_replay_success']:.1f}%, with it (at most "
                     f"{int(f['rounds'])} rounds) {100 * f['refined_replay_success']:.1f}%")
    return lines


def _round_gifs(r: CriticResults, out_dir: Path, count: int = 3) -> list[str]:
    lines = []
    for case in r.cases[:count]:
        name = f"refine_{case.start}.gif"
        save_gif([panel(entry.frames, "imagined") for entry in case.rounds], out_dir / name, fps=8)
        lines += [f"### Start {case.start}", "", f"![{name}]({name})", "",
                  f"Plans left to right, one per round. FM-IDM replay in MuJoCo: unrefined "
                  f"{'succeeds' if case.baseline_success else 'fails'}, final {'succeeds' if case.refined_success else 'fails'}.",
                  "", "| round | instruction | critique |", "|---:|---|---|"]
        lines += [f"| {e.round} | {e.instruction} | {critique_summary(e.critique)} |" for e in case.rounds]
        lines.append("")
    return lines


def write_critic_report(r: CriticResults, config: dict, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series = {}
    for k, example in enumerate(r.examples[:3]):
        steps = list(range(len(example["sim_reward"])))
        tag = f"{example['source']} {'success' if example['sim_success'] else 'failure'}"
        series[f"sim {tag}"] = (steps, example["sim_reward"])
        series[f"critic {tag}"] = (steps, example["critic_progress"])
    if series:
        save_png(line_plot(series, "critic progress vs the simulator's shaped reward (held-out episodes)", "frame",
                            "progress / reward"), out_dir / "progress.png")
    commit = git_commit().get("commit", "unknown")
    lines = [f"# Critic calibration: {config.get('task', '')}", "", f"critic `{r.checkpoint}`, commit `{commit}`, "
             f"{r.seconds:.0f} s", "", "## Acceptance figures", ""]
    lines += [f"- {line}" for line in acceptance_lines(r)]
    keys = ["n", "positives", "accuracy", "f1", "precision", "recall", "false_positive_rate"]
    lines += ["", "## Success detection", "", "| rollouts | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    rows = {"held-out sim (episodes)": r.sim_episodes, "held-out sim (frames)": r.sim_frames,
            **{f"sim: {s}": v for s, v in r.by_source.items()}}
    if r.unseen_kinds:
        rows["sim, action kinds absent from training (episodes)"] = r.unseen_kinds
    if r.imagined:
        rows["imagined vs paired replay"] = r.imagined
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(row.get(k), digits=0 if k in ("n", "positives") else 3)
                                                 for k in keys) + " |")
    if r.imagined:
        i = r.imagined
        text = (f"The paired replays reproduce the stored episodes' success in "
                f"{100 * i['replay_matches_dataset']:.0f}% of cases.")
        if "video_shows_lift_when_sim_lifts" in i:  # only for tasks with a success height (Lift)
            text += (f" Of the imagined videos whose replay succeeds, "
                     f"{fmt(i['video_shows_lift_when_sim_lifts'], 100, 1)}% show the task object above its "
                     f"success height to the object probe (trained on sim frames); the critic's verdict "
                     f"agrees with the probe's on "
                     f"{fmt(i['critic_agrees_with_probe'], 100, 1)}% of imagined videos.")
        lines += ["", text]
    lines += ["", "## Plausibility (corrupted clips of held-out episodes vs real clips)", "",
              "| kind | AUC | in training |", "|---|---:|---|"]
    for kind, value in r.plausibility_auc.items():
        if kind in ("all", "trained_kinds", "held_out_kinds", "real_clips"):
            continue
        lines.append(f"| {kind} | {fmt(value, digits=3)} | {'no (held out)' if kind in r.held_out_kinds else 'yes'} |")
    for kind in ("trained_kinds", "held_out_kinds", "all"):
        lines.append(f"| **{kind}** | {fmt(r.plausibility_auc[kind], digits=3)} | |")
    fm = r.failure_modes
    lines += ["", "## What the critique names on failed episodes", "",
              f"The failure the critique names against the stage the simulator says the episode reached: "
              f"{fmt(fm['agreement'], 100, 1)}% agree over {fm['episodes']} failed held-out episodes; on the stage "
              f"reached alone (closed_early and no_reach both never get to the object) "
              f"{fmt(fm['stage_agreement'], 100, 1)}% agree.", "",
              "| simulator says | critique says (count) |", "|---|---|"]
    for actual, named in fm["confusion"].items():
        lines.append(f"| {actual} | " + ", ".join(f"{k} ({v})" for k, v in sorted(named.items())) + " |")
    lines += ["", "## Example critiques (held-out episodes)", "", "| source | sim | critique |", "|---|---|---|"]
    for e in r.examples:
        verdict = "success" if e["sim_success"] else f"failure ({e['sim_failure']})"
        lines.append(f"| {e['source']} | {verdict} | {'success' if e['success'] else 'no success'}: \"{e['text']}\" |")
    if series:
        lines += ["", "![progress.png](progress.png)"]
    p = r.progress_spearman
    lines += ["", f"Spearman correlation of critic progress with the shaped reward: mean per episode "
                  f"{p['mean_per_episode']:.3f} (median {p['median_per_episode']:.3f}), pooled {p['pooled']:.3f}."]
    if r.refinement:
        f = r.refinement
        lines += ["", "## Refinement (plan -> critique -> refine)", "",
                  "| | without refiner | with refiner |", "|---|---:|---:|",
                  f"| physics-verified success (FM-IDM replay) | {100 * f['baseline_replay_success']:.1f}% | "
                  f"{100 * f['refined_replay_success']:.1f}% |",
                  f"| critic says success | {100 * f['baseline_critic_success']:.1f}% | "
                  f"{100 * f['refined_critic_success']:.1f}% |",
                  "", f"Rounds used on average: {f['mean_rounds_used']:.2f}; the critic's verdict agrees with the "
                      f"replay in {100 * f['critic_agrees_with_replay']:.1f}% of plans.", ""]
        lines += _round_gifs(r, out_dir)
    return save_report(out_dir, lines, r)


def write_critic_tensorboard(r: CriticResults, log_dir: str | Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as tb:
        for group, row in (("sim_episodes", r.sim_episodes), ("unseen_kinds", r.unseen_kinds),
                           ("imagined", r.imagined),
                           ("plausibility_auc", r.plausibility_auc), ("refinement", r.refinement),
                           ("progress_spearman", r.progress_spearman)):
            add_scalars(tb, group, row)

"""wow-gym demo: the main job on the shipped defaults (`make demo`): imagine -> critique -> act -> verify.

1. Collect a few scripted-expert episodes of each task into LeRobot v3.0 datasets and read them back.
2. For each task with a shipped world model (Lift, Stack): imagine those episodes open loop beside the
   simulator (sim | imagined | difference, PSNR per horizon against copy-last-frame and shuffled actions);
   decode the imagined video with FM-IDM and replay it in MuJoCo (the physics check); SOPHIA's critic on the
   sim and imagined clips; one plan -> critique -> refine loop whose every plan FM-IDM decodes and MuJoCo
   verifies.
3. With the shipped policy: a short PPO fine-tune in imagination, judged in the sim twin before and after;
   both policies' paired rollouts in the imagined env and the sim twin from the same start states;
   imagined vs simulated steps/s; ONNX export of the fine-tuned policy with its parity check, and a shadow
   run of the deployment runner on the simulated arm.

Writes outputs/demo/<timestamp>/report.html (one self-contained page: videos and plots embedded),
report.md beside its PNGs and GIFs, the resolved config and the git commit. Every figure comes from this run.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from wow_gym.experiments.config_loading import load_config, run_dir
from wow_gym.experiments.demo_policies import policy_sections
from wow_gym.html_report import (
    Code,
    Picture,
    Report,
    Section,
    Stats,
    Table,
    Text,
    Video,
    difference,
    write_html,
    write_markdown,
)
from wow_gym.provenance import git_commit, write_run_metadata
from wow_gym.tasks import task_info


def main(argv: list[str]) -> int:
    cfg = load_config("demo", argv, __doc__)
    if cfg is None:
        return 0
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    clock = Clock()
    values = OmegaConf.to_container(cfg, resolve=True)
    out = Path(cfg.out) if cfg.out else run_dir("demo")
    write_run_metadata(out, values)
    report, headline = Report("wow_gym demo: imagine → critique → act → verify"), []
    with clock("collecting expert episodes"):
        episodes = _collect_section(report, cfg, out, headline)
    data = report.sections.pop()  # the page leads with imagination; the data it started from comes after
    loaded = {task: _load_shipped(task, cfg.policy) for task in cfg.tasks}
    imagined = {task: shipped for task, shipped in loaded.items() if shipped is not None}
    for task, shipped in imagined.items():
        figures: list[tuple[str, str]] = []
        _world_model_sections(report, shipped, episodes[task], cfg, out, clock, figures)
        # one column per figure and task when more than one task is imagined
        headline += [(f"{name} ({shipped.task})" if len(imagined) > 1 else name, value)
                     for name, value in figures]
    report.sections.append(data)
    commit = git_commit()
    headline.append(("demo wall-clock", f"{clock.elapsed():.0f} s"))
    report.sections.insert(0, Section("At a glance", [Stats(headline)]))
    dirty = " (uncommitted changes)" if commit["dirty"] else ""
    report.subtitle = (f"commit `{commit['commit'][:12]}`{dirty}, {time.strftime('%Y-%m-%d %H:%M')}, "
                       f"{clock.elapsed():.0f} s on this machine")
    _run_section(report, values, clock, commit)
    with clock("writing the report"):
        write_markdown(report, out)
        path = write_html(report, out / "report.html")
    print(f"\ndemo finished in {clock.elapsed():.0f} s; report: {path.resolve()}")
    return 0


class Clock:
    """Prints each stage as it starts and keeps how long it took (the report's timing table)."""

    def __init__(self) -> None:
        self.start, self.stages = time.monotonic(), {}

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @contextmanager
    def __call__(self, name: str):
        print(f"[{self.elapsed():5.0f} s] {name} ...", flush=True)
        began = time.monotonic()
        yield
        self.stages[name] = time.monotonic() - began


@dataclass
class Shipped:
    """A task's shipped models, loaded once for every section; idm, critic and policy may be missing."""

    task: str
    wm: Any
    idm: Any | None
    critic: Any | None
    policy: Path | None


def _load_shipped(task: str, policy: str | None) -> Shipped | None:
    from wow_gym.world_models import CheckpointError, WorldModel, shipped_checkpoint
    from wow_gym.world_models.checkpoint import shipped_tasks
    from wow_gym.world_models.critic.model import LearnedCritic
    from wow_gym.world_models.idm.model import InverseDynamics

    try:
        wm = WorldModel.load(shipped_checkpoint(task, "world-model"), task=task)
    except CheckpointError:
        return None
    try:
        idm = InverseDynamics.load(shipped_checkpoint(task, "idm"))
    except CheckpointError:
        idm = None
    critic = LearnedCritic.load(task=task) if wm.config.task in shipped_tasks("critic") else None
    return Shipped(wm.config.task, wm, idm, critic, policy_folder(task, policy))


def policy_folder(task: str, policy: str | None) -> Path | None:
    """The policy the demo runs on `task`: `policy` (a shipped-format folder) if made for this task, else the
    shipped one; None when there is none."""
    from wow_gym.policies.shipped import shipped_policy
    from wow_gym.world_models import CheckpointError

    if policy is None:
        try:
            return shipped_policy(task)
        except CheckpointError:
            return None
    config = Path(policy) / "config.json"
    if not config.is_file():
        raise SystemExit(f"wow-gym demo: policy={policy} holds no config.json; pass a shipped-format policy "
                         "folder (model.safetensors + config.json, wow_gym.policies.shipped.save_policy) or "
                         "policy=null for the shipped one")
    return Path(policy) if json.loads(config.read_text())["task"].lower() == task.lower() else None


def _world_model_sections(report: Report, shipped: Shipped, episodes: list, cfg: Any, out: Path, clock: Clock,
                          headline: list[tuple[str, str]]) -> None:
    """Imagination, physics check, critic and refinement, then the policy sections, for one task."""
    from wow_gym.envs.robosuite_env import RobosuiteEnv

    task = shipped.task
    env = RobosuiteEnv(task, image_size=shipped.wm.config.image_size)
    try:
        with clock(f"imagining {task} beside the simulator"):
            _imagine_section(report, shipped, episodes, cfg, headline)
        if shipped.idm is None:
            return
        with clock(f"physics check of imagined {task} video"):
            imagined = _physics_section(report, shipped, episodes, env, cfg, headline)
        if shipped.critic is None:
            return
        with clock(f"SOPHIA's critic and the refinement loop on {task}"):
            _critic_section(report, shipped, episodes, imagined, env, cfg, headline)
        runs = out / task.lower()  # each task's runs (wowbench, fine-tune, paired, export) in its own folder
        with clock(f"ranking world models against MuJoCo on {task} (wowbench)"):
            _wowbench_section(report, shipped, cfg, runs, headline)
        if shipped.policy is not None:
            policy_sections(report, shipped, env, cfg, runs, clock, headline)
    finally:
        env.close()


# -- data and imagination ----------------------------------------------------------------------------------


def _collect_section(report: Report, cfg: Any, out: Path, headline: list[tuple[str, str]]) -> dict[str, list]:
    """Collect, store and read back the expert episodes of every task; a table, a video per task."""
    from tqdm import tqdm

    from wow_gym.contact_sheet import contact_sheet
    from wow_gym.data import DatasetReader
    from wow_gym.envs.collection import CollectConfig, collect

    episodes, rows, videos = {}, [], []
    for task in tqdm(cfg.tasks, desc="collect", unit="task", disable=not cfg.progress):  # the stage's one bar
        result = collect(CollectConfig(task=task, episodes=cfg.episodes_per_task, policy="expert",
                                       root=str(out / "datasets" / task), seed=cfg.seed, workers=cfg.workers,
                                       image_size=cfg.image_size, max_steps=cfg.max_steps, progress=False))
        reader = DatasetReader(result.root)
        rollouts = episodes[task] = [reader[i] for i in range(len(reader))]
        first = rollouts[0]
        rows.append([first.task, f'"{first.instruction}"', str(len(rollouts)),
                     str(sum(r.success for r in rollouts)), str(sum(r.num_steps for r in rollouts))])
        videos.append(Video([(f"seed {r.seed}", r.pixels) for r in rollouts], f"{first.task}, read back from "
                            f"`datasets/{task}`", f"{task}.gif", fps=20, scale=2))
    everything = [r for rollouts in episodes.values() for r in rollouts]
    headline.append(("expert episodes solved", f"{sum(r.success for r in everything)} / {len(everything)}"))
    report.add("Expert episodes",
               Text("Scripted experts, stored as LeRobot v3.0 datasets and read back; every video below is "
                    "decoded from the stored episodes."),
               Table(["task", "instruction", "episodes", "successes", "steps"], rows), *videos,
               Picture(contact_sheet(everything), "evenly spaced frames of each episode",
                       "contact_sheet.png"))
    return episodes


def _imagine_section(report: Report, shipped: Shipped, episodes: list, cfg: Any,
                     headline: list[tuple[str, str]]) -> None:
    """The shipped world model imagining the demo's episodes open loop, beside the simulator."""
    from wow_gym.world_models import shipped_checkpoint
    from wow_gym.world_models.plots import fmt, line_plot
    from wow_gym.world_models.video.evaluation import EvaluationError, evaluate_open_loop
    from wow_gym.world_models.video.report import LABELS

    title = f"Imagined {shipped.task} beside the simulator"
    try:
        result = evaluate_open_loop(shipped.wm, {"expert": episodes}, tuple(cfg.horizons),
                                    starts_per_episode=1, examples=len(episodes))
    except EvaluationError as error:  # episodes shorter than the horizons (a tiny max_steps)
        report.add(title, Text(f"skipped: {error}"))
        return
    m, hs = result.metrics["all"], result.horizons
    columns = [("psnr", "PSNR dB", 1.0, 2), ("ssim", "SSIM", 1.0, 3), ("eef_error", "eef mm", 1000.0, 1),
               ("object_error", "object mm", 1000.0, 1)]
    header = ["h"] + [f"{title_} {LABELS[p]}" for _, title_, _, _ in columns for p in LABELS]
    rows = [[str(h)] + [fmt(m[key][p][i], scale, digits) for key, _, scale, digits in columns
                        for p in LABELS] for i, h in enumerate(hs)]
    videos = [Video([("sim", e.simulated), ("imagined", e.imagined),
                     ("difference", difference(e.simulated, e.imagined))],
                    f"{e.name}: simulator | imagined | difference",
                    f"imagined_{shipped.task.lower()}_{i}.gif", fps=4) for i, e in enumerate(result.examples)]
    plot = line_plot({LABELS[p]: (hs, v) for p, v in m["psnr"].items()}, "imagined vs simulated frames",
                     "horizon (steps)", "PSNR (dB)")
    model, copy = (fmt(m["psnr"][p][-1], digits=1) for p in ("model", "copy_last"))
    headline.append((f"PSNR at h={hs[-1]}: world model / copy-last", f"{model} / {copy} dB"))
    report.add(title,
               Text(f"`{_shown(shipped_checkpoint(shipped.task, 'world-model'))}` imagines {hs[-1]} steps open loop from "
                    "the first frames of each expert episode this run collected (see Expert episodes) under "
                    "the recorded actions (model), against holding the last frame (copy-last) and the same "
                    "model under time-shuffled actions."),
               Table(header, rows),
               Picture(plot, "PSNR against the simulator per horizon", "psnr_vs_horizon.png"), *videos)


def _physics_section(report: Report, shipped: Shipped, episodes: list, env: Any, cfg: Any,
                     headline: list[tuple[str, str]]) -> list:
    """FM-IDM decodes the demo's sim and imagined video, MuJoCo replays it; returns the imagined rollouts."""
    import torch

    from wow_gym.physics_check import physics_check, replay
    from wow_gym.world_models import shipped_checkpoint
    from wow_gym.world_models.idm.evaluation import imagine_cases

    task = shipped.task
    generator = torch.Generator().manual_seed(cfg.seed)
    before = shipped.wm.config.arm_layer
    shipped.wm.set_options({"arm_layer": True})  # the robot's arm drawn where the imagined pose has it
    try:
        imagined = imagine_cases(shipped.wm, episodes, "actions", cfg.idm_horizon, generator)
    finally:
        shipped.wm.set_options({"arm_layer": before})
    gain = 1.0 if shipped.idm.pose_head is not None else 0.0  # tracked, as eval-idm checks imagined video
    rows, videos, checks = [], [], []
    for i, (episode, rollout) in enumerate(zip(episodes, imagined)):
        decoded = shipped.idm.predict(episode.pixels)
        from_truth = replay(env, episode.sim_state[0], decoded, render=False)
        tracked = "no pose head" if shipped.idm.pose_head is None else _yes(replay(
            env, episode.sim_state[0], decoded, render=False,
            track=shipped.idm.eef_positions(episode.pixels)).success)
        check = physics_check(rollout, episode.sim_state[0], shipped.idm, env, gain=gain)
        f = check.summary()
        rows.append([str(i), _yes(episode.success), _yes(from_truth.success), tracked,
                     _yes(check.replay_success),
                     f"{f['psnr']:.2f}", f"{f['eef_mean_mm']:.1f}", f"{f['object_mean_mm']:.1f}",
                     f"{f['object_frechet_mm']:.1f}"])
        videos.append(Video([("imagined", rollout.pixels), ("MuJoCo replay", check.replayed.pixels),
                             ("difference", difference(rollout.pixels, check.replayed.pixels))],
                            f"episode {i}: imagined | MuJoCo replay of FM-IDM's actions | difference",
                            f"physics_{task.lower()}_{i}.gif", fps=8))
        checks.append(check)
    solved = sum(c.replay_success for c in checks)
    headline.append(("imagined video solves the task in MuJoCo", f"{solved} / {len(checks)}"))
    report.add(f"Physics check ({task}): FM-IDM's actions replayed in MuJoCo",
               Text(f"FM-IDM (`{_shown(shipped_checkpoint(task, 'idm'))}`) decodes each episode's video into actions, "
                    "which MuJoCo replays from the episode's first state (\"from sim video\"; \"tracked\": "
                    "each action corrected toward the end effector FM-IDM's pose head reads off the video, "
                    "the arm holding still while a grasp closes); then the "
                    f"world model imagines {imagined[0].num_steps} steps from that state under the expert's "
                    "actions, drawing the robot's arm where its pose state has it (the arm layer), FM-IDM "
                    "decodes the imagined video and MuJoCo replays it" + (", tracked" if gain else "") +
                    " (\"from imagined video\"), compared step by step."),
               Table(["episode", "expert solved", "solved from sim video", "solved from sim video, tracked",
                      "solved from imagined video",
                      "PSNR imagined vs replay (dB)", "eef error (mm)", "object error (mm)",
                      "object Fréchet (mm)"], rows),
               *_physics_plots(imagined[0], checks), *videos)
    return imagined


def _physics_plots(rollout: Any, checks: list) -> list[Picture]:
    """Per-step PSNR of every episode, and episode 0's heights: imagined against the MuJoCo replay."""
    from wow_gym.world_models.plots import line_plot

    steps = list(range(1, len(checks[0].psnr) + 1))
    psnr = line_plot({f"episode {i}": (steps, c.psnr.tolist()) for i, c in enumerate(checks)},
                     "imagined vs MuJoCo replay, per step", "step", "PSNR (dB)")
    replayed, t = checks[0].replayed, list(range(rollout.num_steps + 1))
    series = {"end effector, imagined": (t, rollout.agent_pos[:, 2].tolist()),
              "end effector, MuJoCo": (t, replayed.agent_pos[:, 2].tolist())}
    if rollout.environment_state is not None:
        task = task_info(replayed.task)
        z = task.object_position.start + 2  # the object's height in environment_state
        series[f"{task.object_name}, imagined"] = (t, rollout.environment_state[:, z].tolist())
        series[f"{task.object_name}, MuJoCo"] = (t, replayed.environment_state[:, z].tolist())
    heights = line_plot(series, "episode 0: heights, imagined vs MuJoCo", "step", "z (m)")
    return [Picture(psnr, "frame agreement of imagination and physics", "physics_psnr.png"),
            Picture(heights, "what the world model says happens vs what MuJoCo does", "physics_heights.png")]


def _critic_section(report: Report, shipped: Shipped, episodes: list, imagined: list, env: Any, cfg: Any,
                    headline: list[tuple[str, str]]) -> None:
    """SOPHIA's critic on the sim and imagined clips; plan -> critique -> refine, plans checked in MuJoCo."""
    critic, rows = shipped.critic, []
    for i, (episode, dream) in enumerate(zip(episodes, imagined)):
        replayed = dream.physics.get("replay_success")
        for name, frames, instruction, truth in (
                (f"sim {i}", episode.pixels, episode.instruction, _yes(episode.success)),
                (f"imagined {i}", dream.pixels, dream.instruction,
                 "-" if replayed is None else f"{_yes(replayed)} (replay)")):
            c = critic.critique(frames, instruction)
            rows.append([name, truth, _yes(c.success), f"{c.progress:.2f}",
                         *(f"{v:.2f}" for v in c.scores.values()), c.text])
    agree = sum(r[1].split()[0] == r[2] for r in rows if r[1] != "-")
    headline.append(("critic agrees with the simulator", f"{agree} / {sum(r[1] != '-' for r in rows)} clips"))
    table = Table(["clip", "simulator says success", "critic says success", "progress", "task",
                   "plausibility", "smoothness", "instruction", "critique"], rows)
    report.add(f"SOPHIA's critic ({shipped.task})",
               Text("The shipped critic reads each clip (frames and instruction only) and names what went "
                    "wrong; the simulator's verdict beside it."), table,
               *_refine_blocks(shipped, episodes[0], imagined[0].num_steps, env, cfg, headline))


def _wowbench_section(report: Report, shipped: Shipped, cfg: Any, out: Path,
                      headline: list[tuple[str, str]]) -> None:
    """`wow-gym wowbench` on the demo's budget: every backend from the same held-out starts against MuJoCo."""
    from wow_gym.policies.wowbench import (
        FAMILIES,
        WowBenchConfig,
        law_table,
        leaderboard,
        run_bench,
        write_report,
    )

    config = WowBenchConfig(**{"task": shipped.task.lower(), "progress": cfg.progress,
                               **OmegaConf.to_container(cfg.wowbench, resolve=True)})
    results = run_bench(config, shipped.idm, shipped.critic)
    write_report(results, out / "wowbench")
    rows = results.figures["none"]
    h = max(config.horizons)
    dits = [n for n in rows if n.startswith("dit-") and "shuffled" not in n]
    best = max(dits, key=lambda n: rows[n][f"psnr@{h}"][0])
    headline.append((f"{best} vs copy-last, PSNR h={h} (wowbench)",
                     f"{rows[best][f'psnr@{h}'][0]:.1f} vs {rows['copy-last'][f'psnr@{h}'][0]:.1f} dB"))
    blocks: list[Any] = [Text(f"Every world-model backend from the same {len(config.kinds) * config.episodes} "
                              f"held-out simulator starts (seeds {config.seed}+; {', '.join(config.kinds)}), scored "
                              "against MuJoCo with 95 % bootstrap intervals; `make wowbench` runs the full budget "
                              "(README, World-model backends). Full tables: "
                              f"{out.name}/wowbench/leaderboard.md.")]
    for family in FAMILIES:
        ok = "holds" if results.order["none"][family] else "does not hold"
        blocks += [Text(f"{family}: the expected order {ok}"), Table(*leaderboard(results, "none", family))]
    blocks += [Text("laws broken (share of episodes)"), Table(*law_table(results, "none"))]
    report.add(f"Which world model to trust ({shipped.task}): every backend against MuJoCo", *blocks)


def _refine_blocks(shipped: Shipped, first: Any, horizon: int, env: Any, cfg: Any,
                   headline: list[tuple[str, str]]) -> list:
    """The plan -> critique -> refine loop from an episode's first frame; every plan decoded and replayed."""
    import torch

    from wow_gym.physics_check import physics_check
    from wow_gym.sophia import TemplateRefiner, final_round, refine_loop
    from wow_gym.world_models.video.imagination import plan_rollout

    generator = torch.Generator().manual_seed(cfg.seed)
    plans = []  # one imagined Rollout per round, in order

    def plan(instruction: str) -> np.ndarray:
        plans.append(plan_rollout(shipped.wm, first, instruction, horizon, generator))
        return plans[-1].pixels

    history = refine_loop(plan, shipped.critic, TemplateRefiner(), first.instruction, shipped.task,
                          cfg.refine_rounds)
    rows, videos = [], []
    for r in history:
        check = physics_check(plans[r.round], first.sim_state[0], shipped.idm, env)
        c = r.critique
        rows.append([str(r.round), r.instruction, _yes(c.success), *(f"{v:.2f}" for v in c.scores.values()),
                     c.text, _yes(check.replay_success), f"{1000 * check.object['mean']:.1f}"])
        videos.append(Video([("plan", r.frames), ("MuJoCo replay", check.replayed.pixels),
                             ("difference", difference(r.frames, check.replayed.pixels))],
                            f"round {r.round}: \"{r.instruction}\"",
                            f"refine_{shipped.task.lower()}_{r.round}.gif", fps=8))
    chosen = final_round(history)
    headline.append(("refined plan verified in MuJoCo", f"{rows[chosen.round][-2]} (round {chosen.round})"))
    everything = Video([(f"round {r.round}", r.frames) for r in history], "every plan, left to right",
                       f"refine_{shipped.task.lower()}.gif", fps=8)
    return [Text(f"Plan -> critique -> refine from episode 0's first frame: the world model plans {horizon} "
                 "steps from the instruction alone, the critic scores the plan, the refiner rewrites the "
                 f"instruction (at most {cfg.refine_rounds} plans); FM-IDM decodes every plan and MuJoCo "
                 "replays it."),
            Table(["round", "instruction", "critic says success", "task", "plausibility", "smoothness",
                   "instruction following", "critique", "MuJoCo replay solves", "object error (mm)"], rows),
            everything, *videos]


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _yes(value: Any) -> str:
    return "yes" if value else "no"


# -- provenance --------------------------------------------------------------------------------------------


def _run_section(report: Report, values: dict[str, Any], clock: Clock, commit: dict[str, Any]) -> None:
    import os
    import platform

    import torch
    import yaml

    rows = [[name, f"{seconds:.1f}"] for name, seconds in clock.stages.items()]
    report.add("This run",
               Text(f"commit `{commit['commit']}`{' with uncommitted changes' if commit['dirty'] else ''}; "
                    f"Python {platform.python_version()}, torch {torch.__version__} on {os.cpu_count()} CPUs "
                    f"({torch.get_num_threads()} torch threads); config.yaml and run.json lie beside this "
                    "report."),
               Table(["stage", "seconds"], rows),
               Code(yaml.safe_dump(values, sort_keys=False), summary="resolved configuration"))

"""wow-gym demo: the main job on the shipped defaults (what `make demo` runs).

At this stage of the project: collect a few scripted-expert episodes of each task into LeRobot v3.0
datasets, read them back, and write a contact sheet, an animated GIF per task and report.md; then, for
each task with a shipped world model, imagine those episodes open loop from their first frames under the
recorded actions and set them beside the simulator (sim | imagined | difference), with PSNR per horizon
against copy-last-frame and the same model fed shuffled actions.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import OmegaConf

from wow_gym.contact_sheet import contact_sheet, save_gif
from wow_gym.data import DatasetReader
from wow_gym.envs.collection import CollectConfig, collect
from wow_gym.experiments.config_loading import load_config, run_dir
from wow_gym.provenance import atomic_write_text, git_commit, write_run_metadata


def main(argv: list[str]) -> int:
    cfg = load_config("demo", argv, __doc__)
    if cfg is None:
        return 0
    start = time.time()
    out = Path(cfg.out) if cfg.out else run_dir("demo")
    write_run_metadata(out, OmegaConf.to_container(cfg, resolve=True))
    rows, all_rollouts = [], []
    for task in cfg.tasks:
        result = collect(CollectConfig(task=task, episodes=cfg.episodes_per_task, policy="expert",
                                       root=str(out / "datasets" / task), seed=cfg.seed,
                                       workers=cfg.workers, image_size=cfg.image_size,
                                       max_steps=cfg.max_steps, progress=cfg.progress))
        reader = DatasetReader(result.root)
        rollouts = [reader[i] for i in range(len(reader))]
        all_rollouts += rollouts
        save_gif(rollouts, out / f"{task}.gif")
        successes = sum(r.success for r in rollouts)
        rows.append(f"| {rollouts[0].task} | \"{rollouts[0].instruction}\" | {len(rollouts)} | {successes} | "
                    f"{sum(r.num_steps for r in rollouts)} | ![{task}]({task}.gif) |")
    contact_sheet(all_rollouts).save(out / "contact_sheet.png")
    imagination = []
    for task in cfg.tasks:
        episodes = [r for r in all_rollouts if r.task.lower() == task.lower()]
        wm = _shipped_world_model(task)
        if wm is None:
            continue
        imagination += _imagine_section(wm, episodes, out, cfg.horizons)
        lines, imagined = _physics_section(wm, episodes, out, cfg.idm_horizon, cfg.seed)
        imagination += lines + _critic_section(wm, episodes, imagined, out, cfg.refine_rounds, cfg.seed)
    report = "\n".join([
        "# wow_gym demo", "",
        f"commit `{git_commit()['commit']}`, {time.time() - start:.0f} s on this machine", "",
        "| task | instruction | episodes | successes | steps | video |", "|---|---|---:|---:|---:|---|",
        *rows, "", "![contact sheet](contact_sheet.png)", "", *imagination,
    ])
    atomic_write_text(out / "report.md", report)
    print(f"\ndemo finished in {time.time() - start:.0f} s; report: {out / 'report.md'}")
    return 0


def _shipped_world_model(task: str):
    """The shipped world model of `task`, loaded once for every section; None when there is none."""
    from wow_gym.world_models import CheckpointError, WorldModel, default_checkpoint

    try:
        return WorldModel.load(default_checkpoint(task))
    except CheckpointError:
        return None


def _imagine_section(wm, rollouts: list, out: Path, horizons: list[int]) -> list[str]:
    """Report lines: the shipped world model imagining the demo's episodes."""
    from wow_gym.world_models import default_checkpoint
    from wow_gym.world_models.evaluation import EvaluationError, evaluate_open_loop
    from wow_gym.world_models.report import horizon_table, write_gifs

    task = wm.config.task.lower()
    path = default_checkpoint(task)
    try:
        result = evaluate_open_loop(wm, {"expert": rollouts}, tuple(horizons), starts_per_episode=1,
                                    examples=len(rollouts))
    except EvaluationError as error:  # episodes shorter than the horizons (a tiny max_steps)
        return [f"## Imagined {wm.config.task}", "", f"skipped: {error}", ""]
    pictures = []
    for i, (name, caption) in enumerate(write_gifs(result.examples, out)):
        (out / name).rename(out / f"imagined_{task}_{i}.gif")
        pictures.append(f"![{caption}](imagined_{task}_{i}.gif) {caption}")
    return [f"## Imagined {wm.config.task}: the shipped world model beside the simulator", "",
            f"`{path}`: from each episode's first frames, {result.horizons[-1]} steps open loop under the "
            "recorded actions (model), holding the last frame (copy), and under time-shuffled actions (shuf).",
            "", *horizon_table(result.metrics["all"], result.horizons), "",
            "simulator | imagined | difference:", "", *pictures, ""]


def _physics_section(wm, rollouts: list, out: Path, horizon: int, seed: int) -> tuple[list[str], list]:
    """Report lines: FM-IDM decoding the demo's ground-truth and imagined video, replayed in MuJoCo (the
    physics check), and the imagined rollouts; nothing for a task without a shipped FM-IDM."""
    import numpy as np
    import torch

    from wow_gym.envs.robosuite_env import RobosuiteEnv
    from wow_gym.physics_check import physics_check, replay
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.idm import InverseDynamics, default_idm
    from wow_gym.world_models.idm_evaluation import imagine_cases
    from wow_gym.world_models.report import _panel

    task = wm.config.task.lower()
    try:
        idm = InverseDynamics.load(default_idm(task))
    except CheckpointError:
        return [], []
    env = RobosuiteEnv(task, image_size=wm.config.image_size)
    imagined = imagine_cases(wm, rollouts, "actions", horizon, torch.Generator().manual_seed(seed))
    rows, pictures = [], []
    for i, (episode, rollout) in enumerate(zip(rollouts, imagined)):
        from_truth = replay(env, episode.sim_state[0], idm.predict(episode.pixels), render=False)
        check = physics_check(rollout, episode.sim_state[0], idm, env)
        f = check.summary()
        rows.append(f"| {i} | {'yes' if episode.success else 'no'} | {'yes' if from_truth.success else 'no'} | "
                    f"{'yes' if check.replay_success else 'no'} | {f['psnr']:.2f} | {f['eef_mean_mm']:.1f} | "
                    f"{f['object_mean_mm']:.1f} | {f['object_frechet_mm']:.1f} |")
        difference = np.abs(rollout.pixels.astype(np.int16) - check.replayed.pixels.astype(np.int16)).astype(np.uint8)
        name = f"physics_{task}_{i}.gif"
        save_gif([_panel(rollout.pixels, "imagined"), _panel(check.replayed.pixels, "sim"),
                  _panel(difference, "sim")], out / name, fps=8)
        pictures.append(f"![physics check {i}]({name}) episode {i}: imagined | MuJoCo replay of FM-IDM's actions "
                        "| difference")
    env.close()
    return [f"## Physics check ({wm.config.task}): FM-IDM's actions replayed in MuJoCo", "",
            f"FM-IDM (`{default_idm(task)}`) decodes each demo episode's video into actions, which MuJoCo replays "
            "from the episode's first state (\"from sim video\"); then the world model imagines "
            f"{imagined[0].num_steps} steps from that state under the expert's actions, FM-IDM decodes the "
            "imagined video and MuJoCo replays it (\"from imagined video\"), compared step by step.", "",
            "| episode | expert solved | solved from sim video | solved from imagined video | PSNR imagined vs "
            "replay (dB) | eef error (mm) | object error (mm) | object Fréchet (mm) |",
            "|---:|---|---|---|---:|---:|---:|---:|", *rows, "", *pictures, ""], imagined


def _critic_section(wm, rollouts: list, imagined: list, out: Path, rounds: int, seed: int) -> list[str]:
    """Report lines: SOPHIA's critic on the demo's sim and imagined video, and one plan -> critique -> refine
    loop from the first episode's start; nothing for a task without a shipped critic."""
    import numpy as np
    import torch

    from wow_gym.sophia import TemplateRefiner, refine_loop
    from wow_gym.world_models.critic import LearnedCritic, has_shipped_critic
    from wow_gym.world_models.report import _panel

    task = wm.config.task.lower()
    if not has_shipped_critic(task) or not imagined:
        return []
    critic = LearnedCritic.load(task=task)

    def row(name: str, frames, instruction: str, truth: str) -> str:
        c = critic.critique(frames, instruction)
        scores = " | ".join(f"{v:.2f}" for v in c.scores.values())
        return f"| {name} | {truth} | {'yes' if c.success else 'no'} | {c.progress:.2f} | {scores} | {c.text} |"

    rows = []
    for i, (episode, dream) in enumerate(zip(rollouts, imagined)):
        rows.append(row(f"sim {i}", episode.pixels, episode.instruction, "yes" if episode.success else "no"))
        replayed = dream.physics.get("replay_success")
        rows.append(row(f"imagined {i}", dream.pixels, dream.instruction,
                        "-" if replayed is None else ("yes" if replayed else "no") + " (replay)"))
    first = rollouts[0]
    generator = torch.Generator().manual_seed(seed)

    def plan(instruction: str):
        frames = wm.generate(first.pixels[None, :1], first.agent_pos[None, :1], instruction, imagined[0].num_steps,
                             generator=generator)[0]
        return np.concatenate([first.pixels[:1], frames])

    history = refine_loop(plan, critic, TemplateRefiner(), first.instruction, task, rounds)
    save_gif([_panel(r.frames, "imagined") for r in history], out / f"refine_{task}.gif", fps=8)
    loop = [f"| {r.round} | {r.instruction} | {'yes' if r.critique.success else 'no'} | "
            f"{r.critique.scores['physical_plausibility']:.2f} | {r.critique.text} |" for r in history]
    return [f"## SOPHIA's critic ({critic.config.task})", "",
            "The shipped critic reads each clip (frames and instruction only) and names what went wrong; the "
            "simulator's verdict beside it.", "",
            "| clip | simulator says success | critic says success | progress | task | plausibility | "
            "smoothness | instruction | critique |", "|---|---|---|---:|---:|---:|---:|---:|---|", *rows, "",
            f"Plan -> critique -> refine from episode 0's first frame (at most {rounds} plans, left to right):", "",
            f"![refinement](refine_{task}.gif)", "",
            "| round | instruction | critic says success | plausibility | critique |", "|---:|---|---|---:|---|",
            *loop, ""]

"""The critic's calibration against the simulator, on held-out data only.

1. Success detection on held-out sim rollouts: the critic reads each whole episode; its verdict (success
   held for `success_frames` frames somewhere) against the simulator's. Accuracy, F1, false-positive rate
   per episode and per frame; Spearman correlation of the critic's progress with the shaped reward.
2. The failure the critique names (no_reach / closed_early / no_grasp / no_lift) against the stage the
   simulator says the failed episode reached.
3. Success detection on imagined rollouts: the world model imagines each held-out episode from its first
   frames under its recorded actions; the critic reads the imagined video; the simulator's verdict comes
   from replaying the same actions from the same state (the paired replay).
4. Plausibility AUC: corrupted clips of held-out episodes, every kind (those left out of training
   marked), against real clips of the same episodes.
5. Refinement: from the same start states, instruction-conditioned plans with and without the refiner
   loop; each final plan is decoded by FM-IDM and replayed in MuJoCo (the physics-verified success).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from wow_gym.backends import make_backend
from wow_gym.metrics import auc, binary_figures
from wow_gym.physics_check import physics_check, replay
from wow_gym.registry import task_info
from wow_gym.rollout import Rollout
from wow_gym.simulator import SimFactory
from wow_gym.sophia import Critique, RefinementRound, TemplateRefiner, final_round, refine_loop
from wow_gym.world_models.checkpoint import shipped_checkpoint
from wow_gym.world_models.critic.data import CORRUPTIONS, corrupted_bank, frame_labels, imagine_episodes
from wow_gym.world_models.critic.model import (
    OPENING_SCALE,
    LearnedCritic,
    compose_critique,
    stage_failure,
    success_verdict,
)
from wow_gym.world_models.idm.model import InverseDynamics
from wow_gym.world_models.text import embed_instructions
from wow_gym.world_models.video.evaluation import load_heldout
from wow_gym.world_models.video.imagination import load_world_model, plan_rollout
from wow_gym.world_models.video.model import checkpoint_options


@dataclass
class EvalCriticConfig:
    """See experiments/conf/eval_critic.yaml for the meaning of each key."""

    task: str = "lift"
    checkpoint: str | None = None
    world_model: str | None = None
    # its imagination switches (WorldModel.set_options; None keeps the checkpoint's)
    world_model_options: dict[str, Any] = field(default_factory=checkpoint_options)
    idm: str | None = None
    datasets: list[str] = field(default_factory=list)
    unseen_datasets: list[str] = field(default_factory=list)  # sim episodes of action kinds never trained on
    corrupt_per_kind: int = 40
    real_clips: int = 320
    imagined: bool = True
    refine_dataset: str | None = None
    refine_starts: int = 12
    refine_rounds: int = 3
    plan_backend: str | None = None  # the backend that plans the refinement cases; None: the world model
    plan_backend_options: dict[str, Any] | None = None
    plan_horizon: int = 60
    sampling_steps: int | None = None
    max_episodes: int | None = None
    image_size: int = 64
    seed: int = 0
    progress: bool = True


def sim_failure(labels: dict[str, np.ndarray], task: str) -> str:
    """What a failed sim episode got wrong, from simulator state: the failure key a critique should name."""
    return stage_failure(task_info(task), int(labels["stage"].max()), labels["opening"][-1] * OPENING_SCALE)


@dataclass
class RefinementCase:
    start: int
    rounds: list[RefinementRound] = field(repr=False)
    baseline_success: bool = False  # FM-IDM replay of the unrefined plan
    refined_success: bool = False  # ... of the plan the loop settled on
    baseline_critic: bool = False
    refined_critic: bool = False


@dataclass
class CriticResults:
    checkpoint: str
    held_out_kinds: list[str]
    sim_episodes: dict[str, float]
    sim_frames: dict[str, float]
    by_source: dict[str, dict[str, float]]  # every held-out and unseen dataset's own figures
    progress_spearman: dict[str, float]
    failure_modes: dict[str, Any]
    imagined: dict[str, float]
    plausibility_auc: dict[str, float]
    refinement: dict[str, float]
    cases: list[RefinementCase] = field(default_factory=list, metadata={"json": False})
    examples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    unseen_kinds: dict[str, float] = field(default_factory=dict)  # sim episodes of unseen_datasets, together
    unseen_sources: list[str] = field(default_factory=list)  # their sources (heavy-noise ...), in by_source


def _episode_readings(critic: LearnedCritic, episodes: list[Rollout], frames: list[np.ndarray] | None = None,
                      progress: bool = True, desc: str = "critic on held-out episodes") -> list[dict[str, np.ndarray]]:
    frames = frames or [e.pixels for e in episodes]
    return [critic.readings(f, e.instruction or task_info(critic.config.task).instruction) for e, f in
            tqdm(list(zip(episodes, frames)), desc=desc, disable=not progress)]


def _per_source(verdict: np.ndarray, truth: np.ndarray, sources: list[str]) -> dict[str, dict[str, float]]:
    """Success-detection figures of each source's episodes (sources: one per episode, in order)."""
    sources = np.array(sources)
    return {s: binary_figures(verdict[sources == s], truth[sources == s])
            for s in dict.fromkeys(sources.tolist())}


def _verdicts(critic: LearnedCritic, readings: list[dict[str, np.ndarray]]
              ) -> tuple[list[Critique], np.ndarray, list[np.ndarray]]:
    """Each episode's critique, its success verdict, and the per-frame verdicts behind it."""
    critiques = [compose_critique(r, critic.config) for r in readings]
    per_frame = [success_verdict(c.per_frame["success"], critic.config.success_frames) for c in critiques]
    return critiques, np.array([c.success for c in critiques]), per_frame


def evaluate_critic(config: EvalCriticConfig, make_sim: SimFactory) -> CriticResults:
    """Everything in the module docstring; `make_sim` makes the sim twin that replays and corrupts."""
    begin = time.perf_counter()
    critic = LearnedCritic.load(config.checkpoint, config.task)
    held_out_kinds = list(critic.meta.get("held_out_kinds", []))
    grouped = load_heldout(config.datasets, config.image_size, config.max_episodes)
    episodes = [e for eps in grouped.values() for e in eps]
    sources = [s for s, eps in grouped.items() for _ in eps]
    labels = [frame_labels(e) for e in episodes]
    readings = _episode_readings(critic, episodes, progress=config.progress)
    critiques, verdict, per_frame = _verdicts(critic, readings)
    truth = np.array([e.success for e in episodes])
    sim_episodes = binary_figures(verdict, truth)
    sim_frames = binary_figures(np.concatenate(per_frame), np.concatenate([lab["success"] for lab in labels]))
    by_source = _per_source(verdict, truth, sources)
    unseen_kinds, unseen_sources = {}, []
    if config.unseen_datasets:  # action kinds the critic's training never saw (heavier noise, shakes, pauses)
        unseen = load_heldout(config.unseen_datasets, config.image_size, config.max_episodes)
        unseen_episodes = [e for eps in unseen.values() for e in eps]
        _, unseen_verdict, _ = _verdicts(critic, _episode_readings(
            critic, unseen_episodes, progress=config.progress, desc="critic on unseen action kinds"))
        unseen_truth = np.array([e.success for e in unseen_episodes])
        unseen_kinds, unseen_sources = binary_figures(unseen_verdict, unseen_truth), list(unseen)
        by_source |= _per_source(unseen_verdict, unseen_truth, [s for s, eps in unseen.items() for _ in eps])
    rhos = [spearmanr(np.clip(r["progress"], 0, 1), lab["progress"]).statistic for r, lab in zip(readings, labels)
            if np.ptp(lab["progress"]) > 1e-6]
    pooled = spearmanr(np.concatenate([np.clip(r["progress"], 0, 1) for r in readings]),
                       np.concatenate([lab["progress"] for lab in labels])).statistic
    progress_spearman = {"mean_per_episode": float(np.nanmean(rhos)), "median_per_episode": float(np.nanmedian(rhos)),
                         "pooled": float(pooled), "episodes": float(len(rhos))}

    failed = [i for i in range(len(episodes)) if not truth[i]]
    named = [critiques[i].failure for i in failed]
    actual = [sim_failure(labels[i], critic.config.task) for i in failed]
    reached = {"closed_early": "no_reach"}  # both never get to the object; they differ in the gripper's state
    failure_modes = {"episodes": len(failed), "agreement": float(np.mean([a == b for a, b in zip(named, actual)]))
                     if failed else float("nan"),
                     "stage_agreement": float(np.mean([reached.get(a, a) == reached.get(b, b)
                                                       for a, b in zip(named, actual)])) if failed else float("nan"),
                     "confusion": _confusion(actual, named)}
    examples = [{"source": sources[i], "sim_success": bool(truth[i]),
                 **critiques[i].to_dict(),
                 "sim_failure": "" if truth[i] else sim_failure(labels[i], critic.config.task),
                 "critic_progress": np.clip(readings[i]["progress"], 0, 1).round(3).tolist(),
                 "sim_reward": labels[i]["progress"].round(3).tolist()} for i in _example_indices(truth, sources)]

    env = make_sim(config.task, image_size=config.image_size)
    refine = bool(config.refine_dataset and config.refine_starts > 0)
    wm = None
    if config.imagined or refine:
        wm = load_world_model(config.task, config.world_model, image_size=config.image_size,
                              options=config.world_model_options)
    imagined = {}
    if config.imagined:
        dream = imagine_episodes(wm, episodes, config.sampling_steps, config.seed, progress=config.progress)
        imagined_readings = _episode_readings(critic, episodes, list(dream.pixels), config.progress,
                                              "critic on imagined episodes")
        _, imagined_verdict, _ = _verdicts(critic, imagined_readings)
        steps = dream.pixels.shape[1] - 1
        blind = make_sim(config.task, use_camera=False)  # the verdict needs no frames: ~8x faster
        paired = np.array([replay(blind, e.sim_state[0], e.action[:steps], render=False).success
                           for e in tqdm(episodes, desc="paired replays", disable=not config.progress)])
        blind.close()
        imagined = binary_figures(imagined_verdict, paired)
        imagined["replay_matches_dataset"] = float(np.mean(paired == np.array([e.is_success[:steps].any()
                                                                                for e in episodes])))
        # Does the imagined video show success at all (for Lift: the cube up)? The object probe (trained on
        # sim frames) on it: separates the world model's misses from the critic's.
        height = task_info(config.task).success_height
        if height is not None:
            shown = (dream.object_position[:, dream.context:, 2] > height).any(axis=1)
            imagined["video_shows_lift_when_sim_lifts"] = (float(shown[paired].mean()) if paired.any()
                                                           else float("nan"))
            imagined["critic_agrees_with_probe"] = float((shown == imagined_verdict).mean())

    rng = np.random.default_rng(config.seed + 1)
    bad = corrupted_bank(env, episodes, list(CORRUPTIONS), config.corrupt_per_kind, critic.config.clip_frames,
                         config.seed + 2, config.progress)
    real = []
    for _ in range(config.real_clips):
        i = int(rng.integers(len(episodes)))
        end = int(rng.integers(critic.config.clip_frames - 1, episodes[i].num_steps + 1))
        real.append(episodes[i].pixels[end - critic.config.clip_frames + 1:end + 1])
    score = _plausibility(critic, real + [c.frames for c in bad], episodes[0].instruction)
    real_score, bad_score = score[:len(real)], score[len(real):]
    kinds = np.array([c.kind for c in bad])
    plausibility_auc = {k: auc(real_score, bad_score[kinds == k]) for k in CORRUPTIONS if (kinds == k).any()}
    trained = [k for k in CORRUPTIONS if k not in held_out_kinds and (kinds == k).any()]
    held = [k for k in held_out_kinds if (kinds == k).any()]
    plausibility_auc["all"] = auc(real_score, bad_score)
    plausibility_auc["trained_kinds"] = auc(real_score, bad_score[np.isin(kinds, trained)]) if trained else float("nan")
    plausibility_auc["held_out_kinds"] = auc(real_score, bad_score[np.isin(kinds, held)]) if held else float("nan")
    plausibility_auc["real_clips"] = float(len(real))

    cases: list[RefinementCase] = []
    refinement: dict[str, float] = {}
    if refine:
        cases = refine_cases(config, critic, wm, env)
        n = len(cases)
        refinement = {"starts": float(n), "rounds": float(config.refine_rounds),
                      "baseline_replay_success": float(np.mean([c.baseline_success for c in cases])),
                      "refined_replay_success": float(np.mean([c.refined_success for c in cases])),
                      "baseline_critic_success": float(np.mean([c.baseline_critic for c in cases])),
                      "refined_critic_success": float(np.mean([c.refined_critic for c in cases])),
                      "mean_rounds_used": float(np.mean([len(c.rounds) for c in cases])),
                      "critic_agrees_with_replay": float(np.mean(
                          [c.baseline_critic == c.baseline_success for c in cases]
                          + [c.refined_critic == c.refined_success for c in cases]))}
    env.close()
    return CriticResults(str(config.checkpoint or "shipped"), held_out_kinds, sim_episodes, sim_frames, by_source,
                         progress_spearman, failure_modes, imagined, plausibility_auc, refinement, cases, examples,
                         time.perf_counter() - begin, unseen_kinds, unseen_sources)


def _plausibility(critic: LearnedCritic, clips: list[np.ndarray], instruction: str, batch: int = 64) -> np.ndarray:
    """The plausibility probability of each clip (read at its last frame)."""
    text = torch.from_numpy(embed_instructions(instruction)).to(critic.device)
    out = []
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            frames = torch.from_numpy(np.stack(clips[i:i + batch])).to(critic.device)
            r = critic.net(frames, text.expand(len(frames), -1))
            out.append(torch.sigmoid(r["plausible"]).cpu().numpy())
    return np.concatenate(out)


def _confusion(actual: list[str], named: list[str]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for a, n in zip(actual, named):
        table.setdefault(a, {}).setdefault(n or "success", 0)
        table[a][n or "success"] += 1
    return table


def _example_indices(truth: np.ndarray, sources: list[str], count: int = 6) -> list[int]:
    """A few episodes for the report: failed ones first (their critiques say the most), then successes."""
    order = [i for i in range(len(truth)) if not truth[i]] + [i for i in range(len(truth)) if truth[i]]
    picked, seen = [], set()
    for i in order:  # one per source and outcome first
        if (sources[i], truth[i]) not in seen:
            picked.append(i)
            seen.add((sources[i], truth[i]))
    return (picked + [i for i in order if i not in picked])[:count]


def refine_cases(config: EvalCriticConfig, critic: LearnedCritic, wm: Any, env: Any) -> list[RefinementCase]:
    """From each start state: plan, critique, refine (at most refine_rounds plans); the unrefined plan and
    the one the loop settled on are both decoded by FM-IDM and replayed in MuJoCo from that state."""
    idm = InverseDynamics.load(config.idm or shipped_checkpoint(config.task, "idm"))
    starts = [e for eps in load_heldout([config.refine_dataset], config.image_size, config.refine_starts).values()
              for e in eps][:config.refine_starts]
    refiner = TemplateRefiner()
    # any backend that plans (wow_gym.backends: a WoW model, a user's module:Class), else the world model
    planner = (wm if config.plan_backend is None
               else make_backend(config.plan_backend, config.task, **(config.plan_backend_options or {})))
    info = task_info(config.task)
    cases = []
    for i, episode in enumerate(tqdm(starts, desc="plan, critique, refine", disable=not config.progress)):
        generator = torch.Generator().manual_seed(config.seed + i)
        plans: list[Rollout] = []  # one per round, in order

        def generate(instruction: str, episode: Rollout = episode, generator: torch.Generator = generator,
                     plans: list[Rollout] = plans) -> np.ndarray:
            plans.append(plan_rollout(planner, episode, instruction, config.plan_horizon, generator,
                                      config.sampling_steps))
            return plans[-1].pixels

        rounds = refine_loop(generate, critic, refiner, episode.instruction or info.instruction, info.name,
                             config.refine_rounds)
        chosen = final_round(rounds)
        outcome = {}
        for name, entry in (("baseline", rounds[0]), ("refined", chosen)):
            outcome[name] = physics_check(plans[entry.round], episode.sim_state[0], idm, env).replay_success
        cases.append(RefinementCase(i, rounds, bool(outcome["baseline"]), bool(outcome["refined"]),
                                    rounds[0].critique.success, chosen.critique.success))
    return cases


def critique_summary(critique: Critique) -> str:
    scores = ", ".join(f"{k} {v:.2f}" for k, v in critique.scores.items())
    return f"{'success' if critique.success else 'no success'}; {scores}; \"{critique.text}\""

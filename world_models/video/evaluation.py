"""Open-loop evaluation of a world model against the simulator it imitates, beside two baselines.

From a held-out episode's recorded context frames, the model imagines the next steps under the recorded
actions; imagined frame t+h is compared with the simulator's frame t+h. Baselines in the same run:
copy-last-frame (the world stands still) and the same model fed time-shuffled actions (how much the
actions matter). Also: whole episodes imagined from their first frame (is the interaction reproduced: does
the object rise when the simulator's does?), instruction-conditioned plans against expert episodes, and
quality and time per sampling-step count.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wow_gym.data import DatasetReader
from wow_gym.data.flat import read_episodes
from wow_gym.metrics import PSNR_CAP_DB, bootstrap_interval, psnr, ssim
from wow_gym.rollout import Rollout
from wow_gym.tasks import task_info
from wow_gym.world_models.checkpoint import shipped_tasks
from wow_gym.world_models.critic.model import LearnedCritic
from wow_gym.world_models.video.config import WorldModelConfig
from wow_gym.world_models.video.imagination import (
    Start,
    imagine,
    load_world_model,
    plan,
    probe_object_state,
    world_model_path,
)
from wow_gym.world_models.video.model import OPTIONS, WorldModel

PREDICTORS = ("model", "copy_last", "shuffled")
GAIN_RESAMPLES = 2000  # bootstrap resamples of the starts for the action gain's interval


class EvaluationError(ValueError):
    """Held-out data that cannot be evaluated as asked; the message says what to do."""


# -- windows and batched imagination -----------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One open-loop start: episode `episode` of `source`, context ending at step `start`."""

    source: str
    episode: int
    start: int


def start_steps(num_steps: int, horizon: int, count: int, context_frames: int = 2) -> list[int]:
    """Up to `count` evenly spaced starts t with a full context (t >= context_frames-1) and t+horizon <= T."""
    first, last = context_frames - 1, num_steps - horizon
    if last < first or count < 1:
        return []
    return sorted(set(np.linspace(first, last, count).round().astype(int).tolist()))


def make_windows(rollouts: dict[str, list[Rollout]], horizon: int, per_episode: int,
                 context_frames: int) -> list[Window]:
    """The open-loop starts of every episode; EvaluationError when no episode is long enough."""
    windows = [Window(source, i, t) for source, episodes in rollouts.items()
               for i, episode in enumerate(episodes)
               for t in start_steps(episode.num_steps, horizon, per_episode, context_frames)]
    if not windows:
        longest = max((e.num_steps for eps in rollouts.values() for e in eps), default=0)
        raise EvaluationError(f"no held-out episode is long enough for {context_frames} context frames and "
                              f"horizon {horizon} (longest has {longest} steps); lower the horizons or "
                              "collect longer episodes")
    return windows


def window_start(wm: WorldModel, rollouts: dict[str, list[Rollout]], windows: list[Window]) -> Start:
    """The imagination start of each window: its recorded context frames, poses and actions."""
    return Start.from_episodes([rollouts[w.source][w.episode] for w in windows], [w.start for w in windows],
                               wm.config.context_frames, wm.config.instruction)


def recorded_actions(rollouts: dict[str, list[Rollout]], windows: list[Window], horizon: int) -> np.ndarray:
    """The recorded actions a_t .. a_{t+horizon-1} of each window: [N, horizon, 7]."""
    return np.stack([rollouts[w.source][w.episode].action[w.start:w.start + horizon] for w in windows])


def shuffle_in_time(actions: np.ndarray, seed: int) -> np.ndarray:
    """Each window's action sequence in a random order (a fixed-seed permutation per window)."""
    rng = np.random.default_rng(seed)
    return np.stack([a[rng.permutation(a.shape[0])] for a in actions])


# -- open-loop evaluation ----------------------------------------------------------------------------------


@dataclass
class Example:
    """Frames of one window for pictures: the context frame t, then frames t+1 .. t+H."""

    name: str
    simulated: np.ndarray  # [H+1, h, w, 3] uint8
    imagined: np.ndarray  # [H+1, h, w, 3] uint8


@dataclass
class OpenLoopResult:
    """Means over starts per group ("all" and each policy source): metrics[group][metric][predictor][i]
    is the mean at horizons[i]. Errors are in metres; probe_error has the one predictor "sim_probe"."""

    horizons: list[int]
    sampling_steps: int
    starts: dict[str, int]
    metrics: dict[str, dict[str, dict[str, list[float]]]]
    windows: list[Window]
    examples: list[Example] = field(default_factory=list, repr=False, metadata={"json": False})
    # per start [N][len(horizons)]: PSNR under the true actions minus under the time-shuffled ones (dB), the
    # windows in `windows`' order, so two runs on the same data pair start by start
    action_gain_db: list[list[float]] = field(default_factory=list)


def evaluate_open_loop(wm: WorldModel, rollouts: dict[str, list[Rollout]],
                       horizons: tuple[int, ...] = (1, 4, 8, 16), sampling_steps: int | None = None,
                       starts_per_episode: int = 4, seed: int = 0, batch_size: int = 256, examples: int = 0,
                       progress: bool = False) -> OpenLoopResult:
    """Imagine every window under the recorded and the time-shuffled actions; score against the simulator.

    `rollouts` maps a policy source (expert, noisy, walk, random ...) to its held-out episodes.
    """
    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1:
        raise EvaluationError(f"horizons must be positive step counts, got {horizons}")
    horizon = horizons[-1]
    windows = make_windows(rollouts, horizon, starts_per_episode, wm.config.context_frames)
    true = recorded_actions(rollouts, windows, horizon)
    generator = torch.Generator(device=wm.device).manual_seed(seed)
    both = imagine(wm, window_start(wm, rollouts, windows + windows),
                   np.concatenate([true, shuffle_in_time(true, seed)]), None, generator, sampling_steps,
                   batch_size, progress, desc="open loop")
    n, index = len(windows), np.asarray(horizons)
    at = index - 1  # imagined step j is frame t+j+1
    per_start = _errors(wm, rollouts, windows, index, both.pixels[:n, at], both.agent_pos[:n, at],
                        both.pixels[n:, at], both.agent_pos[n:, at])
    sources = np.array([w.source for w in windows])
    groups = {"all": np.ones(n, bool), **{s: sources == s for s in rollouts if np.any(sources == s)}}
    metrics = {g: {m: {p: _nanmean(v[mask]) for p, v in preds.items()} for m, preds in per_start.items()}
               for g, mask in groups.items()}
    chosen = _example_windows(windows, examples)
    shown = [_example(rollouts, windows[i], both.pixels[i]) for i in chosen]
    gain = per_start["psnr"]["model"] - per_start["psnr"]["shuffled"]
    return OpenLoopResult(horizons, sampling_steps or wm.config.sampling_steps,
                          {g: int(mask.sum()) for g, mask in groups.items()}, metrics, windows, shown,
                          gain.tolist())


def _errors(wm: WorldModel, rollouts: dict[str, list[Rollout]], windows: list[Window], index: np.ndarray,
            model_pixels: np.ndarray, model_pos: np.ndarray, shuffled_pixels: np.ndarray,
            shuffled_pos: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per-start errors [N, len(horizons)] of each metric and predictor against the simulator."""
    episodes = [rollouts[w.source][w.episode] for w in windows]
    sim = np.stack([e.pixels[w.start + index] for e, w in zip(episodes, windows)])
    last = np.stack([np.broadcast_to(e.pixels[w.start], sim.shape[1:]) for e, w in zip(episodes, windows)])
    sim_pos = np.stack([e.agent_pos[w.start + index, :3] for e, w in zip(episodes, windows)])
    last_pos = np.stack([e.agent_pos[w.start, :3] for e, w in zip(episodes, windows)])[:, None]
    where = task_info(wm.config.task).object_position  # the task object's position in environment_state
    truth = np.stack([e.environment_state[w.start + index, where] if e.environment_state is not None
                      else np.full((len(index), 3), np.nan, np.float32) for e, w in zip(episodes, windows)])
    obj = {name: probe_object_state(wm, frames)[..., where]
           for name, frames in (("sim", sim), ("model", model_pixels), ("copy_last", last),
                                ("shuffled", shuffled_pixels))}
    frames = {"model": model_pixels, "copy_last": last, "shuffled": shuffled_pixels}
    poses = {"model": model_pos[..., :3], "copy_last": last_pos, "shuffled": shuffled_pos[..., :3]}

    def distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(x, np.float64) - y, axis=-1)

    scores = {p: psnr(f, sim) for p, f in frames.items()}
    return {
        "psnr": scores,
        "ssim": {p: ssim(f, sim) for p, f in frames.items()},
        # the share of starts whose frame is the simulator's exactly: each scores the PSNR cap, which lifts means
        "exact": {p: (s >= PSNR_CAP_DB).astype(np.float64) for p, s in scores.items()},
        "eef_error": {p: distance(np.broadcast_to(x, sim_pos.shape), sim_pos) for p, x in poses.items()},
        "object_error": {p: distance(obj[p], obj["sim"]) for p in PREDICTORS},
        "probe_error": {"sim_probe": distance(obj["sim"], truth)},
    }


def _nanmean(values: np.ndarray) -> list[float]:
    finite = np.isfinite(values)
    sums, counts = np.where(finite, values, 0.0).sum(0), finite.sum(0)
    return [float(s / c) if c else float("nan") for s, c in zip(sums, counts)]


def _example_windows(windows: list[Window], count: int) -> list[int]:
    """The first window of each source in turn, then the next ones, up to `count`."""
    rank = [sum(w.source == window.source for w in windows[:i]) for i, window in enumerate(windows)]
    return sorted(range(len(windows)), key=lambda i: (rank[i], i))[:count]


def _example(rollouts: dict[str, list[Rollout]], window: Window, imagined: np.ndarray) -> Example:
    episode = rollouts[window.source][window.episode]
    t, horizon = window.start, imagined.shape[0]
    name = f"{window.source} episode {window.episode} (seed {episode.seed}), steps {t}-{t + horizon}"
    imagined = np.concatenate([episode.pixels[t:t + 1], imagined])
    return Example(name, episode.pixels[t:t + horizon + 1], imagined)


# -- plans and sampling steps ------------------------------------------------------------------------------


@dataclass
class PlanResult:
    """Mean PSNR at plan steps 1..horizon over `episodes` expert episodes, and of copy-first-frame."""

    horizon: int
    episodes: int
    psnr: dict[str, list[float]]  # "plan" and "copy_first" -> per step
    examples: list[Example] = field(default_factory=list, repr=False, metadata={"json": False})


def evaluate_plan(wm: WorldModel, rollouts: list[Rollout], horizon: int, sampling_steps: int | None = None,
                  seed: int = 0, examples: int = 1) -> PlanResult:
    """Instruction-conditioned plans (no actions) from the first frames of expert episodes vs the expert.

    The copy-first-frame baseline holds the newest context frame (the frame the plan starts from).
    """
    k = wm.config.context_frames
    episodes = [e for e in rollouts if e.num_steps >= k - 1 + horizon]
    if not episodes:
        raise EvaluationError(f"no expert episode has {k - 1 + horizon} steps for a plan of {horizon}; lower "
                              "plan_horizon or collect longer held-out expert episodes")
    generator = torch.Generator(device=wm.device).manual_seed(seed)
    start = Start.from_episodes(episodes, [k - 1] * len(episodes), k, wm.config.instruction)
    plans = plan(wm, start, horizon, generator, sampling_steps).pixels
    sim = np.stack([e.pixels[k:k + horizon] for e in episodes])
    first = np.stack([np.broadcast_to(e.pixels[k - 1], sim.shape[1:]) for e in episodes])
    shown = [Example(f"plan \"{e.instruction}\" (seed {e.seed}), steps {k - 1}-{k - 1 + horizon}",
                     e.pixels[k - 1:k + horizon], np.concatenate([e.pixels[k - 1:k], p]))
             for e, p in zip(episodes[:examples], plans)]
    return PlanResult(horizon, len(episodes), {"plan": psnr(plans, sim).mean(0).tolist(),
                                               "copy_first": psnr(first, sim).mean(0).tolist()}, shown)


@dataclass(frozen=True)
class SweepRow:
    """Quality and time of imagination at one sampling-step count (recorded actions, batch of all starts)."""

    sampling_steps: int
    batch_size: int
    horizon: int
    psnr: float
    ms_per_batched_step: float
    imagined_steps_per_second: float


def sweep_sampling_steps(wm: WorldModel, rollouts: dict[str, list[Rollout]], steps: list[int], horizon: int,
                         starts_per_episode: int = 4, seed: int = 0, batch_size: int = 256,
                         progress: bool = False) -> list[SweepRow]:
    """PSNR at `horizon` and time per step for each sampling-step count."""
    windows = make_windows(rollouts, horizon, starts_per_episode, wm.config.context_frames)
    actions = recorded_actions(rollouts, windows, horizon)
    sim = np.stack([rollouts[w.source][w.episode].pixels[w.start + horizon] for w in windows])
    start = window_start(wm, rollouts, windows)
    warm = window_start(wm, rollouts, windows[:batch_size])
    imagine(wm, warm, actions[:batch_size, :1], sampling_steps=1)  # warm-up: first-call costs
    rows = []
    for n in steps:
        generator = torch.Generator(device=wm.device).manual_seed(seed)
        out = imagine(wm, start, actions, None, generator, n, batch_size, progress, desc=f"{n} sampling steps")
        batched_steps = horizon * -(-len(windows) // batch_size)
        quality = float(psnr(out.pixels[:, -1], sim).mean())
        rows.append(SweepRow(n, min(len(windows), batch_size), horizon, quality,
                             1000 * out.seconds / batched_steps, len(windows) * horizon / out.seconds))
    return rows


# -- interaction over whole episodes ------------------------------------------------------------------------


@dataclass
class InteractionResult:
    """Whole held-out episodes imagined from their first frame under their recorded actions, as the imagined
    env runs them (the object state read off that frame by the probe).

    figures[group] holds: episodes; sim_lifts (episodes whose simulated object rises above the task's
    success height); seen_state / seen_video (% of those whose imagined object state / imagined video, read
    by the probe, rises above it too); false_state / false_video (% of the other episodes where it does);
    seen_critic / false_critic the same for SOPHIA's critic reading the imagined video (its success verdict,
    the imagined env's default success), when a critic is given; seen_sim_arm / false_sim_arm the same for the
    object dynamics following the simulator's recorded arm (objects_under_sim_arm), for a model that carries it;
    success_agreement (% of episodes whose imagined env success, ever, matches the simulator's); and the
    object position error in mm at h = 16 and at the episode's end of the state, the video and copy-last
    (the object stays where it started). For a model without carried object state, state is the probe's
    reading of each imagined latent (what its env reported). For a task without a success height (Stack,
    Door, PickPlaceCan), sim_lifts counts the episodes the simulator calls successes and state is the
    imagined env's success (the task's success test on the carried state where it has one, else its success
    head); video is that test on the probe's reading of the imagined video, where the model carries the state
    (else the critic reads the video).
    """

    horizon_error: int
    figures: dict[str, dict[str, float]]
    seconds: float


def evaluate_interaction(wm: WorldModel, rollouts: dict[str, list[Rollout]], sampling_steps: int | None = None,
                         seed: int = 0, batch_size: int = 256, horizon_error: int = 16,
                         progress: bool = False, known_state: bool = False,
                         critic: LearnedCritic | None = None) -> InteractionResult:
    """Imagine every episode of `rollouts` whole from its first frame; score lifts and object error.
    known_state: start the carried object state from the simulator's instead of the probe's reading.
    critic: a LearnedCritic of the task that reads each imagined video (first frame and imagined ones) too."""
    info = task_info(wm.config.task)
    # Lift reads lifts off the object's height, in the state and in the video; a task without a success height
    # (Stack, Door, PickPlaceCan) compares the simulator's success with the imagined env's and the critic's
    lifts = info.success_height is not None
    episodes = [(source, e) for source, group in rollouts.items() for e in group if e.environment_state is not None]
    if not episodes:
        raise EvaluationError("the interaction evaluation needs episodes that record environment_state")
    eps = [e for _, e in episodes]
    steps = np.array([e.num_steps for e in eps])
    horizon = int(steps.max())
    actions = np.zeros((len(eps), horizon, eps[0].action.shape[1]), np.float32)
    for i, e in enumerate(eps):
        actions[i, :e.num_steps] = e.action
    generator = torch.Generator(device=wm.device).manual_seed(seed)
    begin = time.perf_counter()
    imagined = imagine(wm, Start.from_episodes(eps, [0] * len(eps), 1), actions, steps, generator,
                       sampling_steps, batch_size, progress, desc="whole episodes", known_state=known_state)
    seconds = time.perf_counter() - begin
    where, z = info.object_position, info.object_position.start + 2
    video = probe_object_state(wm, imagined.pixels)  # [N, T, E] (padding frames read too; masked below)
    under_arm = (objects_under_sim_arm(wm, eps, known_state) if wm.config.object_dims is not None and lifts
                 else None)
    # a task whose success the carried state shows (Stack) reads it off the video too
    tested = None if wm.state_success is None or lifts else wm.state_success(video, imagined.agent_pos)
    rows = []
    for i, e in enumerate(eps):
        t = int(steps[i])
        truth = e.environment_state[1:t + 1]
        env_success = bool(imagined.success[i, :t].any())
        rows.append({
            **({"sim": bool((truth[:, z] > info.success_height).any()),
                "state": bool((imagined.environment_state[i, :t, z] > info.success_height).any()),
                "video": bool((video[i, :t, z] > info.success_height).any())} if lifts
               else {"sim": e.success, "state": env_success,
                     **({} if tested is None else {"video": bool(tested[i, :t].any())})}),
            **({} if critic is None else {"critic": critic.critique(np.concatenate(
                [e.pixels[:1], imagined.pixels[i, :t]]), e.instruction or info.instruction).success}),
            **({} if under_arm is None else {"arm": bool((under_arm[i, :t, 2] > info.success_height).any())}),
            "sim_success": e.success if e.is_success is not None else None,
            "env_success": env_success,
            **{f"{name}_{at}": float(1000 * np.linalg.norm(reading[k] - truth[k, where]))
               for name, reading in (("state", imagined.environment_state[i, :t, where]),
                                     ("video", video[i, :t, where]),
                                     ("copy_last", np.broadcast_to(e.environment_state[0, where], (t, 3))))
               for at, k in (("h16", min(horizon_error, t) - 1), ("end", t - 1))},
        })
    sources = np.array([source for source, _ in episodes])
    groups = {"all": np.ones(len(eps), bool), **{s: sources == s for s in rollouts if np.any(sources == s)}}
    figures = {g: _interaction_figures([r for r, keep in zip(rows, mask) if keep]) for g, mask in groups.items()}
    return InteractionResult(horizon_error, figures, seconds)


@torch.no_grad()
def objects_under_sim_arm(wm: WorldModel, episodes: list[Rollout], known_state: bool = False) -> np.ndarray:
    """[N, T, 3]: the carried object's position after each step of every episode (padded to the longest) when
    the model's object dynamics follows the simulator's recorded arm instead of its own imagined one, from the
    same start as the imagined episodes (the probe's reading of the first frame, or with known_state the
    simulator's). Where the imagined state lifts the object and this does not, the imagined arm's drift
    made the lift; where both lift it and the simulator does not, the object dynamics did. The simulator's
    fingers are followed too, so the finger rule (WorldModelConfig.finger_rule) plays no part."""
    horizon = max(e.num_steps for e in episodes)
    poses = np.stack([np.concatenate([e.agent_pos, np.repeat(e.agent_pos[-1:], horizon - e.num_steps, 0)])
                      for e in episodes])
    actions = np.stack([np.pad(e.action, ((0, horizon - e.num_steps), (0, 0))) for e in episodes])
    first = (np.stack([e.environment_state[0] for e in episodes]) if known_state
             else wm.read_state(np.stack([e.pixels[0] for e in episodes])))
    scene = wm.settle_scene(torch.as_tensor(np.asarray(first), device=wm.device).float())
    objects = scene[:, wm._object_index]
    poses = torch.as_tensor(poses, device=wm.device).float()
    actions = torch.as_tensor(actions, device=wm.device).float()
    out = []
    for t in range(horizon):
        objects = wm._object_step(poses[:, t:t + 2], objects, actions[:, t], base=scene)
        out.append(objects[:, :3].cpu().numpy())
    return np.stack(out, 1)


def _interaction_figures(rows: list[dict]) -> dict[str, float]:
    lifts = [r for r in rows if r["sim"]]
    still = [r for r in rows if not r["sim"]]

    def pct(items: list[dict], key: str) -> float:
        return 100.0 * float(np.mean([r[key] for r in items])) if items else float("nan")

    known = [r for r in rows if r["sim_success"] is not None]
    out = {"episodes": float(len(rows)), "sim_lifts": float(len(lifts)),
           "seen_state": pct(lifts, "state"), "false_state": pct(still, "state"),
           **({"seen_video": pct(lifts, "video"), "false_video": pct(still, "video")}
              if "video" in rows[0] else {}),
           **({"seen_critic": pct(lifts, "critic"), "false_critic": pct(still, "critic")}
              if "critic" in rows[0] else {}),
           **({"seen_sim_arm": pct(lifts, "arm"), "false_sim_arm": pct(still, "arm")} if "arm" in rows[0] else {}),
           "success_agreement": (100.0 * float(np.mean([r["sim_success"] == r["env_success"] for r in known]))
                                 if known else float("nan"))}
    for key in rows[0]:
        if key.endswith(("_h16", "_end")):
            out[f"object_error_{key}_mm"] = float(np.mean([r[key] for r in rows]))
    return out


# -- the whole evaluation ----------------------------------------------------------------------------------


@dataclass
class EvalWorldModelConfig:
    """See experiments/conf/eval_world_model.yaml for the meaning of each key."""

    checkpoint: str | None = None
    task: str = "lift"
    datasets: list[str] = field(default_factory=lambda: [f"data/lift/heldout-{s}"
                                                         for s in ("expert", "noisy", "walk", "random")])
    max_episodes: int | None = None
    horizons: list[int] = field(default_factory=lambda: [1, 4, 8, 16])
    reference_horizon: int = 8
    starts_per_episode: int = 4
    sampling_steps: int | None = None
    residual_deadband: float | None = None  # None: the checkpoint's
    object_layer: bool | None = None  # the object drawn at its carried pose; None: the checkpoint's
    object_layer_pushes: bool | None = None  # ... also where it rests on the table; None: the checkpoint's
    arm_contact: bool | None = None  # fingertips stop on the table and the object; None: the checkpoint's
    finger_rule: bool | None = None  # fingers by gripper command and object between them; None: checkpoint's
    arm_physics: bool | None = None  # the robot's own arm, in MuJoCo (arm.py); None: the checkpoint's
    arm_layer: bool | None = None  # the robot's arm drawn at the imagined pose (arm_layer.py); None: the ckpt's
    arm_erase: bool | None = None  # with the arm layer, the start frame's arm erased; None: the checkpoint's
    scene_layer: bool | None = None  # the still object (Stack's green cube) drawn again; None: the ckpt's
    carry_rule: bool | None = None  # a held object moves with the gripper's translation; None: the ckpt's
    grip_turn: bool | None = None  # the finger rule takes a cube's turn about the approach; None: the ckpt's
    joint_rule: bool | None = None  # a gripped lever and door move by the task's joints; None: the ckpt's
    critic: str | None = None  # a critic that reads the whole imagined episodes too; None: shipped; "none"
    steps_sweep: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    # whole episodes imagined from their first frame (lifts seen, object error); [] skips it
    interaction_datasets: list[str] = field(default_factory=lambda: [
        f"data/lift/heldout-{s}" for s in ("expert", "noisy", "walk", "random", "replay-expert", "heavy-noise", "shaky",
                                           "pausing", "bc", "bc-noisy")])
    # whole episodes start the carried object state from the simulator's recorded one, not the probe's
    # reading of the first frame: the probe's start error apart from the dynamics' (no-op without one)
    known_state: bool = False
    plan_horizon: int = 16
    examples: int = 4
    batch_size: int = 256
    device: str = "auto"
    autocast: bool = False
    seed: int = 0
    progress: bool = True


@dataclass
class EvalResults:
    """Everything one evaluation measured; `acceptance` holds the headline figures."""

    checkpoint: str
    task: str
    datasets: dict[str, list[str]]
    episodes: dict[str, int]
    open_loop: OpenLoopResult
    plan: PlanResult | None
    sweep: list[SweepRow]
    acceptance: dict[str, float]
    seconds: float
    residual_deadband: float = 0.0  # the model's, as evaluated (WorldModelConfig.residual_deadband)
    interaction: InteractionResult | None = None
    object_layer: str = "off"  # the model's, as evaluated: off, on, or on with pushes (WorldModelConfig)
    arm_contact: bool = False  # the model's, as evaluated (WorldModelConfig.arm_contact)
    finger_rule: bool = False  # the model's, as evaluated (WorldModelConfig.finger_rule)
    arm_physics: bool = False  # the model's, as evaluated (WorldModelConfig.arm_physics)
    arm_layer: str = "off"  # the model's, as evaluated: off, on, or on with the start frame's arm erased
    known_state: bool = False  # whole episodes from the simulator's object state (EvalWorldModelConfig)


def policy_source(root: str | Path) -> str:
    """The policy source named by a held-out dataset folder: data/lift/heldout-walk -> walk."""
    name = Path(root).resolve().name
    return name.removeprefix("heldout-") or name


def load_heldout(roots: list[str], image_size: int, max_episodes: int | None = None, task: str | None = None
                 ) -> dict[str, list[Rollout]]:
    """The episodes of each held-out dataset, grouped by policy source; clear errors for unusable roots
    (and, with `task`, for episodes of another task)."""
    missing = [r for r in roots if not (Path(r) / "meta" / "info.json").is_file()]
    if missing:
        raise EvaluationError(f"held-out dataset(s) {missing} not found (no meta/info.json); collect them "
                              "with `wow-gym collect task=<task> policy=... seed=<unused seeds> root=<dir>` "
                              "(`make lift-data` and `make tasks-data` collect the default sets) or pass "
                              "datasets=[...] with existing roots")
    for root in roots:  # from the metadata, before any video is decoded
        reader = DatasetReader(root)
        shape = reader.info["features"][reader.video_key]["shape"]
        if tuple(shape[:2]) != (image_size, image_size):
            raise EvaluationError(f"dataset {root} holds {shape[0]}x{shape[1]} frames but the world model "
                                  f"was trained on {image_size}x{image_size}; collect held-out data with "
                                  f"image_size={image_size} or evaluate a model trained at {shape[0]} px")
    grouped: dict[str, list[Rollout]] = {}
    for root, _, episode in read_episodes(roots, "held-out", image_size, max_episodes=max_episodes,
                                          progress=False):
        if task is not None and episode.task and task_info(episode.task).name != task_info(task).name:
            raise EvaluationError(f"dataset {root} holds {episode.task} episodes, but the world model imagines "
                                  f"{task_info(task).name}; pass datasets of that task")
        grouped.setdefault(policy_source(root), []).append(episode)
    return grouped


def layer_mode(config: WorldModelConfig) -> str:
    """The object layer as the report names it: off, on, or on with pushes drawn too."""
    if not config.object_layer:
        return "off"
    return "on, pushes too" if config.object_layer_pushes else "on"


def arm_layer_mode(config: WorldModelConfig) -> str:
    """The arm layer as the report names it: off, on, or on with the start frame's arm erased."""
    if not config.arm_layer:
        return "off"
    return "on, start arm erased" if config.arm_erase else "on"


def _video_critic(name: str | None, wm: WorldModel) -> LearnedCritic | None:
    """The critic that reads the whole imagined episodes: `name` (a checkpoint), or for None the task's
    shipped critic where there is one that reads the model's frame size; "none": no critic."""
    if name == "none" or (name is None and task_info(wm.config.task).name not in shipped_tasks("critic")):
        return None
    critic = LearnedCritic.load(name, wm.config.task, device=wm.device)
    if critic.config.image_size == wm.config.image_size:
        return critic
    if name is None:
        return None  # the shipped critic reads another size: the probe alone reads the video
    raise EvaluationError(f"the critic reads {critic.config.image_size} px frames and the world model "
                          f"imagines {wm.config.image_size} px; give a critic of that size, or critic=none")


def evaluate_world_model(config: EvalWorldModelConfig) -> EvalResults:
    """Open loop with baselines, plans and the sampling-step sweep of one checkpoint on held-out data."""
    begin = time.perf_counter()
    if config.reference_horizon not in config.horizons:
        raise EvaluationError(f"reference_horizon {config.reference_horizon} must be one of the horizons "
                              f"{list(config.horizons)}")
    path = world_model_path(config.task, config.checkpoint)
    wm = load_world_model(config.task, path, device=config.device, autocast=config.autocast)
    try:  # the imagination switches this evaluation sets (None: the checkpoint's)
        # (known_state here is this evaluation's own: its whole episodes start from the simulator's state;
        # the model's switch of that name is the imagined env's, which this evaluation does not reset)
        wm.set_options({name: getattr(config, name) for name in OPTIONS if name != "known_state"})
    except ValueError as error:
        raise EvaluationError(f"{path}: {error}") from None
    rollouts = load_heldout(list(config.datasets), wm.config.image_size, config.max_episodes, wm.config.task)
    common = {"seed": config.seed, "batch_size": config.batch_size, "progress": config.progress}
    open_loop = evaluate_open_loop(wm, rollouts, tuple(config.horizons), config.sampling_steps,
                                   config.starts_per_episode, examples=config.examples, **common)
    plan = None
    if "expert" in rollouts and config.plan_horizon > 0:
        plan = evaluate_plan(wm, rollouts["expert"], config.plan_horizon, config.sampling_steps, config.seed)
    sweep = sweep_sampling_steps(wm, rollouts, list(config.steps_sweep), config.reference_horizon,
                                 config.starts_per_episode, **common)
    interaction = None
    if config.interaction_datasets:
        whole = load_heldout(list(config.interaction_datasets), wm.config.image_size, config.max_episodes,
                             wm.config.task)
        critic = _video_critic(config.critic, wm)
        interaction = evaluate_interaction(wm, whole, config.sampling_steps, critic=critic,
                                           known_state=config.known_state, **common)
    sources: dict[str, list[str]] = {}
    for root in config.datasets:
        sources.setdefault(policy_source(root), []).append(str(root))
    episodes = {s: len(e) for s, e in rollouts.items()}
    acceptance = acceptance_figures(open_loop, plan, config.reference_horizon)
    if interaction is not None:
        acceptance |= {f"interaction_{k}": v for k, v in interaction.figures["all"].items()}
    return EvalResults(str(path), wm.config.task, sources, episodes, open_loop, plan, sweep, acceptance,
                       time.perf_counter() - begin, wm.config.residual_deadband, interaction,
                       layer_mode(wm.config), wm.config.arm_contact, wm.config.finger_rule,
                       wm.config.arm_physics, arm_layer_mode(wm.config),
                       config.known_state and wm.config.object_dims is not None)


def compare_action_gain(first: str | Path, second: str | Path, horizon: int = 8, source: str | None = None
                        ) -> list[float]:
    """[mean, low, high] of the action gain (PSNR under true minus time-shuffled actions) of the run in
    `first` minus that of `second`, start by start, at `horizon`, with its 95 % bootstrap interval: e.g. the
    one-step sampler against two steps on the same held-out windows. Both are eval-world-model outputs.
    `source` (expert, walk, heavy-noise ...) keeps the starts of that held-out set only."""
    runs = []
    for folder in (first, second):
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise EvaluationError(f"{path} does not exist; give folders written by wow-gym eval-world-model")
        runs.append(json.loads(path.read_text())["open_loop"])
    if runs[0]["windows"] != runs[1]["windows"] or runs[0]["horizons"] != runs[1]["horizons"]:
        raise EvaluationError(f"{first} and {second} scored other windows; run both on the same datasets")
    if horizon not in runs[0]["horizons"] or not all(r.get("action_gain_db") for r in runs):
        raise EvaluationError(f"both runs need per-start action gains at h={horizon} (horizons "
                              f"{runs[0]['horizons']}; results.json from before they were saved has none)")
    i = runs[0]["horizons"].index(horizon)
    diff = np.asarray(runs[0]["action_gain_db"])[:, i] - np.asarray(runs[1]["action_gain_db"])[:, i]
    if source is not None:
        sources = np.array([w["source"] for w in runs[0]["windows"]])
        if not np.any(sources == source):
            raise EvaluationError(f"no start of source {source!r} in {first}; its sources are "
                                  f"{sorted(set(sources.tolist()))}")
        diff = diff[sources == source]
    return bootstrap_interval(diff, GAIN_RESAMPLES, np.random.default_rng(0))


def acceptance_figures(open_loop: OpenLoopResult, plan: PlanResult | None, reference_horizon: int = 8
                       ) -> dict[str, float]:
    """The headline figures over all sources: PSNR vs copy-last at h=4/8/16, true vs shuffled actions at
    the reference horizon (eef error, % lower; PSNR, dB gained), and plan PSNR vs copy-first-frame."""
    m, hs = open_loop.metrics["all"], open_loop.horizons
    figures: dict[str, float] = {}
    for h in (4, 8, 16):
        if h in hs:
            figures[f"psnr_h{h}_model"] = m["psnr"]["model"][hs.index(h)]
            figures[f"psnr_h{h}_copy_last"] = m["psnr"]["copy_last"][hs.index(h)]
    i, h = hs.index(reference_horizon), reference_horizon
    true, shuffled = m["eef_error"]["model"][i], m["eef_error"]["shuffled"][i]
    figures[f"eef_error_h{h}_true"] = true
    figures[f"eef_error_h{h}_shuffled"] = shuffled
    figures[f"eef_error_h{h}_lower_pct"] = 100.0 * (1.0 - true / shuffled) if shuffled > 0 else float("nan")
    figures[f"psnr_h{h}_true"] = m["psnr"]["model"][i]
    figures[f"psnr_h{h}_shuffled"] = m["psnr"]["shuffled"][i]
    figures[f"psnr_h{h}_action_gain_db"] = m["psnr"]["model"][i] - m["psnr"]["shuffled"][i]
    if open_loop.action_gain_db:  # its 95 % bootstrap interval over starts
        _, low, high = bootstrap_interval(np.asarray(open_loop.action_gain_db)[:, i], GAIN_RESAMPLES,
                                          np.random.default_rng(0))
        figures[f"psnr_h{h}_action_gain_low_db"], figures[f"psnr_h{h}_action_gain_high_db"] = low, high
    if plan is not None:
        figures["plan_psnr"] = float(np.mean(plan.psnr["plan"]))
        figures["plan_psnr_copy_first"] = float(np.mean(plan.psnr["copy_first"]))
    return figures

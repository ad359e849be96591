"""Training and evaluation clips for the critic, with labels from the simulator.

- Real clips of expert, noisy and failed episodes; per-frame labels from simulator state: success, task
  progress (the shaped reward), stage (the task's Task.stage_labels; for Lift approach / at the object /
  grasped / lifted, from the gripper-object distance and the reward's grasp term), the gripper-to-object
  offset and the gripper opening.
- Corrupted clips: physically impossible edits of real episodes, rendered by MuJoCo from the stored
  `sim_state` with the object (or the arm) posed by hand: teleport, vanish, levitate, frozen_arm, sink,
  pass_through; and frame-order edits: reverse, shuffle. Some kinds are held out of training so the
  plausibility AUC shows whether the critic generalises.
- Kinematic smoothness: a label computed from the clip's end-effector path (its mean second difference).
- World-model clips: the world model imagines each episode under its recorded actions; windows whose
  imagined object and frames stay close to the simulator's are labelled plausible (with the sim labels),
  the rest as "imagined" (implausible).
Labels come from simulator state only; the critic's inputs are frames and the instruction.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.metrics import psnr
from wow_gym.rollout import Rollout
from wow_gym.tasks import task_info
from wow_gym.tasks.base import finger_gap
from wow_gym.world_models.critic.model import KINDS, OFFSET_SCALE, OPENING_SCALE
from wow_gym.world_models.video.imagination import Start, imagine, probe_object_state
from wow_gym.world_models.video.model import WorldModel

RENDERED_KINDS = ("teleport", "vanish", "levitate", "frozen_arm", "sink", "pass_through")
ORDER_KINDS = ("reverse", "shuffle")
CORRUPTIONS = RENDERED_KINDS + ORDER_KINDS
SMOOTH_SCALE = 0.015  # metres per step^2 of end-effector path curvature at which smoothness is 1/e


def frame_labels(rollout: Rollout) -> dict[str, np.ndarray]:
    """Per-frame labels [T+1] of a sim episode of its task (wow_gym/tasks: where environment_state holds the
    object-minus-gripper vector, and how the task's stages are read from state and reward)."""
    if rollout.environment_state is None or rollout.is_success is None:
        raise ValueError("critic labels need environment_state and is_success (sim episodes from wow-gym collect)")
    task = task_info(rollout.task)
    state = rollout.environment_state
    reward = np.concatenate([rollout.reward[:1], rollout.reward]).astype(np.float32)  # frame t: reward after a_{t-1}
    success = np.concatenate([[False], rollout.is_success]).astype(bool)
    offset = state[:, task.gripper_offset]
    stage = task.stage_labels(state, reward, success)
    opening = finger_gap(rollout.agent_pos)
    return {"success": success, "progress": np.clip(reward, 0, 1), "stage": stage.astype(np.int64),
            "offset": (offset / OFFSET_SCALE).astype(np.float32), "opening": (opening / OPENING_SCALE).astype(np.float32)}


def smoothness(eef: np.ndarray) -> float:
    """Smoothness label of an end-effector path [K, 3] in clip order: exp(-mean |second difference| / scale)."""
    if len(eef) < 3:
        return 1.0
    curvature = np.linalg.norm(eef[2:] - 2 * eef[1:-1] + eef[:-2], axis=1).mean()
    return float(np.exp(-curvature / SMOOTH_SCALE))


@dataclass
class Clip:
    """One clip: frames [K,H,W,3], its kind, the episode and frame indices it came from (in clip order)."""

    frames: np.ndarray
    kind: str
    episode: int
    index: np.ndarray  # [K] frame indices into the episode, in the order shown
    smooth: float


def clip_index(end: int, length: int) -> np.ndarray:
    """Frames end-length+1 .. end, the first repeated before an episode's start."""
    return np.maximum(np.arange(end - length + 1, end + 1), 0)


def corrupt(env: Any, rollout: Rollout, episode: int, end: int, kind: str, length: int,
            rng: np.random.Generator, labels: dict[str, np.ndarray] | None = None) -> Clip | None:
    """A corrupted clip of frames end-length+1..end of `rollout`, or None when the clip does not suit the
    kind (e.g. frozen_arm needs the object to move in it). `env` is a RobosuiteEnv of the task; `labels` the
    rollout's frame_labels, when the caller has them already."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPTIONS}")
    index = clip_index(end, length)
    if index[0] != end - length + 1:
        return None
    eef = rollout.agent_pos[index, :3]
    frames = rollout.pixels[index]
    labels = frame_labels(rollout) if labels is None else labels
    task = task_info(rollout.task)
    obj = rollout.environment_state[index, task.object_position]
    moved = np.linalg.norm(obj[-1] - obj[0])
    motion = np.abs(frames[-1].astype(np.int16) - frames[0]).mean()
    if kind in ORDER_KINDS:
        if motion < 2.0:
            return None  # a still clip looks the same in any order
        order = np.arange(length)[::-1] if kind == "reverse" else rng.permutation(length)
        if kind == "shuffle" and np.all(np.abs(np.diff(order)) == 1):
            order = np.roll(order, length // 2)
        return Clip(frames[order], kind, episode, index[order], smoothness(eef[order]))
    start = int(rng.integers(2, length - 1))  # the first edited frame
    states = rollout.sim_state[index].copy()
    pose = env.object_qpos_index()
    later = np.arange(start, length)
    steps = (later - start + 1)[:, None]
    # held: grasped; on a hinged object (the door) the gripper at its handle, where it may be pulling it
    grasped = labels["stage"][index] >= task.stage_index("grasped" if len(pose) > 1 else "at_object")
    if len(pose) == 1 and kind in ("teleport", "vanish", "levitate", "sink"):
        if not _swing(env, kind, states, int(pose[0]), later, grasped, rng):
            return None
    elif kind == "teleport":
        angle = rng.uniform(0, 2 * np.pi)
        states[later[:, None], pose[:2]] += rng.uniform(0.06, 0.12) * np.array([np.cos(angle), np.sin(angle)])
    elif kind == "vanish":
        states[later, pose[2]] = -2.0
    elif kind == "levitate":
        if grasped.any():
            return None
        states[later[:, None], pose[2:3]] += 0.012 * steps
    elif kind == "sink":
        if grasped.any() or labels["success"][index].any():
            return None
        states[later[:, None], pose[2:3]] -= 0.008 * steps
    elif kind == "frozen_arm":
        if moved < 0.02:
            return None
        arm = np.setdiff1d(np.arange(env.qpos_slice.start, env.qpos_slice.stop), pose)
        states[later[:, None], arm] = states[start - 1, arm]
        eef = eef.copy()
        eef[later] = eef[start - 1]
    elif kind == "pass_through":
        if moved < 0.02 or not grasped.all():
            return None
        states[later[:, None], pose] = states[start - 1, pose]
    edited = frames.copy()
    edited[later] = env.render_states(states[later])
    return Clip(edited, kind, episode, index, smoothness(eef))


def _swing(env: Any, kind: str, states: np.ndarray, column: int, later: np.ndarray, held: np.ndarray,
           rng: np.random.Generator) -> bool:
    """corrupt()'s edits of an object on a hinge (in place; False where the kind does not fit the clip): teleport
    swings it 0.3-0.6 rad at once, levitate opens and sink closes it by itself while not held; a door cannot
    vanish."""
    low, high = env.object_joint_range()
    angle = states[:, column]
    if kind == "teleport":
        angle[later] += rng.uniform(0.3, 0.6) * (1 if high - angle[later[0]] > angle[later[0]] - low else -1)
    elif kind in ("levitate", "sink"):
        if held.any() or (kind == "sink" and angle[later[0]] - low < 0.2):
            return False
        angle[later] += (0.03 if kind == "levitate" else -0.03) * (later - later[0] + 1)
    else:
        return False
    states[:, column] = np.clip(angle, low, high)
    return True


def corrupted_bank(env: Any, rollouts: list[Rollout], kinds: list[str], per_kind: int, length: int,
                   seed: int, progress: bool = True) -> list[Clip]:
    """`per_kind` clips of each kind from random episodes and ends (kinds that fit too few clips give fewer)."""
    rng = np.random.default_rng(seed)
    labels = [frame_labels(r) for r in rollouts]
    clips: list[Clip] = []
    bar = tqdm(total=per_kind * len(kinds), desc="corrupted clips", disable=not progress)
    for kind in kinds:
        made, tries = 0, 0
        while made < per_kind and tries < 40 * per_kind:
            tries += 1
            episode = int(rng.integers(len(rollouts)))
            rollout = rollouts[episode]
            clip = corrupt(env, rollout, episode, int(rng.integers(length - 1, rollout.num_steps + 1)), kind,
                           length, rng, labels[episode])
            if clip is not None:
                clips.append(clip)
                made += 1
                bar.update()
    bar.close()
    return clips


def save_clips(path: Path, clips: list[Clip]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, frames=np.stack([c.frames for c in clips]),
                        kind=np.array([KINDS.index(c.kind) for c in clips]),
                        episode=np.array([c.episode for c in clips]), index=np.stack([c.index for c in clips]),
                        smooth=np.array([c.smooth for c in clips], np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def load_clips(path: Path) -> list[Clip]:
    data = np.load(path)
    return [Clip(f, KINDS[k], int(e), i, float(s)) for f, k, e, i, s in
            zip(data["frames"], data["kind"], data["episode"], data["index"], data["smooth"])]


def cached_bank(path: Path, make: Any) -> list[Clip]:
    """The clips stored at `path`, else make() them and store them (atomically) for the next run."""
    if path.is_file():
        return load_clips(path)
    clips = make()
    if clips:
        save_clips(path, clips)
    return clips


@dataclass
class ImaginedEpisodes:
    """World-model video of episodes under their recorded actions, with per-frame agreement figures."""

    pixels: np.ndarray  # [N, T+1, H, W, 3] the first `context` frames real, the rest imagined
    object_position: np.ndarray  # [N, T+1, 3] the object probe's reading of those frames
    object_error: np.ndarray  # [N, T+1] metres: the object probe on imagined vs simulated frames
    psnr: np.ndarray  # [N, T+1] imagined vs simulated frame
    context: int


def imagine_episodes(wm: WorldModel, rollouts: list[Rollout], sampling_steps: int | None = None,
                     seed: int = 0, batch_size: int = 128, progress: bool = True) -> ImaginedEpisodes:
    """Each episode from its first `context_frames` frames, imagined to its end under its recorded actions."""
    k = wm.config.context_frames
    horizon = min(r.num_steps for r in rollouts) - (k - 1)
    start = Start.from_episodes(rollouts, [k - 1] * len(rollouts), k, wm.config.instruction)
    actions = np.stack([r.action[k - 1:k - 1 + horizon] for r in rollouts])
    g = torch.Generator(device=wm.device).manual_seed(seed)
    out = imagine(wm, start, actions, None, g, sampling_steps, batch_size, progress, "imagine episodes")
    real = np.stack([r.pixels[:k + horizon] for r in rollouts])
    pixels = np.concatenate([real[:, :k], out.pixels], axis=1)
    where = task_info(wm.config.task).object_position
    probed = probe_object_state(wm, pixels)[..., where]
    truth = np.stack([r.environment_state[:k + horizon, where] for r in rollouts])
    object_error = np.linalg.norm(probed - truth, axis=-1)
    object_error[:, :k] = 0.0
    score = psnr(pixels, real)
    return ImaginedEpisodes(pixels, probed.astype(np.float32), object_error.astype(np.float32),
                            score.astype(np.float32), k)


def save_imagined(path: Path, imagined: ImaginedEpisodes) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, pixels=imagined.pixels, object_position=imagined.object_position,
             object_error=imagined.object_error, psnr=imagined.psnr, context=imagined.context)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def load_imagined(path: Path) -> ImaginedEpisodes:
    data = np.load(path)
    return ImaginedEpisodes(data["pixels"], data["object_position"], data["object_error"], data["psnr"],
                            int(data["context"]))

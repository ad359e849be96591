"""The physics check: replay an imagined rollout's decoded actions in the simulator and measure agreement.

An imagined rollout that started from a simulator state can be checked against real physics: FM-IDM
decodes its frames into actions, the sim twin replays them from that same state, and the imagined and
replayed episodes are compared step by step: PSNR/SSIM of the frames, end-effector and object trajectory
error (mean distance, dynamic time warping, discrete Fréchet distance) and whether both agree on success.
Rollouts that agree within `VerifyThresholds` count as verified (source=imagined_verified).

Open-loop replay integrates every decoded step's small error into drift. With `track` (end-effector
positions the video shows, read off its frames by FM-IDM's pose head), the replay instead adds to each decoded
action a proportional correction toward where the video shows the end effector at that step, from the
executing arm's own proprioception (the simulator's agent_pos here; a real arm's joint encoders there).
A tracked replay also waits for each grasp: while the fingers are still closing on a close command, the arm
holds still and the video waits. A grasp barely shows at 64 px (on PickPlaceCan's can the fingers travel
about a centimetre), so FM-IDM often decodes the close only when the video's arm starts to lift; without the
wait the arm then lifts an object its fingers have not yet gripped.

`physics_checks` checks many rollouts at once: FM-IDM decodes them here, the replays run on Ray actors when
`ray.address` is set (each keeping its sim env), and each replay starts from its own state, so the figures
are those of checking the rollouts one by one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from wow_gym.checks import check_actions
from wow_gym.metrics import dtw_distance, frechet_distance, psnr, ssim
from wow_gym.registry import MAX_POSITION_STEP
from wow_gym.rollout import Rollout
from wow_gym.scale import RayConfig, map_ordered
from wow_gym.tasks import task_info
from wow_gym.tasks.base import finger_gap


@dataclass
class VerifyThresholds:
    """When an imagined rollout agrees with physics: its replay succeeds (if required) and the imagined
    object trajectory stays within `object_mm` (mean distance) of the replayed one."""

    require_success: bool = True
    object_mm: float = 40.0
    eef_mm: float = 60.0  # checked only where the rollout imagined the end effector


GRASP_SETTLED = 1e-3  # metres per step: fingers closing more slowly than this rest on an object (or are shut)
MAX_GRASP_HOLD = 15  # steps a tracked replay holds the arm still for one grasp at most


def replay(env: Any, sim_state: np.ndarray, actions: np.ndarray, render: bool = True,
           track: np.ndarray | None = None, gain: float = 1.0, wait_for_grasp: bool = True) -> Rollout:
    """Run `actions` [T, 7] in a RobosuiteEnv from `sim_state`; the resulting simulated Rollout.

    With `track` [T+1, 3] (world positions of the end effector, one per frame of the video the actions came
    from), each step's position command gains gain * (track[t] - end effector now) / MAX_POSITION_STEP,
    clipped to [-1, 1], and the Rollout records the actions executed. With `wait_for_grasp` too, while a
    close command's fingers still close by more than GRASP_SETTLED per step, the arm holds still (zero motion,
    gripper closing) and the video waits, for at most MAX_GRASP_HOLD steps per close; the replay still runs
    T steps, so the video's last steps go unexecuted by as many steps as the arm waited."""
    actions = check_actions(actions, ("T", 7), "replay actions")
    if track is not None:
        track = np.asarray(track, np.float32)
        if track.shape != (len(actions) + 1, 3):
            raise ValueError(f"track must be end-effector positions [T+1, 3] = [{len(actions) + 1}, 3] for "
                             f"{len(actions)} actions, got shape {track.shape}")
        if gain < 0:
            raise ValueError(f"the tracking gain must be >= 0, got {gain}")
    obs, info = env.reset(options={"sim_state": sim_state})
    keep = render and "pixels" in obs
    frames, poses, states, sims = [obs["pixels"]] if keep else [], [obs["agent_pos"]], [obs["environment_state"]], [
        env.get_sim_state()]
    rewards, success, executed = [], [], []
    t, held, opening = 0, 0, float(finger_gap(obs["agent_pos"]))  # t: the video's step being executed
    for _ in range(len(actions)):
        action = actions[t]
        if track is not None:
            action = action.copy()
            before, opening = opening, float(finger_gap(obs["agent_pos"]))
            if (wait_for_grasp and action[6] > 0 and before - opening > GRASP_SETTLED
                    and held < MAX_GRASP_HOLD):
                action[:6] = 0.0  # the fingers are still closing: hold the arm, the video waits
                held += 1
            else:
                held = held if action[6] > 0 else 0  # each close command gets its own wait
                correction = gain * (track[t] - obs["agent_pos"][:3]) / MAX_POSITION_STEP
                action[:3] = np.clip(action[:3] + correction, -1.0, 1.0)
                t += 1
        else:
            t += 1
        executed.append(action)
        obs, reward, _, _, info = env.step(action)
        if keep:
            frames.append(obs["pixels"])
        poses.append(obs["agent_pos"])
        states.append(obs["environment_state"])
        sims.append(env.get_sim_state())
        rewards.append(reward)
        success.append(bool(info["is_success"]))
    steps = len(actions)
    size = env.observation_space["pixels"].shape[0] if "pixels" in env.observation_space.spaces else 1
    pixels = np.stack(frames) if keep else np.zeros((steps + 1, size, size, 3), np.uint8)
    return Rollout(pixels=pixels, agent_pos=np.stack(poses).astype(np.float32),
                   action=np.stack(executed).astype(np.float32) if steps else actions,
                   reward=np.asarray(rewards, np.float32), terminated=np.zeros(steps, bool),
                   truncated=np.zeros(steps, bool), source="sim", task=getattr(env, "task", ""),
                   is_success=np.asarray(success), environment_state=np.stack(states).astype(np.float32),
                   sim_state=np.stack(sims))


class Replayer:
    """A worker that keeps one sim env and replays (sim_state, actions) or (sim_state, actions, track)
    jobs in it (`replay`'s arguments; tracked with `gain` and `wait_for_grasp`)."""

    def __init__(self, make_env: Callable[[], Any], render: bool = True, gain: float = 1.0,
                 wait_for_grasp: bool = True) -> None:
        self.env, self.render, self.gain, self.wait_for_grasp = make_env(), render, gain, wait_for_grasp

    def __call__(self, job: tuple[np.ndarray, ...]) -> Rollout:
        sim_state, actions, *track = job
        return replay(self.env, sim_state, actions, self.render, track[0] if track else None, self.gain,
                      self.wait_for_grasp)

    def close(self) -> None:
        self.env.close()


def replay_all(make_env: Callable[[], Any], jobs: Sequence[tuple[np.ndarray, ...]],
               ray: RayConfig | None = None, render: bool = True, gain: float = 1.0,
               wait_for_grasp: bool = True) -> list[Rollout]:
    """Replay each (sim_state, actions [T, 7]) or (sim_state, actions, track [T+1, 3]) job from its state: in
    one env here, or on Ray actors when ray.address is set; the replays in the order of the jobs. `make_env`
    must be picklable for Ray."""
    return list(map_ordered(partial(Replayer, make_env, render, gain, wait_for_grasp), jobs, ray))


def trajectory_errors(imagined: np.ndarray, replayed: np.ndarray) -> dict[str, float]:
    """Mean step-wise distance, DTW and Fréchet distance (metres) of two [T, 3] trajectories; NaN when the
    imagined one is unknown (NaN)."""
    if not np.all(np.isfinite(imagined)):
        return {"mean": float("nan"), "dtw": float("nan"), "frechet": float("nan")}
    return {"mean": float(np.linalg.norm(imagined - replayed, axis=-1).mean()),
            "dtw": dtw_distance(imagined, replayed), "frechet": frechet_distance(imagined, replayed)}


# -- the check ---------------------------------------------------------------------------------------------


@dataclass
class PhysicsCheck:
    """Per-step agreement [T] and trajectory figures of one imagined rollout and its replay."""

    psnr: np.ndarray
    ssim: np.ndarray
    eef: dict[str, float]
    object: dict[str, float]
    imagined_success: bool | None
    replay_success: bool
    verified: bool
    replayed: Rollout = field(repr=False)

    @property
    def success_agrees(self) -> bool | None:
        return None if self.imagined_success is None else self.imagined_success == self.replay_success

    def summary(self) -> dict[str, float]:
        """Flat figures (errors in mm) for tables, JSON and the Rollout."""
        out = {"psnr": float(np.mean(self.psnr)), "ssim": float(np.mean(self.ssim)),
               "replay_success": float(self.replay_success), "verified": float(self.verified)}
        for name, errors in (("eef", self.eef), ("object", self.object)):
            out.update({f"{name}_{k}_mm": 1000 * v for k, v in errors.items()})
        if self.imagined_success is not None:
            out["imagined_success"] = float(self.imagined_success)
            out["success_agrees"] = float(self.success_agrees)
        return out


def physics_check(imagined: Rollout, sim_state: np.ndarray, idm: Any, env: Any,
                  thresholds: VerifyThresholds | None = None, actions: np.ndarray | None = None,
                  gain: float = 0.0, wait_for_grasp: bool = True) -> PhysicsCheck:
    """Decode `imagined`'s frames with `idm` (or take `actions`), replay them in `env` from `sim_state`
    (the state the imagination started from) and compare. gain > 0 tracks the video with FM-IDM's pose head
    (`replay`'s track, with `wait_for_grasp`), and the rollout carries the executed actions. Sets
    imagined.idm_action and imagined.physics."""
    decoded = idm.predict(imagined.pixels) if actions is None else np.asarray(actions, np.float32)
    track = idm.eef_positions(imagined.pixels) if gain > 0 else None
    replayed = replay(env, sim_state, decoded, track=track, gain=gain, wait_for_grasp=wait_for_grasp)
    return compare_replay(imagined, decoded if track is None else replayed.action, replayed, thresholds)


def physics_checks(imagined: Sequence[Rollout], sim_states: Sequence[np.ndarray], idm: Any,
                   make_env: Callable[[], Any], thresholds: VerifyThresholds | None = None,
                   ray: RayConfig | None = None, gain: float = 0.0,
                   actions: Sequence[np.ndarray] | None = None,
                   wait_for_grasp: bool = True) -> list[PhysicsCheck]:
    """physics_check of each rollout from its start state: FM-IDM decodes here (or `actions` are given), the
    replays run through replay_all (on Ray when ray.address is set) in envs made by `make_env`. gain > 0
    tracks each video with FM-IDM's pose head (`replay`'s track, with `wait_for_grasp`); the rollouts then
    carry the executed actions as idm_action."""
    decoded = [idm.predict(rollout.pixels) for rollout in imagined] if actions is None else list(actions)
    if gain > 0:
        jobs = [(s, a, idm.eef_positions(r.pixels)) for s, a, r in zip(sim_states, decoded, imagined)]
        replayed = replay_all(make_env, jobs, ray, gain=gain, wait_for_grasp=wait_for_grasp)
        decoded = [r.action for r in replayed]
    else:
        replayed = replay_all(make_env, list(zip(sim_states, decoded)), ray)
    return [compare_replay(r, a, p, thresholds) for r, a, p in zip(imagined, decoded, replayed)]


def compare_replay(imagined: Rollout, decoded: np.ndarray, replayed: Rollout,
                   thresholds: VerifyThresholds | None = None) -> PhysicsCheck:
    """The agreement of an imagined rollout and the replay of its decoded actions; sets imagined.idm_action
    and imagined.physics."""
    thresholds = thresholds or VerifyThresholds()
    if replayed.pixels.shape != imagined.pixels.shape:
        raise ValueError(f"the sim twin renders {replayed.pixels.shape[1:]} frames, the imagined rollout has "
                         f"{imagined.pixels.shape[1:]}; make the env with the world model's image size")
    frame_psnr = psnr(imagined.pixels[1:], replayed.pixels[1:])
    frame_ssim = ssim(imagined.pixels[1:], replayed.pixels[1:])
    eef = trajectory_errors(imagined.agent_pos[1:, :3], replayed.agent_pos[1:, :3])
    where = task_info(replayed.task or imagined.task).object_position  # the task object in environment_state
    unknown = np.full_like(replayed.environment_state[1:, where], np.nan)  # no imagined object
    obj = trajectory_errors(unknown if imagined.environment_state is None
                            else imagined.environment_state[1:, where],
                            replayed.environment_state[1:, where])
    imagined_success = imagined.success if imagined.is_success is not None else None
    ok = (replayed.success or not thresholds.require_success)
    ok = ok and np.isfinite(obj["mean"]) and 1000 * obj["mean"] <= thresholds.object_mm
    ok = ok and (not np.isfinite(eef["mean"]) or 1000 * eef["mean"] <= thresholds.eef_mm)
    check = PhysicsCheck(frame_psnr, frame_ssim, eef, obj, imagined_success, replayed.success, bool(ok), replayed)
    imagined.idm_action = decoded
    imagined.physics = check.summary()
    return check


def verified_rollout(imagined: Rollout, check: PhysicsCheck) -> Rollout:
    """The imagined frames with FM-IDM's actions, labelled by the replay (poses, object state, reward,
    success, sim states): a `source=imagined_verified` episode for policy training."""
    if not check.verified:
        raise ValueError("this rollout did not pass its physics check; only verified rollouts are written")
    r = check.replayed
    return dataclasses.replace(
        imagined, source="imagined_verified", action=imagined.idm_action, agent_pos=r.agent_pos,
        environment_state=r.environment_state, sim_state=r.sim_state, reward=r.reward, is_success=r.is_success,
        terminated=np.zeros(r.num_steps, bool), truncated=np.zeros(r.num_steps, bool), idm_action=imagined.idm_action,
        reward_terms={}, subtask=None)

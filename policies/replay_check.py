"""`wow-gym replay-check`: where a policy's imagination and physics part ways under the same actions.

A policy acts in the imagined env from simulator start states (closed loop on the imagined frames); the
action sequence it chose is then replayed open loop in the simulator from the same states. Per episode: did
the imagination call it a success, did physics; per step: how far the imagined gripper, fingers and object
are from the simulator's. An imagined success that the replay does not reproduce is what RL in imagination
learns to exploit, and the gripper's drift under the policy's own actions says how far to trust a grasp.

`wow-gym evaluate` runs the policy closed loop in both worlds (success rates, agreement); this replays one
world's actions in the other, so each difference is the world model's and not the policy's reaction to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from wow_gym.policies.evaluation import EvaluateConfig, PairedEnvs, PolicyEntry, make_policy
from wow_gym.registry import task_info
from wow_gym.world_models.video.imagination import load_world_model
from wow_gym.world_models.video.model import checkpoint_options


@dataclass
class ReplayCheckConfig:
    task: str = "lift"
    policy: PolicyEntry = field(default_factory=lambda: PolicyEntry(kind="shipped"))
    world_model: str | None = None  # a checkpoint dir; None: the task's shipped world model
    # its imagination switches (WorldModel.set_options; None keeps the checkpoint's)
    world_model_options: dict[str, Any] = field(default_factory=checkpoint_options)
    episodes: int = 16
    max_steps: int = 60
    seed: int = 960000  # episode i starts from the simulator layout of seed + i
    parallel: int = 8  # simulators (about 0.5 GB each) and imagined envs per wave
    horizons: list[int] = field(default_factory=lambda: [1, 8, 16, 24, 32, 48])
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.policy, dict):
            self.policy = PolicyEntry(**self.policy)
        if self.episodes < 1 or self.max_steps < 1 or self.parallel < 1:
            raise ValueError(f"episodes, max_steps and parallel must be >= 1, got {self.episodes}, "
                             f"{self.max_steps}, {self.parallel}")
        bad = [h for h in self.horizons if not 1 <= h <= self.max_steps]
        if bad:
            raise ValueError(f"horizons {bad} are outside 1..max_steps ({self.max_steps})")


@dataclass
class ReplayCheckResult:
    policy: str
    episodes: int
    imagined_success: list[bool]
    replay_success: list[bool]
    # [episode, step] metres: imagined minus replayed gripper position and object position
    eef_error: np.ndarray = field(repr=False)
    object_error: np.ndarray = field(repr=False)
    # [2, episode, step] metres, imagined then replayed: each world's finger gap, gripper-object distance and
    # object height (where the errors say the worlds part, these say which one does what: closes on the
    # object or through it, holds it or pulls free, lifts it or leaves it)
    gap: np.ndarray = field(repr=False)
    reach: np.ndarray = field(repr=False)
    height: np.ndarray = field(repr=False)
    horizons: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def gap_error(self) -> np.ndarray:
        """[episode, step] metres: the imagined finger gap's distance from the replayed one."""
        return np.abs(self.gap[0] - self.gap[1])

    @property
    def worlds(self) -> dict[str, np.ndarray]:
        return {"gap": self.gap, "reach": self.reach, "height": self.height}

    @property
    def figures(self) -> dict[str, float]:
        imagined, replay = np.array(self.imagined_success), np.array(self.replay_success)
        out = {"imagined_success_rate": float(imagined.mean()), "replay_success_rate": float(replay.mean()),
               "false_successes": int((imagined & ~replay).sum()), "missed_successes": int((~imagined & replay).sum()),
               "agreement": float((imagined == replay).mean())}
        for h in self.horizons:
            out[f"eef_error_h{h}_mm"] = 1000 * float(self.eef_error[:, h - 1].mean())
            out[f"gap_error_h{h}_mm"] = 1000 * float(self.gap_error[:, h - 1].mean())
            out[f"object_error_h{h}_mm"] = 1000 * float(self.object_error[:, h - 1].mean())
            for name, values in self.worlds.items():
                for world, row in zip(("imagined", "replayed"), values):
                    out[f"{name}_{world}_h{h}_mm"] = 1000 * float(row[:, h - 1].mean())
        return out

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "episodes": self.episodes, "seconds": self.seconds,
                "figures": self.figures, "imagined_success": self.imagined_success,
                "replay_success": self.replay_success,
                "eef_error_mm": (1000 * self.eef_error).round(2).tolist(),
                "gap_error_mm": (1000 * self.gap_error).round(2).tolist(),
                "object_error_mm": (1000 * self.object_error).round(2).tolist(),
                **{f"{name}_mm": (1000 * values).round(2).tolist() for name, values in self.worlds.items()}}


def _gap(agent_pos: np.ndarray) -> np.ndarray:
    return agent_pos[..., 7] - agent_pos[..., 8]  # the fingers' joint gap (Lift's Panda gripper)


def replay_check(config: ReplayCheckConfig) -> ReplayCheckResult:
    """Imagine `episodes` episodes under the policy, replay each action sequence in the simulator."""
    started = time.monotonic()
    info = task_info(config.task)
    model = load_world_model(info.name, config.world_model, options=config.world_model_options)
    # evaluate's paired worlds: waves of `parallel` simulators and imagined envs reset to the same states
    envs = PairedEnvs(EvaluateConfig(task=info.name, n_episodes=config.episodes, max_steps=config.max_steps,
                                     seed=config.seed, parallel=config.parallel, imagined_reward="state",
                                     policies=[config.policy]), model, critic=None)
    policy = make_policy(config.policy, envs.imagined.single_observation_space, info.name)
    position, offset = info.object_position, info.gripper_offset
    imagined_success, replay_success, errors = [], [], {"eef": [], "object": []}
    worlds: dict[str, list[np.ndarray]] = {"gap": [], "reach": [], "height": []}
    bar = tqdm(total=2 * config.episodes * config.max_steps, desc="replay check", unit="step",
               disable=not config.progress)
    try:
        for first, count in envs.waves:
            _, observation = envs.reset(first)
            policy.reset(envs.size, config.seed + first)
            actions, poses, env_states, success = [], [], [], np.zeros(envs.size, bool)
            for _ in range(config.max_steps):
                action = np.clip(policy.act(observation), -1, 1).astype(np.float32)
                observation, _, _, _, step_info = envs.imagined.step(action)
                actions.append(action)
                poses.append(observation["agent_pos"].copy())
                env_states.append(observation["environment_state"].copy())
                success |= np.asarray(step_info["is_success"], bool)
                bar.update(count)
            actions, poses, env_states = np.stack(actions, 1), np.stack(poses, 1), np.stack(env_states, 1)
            for j in range(count):  # each simulator on its own, open loop: no vector autoreset
                sim, replayed, real_pose, real_state = envs.sim.envs[j], False, [], []
                for t in range(config.max_steps):
                    sim_observation, _, _, _, sim_info = sim.step(actions[j, t])
                    replayed |= bool(sim_info.get("is_success", False))
                    real_pose.append(sim_observation["agent_pos"])
                    real_state.append(sim_observation["environment_state"])
                    bar.update(1)
                real_pose, real_state = np.stack(real_pose), np.stack(real_state)
                imagined_success.append(bool(success[j]))
                replay_success.append(replayed)
                errors["eef"].append(np.linalg.norm(poses[j, :, :3] - real_pose[:, :3], axis=1))
                errors["object"].append(np.linalg.norm(env_states[j, :, position] - real_state[:, position], axis=1))
                worlds["gap"].append(np.stack([_gap(poses[j]), _gap(real_pose)]))
                both = np.stack([env_states[j, :, offset], real_state[:, offset]])
                worlds["reach"].append(np.linalg.norm(both, axis=-1))
                z = position.stop - 1
                worlds["height"].append(np.stack([env_states[j, :, z], real_state[:, z]]))
    finally:
        bar.close()
        envs.close()
    return ReplayCheckResult(config.policy.name, config.episodes, imagined_success, replay_success,
                             np.stack(errors["eef"]), np.stack(errors["object"]),
                             *(np.stack(worlds[name], 1) for name in ("gap", "reach", "height")),
                             horizons=list(config.horizons), seconds=time.monotonic() - started)


def report_lines(result: ReplayCheckResult) -> list[str]:
    """The figures as a markdown table: success in each world, then errors per horizon."""
    f = result.figures
    header = ("| imagined success | replayed in the simulator | imagined successes physics rejects | "
              "physics successes imagination missed | agreement |")
    row = (f"| {100 * f['imagined_success_rate']:.1f}% | {100 * f['replay_success_rate']:.1f}% | "
           f"{f['false_successes']} | {f['missed_successes']} | {100 * f['agreement']:.1f}% |")
    lines = [f"# Replay check: {result.policy}, {result.episodes} episodes", "", header, "|---|---|---|---|---|",
             row, "", "| step | gripper error (mm) | finger-gap error (mm) | object error (mm) |", "|---|---|---|---|"]
    lines += [f"| {h} | {f[f'eef_error_h{h}_mm']:.1f} | {f[f'gap_error_h{h}_mm']:.1f} | "
              f"{f[f'object_error_h{h}_mm']:.1f} |" for h in result.horizons]
    lines += ["", "Each world on its own (means over episodes), imagined / replayed: the fingers' gap, "
              "the gripper's distance to the object and the object's height.", "",
              "| step | finger gap (mm) | gripper-object (mm) | object height (mm) |", "|---|---|---|---|"]
    for h in result.horizons:
        cells = [f"{f[f'{name}_imagined_h{h}_mm']:.1f} / {f[f'{name}_replayed_h{h}_mm']:.1f}"
                 for name in ("gap", "reach", "height")]
        lines.append(f"| {h} | {' | '.join(cells)} |")
    return lines


def error_plot(result: ReplayCheckResult):
    """Mean imagined-vs-replayed error of the gripper, the finger gap and the object against the step."""
    from wow_gym.world_models.plots import line_plot

    steps = list(range(1, result.eef_error.shape[1] + 1))
    series = {name: (steps, (1000 * error.mean(0)).tolist()) for name, error in
              (("gripper", result.eef_error), ("finger gap", result.gap_error), ("object", result.object_error))}
    return line_plot(series, f"imagined vs replayed in the simulator: {result.policy}", "step", "mean error (mm)")

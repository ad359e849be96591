"""`wow-gym replay-check`: where a policy's imagination and physics part ways under the same actions.

A policy acts in the imagined env from simulator start states (closed loop on the imagined frames); the
action sequence it chose is then replayed open loop in the simulator from the same states. Per episode: did
the imagination call it a success, did physics; per step: how far the imagined gripper, fingers and object
are from the simulator's. An imagined success that the replay does not reproduce is what RL in imagination
learns to exploit, and the gripper's drift under the policy's own actions says how far to trust a grasp.
For each episode the worlds part on, the report shows both worlds at the first step the one that succeeds
calls it, and whether the task's success test on the replayed states agrees with the simulator's verdict:
a wrong test, or a wrong imagined state.

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
    # [2, episode]: the first step (1-based) each world calls the episode a success, imagined then replayed;
    # 0 where it never does
    first_success: np.ndarray | None = field(default=None, repr=False)
    # the task's success test on the replayed states (Task.success_on_state, what the imagined env asks of
    # its own state), per episode; None for a task without one. Where it disagrees with the simulator's
    # verdict the test is wrong, not the imagined dynamics
    replay_state_success: list[bool] | None = None
    seed: int = 0  # episode i started from the simulator layout of seed + i

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
        if self.replay_state_success is not None:
            out["state_test_agreement"] = float((np.array(self.replay_state_success) == replay).mean())
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
                "replay_success": self.replay_success, "seed": self.seed,
                "first_success": None if self.first_success is None else self.first_success.tolist(),
                "replay_state_success": self.replay_state_success,
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
    first_success, state_success = [], []
    worlds: dict[str, list[np.ndarray]] = {"gap": [], "reach": [], "height": []}
    bar = tqdm(total=2 * config.episodes * config.max_steps, desc="replay check", unit="step",
               disable=not config.progress)
    try:
        for first, count in envs.waves:
            _, observation = envs.reset(first)
            policy.reset(envs.size, config.seed + first)
            actions, poses, env_states, success = [], [], [], np.zeros(envs.size, bool)
            first_step = np.zeros(envs.size, int)  # 1-based; 0: no success yet
            for _ in range(config.max_steps):
                action = np.clip(policy.act(observation), -1, 1).astype(np.float32)
                observation, _, _, _, step_info = envs.imagined.step(action)
                actions.append(action)
                poses.append(observation["agent_pos"].copy())
                env_states.append(observation["environment_state"].copy())
                success |= np.asarray(step_info["is_success"], bool)
                first_step = np.where((first_step == 0) & success, len(actions), first_step)
                bar.update(count)
            actions, poses, env_states = np.stack(actions, 1), np.stack(poses, 1), np.stack(env_states, 1)
            for j in range(count):  # each simulator on its own, open loop: no vector autoreset
                sim, replayed, replayed_first, real_pose, real_state = envs.sim.envs[j], False, 0, [], []
                for t in range(config.max_steps):
                    sim_observation, _, _, _, sim_info = sim.step(actions[j, t])
                    replayed |= bool(sim_info.get("is_success", False))
                    replayed_first = replayed_first or (t + 1 if replayed else 0)
                    real_pose.append(sim_observation["agent_pos"])
                    real_state.append(sim_observation["environment_state"])
                    bar.update(1)
                real_pose, real_state = np.stack(real_pose), np.stack(real_state)
                imagined_success.append(bool(success[j]))
                replay_success.append(replayed)
                first_success.append((first_step[j], replayed_first))
                test = info.success_on_state(real_state, real_pose)
                state_success.append(None if test is None else bool(np.any(test)))
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
                             horizons=list(config.horizons), seconds=time.monotonic() - started,
                             first_success=np.array(first_success, int).T,
                             replay_state_success=None if None in state_success else state_success,
                             seed=config.seed)


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
    return lines + parting_lines(result)


def parting_lines(result: ReplayCheckResult) -> list[str]:
    """A markdown table of the episodes one world calls a success and the other does not: at the first step
    the one that does calls it, each world's object height, gripper-object distance and finger gap, and the
    task's success test on the replayed states (where it disagrees with the simulator's verdict, the test is
    wrong; where it agrees, the imagined state is)."""
    parted = [i for i in range(result.episodes) if result.imagined_success[i] != result.replay_success[i]]
    if not parted or result.first_success is None:
        return []
    lines = ["", "Where the worlds part: the episodes one world calls a success and the other does not, at "
             "the first step the one that does calls it (imagined / replayed).", ""]
    if result.replay_state_success is not None:
        lines += [f"The task's success test on the replayed states agrees with the simulator's verdict in "
                  f"{100 * result.figures['state_test_agreement']:.1f}% of the episodes.", ""]
    lines += ["| episode (seed) | success in | at step | test on the replay | object height (mm) | "
              "gripper-object (mm) | finger gap (mm) |", "|---|---|---|---|---|---|---|"]
    for i in parted:
        world = 0 if result.imagined_success[i] else 1
        t = int(result.first_success[world, i]) - 1
        test = ("-" if result.replay_state_success is None else
                "success" if result.replay_state_success[i] else "no success")
        cells = [f"{1000 * values[0, i, t]:.1f} / {1000 * values[1, i, t]:.1f}"
                 for values in (result.height, result.reach, result.gap)]
        where = ("imagination", "simulator")[world]
        lines.append(f"| {i} ({result.seed + i}) | {where} | {t + 1} | {test} | {' | '.join(cells)} |")
    return lines


def error_plot(result: ReplayCheckResult):
    """Mean imagined-vs-replayed error of the gripper, the finger gap and the object against the step."""
    from wow_gym.world_models.plots import line_plot

    steps = list(range(1, result.eef_error.shape[1] + 1))
    series = {name: (steps, (1000 * error.mean(0)).tolist()) for name, error in
              (("gripper", result.eef_error), ("finger gap", result.gap_error), ("object", result.object_error))}
    return line_plot(series, f"imagined vs replayed in the simulator: {result.policy}", "step", "mean error (mm)")

"""Where imagined episodes start: reset options turned into real context frames.

An imagined episode starts from real frames: the first frame of a seeded simulator layout, an exact
simulator state (both rendered by the simulator twin, built on first use only), up to K frames of a
stored episode, or frames given by the caller. Vector envs pass one entry per env being reset. With a
StartPool, a reset without options starts from a random step of a random stored episode instead of a fresh
layout: short imagined episodes from states a policy really visits (mid-approach, at the grasp), where the
world model's open-loop drift is still small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from wow_gym.checks import check_actions, check_frames, check_poses
from wow_gym.data import DatasetReader
from wow_gym.envs.robosuite_env import AGENT_POS_DIM, RobosuiteEnv
from wow_gym.rollout import ACTION_DIM, Rollout
from wow_gym.world_models import CheckpointError

START_KINDS = ("sim_state", "episode", "pixels")  # the ways reset(options=...) can start an episode
OPTION_KEYS = {"sim_state": set(), "episode": {"start"}, "pixels": {"agent_pos", "actions"}}


@dataclass
class Context:
    """The real frames an imagined episode starts from: pixels [k,H,W,3], agent_pos [k,P], actions [k-1,A],
    and the newest frame's environment_state [E] where the reset knows it (None: from pixels)."""

    pixels: np.ndarray
    agent_pos: np.ndarray
    actions: np.ndarray
    environment_state: np.ndarray | None = None


def start_kind(options: Mapping[str, Any]) -> str | None:
    """Which start option is given (None: a fresh simulator layout); ValueError on a bad combination."""
    owner = {extra: kind for kind, extras in OPTION_KEYS.items() for extra in extras}
    unknown = sorted(set(options) - set(START_KINDS) - set(owner) - {"reset_mask"})
    if unknown:
        raise ValueError(f"unknown reset options {unknown}; expected one of sim_state, episode (+ start) or "
                         "pixels + agent_pos (+ actions)")
    kinds = [k for k in START_KINDS if k in options]
    if len(kinds) > 1:
        raise ValueError(f"reset options give {kinds}; pass exactly one of {list(START_KINDS)}")
    kind = kinds[0] if kinds else None
    for key in options:
        if key in owner and owner[key] != kind:
            raise ValueError(f"reset option {key!r} goes with options[{owner[key]!r}], "
                             f"got options {sorted(options)}")
    if kind == "pixels" and "agent_pos" not in options:
        raise ValueError("options['pixels'] needs options['agent_pos'] ([k, 9] end-effector pose, gripper)")
    return kind


def check_start_steps(steps: Sequence[int]) -> tuple[int, int]:
    """(first, last) of start steps [first, last]; ValueError unless 0 <= first <= last."""
    if len(steps) != 2 or not 0 <= steps[0] <= steps[1]:
        raise ValueError(f"start_steps must be [first, last] with 0 <= first <= last, got {list(steps)}")
    return int(steps[0]), int(steps[1])


class StartPool:
    """Stored episodes that imagined episodes start from, at a step drawn uniformly from `steps` (first, last)
    (clipped to each episode's last step; episodes with no step >= first are left out)."""

    def __init__(self, episodes: Sequence[Rollout], steps: Sequence[int] = (0, 0), source: str = "") -> None:
        self.steps = check_start_steps(steps)
        lo = self.steps[0]
        self.episodes = [e for e in episodes if e.num_steps >= lo]
        if not self.episodes:
            raise ValueError(f"no episode{' in ' + source if source else ''} reaches step {lo}: "
                             f"{len(episodes)} episodes, the longest has "
                             f"{max((e.num_steps for e in episodes), default=0)} steps; lower the first start step")

    @classmethod
    def from_datasets(cls, roots: str | Sequence[str], steps: Sequence[int] = (0, 0)) -> StartPool:
        """Every episode of the LeRobot datasets at `roots`."""
        roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
        if not roots:
            raise ValueError("imagined starts need at least one dataset root")
        episodes: list[Rollout] = []
        for root in roots:
            reader = DatasetReader(root)
            episodes += [reader[i] for i in range(len(reader))]
        return cls(episodes, steps, source=", ".join(str(r) for r in roots))

    def draw(self, rng: np.random.Generator) -> tuple[Rollout, int]:
        """A random episode and start step."""
        episode = self.episodes[int(rng.integers(len(self.episodes)))]
        lo, hi = self.steps
        return episode, int(rng.integers(lo, min(hi, episode.num_steps) + 1))


class ContextSource:
    """Turns reset options into a Context; owns the simulator twin, made on first use only. A reset without
    options starts from a fresh seeded layout, or from the StartPool where one is given."""

    def __init__(self, task: str, instruction: str, observation_space: spaces.Dict,
                 context_frames: int, starts: StartPool | None = None) -> None:
        self.task, self.instruction = task, instruction
        self.observation_space = observation_space
        self.image_size = observation_space["pixels"].shape[0]
        self.context_frames = context_frames
        self.starts = starts
        self.twin: RobosuiteEnv | None = None

    def context(self, options: Mapping[str, Any], rng: np.random.Generator) -> Context:
        """The Context for one episode's reset options (see ImaginedEnv.reset)."""
        kind = start_kind(options)
        if kind == "episode":
            return self.from_episode(options["episode"], options.get("start", 0))
        if kind == "pixels":
            return self.from_frames(options["pixels"], options["agent_pos"], options.get("actions"))
        if kind is None and self.starts is not None:
            return self.from_episode(*self.starts.draw(rng))
        return self.from_sim(int(rng.integers(2**31 - 1)), options.get("sim_state"))

    def from_sim(self, seed: int, sim_state: np.ndarray | None = None) -> Context:
        """The first frame of a seeded simulator layout, or of an exact simulator state."""
        options = None if sim_state is None else {"sim_state": sim_state}
        observation, _ = self._twin().reset(seed=seed, options=options)
        no_actions = np.zeros((0, ACTION_DIM), np.float32)
        return Context(observation["pixels"][None], observation["agent_pos"][None], no_actions,
                       observation["environment_state"])

    def from_episode(self, episode: Rollout, start: int = 0) -> Context:
        """Up to K frames of a stored episode ending at step `start`, and the actions between them."""
        if not isinstance(episode, Rollout):
            raise TypeError(f"options['episode'] must be a wow_gym Rollout, got {type(episode).__name__}")
        is_step = isinstance(start, (int, np.integer)) and not isinstance(start, bool)
        if not is_step or not 0 <= start <= episode.num_steps:
            raise ValueError(f"options['start'] must be a step in 0..{episode.num_steps} of the episode, "
                             f"got {start!r}")
        first = max(0, int(start) - self.context_frames + 1)
        context = self.from_frames(episode.pixels[first:start + 1], episode.agent_pos[first:start + 1],
                                   episode.action[first:start])
        if episode.environment_state is not None:
            context.environment_state = np.asarray(episode.environment_state[start], np.float32)
        return context

    def from_frames(self, pixels: np.ndarray, agent_pos: np.ndarray,
                    actions: np.ndarray | None = None) -> Context:
        """Given frames [k,H,W,3] uint8, agent_pos [k,9] and optional actions [k-1,7]; the last K are kept."""
        pixels = check_frames(np.asarray(pixels), "options['pixels']", size=self.image_size)
        k = pixels.shape[0]
        agent_pos = check_poses(agent_pos, (k, AGENT_POS_DIM), "options['agent_pos'] (one pose per frame)")
        if actions is None:
            actions = np.zeros((k - 1, ACTION_DIM), np.float32)
        actions = check_actions(actions, (k - 1, ACTION_DIM), "options['actions'] (those between the frames)")
        kept = min(k, self.context_frames)
        return Context(pixels[k - kept:].copy(), agent_pos[k - kept:], actions[len(actions) - (kept - 1):])

    def _twin(self) -> RobosuiteEnv:
        if self.twin is None:
            twin = RobosuiteEnv(task=self.task, instruction=self.instruction, image_size=self.image_size)
            ours, theirs = self.observation_space, twin.observation_space
            if ours != theirs:
                twin.close()
                diff = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys()
                        if ours.get(k) != theirs.get(k)}
                raise CheckpointError(f"the world model's observations do not match the {self.task} "
                                      f"simulator's (model, simulator): {diff}; the checkpoint was trained "
                                      "for another task or env version, retrain it on data from this env")
            self.twin = twin
        return self.twin

    def close(self) -> None:
        if self.twin is not None:
            self.twin.close()
            self.twin = None


def known_states(contexts: Sequence[Context]) -> np.ndarray | None:
    """The contexts' environment_state [n, E] where every one knows it, else None (the probe reads all)."""
    if any(c.environment_state is None for c in contexts):
        return None
    return np.stack([c.environment_state for c in contexts]).astype(np.float32)


def stack_contexts(contexts: Sequence[Context], context_frames: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch contexts as exactly K frames each; a short one repeats its oldest frame (as the model does)."""
    pixels, agent_pos, actions = [], [], []
    for c in contexts:
        missing = context_frames - len(c.pixels)
        pixels.append(np.concatenate([np.repeat(c.pixels[:1], missing, 0), c.pixels]))
        agent_pos.append(np.concatenate([np.repeat(c.agent_pos[:1], missing, 0), c.agent_pos]))
        actions.append(np.concatenate([np.zeros((missing, ACTION_DIM), np.float32), c.actions]))
    return np.stack(pixels), np.stack(agent_pos), np.stack(actions)


def split_options(options: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """Batched vector reset options -> one options dict per env being reset."""
    if not options:
        return [{} for _ in range(n)]
    start_kind(options)
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in options.items():
        if (key == "episode" and isinstance(value, Rollout)) or (key == "start" and np.ndim(value) == 0):
            per_row = [value] * n  # one episode or start step for every env
        else:
            per_row = list(value) if key in ("episode", "start") else np.asarray(value)
        if len(per_row) != n:
            raise ValueError(f"options[{key!r}] must hold one entry per env being reset ({n}), "
                             f"got {len(per_row)}")
        for row, item in zip(rows, per_row):
            row[key] = item
    return rows

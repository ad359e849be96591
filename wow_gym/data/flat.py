"""Episodes read from datasets under one set of checks, and flattened frame-major for training.

Every trainer (world model, FM-IDM, critic, behaviour cloning) and the window loader read episodes the same
way: the datasets must exist, frames must have the model's size, and some fields must be present. Flattening
concatenates the episodes' per-frame arrays with per-episode offsets (the layout every trainer indexes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from wow_gym.data.dataset_reader import DatasetReader
from wow_gym.rollout import ACTION_DIM, Rollout


def check_roots(roots: Iterable[str | Path], who: str) -> list[Path]:
    """The dataset roots as paths; FileNotFoundError naming each one that holds no dataset."""
    paths = [Path(r) for r in roots]
    missing = [str(p) for p in paths if not (p / "meta" / "info.json").is_file()]
    if missing:
        raise FileNotFoundError(f"{who} dataset(s) {missing} not found (no meta/info.json); collect them first "
                                f"with `wow-gym collect root=<dir> ...`")
    return paths


def check_episode(rollout: Rollout, root: str | Path, index: int, who: str, image_size: int | None = None,
                  needs: Sequence[str] = ()) -> None:
    """ValueError when an episode's frames are not image_size px or it lacks a needed field."""
    if image_size is not None and rollout.pixels.shape[1:3] != (image_size, image_size):
        raise ValueError(f"{root} episode {index} has {rollout.pixels.shape[1]}x{rollout.pixels.shape[2]} "
                         f"frames; the {who} is configured for {image_size}x{image_size}; set image_size or "
                         "recollect")
    for name in needs:
        if getattr(rollout, name) is None:
            raise ValueError(f"{root} episode {index} has no {name}, which the {who} needs; recollect it with "
                             "a current `wow-gym collect`")


def read_episodes(roots: Iterable[str | Path], who: str, image_size: int | None = None,
                  needs: Sequence[str] = (), max_episodes: int | None = None,
                  keep: Callable[[Rollout], bool] | None = None, progress: bool = True
                  ) -> list[tuple[Path, int, Rollout]]:
    """(root, index, episode) of every episode under `roots`, in order, checked; `keep` filters them."""
    readers = [(root, DatasetReader(root)) for root in check_roots(roots, who)]
    counts = [len(r) if max_episodes is None else min(len(r), max_episodes) for _, r in readers]
    out = []
    with tqdm(total=sum(counts), desc=f"reading {who} episodes", unit="episode", disable=not progress) as bar:
        for (root, reader), count in zip(readers, counts):
            for i in range(count):
                rollout = reader[i]
                bar.update()
                if keep is not None and not keep(rollout):
                    continue
                check_episode(rollout, root, i, who, image_size, needs)
                out.append((root, i, rollout))
    return out


@dataclass
class FlatEpisodes:
    """Episodes flattened frame-major. Frame i of the whole set belongs to episode `episode_of[i]`; the action
    at frame i is the one taken there (zero at an episode's last frame), the reward the one received on
    arriving there (zero at its first)."""

    pixels: np.ndarray  # [N, H, W, 3] uint8
    agent_pos: np.ndarray  # [N, P] float32
    action: np.ndarray  # [N, 7] float32
    reward: np.ndarray  # [N] float32
    success: np.ndarray  # [N] bool
    environment_state: np.ndarray | None  # [N, E] float32, when every episode has it
    lengths: np.ndarray  # [E] frames per episode

    @property
    def starts(self) -> np.ndarray:
        """The global index of each episode's first frame."""
        return np.cumsum(self.lengths) - self.lengths

    @property
    def episode_of(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    @property
    def steps(self) -> np.ndarray:
        """The global indices of frames that have an action and a next frame (all but each episode's last)."""
        ends = self.starts + self.lengths - 1
        return np.setdiff1d(np.arange(len(self.pixels)), ends)


def flatten_episodes(rollouts: Sequence[Rollout]) -> FlatEpisodes:
    """One FlatEpisodes of the rollouts, in order."""
    if not rollouts:
        raise ValueError("no episodes to flatten")
    pad = np.zeros((1, ACTION_DIM), np.float32)
    states = [r.environment_state for r in rollouts]
    return FlatEpisodes(
        pixels=np.concatenate([r.pixels for r in rollouts]),
        agent_pos=np.concatenate([r.agent_pos for r in rollouts]).astype(np.float32),
        action=np.concatenate([np.concatenate([r.action, pad]) for r in rollouts]).astype(np.float32),
        reward=np.concatenate([np.concatenate([[0.0], r.reward]) for r in rollouts]).astype(np.float32),
        success=np.concatenate([np.concatenate([[False], r.is_success if r.is_success is not None
                                                else np.zeros(r.num_steps, bool)]) for r in rollouts]),
        environment_state=(None if any(s is None for s in states)
                           else np.concatenate(states).astype(np.float32)),
        lengths=np.array([r.num_steps + 1 for r in rollouts], np.int64),
    )

"""WindowDataset: training windows (context frames, an action chunk, target frames) cut from episodes.

A window is anchored at its last context frame c of an episode with T steps (frames 0..T, actions
0..T-1):

    context frames   c-context+1 .. c          (context_pixels, context_agent_pos)
    actions          c .. c+action_chunk-1     (actions, actions_is_pad)
    target frames    c+1 .. c+horizon          (target_pixels, target_agent_pos)

so target frame c+k is what action c+k-1 led to, and horizon <= action_chunk: the targets are the outcome
of the chunk's first `horizon` actions; the remaining actions are the rest of a policy's chunk.
Valid anchors keep every window inside one episode: c >= context-1 and c + action_chunk <= T. With
pad_action_chunk=True only the targets and the first action must exist (c + max(horizon, 1) <= T); actions
past the episode's end repeat its last action and are marked in actions_is_pad, as LeRobot pads.

All videos are decoded once at construction into contiguous arrays, so a sample is pure indexing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from wow_gym.data.dataset_reader import DatasetReader


class WindowDataset(Dataset):
    """Every valid window of the chosen episodes of a dataset, as a torch Dataset of dicts."""

    def __init__(
        self,
        root_or_reader: str | os.PathLike | DatasetReader,
        context: int = 2,
        action_chunk: int = 4,
        horizon: int = 1,
        pad_action_chunk: bool = False,
        episodes: Sequence[int] | None = None,
        progress: bool = True,
    ) -> None:
        if context < 1 or action_chunk < 1 or horizon < 0:
            raise ValueError(
                f"need context >= 1, action_chunk >= 1 and horizon >= 0, got context={context}, "
                f"action_chunk={action_chunk}, horizon={horizon}"
            )
        if horizon > action_chunk:
            raise ValueError(
                f"horizon ({horizon}) must be <= action_chunk ({action_chunk}): target frame c+k is the "
                "outcome of action c+k-1, so every target needs its action in the chunk"
            )
        self.context, self.action_chunk, self.horizon = context, action_chunk, horizon
        self.pad_action_chunk = pad_action_chunk
        reader = (
            root_or_reader if isinstance(root_or_reader, DatasetReader) else DatasetReader(root_or_reader)
        )
        self.positions = _positions(reader, episodes)
        self._load(reader, progress)
        self._index_windows()

    def __len__(self) -> int:
        return int(self._anchor.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Window i: tensors that view the decoded arrays, plus its instruction, subtask and position."""
        anchor, episode = int(self._anchor[i]), int(self._episode[i])
        first = anchor - self.context + 1
        steps = np.arange(anchor, anchor + self.action_chunk)
        last_action = int(self._last_action[episode])
        is_pad = steps > last_action
        actions = (
            self.actions[np.minimum(steps, last_action)]
            if is_pad.any()
            else self.actions[anchor : steps[-1] + 1]
        )
        return {
            "context_pixels": torch.from_numpy(self.pixels[first : anchor + 1]),
            "context_agent_pos": torch.from_numpy(self.agent_pos[first : anchor + 1]),
            "actions": torch.from_numpy(actions),
            "actions_is_pad": torch.from_numpy(is_pad),
            "target_pixels": torch.from_numpy(self.pixels[anchor + 1 : anchor + 1 + self.horizon]),
            "target_agent_pos": torch.from_numpy(self.agent_pos[anchor + 1 : anchor + 1 + self.horizon]),
            "instruction": self.instructions[episode],
            "subtask": self.subtasks[anchor],
            "episode_index": int(self.episode_indices[episode]),
            "frame_index": anchor - int(self._offset[episode]),
        }

    def _load(self, reader: DatasetReader, progress: bool) -> None:
        """Decode the chosen episodes into contiguous frame, state, action and subtask arrays."""
        infos = [reader.episodes[p] for p in self.positions]
        lengths = np.array([e.length for e in infos], np.int64)
        self._offset = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        total = int(lengths.sum())
        height, width, _ = reader.info["features"][reader.video_key]["shape"]
        state_dim = reader.info["features"]["observation.state"]["shape"][0]
        self.pixels = np.empty((total, height, width, 3), np.uint8)
        self.agent_pos = np.empty((total, state_dim), np.float32)
        self.actions = np.zeros((total, 7), np.float32)
        self.subtasks: list[str] = [""] * total
        for row, position in enumerate(tqdm(self.positions, desc="decoding episodes", disable=not progress)):
            rollout = reader[position]
            start, stop = int(self._offset[row]), int(self._offset[row] + lengths[row])
            self.pixels[start:stop] = rollout.pixels
            self.agent_pos[start:stop] = rollout.agent_pos
            self.actions[start : stop - 1] = rollout.action
            if rollout.subtask is not None:
                self.subtasks[start : stop - 1] = rollout.subtask
        self.instructions = [e.task for e in infos]
        self.episode_indices = np.array([e.episode_index for e in infos], np.int64)
        self._last_action = self._offset + lengths - 2  # global index of each episode's action T-1

    def _index_windows(self) -> None:
        """One entry per valid anchor: its global frame index and its episode's row."""
        need = max(self.horizon, 1) if self.pad_action_chunk else self.action_chunk
        anchors, episodes = [], []
        for row, offset in enumerate(self._offset):
            steps = int(self._last_action[row] - offset + 1)
            local = np.arange(self.context - 1, steps - need + 1)
            anchors.append(offset + local)
            episodes.append(np.full(local.shape, row, np.int64))
        self._anchor = np.concatenate(anchors) if anchors else np.zeros(0, np.int64)
        self._episode = np.concatenate(episodes) if episodes else np.zeros(0, np.int64)


def collate_windows(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors and ints into batch tensors; keep strings as lists."""
    batch: dict[str, Any] = {}
    for key, value in samples[0].items():
        column = [s[key] for s in samples]
        if isinstance(value, torch.Tensor):
            batch[key] = torch.stack(column)
        elif isinstance(value, int):
            batch[key] = torch.tensor(column, dtype=torch.int64)
        else:
            batch[key] = column
    return batch


def benchmark_windows(
    dataset: Dataset, batch_size: int = 64, seconds: float = 3.0, num_workers: int = 0
) -> float:
    """Samples per second a shuffling DataLoader delivers from dataset, timed after one warm-up batch."""
    if len(dataset) < batch_size:
        raise ValueError(f"the dataset holds {len(dataset)} windows, fewer than one batch of {batch_size}")
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        collate_fn=collate_windows,
        persistent_workers=num_workers > 0,
    )
    samples, start = -batch_size, 0.0
    while True:
        for _ in loader:
            samples += batch_size
            if samples == 0:
                start = time.perf_counter()
            elif time.perf_counter() - start >= seconds:
                return samples / (time.perf_counter() - start)


def _positions(reader: DatasetReader, episodes: Sequence[int] | None) -> list[int]:
    """Reader positions of the chosen episode indices (all episodes when None)."""
    if episodes is None:
        return list(range(len(reader)))
    by_index = {e.episode_index: p for p, e in enumerate(reader.episodes)}
    missing = sorted(set(episodes) - set(by_index))
    if missing:
        raise ValueError(
            f"episodes {missing} are not complete in {reader.root}; choose from {sorted(by_index)}"
        )
    return [by_index[i] for i in episodes]

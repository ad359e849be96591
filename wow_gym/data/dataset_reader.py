"""DatasetReader: the completed episodes of a LeRobot v3.0 dataset, read back as Rollouts.

An episode is complete when its metadata file exists (see DatasetWriter); data or video files without
one are leftovers of an interrupted write and are never read. info.json totals may lag the episode files
after a crash, so the episode files, not the totals, say which episodes exist.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wow_gym.data.columns import check_table, rollout_from_table
from wow_gym.data.episodes import EpisodeInfo, load_episodes
from wow_gym.data.layout import (
    IMAGE_PREFIX,
    STATS_PATH,
    DatasetError,
    camera_key,
    data_path,
    episodes_path,
    load_info,
    relative,
    video_path,
)
from wow_gym.data.video import decode_video
from wow_gym.rollout import Rollout


class DatasetReader:
    """Random access to the completed episodes under root, in episode-index order."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(
                f"dataset root {self.root} does not exist or is not a folder; pass the folder that "
                "holds meta/, data/ and videos/"
            )
        self.info: dict[str, Any] = load_info(self.root)
        self.video_key = camera_key(self.info, self.root)
        self.camera = self.video_key[len(IMAGE_PREFIX) :]
        self.fps = int(self.info["fps"])
        episodes, _ = load_episodes(self.root)
        self.episodes: list[EpisodeInfo] = [episodes[k] for k in sorted(episodes)]

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, position: int) -> Rollout:
        """The episode at this position (episode_index when indices are contiguous from 0) as a Rollout."""
        episode = self.episode(position)
        table = self.read_table(episode)
        pixels = self.read_frames(episode)
        provenance = {
            "source": episode.source,
            "env_id": episode.env_id,
            "task": episode.task_name,
            "instruction": episode.task,
            "seed": episode.seed,
            "pair_id": episode.pair_id,
        }
        where = relative(data_path(self.root, episode.episode_index), self.root)
        return rollout_from_table(table, pixels, self.info["features"], provenance, where)

    def episode(self, position: int) -> EpisodeInfo:
        """The metadata of the episode at this position."""
        if not -len(self) <= position < len(self):
            raise IndexError(
                f"episode position {position} is out of range for {len(self)} episodes in {self.root}"
            )
        return self.episodes[position]

    @property
    def tasks(self) -> dict[int, str]:
        """Task strings (instructions) by task_index, from the completed episodes."""
        return {e.task_index: e.task for e in self.episodes}

    def stats(self) -> dict[str, Any] | None:
        """meta/stats.json, or None when it was never written."""
        path = self.root / STATS_PATH
        return json.loads(path.read_text()) if path.is_file() else None

    def read_table(self, episode: EpisodeInfo) -> pa.Table:
        """The episode's rows, checked against info.json's features and the episode's length."""
        path = data_path(self.root, episode.episode_index)
        where = relative(path, self.root)
        if not path.is_file():
            raise DatasetError(
                f"data file {where} of episode {episode.episode_index} is missing; restore it, or "
                f"delete {self._meta_name(episode)} to drop the episode"
            )
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(
                f"data file {where} of episode {episode.episode_index} cannot be read ({error}); it "
                f"is truncated or corrupt: delete {self._meta_name(episode)} to drop the episode and "
                "re-collect it"
            ) from None
        check_table(table, self.info["features"], where)
        if table.num_rows != episode.length:
            raise DatasetError(
                f"data file {where} has {table.num_rows} rows, but episode {episode.episode_index}'s "
                f"metadata says {episode.length} frames; delete {self._meta_name(episode)} and "
                "re-collect the episode"
            )
        return table

    def read_frames(self, episode: EpisodeInfo) -> np.ndarray:
        """The episode's decoded frames [length, H, W, 3] uint8, checked against its metadata."""
        path = video_path(self.root, self.video_key, episode.episode_index)
        where = relative(path, self.root)
        if not path.is_file():
            raise DatasetError(
                f"video {where} of episode {episode.episode_index} is missing; restore it, or "
                f"delete {self._meta_name(episode)} to drop the episode"
            )
        try:
            frames = decode_video(path)
        except (av.FFmpegError, ValueError) as error:
            raise DatasetError(
                f"video {where} of episode {episode.episode_index} cannot be decoded ({error}); "
                f"it is truncated or corrupt: delete {self._meta_name(episode)} to drop the episode "
                "and re-collect it"
            ) from None
        expected = (episode.length, *self.info["features"][self.video_key]["shape"])
        if frames.shape != expected:
            raise DatasetError(
                f"video {where} decodes to frames {frames.shape}, but the metadata expects "
                f"{expected} (frames, H, W, 3); delete {self._meta_name(episode)} and re-collect "
                "the episode"
            )
        return frames

    def _meta_name(self, episode: EpisodeInfo) -> str:
        return relative(episodes_path(self.root, episode.episode_index), self.root)

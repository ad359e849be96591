"""DatasetWriter: Rollouts into a LeRobot v3.0 dataset, one crash-safe episode at a time.

Each episode is written in this order, every file atomically (temporary name, fsync, rename): its mp4,
its data parquet, its metadata parquet, then meta/info.json, meta/stats.json and meta/tasks.parquet.
The metadata file is the commit point: an episode without one is invisible to readers, is overwritten
by the next write of that index and is deleted when a writer reopens the dataset, so a crash leaves
every completed episode readable.
Files under meta/ other than episodes/ are re-derived from the completed episodes on every write.
One writer per dataset root at a time.
"""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from wow_gym.data.atomic import atomic_write_bytes, atomic_write_json, atomic_write_parquet, remove_temp_files
from wow_gym.data.columns import REQUIRED_KEYS, frames_table, rollout_features
from wow_gym.data.episodes import EpisodeInfo, load_episodes, metadata_table
from wow_gym.data.layout import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    IMAGE_PREFIX,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    DatasetError,
    camera_key,
    data_path,
    episode_index_of,
    episodes_path,
    image_key,
    load_info,
    video_path,
)
from wow_gym.data.stats import aggregate_stats, episode_stats, stats_to_json
from wow_gym.data.video import VideoCodec, default_codec, encode_video
from wow_gym.rollout import Rollout


class DatasetWriter:
    """Append Rollouts to the dataset at root, creating it on the first write or resuming it."""

    def __init__(
        self,
        root: str | os.PathLike,
        fps: int = 20,
        camera: str = "agentview",
        robot_type: str = "panda",
        codec: VideoCodec | None = None,
    ) -> None:
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        self.root = Path(root)
        self.fps = int(fps)
        self.video_key = image_key(camera)
        self.robot_type = robot_type
        self.codec = codec or default_codec()
        self.info: dict[str, Any] | None = None
        if (self.root / INFO_PATH).exists():
            self.info = load_info(self.root)
            self._check_matches(self.info)
        self._episodes, self._stats = load_episodes(self.root)
        if self._episodes and self.info is None:
            raise DatasetError(
                f"{self.root} holds episode metadata but no {INFO_PATH}; the dataset is damaged: "
                "restore meta/info.json, or write to a new root"
            )
        self._tasks = {e.task: e.task_index for e in self._episodes.values()}
        if self.info is not None:
            self._remove_leftovers()

    @property
    def completed_episodes(self) -> set[int]:
        """Indices of the episodes whose metadata (the commit point) is on disk."""
        return set(self._episodes)

    @property
    def num_frames(self) -> int:
        """Frames in all completed episodes."""
        return sum(e.length for e in self._episodes.values())

    def write(self, rollout: Rollout, episode_index: int | None = None) -> int:
        """Write one episode (by default after the last completed one) and return its index."""
        rollout.validate()
        index = self._choose_index(episode_index)
        self._update_features(rollout)
        if rollout.instruction not in self._tasks:
            self._tasks[rollout.instruction] = max(self._tasks.values(), default=-1) + 1
        episode = EpisodeInfo(
            episode_index=index,
            length=rollout.num_steps + 1,
            task=rollout.instruction,
            task_index=self._tasks[rollout.instruction],
            task_name=rollout.task,
            env_id=rollout.env_id,
            source=rollout.source,
            seed=int(rollout.seed),
            pair_id=rollout.pair_id,
            success=rollout.success,
            dataset_from_index=self.num_frames,
        )
        assert self.info is not None
        features = self.info["features"]
        atomic_write_bytes(
            video_path(self.root, self.video_key, index), encode_video(rollout.pixels, self.fps, self.codec)
        )
        table = frames_table(
            rollout, features, index, episode.dataset_from_index, episode.task_index, self.fps
        )
        atomic_write_parquet(data_path(self.root, index), table)
        stats = episode_stats(rollout, self.video_key)
        atomic_write_parquet(
            episodes_path(self.root, index), metadata_table(episode, stats, self.video_key, self.fps)
        )
        self._episodes[index] = episode
        self._stats[index] = stats
        self._write_dataset_meta()
        return index

    # -- checks ------------------------------------------------------------------------------------------

    def _check_matches(self, info: dict[str, Any]) -> None:
        """Refuse to resume a dataset recorded with another fps, camera or robot."""
        where = self.root / INFO_PATH
        if info["fps"] != self.fps:
            raise DatasetError(
                f"the dataset at {self.root} was recorded at {info['fps']} fps ({where}), the writer "
                f"was asked for {self.fps}; pass fps={info['fps']} or write to a new root"
            )
        recorded = camera_key(info, self.root)
        if recorded != self.video_key:
            raise DatasetError(
                f"the dataset at {self.root} records {recorded!r}, the writer was asked for "
                f"{self.video_key!r}; pass camera={recorded[len(IMAGE_PREFIX) :]!r} or write to a new root"
            )
        if info.get("robot_type") != self.robot_type:
            raise DatasetError(
                f"the dataset at {self.root} records robot_type {info.get('robot_type')!r}, the writer "
                f"was asked for {self.robot_type!r}; pass the same robot_type or write to a new root"
            )

    def _remove_leftovers(self) -> None:
        """Delete what interrupted writes left: temporary files, and files of episodes never committed.

        Readers ignore them anyway; LeRobot, which globs data/, would not.
        """
        remove_temp_files(self.root)
        for pattern in ("data/chunk-*/file-*.parquet", f"videos/{self.video_key}/chunk-*/file-*.mp4"):
            for path in self.root.glob(pattern):
                if episode_index_of(path) not in self._episodes:
                    path.unlink()

    def _choose_index(self, episode_index: int | None) -> int:
        if episode_index is None:
            return max(self._episodes, default=-1) + 1
        index = operator.index(episode_index)
        if index < 0:
            raise ValueError(f"episode_index must be >= 0, got {index}")
        if index in self._episodes:
            raise ValueError(
                f"episode {index} is already complete in {self.root}; pick an index not in "
                "writer.completed_episodes, or pass episode_index=None to append"
            )
        return index

    def _update_features(self, rollout: Rollout) -> None:
        """Check the rollout against the dataset's features; declare new optional ones before any write."""
        height, width = rollout.pixels.shape[1:3]
        wanted = {self.video_key: self._video_feature(height, width), **rollout_features(rollout)}
        if self.info is None:
            self.info = self._new_info(wanted)
            atomic_write_json(self.root / INFO_PATH, self.info)
            return
        features = self.info["features"]
        added = {}
        for key, feature in wanted.items():
            have = features.get(key)
            if have is None and (key in REQUIRED_KEYS or feature["dtype"] == "video"):
                raise DatasetError(
                    f"{self.root / INFO_PATH} lacks the feature {key!r} every wow_gym dataset has; "
                    "the file was edited or written by another tool: restore it or use a new root"
                )
            if have is None:
                added[key] = feature
            elif have["dtype"] != feature["dtype"] or list(have["shape"]) != feature["shape"]:
                raise DatasetError(
                    f"the rollout's {key} is {feature['dtype']} {feature['shape']}, but the dataset at "
                    f"{self.root} holds {have['dtype']} {list(have['shape'])}; write rollouts of "
                    "another task or image size to a new dataset root"
                )
        if added:
            features.update(added)
            atomic_write_json(self.root / INFO_PATH, self.info)

    # -- metadata ----------------------------------------------------------------------------------------

    def _video_feature(self, height: int, width: int) -> dict[str, Any]:
        return {
            "dtype": "video",
            "shape": [int(height), int(width), 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": int(height),
                "video.width": int(width),
                "video.channels": 3,
                "video.codec": "h264",
                "video.encoder": self.codec.name,
                "video.pix_fmt": self.codec.pix_fmt,
                "video.lossless": self.codec.lossless,
                "video.is_depth_map": False,
                "video.fps": self.fps,
                "has_audio": False,
            },
        }

    def _new_info(self, features: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "fps": self.fps,
            "splits": {},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": features,
        }

    def _write_dataset_meta(self) -> None:
        """Re-derive info totals, stats.json and tasks.parquet from the completed episodes."""
        assert self.info is not None
        used_tasks = {e.task_index: e.task for e in self._episodes.values()}
        self.info.update(
            total_episodes=len(self._episodes),
            total_frames=self.num_frames,
            total_tasks=len(used_tasks),
            splits={"train": f"0:{len(self._episodes)}"},
        )
        atomic_write_json(self.root / INFO_PATH, self.info)
        stats = aggregate_stats(self._stats[k] for k in sorted(self._stats))
        atomic_write_json(self.root / STATS_PATH, stats_to_json(stats, [self.video_key]))
        atomic_write_parquet(self.root / TASKS_PATH, tasks_table(used_tasks))


def tasks_table(tasks: dict[int, str]) -> pa.Table:
    """meta/tasks.parquet: a task_index column indexed by the task string, as pandas.read_parquet sees it."""
    order = sorted(tasks)
    table = pa.table({"task_index": pa.array(order, pa.int64()), "task": pa.array([tasks[i] for i in order])})
    pandas_meta = (
        '{"index_columns": ["task"], "column_indexes": [], "columns": ['
        '{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", '
        '"metadata": null}, {"name": "task", "field_name": "task", "pandas_type": "unicode", '
        '"numpy_type": "object", "metadata": null}], "pandas_version": "2.2.0"}'
    )
    return table.replace_schema_metadata({"pandas": pandas_meta})

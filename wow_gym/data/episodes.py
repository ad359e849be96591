"""Episode metadata: one row per episode in meta/episodes/, LeRobot's columns plus wow_gym's provenance.

Besides LeRobot's columns (episode_index, tasks, length, data/ and videos/ locators, dataset_from_index,
dataset_to_index, stats/<feature>/<stat>) each row holds the provenance a Rollout needs back: task_index,
task_name, env_id, source, seed, pair_id, and whether the episode succeeded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wow_gym.data.layout import DatasetError, chunk_and_file, episode_files, episodes_path, relative
from wow_gym.data.stats import STAT_NAMES, Stats

_PROVENANCE = {
    "task_index": pa.int64(),
    "task_name": pa.string(),
    "env_id": pa.string(),
    "source": pa.string(),
    "seed": pa.int64(),
    "pair_id": pa.string(),
    "success": pa.bool_(),
}


@dataclass(frozen=True)
class EpisodeInfo:
    """One completed episode: where it starts in the dataset, its task and its provenance."""

    episode_index: int
    length: int  # frames, T+1
    task: str  # the instruction (LeRobot's task string)
    task_index: int
    task_name: str  # the wow_gym task, e.g. "Lift"
    env_id: str
    source: str
    seed: int
    pair_id: str
    success: bool
    dataset_from_index: int

    @property
    def num_steps(self) -> int:
        """T, the number of actions."""
        return self.length - 1

    @property
    def dataset_to_index(self) -> int:
        """One past the global index of the episode's last frame."""
        return self.dataset_from_index + self.length


def metadata_table(episode: EpisodeInfo, stats: Stats, video_key: str, fps: int) -> pa.Table:
    """The one-row metadata table of an episode."""
    where = chunk_and_file(episode.episode_index)
    columns: dict[str, pa.Array] = {
        "episode_index": pa.array([episode.episode_index], pa.int64()),
        "tasks": pa.array([[episode.task]], pa.list_(pa.string())),
        "length": pa.array([episode.length], pa.int64()),
        "data/chunk_index": pa.array([where["chunk_index"]], pa.int64()),
        "data/file_index": pa.array([where["file_index"]], pa.int64()),
        "dataset_from_index": pa.array([episode.dataset_from_index], pa.int64()),
        "dataset_to_index": pa.array([episode.dataset_to_index], pa.int64()),
        f"videos/{video_key}/chunk_index": pa.array([where["chunk_index"]], pa.int64()),
        f"videos/{video_key}/file_index": pa.array([where["file_index"]], pa.int64()),
        f"videos/{video_key}/from_timestamp": pa.array([0.0], pa.float64()),
        f"videos/{video_key}/to_timestamp": pa.array([episode.length / fps], pa.float64()),
        "meta/episodes/chunk_index": pa.array([where["chunk_index"]], pa.int64()),
        "meta/episodes/file_index": pa.array([where["file_index"]], pa.int64()),
    }
    values = asdict(episode)
    for name, kind in _PROVENANCE.items():
        columns[name] = pa.array([values[name]], kind)
    for key, feature_stats in stats.items():
        for name in STAT_NAMES:
            kind = pa.int64() if name == "count" else pa.float64()
            columns[f"stats/{key}/{name}"] = pa.array(
                [np.asarray(feature_stats[name]).tolist()], pa.list_(kind)
            )
    return pa.table(columns)


def read_episode_file(path: Path, root: Path) -> tuple[EpisodeInfo, Stats]:
    """Read one metadata file; DatasetError names the file when it is unreadable or lacks columns."""
    where = relative(path, root)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DatasetError(
            f"episode metadata {where} cannot be read ({error}); it is truncated or corrupt: "
            f"delete it to drop that episode (the writer will overwrite it), or restore it"
        ) from None
    needed = ["episode_index", "tasks", "length", "dataset_from_index", *_PROVENANCE]
    missing = [name for name in needed if name not in table.column_names]
    if missing or table.num_rows != 1:
        raise DatasetError(
            f"episode metadata {where} must be one row with columns {needed}; it has "
            f"{table.num_rows} rows and lacks {missing}: it was not written by wow_gym's "
            "DatasetWriter; delete it and re-collect the episode"
        )
    row = {name: table.column(name)[0].as_py() for name in table.column_names}
    info = EpisodeInfo(
        episode_index=row["episode_index"],
        length=row["length"],
        task=row["tasks"][0],
        dataset_from_index=row["dataset_from_index"],
        **{name: row[name] for name in _PROVENANCE},
    )
    return info, _stats_from_row(row)


def load_episodes(root: Path) -> tuple[dict[int, EpisodeInfo], dict[int, Stats]]:
    """Every completed episode under root with its statistics, by episode index."""
    episodes, stats = {}, {}
    for path in episode_files(root):
        info, episode_stats = read_episode_file(path, root)
        if path != episodes_path(root, info.episode_index):
            raise DatasetError(
                f"episode metadata {relative(path, root)} describes episode {info.episode_index}, "
                f"which belongs in {relative(episodes_path(root, info.episode_index), root)}; the "
                "file was moved or copied by hand: put it back or delete it"
            )
        episodes[info.episode_index] = info
        stats[info.episode_index] = episode_stats
    return episodes, stats


def _stats_from_row(row: dict[str, Any]) -> Stats:
    stats: Stats = {}
    for name, value in row.items():
        if name.startswith("stats/"):
            key, stat = name[len("stats/") :].rsplit("/", 1)
            stats.setdefault(key, {})[stat] = np.asarray(value, np.int64 if stat == "count" else np.float64)
    return stats

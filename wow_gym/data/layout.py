"""Where each file of a LeRobot v3.0 dataset lives, and the error every dataset problem raises.

One episode per file: episode k lives in chunk k // 1000, file k % 1000 of data/, videos/ and
meta/episodes/, so writing an episode never rewrites another one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
IMAGE_PREFIX = "observation.images."


class DatasetError(ValueError):
    """A dataset on disk is missing, corrupt, or does not match what was asked of it."""


def image_key(camera: str) -> str:
    """The LeRobot feature name of a camera's video: observation.images.<camera>."""
    if not camera or "/" in camera:
        raise ValueError(f"camera must be a non-empty name without '/', got {camera!r}")
    return IMAGE_PREFIX + camera


def chunk_and_file(episode_index: int) -> dict[str, int]:
    """The chunk and file index that hold an episode."""
    if episode_index < 0:
        raise ValueError(f"episode_index must be >= 0, got {episode_index}")
    return {"chunk_index": episode_index // CHUNKS_SIZE, "file_index": episode_index % CHUNKS_SIZE}


def data_path(root: Path, episode_index: int) -> Path:
    """The parquet file with an episode's frames."""
    return root / DATA_PATH.format(**chunk_and_file(episode_index))


def video_path(root: Path, video_key: str, episode_index: int) -> Path:
    """The mp4 file with an episode's frames from one camera."""
    return root / VIDEO_PATH.format(video_key=video_key, **chunk_and_file(episode_index))


def episodes_path(root: Path, episode_index: int) -> Path:
    """The parquet file with an episode's metadata; its existence marks the episode complete."""
    return root / EPISODES_PATH.format(**chunk_and_file(episode_index))


def episode_files(root: Path) -> list[Path]:
    """Every episode metadata file under root, in episode order."""
    return sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))


def episode_index_of(path: Path) -> int | None:
    """The episode a chunk-XXX/file-YYY path holds, or None for other paths."""
    match = re.search(r"chunk-(\d+)/file-(\d+)\.\w+$", path.as_posix())
    return int(match[1]) * CHUNKS_SIZE + int(match[2]) if match else None


def load_info(root: Path) -> dict[str, Any]:
    """Read and check meta/info.json."""
    path = root / INFO_PATH
    if not path.is_file():
        raise DatasetError(
            f"{path} is missing: {root} is not a LeRobot v3.0 dataset, or its first episode never "
            "finished writing; point at the dataset root (the folder holding meta/ and data/)"
        )
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(
            f"{path} is not valid JSON ({error}); restore it from a backup or re-collect the dataset"
        ) from None
    missing = [k for k in ("codebase_version", "fps", "features") if k not in info]
    if missing:
        raise DatasetError(f"{path} lacks the keys {missing}; it was not written by a LeRobot v3.0 writer")
    if info["codebase_version"] != CODEBASE_VERSION:
        raise DatasetError(
            f"{path} has codebase_version {info['codebase_version']!r}, expected "
            f"{CODEBASE_VERSION!r}; convert the dataset with LeRobot's converter first"
        )
    return info


def camera_key(info: dict[str, Any], root: Path) -> str:
    """The one video feature of a dataset, observation.images.<camera>."""
    keys = [k for k, v in info["features"].items() if v.get("dtype") == "video"]
    if len(keys) != 1:
        raise DatasetError(
            f"{root / INFO_PATH} declares video features {keys}; wow_gym datasets hold exactly one camera"
        )
    return keys[0]


def relative(path: Path, root: Path) -> str:
    """A path inside the dataset as written in messages and metadata."""
    return os.path.relpath(path, root)

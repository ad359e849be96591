"""Datasets: Rollouts in the LeRobot v3.0 layout (parquet + lossless mp4) and training windows over them."""

from typing import Any

from wow_gym.data.dataset_reader import DatasetReader
from wow_gym.data.dataset_writer import DatasetWriter
from wow_gym.data.episodes import EpisodeInfo
from wow_gym.data.layout import DatasetError
from wow_gym.data.video import VideoCodec, decode_video, default_codec, encode_video, frame_error

_WINDOW_NAMES = ("WindowDataset", "benchmark_windows", "collate_windows")

__all__ = [
    "DatasetError",
    "DatasetReader",
    "DatasetWriter",
    "EpisodeInfo",
    "VideoCodec",
    "decode_video",
    "default_codec",
    "encode_video",
    "frame_error",
    *_WINDOW_NAMES,
]


def __getattr__(name: str) -> Any:
    # The window loader needs torch; import it only for code that asks for it, not for every writer.
    if name in _WINDOW_NAMES:
        from wow_gym.data import windows

        return getattr(windows, name)
    raise AttributeError(f"module 'wow_gym.data' has no attribute {name!r}")

"""Per-feature statistics (min, max, mean, std, count): per episode, and merged over a dataset.

Each episode's statistics are stored with its metadata, so meta/stats.json is re-derived from the
completed episodes after every write without re-reading any frames. Per-step features (action, rewards)
are measured over the T real steps only, never the final row's padding. Image statistics are per
channel on pixels scaled to [0, 1], written to stats.json with LeRobot's (3, 1, 1) shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from wow_gym.data.columns import rollout_values
from wow_gym.rollout import Rollout

Stats = dict[str, dict[str, np.ndarray]]
STAT_NAMES = ("min", "max", "mean", "std", "count")


def episode_stats(rollout: Rollout, image_key: str) -> Stats:
    """Statistics of one rollout's frames and float features."""
    stats = {image_key: _image_stats(rollout.pixels)}
    for key, (column, value) in rollout_values(rollout).items():
        if column.dtype in ("float32", "float64"):
            array = np.asarray(value, np.float64)
            if array.shape[0]:
                stats[key] = _array_stats(array.reshape(array.shape[0], -1))
    return stats


def aggregate_stats(episodes: Iterable[Stats]) -> Stats:
    """Merge per-episode statistics into dataset statistics (count-weighted mean and pooled variance)."""
    grouped: dict[str, list[dict[str, np.ndarray]]] = {}
    for stats in episodes:
        for key, value in stats.items():
            grouped.setdefault(key, []).append(value)
    return {key: _merge(parts) for key, parts in grouped.items()}


def stats_to_json(stats: Stats, image_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Statistics as stats.json writes them: nested lists, image statistics shaped (3, 1, 1)."""
    images = set(image_keys)
    out = {}
    for key, value in stats.items():
        out[key] = {
            name: (array.reshape(-1, 1, 1) if key in images and name != "count" else array).tolist()
            for name, array in value.items()
        }
    return out


def _array_stats(array: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "min": array.min(axis=0),
        "max": array.max(axis=0),
        "mean": array.mean(axis=0),
        "std": array.std(axis=0),
        "count": np.array([array.shape[0]], np.int64),
    }


def _image_stats(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics, accumulated a frame at a time so long videos need no float copy."""
    total = np.zeros(3)
    squares = np.zeros(3)
    low, high = np.full(3, 255), np.zeros(3, np.int64)
    for frame in pixels:
        flat = frame.reshape(-1, 3)
        total += flat.sum(axis=0, dtype=np.float64)
        squares += np.einsum("ij,ij->j", flat, flat, dtype=np.float64)
        low, high = np.minimum(low, flat.min(axis=0)), np.maximum(high, flat.max(axis=0))
    count = pixels.shape[0] * pixels.shape[1] * pixels.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return {
        "min": low / 255.0,
        "max": high / 255.0,
        "mean": mean / 255.0,
        "std": std / 255.0,
        "count": np.array([pixels.shape[0]], np.int64),
    }


def _merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    counts = np.array([float(p["count"][0]) for p in parts])
    weights = counts / counts.sum()
    means = np.stack([p["mean"] for p in parts])
    mean = np.tensordot(weights, means, axes=1)
    second = np.tensordot(weights, np.stack([p["std"] ** 2 for p in parts]) + means**2, axes=1)
    return {
        "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
        "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(second - mean**2, 0.0)),
        "count": np.array([int(counts.sum())], np.int64),
    }

"""CriticConfig: the shape of SOPHIA's learned critic, saved as config.json beside its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FORMAT_VERSION = 1


@dataclass
class CriticConfig:
    """The critic's task, input size and network shape, and how its readings become a verdict."""

    task: str = "Lift"
    image_size: int = 64
    clip_frames: int = 8  # frames each reading sees (the newest and 7 before it)
    width: int = 128
    layers: int = 2
    heads: int = 4
    success_bonus: float = 1.0  # reward = progress + success_bonus * success
    success_frames: int = 2  # consecutive frames with success > 0.5 that make a clip successful
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""Which torch device a setting names: "auto" is the GPU when one is present, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> str | torch.device:
    """`device` as given, or for "auto" "cuda" when a GPU is present and "cpu" otherwise."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device

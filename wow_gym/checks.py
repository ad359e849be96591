"""One set of rules for the arrays every part of wow_gym hands on: frames, actions, poses and instructions.

Frames are uint8 RGB [T, H, W, 3] (0..255, the camera's format and the observation space's); float frames
are refused rather than guessed at, whatever their range. Actions and poses are finite floats of a known
shape. Every failure is a ValueError that names what was given and what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wow_gym.rollout import ACTION_DIM

ACTION_HELP = "(dx, dy, dz, droll, dpitch, dyaw, gripper)"
Shape = tuple[int | str, ...]  # an int is an exact size; a str names a free axis ("T", "B")


def _shape_text(shape: Shape) -> str:
    """(T, 7), (7,): numpy's way of writing a shape, free axes by name."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _dtype_name(value: Any) -> str:
    """'uint8' for numpy arrays and torch tensors alike."""
    return str(getattr(value, "dtype", type(value).__name__)).removeprefix("torch.")


def check_frames(frames: Any, what: str = "frames", *, size: int | None = None, min_frames: int = 1,
                 leading: int | None = 1, one_frame: bool = False) -> Any:
    """frames as uint8 [T, H, W, 3] (T >= min_frames; H = W = size when given), or a ValueError.

    `leading` is the number of axes before (H, W, 3); None allows any. one_frame=True reads a single
    [H, W, 3] frame as a clip of one. A torch tensor is checked as it is (on its device) and returned
    unchanged; anything else comes back as a numpy array.
    """
    if not hasattr(frames, "shape") or not hasattr(frames, "dtype"):
        frames = np.asarray(frames)
    shape = tuple(frames.shape)
    if one_frame and len(shape) == 3:
        frames, shape = frames[None], (1, *shape)
    side = size if size is not None else "H"
    lead = ("...",) if leading is None else ("B",) * (leading - 1) + ("T",)
    expected = f"uint8 {_shape_text((*lead, side, side if size is not None else 'W', 3))}"
    layout_ok = len(shape) >= 3 and shape[-1] == 3 and (leading is None or len(shape) == leading + 3)
    if not layout_ok or (size is not None and shape[-3:-1] != (size, size)):
        raise ValueError(f"{what} must be {expected} RGB frames, got shape {shape}")
    if leading == 1 and shape[0] < min_frames:
        raise ValueError(f"{what} must hold at least {min_frames} frame(s) {expected}, got shape {shape}")
    if _dtype_name(frames) != "uint8":
        raise ValueError(f"{what} must be {expected} pixels in [0, 255], got dtype {_dtype_name(frames)}; "
                         "convert with np.clip(np.round(x), 0, 255).astype(np.uint8) if x holds pixel values")
    return frames


def _check_floats(value: Any, shape: Shape, what: str, dtype: type, help_text: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{what} must be numbers {_shape_text(shape)}{help_text}, got dtype {array.dtype}")
    array = array.astype(dtype, copy=False)
    matches = array.ndim == len(shape) and all(isinstance(s, str) or n == s for n, s in zip(array.shape, shape))
    if not matches:
        raise ValueError(f"{what} must have shape {_shape_text(shape)}{help_text}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{what} must be finite, got {bad} NaN or infinite value(s) in {array.shape}")
    return array


def check_actions(actions: Any, shape: Shape, what: str = "actions", dtype: type = np.float32) -> np.ndarray:
    """actions as finite `dtype` of `shape` (e.g. ("T", 7) or (num_envs, 7)), or a ValueError."""
    return _check_floats(actions, shape, what, dtype, f" {ACTION_HELP}" if shape and shape[-1] == ACTION_DIM else "")


def check_poses(agent_pos: Any, shape: Shape, what: str = "agent_pos") -> np.ndarray:
    """agent_pos as finite float32 of `shape` (e.g. ("T", 9)), or a ValueError."""
    return _check_floats(agent_pos, shape, what, np.float32, "")


def check_instruction(instruction: Any) -> str:
    """The instruction stripped of surrounding space, or a ValueError if it is not a non-empty string."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"the instruction must be a non-empty string, got {instruction!r}")
    return instruction.strip()

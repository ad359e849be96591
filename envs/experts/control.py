"""Pose control for scripted experts: OSC_POSE delta actions that drive the gripper site to a target pose.

The OSC controller takes deltas in the robot base frame, whose axes are the world's for every wow_gym task,
so world-frame position and rotation errors are the actions, scaled by the controller's per-step limits.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from wow_gym.registry import MAX_POSITION_STEP, MAX_ROTATION_STEP
OPEN, CLOSE = -1.0, 1.0  # gripper commands
UP = np.array([0.0, 0.0, 1.0])

# The gripper pointing straight down with its fingers closing along world y: its yaw 0.
_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def wrap_angle(angle: float) -> float:
    """The angle in [-pi, pi)."""
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def gripper_yaw(eef_mat: np.ndarray) -> float:
    """Yaw of a gripper about world z: the heading of its finger axis, 0 when fingers close along world y."""
    finger_axis = eef_mat[:, 0]
    return wrap_angle(np.arctan2(finger_axis[1], finger_axis[0]) - np.pi / 2)


def nearest_yaw(desired: float, symmetry: float, current: float) -> float:
    """Of the yaws desired + k * symmetry, the one closest to current (a cube looks the same every pi/2)."""
    return current + float((desired - current + symmetry / 2) % symmetry - symmetry / 2)


def down_orientation(yaw: float) -> np.ndarray:
    """Rotation matrix of the gripper pointing down with the given yaw."""
    return Rotation.from_euler("z", yaw).as_matrix() @ _DOWN


def pose_action(
    eef_pos: np.ndarray,
    eef_mat: np.ndarray,
    target_pos: np.ndarray,
    target_mat: np.ndarray,
    gripper: float,
    gain: float = 1.0,
    rotation_gain: float = 1.0,
) -> np.ndarray:
    """A proportional OSC_POSE action toward a target position and orientation (world frame)."""
    position = np.clip(gain * (target_pos - eef_pos) / MAX_POSITION_STEP, -1.0, 1.0)
    error = Rotation.from_matrix(target_mat @ eef_mat.T).as_rotvec()
    rotation = np.clip(rotation_gain * error / MAX_ROTATION_STEP, -1.0, 1.0)
    return np.concatenate([position, rotation, [gripper]]).astype(np.float32)


def yaw_of(mat: np.ndarray) -> float:
    """Heading of a body's x axis about world z."""
    return float(np.arctan2(mat[1, 0], mat[0, 0]))

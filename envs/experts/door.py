"""Scripted expert for Door: grasp the lever handle, turn it down to free the latch, pull the door open."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from wow_gym.envs.experts.control import CLOSE, OPEN, UP
from wow_gym.envs.experts.scripted import GRIPPER_STEPS, Phase, ScriptedExpert

GRASP_INSET = 0.035  # metres from the handle site toward the latch axis: grip the lever off its tip
HANDLE_TURN = 1.6  # radians of handle rotation to aim for: against its stop at 1.57
HANDLE_HOLD = 1.5  # radians to hold the lever at while pulling (its spring pushes it back up)
LATCH_FREE = 1.4  # radians of handle rotation past which the latch no longer holds the door
HAND_TILT = 0.45  # radians the fingertips lean into the door, keeping the wide hand off its panel
PULL_LEAD = 0.2  # radians the pull target leads the door along its swing
LEVER_REACH = 0.08  # metres from the grasp point toward the shaft over which a sliding grip still holds
LOST_DISTANCE = 0.06  # metres between the lever and the gripper site past which the grip counts as lost
DOOR_OPEN = 0.45  # radians of hinge rotation to aim for (the task succeeds past 0.3, the hinge stops at 0.4)


def _rotate_about(point: np.ndarray, anchor: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """point rotated by angle about the line through anchor along axis."""
    return anchor + Rotation.from_rotvec(angle * axis).apply(point - anchor)


class DoorExpert(ScriptedExpert):
    """Door (with latch): the lever must be turned down before the door will swing toward the robot."""

    task = "Door"

    def build_phases(self) -> list[Phase]:
        self._hinge, self._latch = (self.model.joint(name).id for name in self.robosuite.door.joints[:2])
        latch_body = self.robosuite.object_body_ids["latch"]
        grasp = self._initial_grasp_point()
        self._grasp_local = self.body_mat(latch_body).T @ (grasp - self.body_pos(latch_body))
        self._lever_local = self.body_mat(latch_body).T @ self._lever_direction
        return [
            Phase("move in front of the door handle", self.in_front_of_handle, OPEN, self.grip_orientation,
                  tolerance=0.03, max_steps=30, approach=True),
            Phase("move above the door handle", lambda: self.grasp_point() + 0.06 * UP, OPEN,
                  self.grip_orientation, tolerance=0.015, max_steps=30, approach=True),
            Phase("lower to the door handle", self.grasp_point, OPEN, self.grip_orientation,
                  tolerance=0.01, max_steps=30, fixed_target=True, approach=True),
            Phase("grasp the door handle", self.grasp_point, CLOSE, self.grip_orientation, tolerance=np.inf,
                  min_steps=GRIPPER_STEPS, fixed_target=True, approach=True),
            Phase("turn the handle down", self.turned_grasp_point, CLOSE, self.grip_orientation,
                  max_steps=40, approach=True, holding=True, done=self.latch_free),
            Phase("pull the door open", self.opened_grasp_point, CLOSE, self.grip_orientation,
                  tolerance=0.01, max_steps=10**6, approach=True, holding=True),
        ]

    # -- door geometry -----------------------------------------------------------------------------------

    def _joint(self, joint_id: int) -> tuple[np.ndarray, np.ndarray, float]:
        """A joint's world anchor, world axis and position."""
        qpos = self.data.qpos[self.model.jnt_qposadr[joint_id]]
        return self.data.xanchor[joint_id].copy(), self.data.xaxis[joint_id].copy(), float(qpos)

    def _initial_grasp_point(self) -> np.ndarray:
        """The point to grip: on the lever's axis, a little in from the handle site at its tip."""
        handle = self.data.site_xpos[self.robosuite.door_handle_site_id].copy()
        anchor, axis, _ = self._joint(self._latch)
        lever = handle - anchor - np.dot(handle - anchor, axis) * axis
        self._lever_direction = lever / np.linalg.norm(lever)
        return handle - GRASP_INSET * self._lever_direction

    def in_front_of_handle(self) -> np.ndarray:
        """A waypoint 10 cm out from the door and 10 cm up from the lever: the way in that clears it."""
        return self.grasp_point() + 0.1 * (self.outward() + UP)

    def grasp_point(self) -> np.ndarray:
        """The point on the lever the gripper holds, where the lever is now."""
        latch_body = self.robosuite.object_body_ids["latch"]
        return self.body_pos(latch_body) + self.body_mat(latch_body) @ self._grasp_local

    def held_point(self) -> np.ndarray:
        """The point on the lever's axis nearest the gripper: where it holds the lever if its grip slid."""
        latch_body = self.robosuite.object_body_ids["latch"]
        direction = self.body_mat(latch_body) @ self._lever_local
        grasp = self.grasp_point()
        along = np.clip(np.dot(self.eef_pos - grasp, direction), -LEVER_REACH, GRASP_INSET)
        return grasp + along * direction

    def turned_grasp_point(self) -> np.ndarray:
        """Where the grasp point of the lever is once the lever is turned down against its stop."""
        anchor, axis, angle = self._joint(self._latch)
        return _rotate_about(self.grasp_point(), anchor, axis, HANDLE_TURN - angle)

    def opened_grasp_point(self) -> np.ndarray:
        """A pull target just ahead of the held point along the door's swing, the lever kept turned down."""
        latch_anchor, latch_axis, latch_angle = self._joint(self._latch)
        turned = _rotate_about(self.held_point(), latch_anchor, latch_axis, HANDLE_HOLD - latch_angle)
        anchor, axis, angle = self._joint(self._hinge)
        return _rotate_about(turned, anchor, axis, min(DOOR_OPEN - angle, PULL_LEAD))

    def latch_free(self) -> bool:
        """Whether the lever is turned far enough down that the latch lets the door swing."""
        return self._joint(self._latch)[2] > LATCH_FREE

    def outward(self) -> np.ndarray:
        """The door's normal on the robot's side."""
        return -self.body_mat(self.robosuite.object_body_ids["door"])[:, 1]

    def grip_orientation(self) -> np.ndarray:
        """Fingers across the lever (along the door's normal), the hand tilted away from the door panel."""
        outward = self.outward()
        approach = -np.cos(HAND_TILT) * UP - np.sin(HAND_TILT) * outward
        fingers = np.cos(HAND_TILT) * outward - np.sin(HAND_TILT) * UP
        if np.dot(fingers, self.eef_mat[:, 0]) < 0:
            fingers = -fingers
        return np.column_stack([fingers, np.cross(approach, fingers), approach])

    def miss_offset(self) -> np.ndarray:
        """A deliberately missed grasp closes just past the lever's tip, then turns and pulls from there
        (from in front of the lever or above it, the wide hand would still catch it)."""
        return self.rng.uniform(0.06, 0.08) * self._lever_direction

    def lost_object(self) -> bool:
        return bool(np.linalg.norm(self.held_point() - self.eef_pos) > LOST_DISTANCE)


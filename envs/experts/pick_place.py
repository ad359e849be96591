"""Scripted experts for the pick-and-place tasks: Lift, Stack and PickPlaceCan."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from wow_gym.envs.experts.control import CLOSE, OPEN, UP, down_orientation, gripper_yaw, nearest_yaw, yaw_of
from wow_gym.envs.experts.scripted import GRIPPER_STEPS, Phase, ScriptedExpert

LOST_DISTANCE = 0.06  # metres between object and gripper site past which a held object counts as dropped
# The can's target spot lies at the edge of the arm's reach: place it this much nearer the robot, still well
# inside the spot's quarter of the bin (0.19 x 0.24 m), which is all the task checks.
BIN_GOAL_SHIFT = np.array([-0.035, -0.045, 0.0])


class PickExpert(ScriptedExpert):
    """Shared script for experts that pick up one object from above: find it, grasp it, lift it."""

    object_name = "object"  # as the sub-instructions name it
    yaw_symmetry: float | None = np.pi / 2  # a cube grasps alike every quarter turn; None: a round object

    @abstractmethod
    def object_body(self) -> int:
        """MuJoCo body id of the object to pick."""

    def object_pos(self) -> np.ndarray:
        return self.body_pos(self.object_body())

    def object_orientation(self) -> np.ndarray:
        """Gripper pointing down, fingers across the object's faces, at the yaw nearest the gripper's now."""
        yaw = yaw_of(self.body_mat(self.object_body()))
        return down_orientation(nearest_yaw(yaw, self.yaw_symmetry, gripper_yaw(self.eef_mat)))

    def pick_phases(self, hover: float = 0.10, lift: float = 0.12) -> list[Phase]:
        """Move above the object, lower the open gripper around its centre, close, and lift straight up."""
        name, position = self.object_name, self.object_pos
        orientation = self.object_orientation if self.yaw_symmetry is not None else None
        return [
            Phase(f"move above the {name}", lambda: position() + hover * UP, OPEN, orientation,
                  tolerance=0.02, max_steps=40, approach=True),
            Phase(f"lower to the {name}", position, OPEN, orientation,
                  tolerance=0.01, max_steps=30, approach=True),
            Phase(f"grasp the {name}", position, CLOSE, orientation,
                  tolerance=np.inf, min_steps=GRIPPER_STEPS, fixed_target=True, approach=True),
            Phase(f"lift the {name}", lambda: self.eef_pos + lift * UP, CLOSE,
                  tolerance=0.02, max_steps=30, fixed_target=True, holding=True),
        ]

    def lost_object(self) -> bool:
        return bool(np.linalg.norm(self.object_pos() - self.eef_pos) > LOST_DISTANCE)


class LiftExpert(PickExpert):
    """Lift: grasp the cube and hold it up."""

    task = "Lift"
    object_name = "cube"

    def object_body(self) -> int:
        return self.robosuite.cube_body_id

    def build_phases(self) -> list[Phase]:
        phases = self.pick_phases(lift=0.15)
        return phases + [Phase("hold the cube up", lambda: self.eef_pos, CLOSE, tolerance=np.inf,
                               max_steps=10**6, fixed_target=True, holding=True, essential=False)]


class StackExpert(PickExpert):
    """Stack: pick up the red cube, set it on the green cube and let go."""

    task = "Stack"
    object_name = "red cube"

    def object_body(self) -> int:
        return self.robosuite.cubeA_body_id

    def above_green(self, clearance: float) -> np.ndarray:
        """Gripper target that puts the red cube's bottom clearance above the green cube's top."""
        rs = self.robosuite
        half_a, half_b = rs.cubeA.size[2], rs.cubeB.size[2]
        goal = self.body_pos(rs.cubeB_body_id) + (half_b + half_a + clearance) * UP
        return self.eef_pos + goal - self.object_pos()

    def build_phases(self) -> list[Phase]:
        return self.pick_phases(lift=0.10) + [
            Phase("move above the green cube", lambda: self.above_green(0.03), CLOSE,
                  tolerance=0.01, max_steps=50, holding=True),
            Phase("lower onto the green cube", lambda: self.above_green(0.005), CLOSE,
                  tolerance=0.006, max_steps=25, holding=True),
            Phase("release the red cube", lambda: self.eef_pos, OPEN, tolerance=np.inf,
                  min_steps=GRIPPER_STEPS, fixed_target=True),
            Phase("move away from the cubes", lambda: self.eef_pos + 0.10 * UP, OPEN,
                  max_steps=10**6, fixed_target=True, essential=False),
        ]


class PickPlaceCanExpert(PickExpert):
    """PickPlaceCan: lift the can out of its bin, carry it over its target bin, lower it and let go."""

    task = "PickPlaceCan"
    object_name = "can"
    yaw_symmetry = None

    def object_body(self) -> int:
        rs = self.robosuite
        return rs.obj_body_id[rs.objects[rs.object_id].name]

    def over_bin(self, height: float) -> np.ndarray:
        """Gripper target that puts the can's bottom height above the floor of its target bin spot."""
        rs = self.robosuite
        goal = np.array(rs.target_bin_placements[rs.object_id], dtype=np.float64) + BIN_GOAL_SHIFT
        goal[2] += -rs.objects[rs.object_id].bottom_offset[2] + height
        return self.eef_pos + goal - self.object_pos()

    def build_phases(self) -> list[Phase]:
        return self.pick_phases(lift=0.15) + [
            Phase("carry the can over the bin", lambda: self.over_bin(0.15), CLOSE,
                  tolerance=0.02, max_steps=80, holding=True),
            Phase("lower the can into the bin", lambda: self.over_bin(0.02), CLOSE,
                  tolerance=0.01, max_steps=30, holding=True),
            Phase("release the can", lambda: self.eef_pos, OPEN, tolerance=np.inf,
                  min_steps=GRIPPER_STEPS, fixed_target=True),
            Phase("move away from the can", lambda: self.eef_pos + 0.15 * UP, OPEN,
                  max_steps=10**6, fixed_target=True, essential=False),
        ]

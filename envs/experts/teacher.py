"""The pick expert's script read off an observation: a teacher that labels any state, simulated or imagined.

ScriptedExpert reads the simulator (MjData) and keeps its phase between steps, so it can act only in an
episode it started itself. A policy that trains in imagination visits states no expert episode did, and
on-policy imitation (DAgger, Ross et al. 2011; the privileged teacher of Chen et al. 2019, "Learning by
Cheating") needs the expert's action at each of them. PickTeacher reads the phase off the observation
alone: agent_pos (the grip site's position and xyzw quaternion, the two finger joints) and
environment_state (the object's position and xyzw quaternion, where the task's file says), which the sim
twin and the imagined env both hand over. The same teacher thus labels simulated and imagined states; in
imagination it reads the object where the world model imagines it.

The script is PickExpert's (envs/experts/pick_place.py) for a task whose object is picked from above and
held up (Lift): above the object with the gripper open, down around it with the fingers across its faces,
close, lift. What the expert remembers as its phase, the teacher reads from the fingers: closed about the
object's width with the object in reach is a grasp (the task's grasp test, Task.grasp_gap / grasp_reach);
closed on nothing is a miss, which opens and goes back above the object. Hand-written: it is the expert's
own script, with its phase inferred instead of remembered.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from wow_gym.envs.experts.control import (
    CLOSE,
    OPEN,
    UP,
    down_orientation,
    nearest_yaw,
    pose_action,
    wrap_angle,
)
from wow_gym.tasks import task_info
from wow_gym.tasks.base import grasped

HOVER = 0.10  # metres above the object's centre to come from (PickExpert's "move above")
LIFT = 0.15  # metres above its rest height to hold the object (LiftExpert lifts 0.15)
ABOVE = 0.02  # metres: further than this off the object in x-y, go back above it before lowering
AT = 0.01  # metres: this close to the object's centre, close the fingers (PickExpert's "lower" tolerance) ...
CLOSING = 0.015  # ... and keep closing them while it stays this close
# metres between the finger joints: below this, with the object in reach, the fingers have closed on it
# (the object is 4.0-4.4 cm wide), and the lift begins; the expert waits GRIPPER_STEPS instead
GRIPPED = 0.047
OPEN_GAP = 0.075  # metres between the finger joints: open (fully open is 0.08)
TEACHER_TASKS = ("Lift",)  # tasks whose script is "pick the object up and hold it": the teacher's


class PickTeacher:
    """The expert's action [B, 7] for observations (agent_pos [B, P], environment_state [B, E]) of a task
    in TEACHER_TASKS."""

    def __init__(self, task: str) -> None:
        info = task_info(task)
        if info.name not in TEACHER_TASKS:
            raise ValueError(f"the teacher knows the script of {list(TEACHER_TASKS)}, not {info.name!r} (its "
                             "expert's phases are not yet read off the observation)")
        if info.object_pose is None or info.rest_height is None or info.grasp_gap is None:
            raise ValueError(f"task {info.name} does not say where its object's pose and grasp are")
        self.task, self.pose, self.rest = info.name, info.object_pose, info.rest_height
        self.reach, self.gap_range = info.grasp_reach, info.grasp_gap

    def __call__(self, agent_pos: np.ndarray, environment_state: np.ndarray) -> np.ndarray:
        agent_pos = np.asarray(agent_pos, dtype=np.float64)
        state = np.asarray(environment_state, dtype=np.float64)
        if agent_pos.ndim != 2 or agent_pos.shape[1] < 9 or state.ndim != 2 or len(state) != len(agent_pos):
            raise ValueError(f"the teacher reads agent_pos [B, 9] and environment_state [B, E], got "
                             f"{agent_pos.shape} and {state.shape}")
        eef = agent_pos[:, :3]
        eef_mat = Rotation.from_quat(agent_pos[:, 3:7]).as_matrix()
        obj = state[:, self.pose][:, :3]
        obj_mat = Rotation.from_quat(state[:, self.pose][:, 3:7]).as_matrix()
        gap = agent_pos[:, 7] - agent_pos[:, 8]
        distance = np.linalg.norm(obj - eef, axis=1)
        held = grasped(distance, gap, self.reach, (self.gap_range[0], min(GRIPPED, self.gap_range[1])))
        actions = np.empty((len(eef), 7), np.float32)
        for i in range(len(eef)):
            actions[i] = self._act(eef[i], eef_mat[i], obj[i], obj_mat[i], gap[i], distance[i], bool(held[i]))
        return actions

    def _act(self, eef: np.ndarray, eef_mat: np.ndarray, obj: np.ndarray, obj_mat: np.ndarray, gap: float,
             distance: float, held: bool) -> np.ndarray:
        if held:  # lift it to LIFT above its rest, then hold it there
            target = eef + UP * min(0.05, max(0.0, self.rest + LIFT - obj[2]))
            return pose_action(eef, eef_mat, target, eef_mat, CLOSE)
        # the gripper's yaw nearest its own, fingers across the object's faces (alike every quarter turn)
        finger_axis = eef_mat[:, 0]
        yaw_now = wrap_angle(np.arctan2(finger_axis[1], finger_axis[0]) - np.pi / 2)
        yaw = nearest_yaw(float(np.arctan2(obj_mat[1, 0], obj_mat[0, 0])), np.pi / 2, yaw_now)
        orientation = down_orientation(yaw)
        closing = gap < OPEN_GAP
        if gap > self.gap_range[0] and distance < (CLOSING if closing else AT):  # around it: close
            return pose_action(eef, eef_mat, obj, orientation, CLOSE)
        if closing:  # closed or closing on nothing: open where it is, moving up
            return pose_action(eef, eef_mat, eef + UP * 0.02, orientation, OPEN)
        if np.linalg.norm((obj - eef)[:2]) > ABOVE:  # go above the object
            return pose_action(eef, eef_mat, obj + HOVER * UP, orientation, OPEN)
        return pose_action(eef, eef_mat, obj, orientation, OPEN)  # lower around it

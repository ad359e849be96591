"""Lift: pick the red cube up off the table (robosuite Lift)."""

from __future__ import annotations

import numpy as np

from wow_gym.tasks.base import CriticStage, Task, finger_gap, grasped

OBJECT_POSITION = slice(0, 3)  # environment_state: cube_pos (3), cube_quat (4), gripper_to_cube_pos (3)
GRIPPER_OFFSET = slice(7, 10)  # cube minus gripper
OBJECT_POSE = slice(0, 7)  # cube position, quaternion
NEAR = 0.03  # metres: the gripper is at the cube
# robosuite Lift succeeds when the cube's centre is above the table (0.8 m) + 0.04; written out, not summed,
# since 0.8 + 0.04 is not the float 0.84 the shipped figures were measured with.
SUCCESS_HEIGHT = 0.84
STAGES = (
    CriticStage("approach", "no_reach", "the gripper stays {distance:.0f} cm from the cube"),
    CriticStage("at_object", "no_grasp", "the gripper reaches the cube but does not close on it"),
    CriticStage("grasped", "no_lift", "the cube is grasped but not lifted off the table"),
    CriticStage("lifted", "", "the cube is lifted off the table"),
)


# the fingers' joint gap (agent_pos[7] - agent_pos[8]) while they hold the cube (training data: 0.040-0.046 m from
# the 0.5th to the 99.5th percentile of lifted frames, cube centre within 3.2 cm of the grip; fully closed on
# nothing 0.001, open 0.08), with a margin for noisier policies and an imagined arm: with the cube within
# reach, a grasp
GRASP_GAP = (0.034, 0.05)
GRASP_REACH = 0.04
TABLE_HEIGHT = 0.8  # robosuite Lift's table top
REST_HEIGHT = 0.82  # the cube's centre resting on the table (0.8 m + half its 4 cm)
# robosuite draws the cube's half-size from 0.020-0.022 m: the object layer's box is the mean (its outline
# against the simulator's red pixels: tests/world_models/video/test_object_layer.py)
CUBE_HALF_EXTENTS = (0.021, 0.021, 0.021)


def shaped_reward(state: np.ndarray, agent_pos: np.ndarray, success: np.ndarray) -> dict[str, np.ndarray]:
    """robosuite Lift's shaped reward on (imagined) state: reach 1 - tanh(10 d) and 0.25 for a grasp, or 2.25
    on success, all / 2.25. robosuite checks the grasp by finger contact; here the fingers' gap stands in."""
    distance = np.linalg.norm(state[:, GRIPPER_OFFSET], axis=1)
    gap = finger_gap(agent_pos)
    held = grasped(distance, gap, GRASP_REACH, GRASP_GAP)
    reach = np.where(success, 0.0, 1 - np.tanh(10 * distance)) / 2.25
    grasp = np.where(success, 0.0, 0.25 * held) / 2.25
    return {"reach": reach.astype(np.float32), "grasp": grasp.astype(np.float32),
            "lift": success.astype(np.float32)}


def stage_labels(state: np.ndarray, reward: np.ndarray, success: np.ndarray) -> np.ndarray:
    """approach / at the cube / grasped / lifted, from the gripper-cube distance and the grasp reward."""
    distance = np.linalg.norm(state[:, GRIPPER_OFFSET], axis=1)
    grasp_term = reward * 2.25 - (1 - np.tanh(10 * distance))  # robosuite Lift: reach + 0.25 grasp, / 2.25
    return np.where(success, len(STAGES) - 1, np.where(grasp_term > 0.15, 2, np.where(distance < NEAR, 1, 0)))


TASK = Task(
    name="Lift",
    robosuite_env="Lift",
    instruction="lift the red cube",
    object_name="cube",
    steps=("move the open gripper above the red cube", "lower the gripper around the cube",
           "close the gripper on the cube", "lift the cube up off the table"),
    object_position=OBJECT_POSITION,
    gripper_offset=GRIPPER_OFFSET,
    object_pose=OBJECT_POSE,
    state_reward=shaped_reward,
    rest_height=REST_HEIGHT,
    grasp_reach=GRASP_REACH,
    grasp_gap=GRASP_GAP,
    object_extents=CUBE_HALF_EXTENTS,
    square_object=True,
    table_height=TABLE_HEIGHT,
    object_joint="cube_joint0",
    critic_stages=STAGES,
    stage_labels=stage_labels,
    failure_hints={
        "no_reach": "first move the gripper right above the cube",
        "closed_early": "keep the gripper open until it is around the cube",
        "no_grasp": "close the gripper firmly around the cube",
        "no_lift": "after grasping, raise the cube well above the table",
        "implausible": "keep the cube in the gripper; it must not move unless the gripper touches it",
    },
    distractors=("push the cube off the table", "wave the arm in the air", "open the drawer",
                 "pour the water"),
    success_height=SUCCESS_HEIGHT,
    near=NEAR,
    max_episode_steps=100,
)

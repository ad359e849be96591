"""PickPlaceCan: put the can in the bin (robosuite PickPlaceCan)."""

from __future__ import annotations

import math

import numpy as np

from wow_gym.tasks.base import ArrayT, CriticStage, Task, finger_gap, grasped, stages_by_distance

# environment_state: Can_to_robot0_eef_pos (3), Can_to_robot0_eef_quat (4), Can_pos (3), Can_quat (4).
OBJECT_POSITION = slice(7, 10)
GRIPPER_OFFSET = slice(0, 3)  # the can relative to the gripper, in the gripper's frame (not the world's)
OBJECT_POSE = slice(7, 14)  # the can's position, quaternion (world frame)
# the can as a box: the half-extents of its collision mesh's bounding box in robosuite's scene
CAN_HALF_EXTENTS = (0.025, 0.025, 0.041)
# robosuite PickPlace's success for the can (its not_in_bin and _check_success, single-object mode): the can's
# centre inside the can's bin (x 0.1-0.295, y 0.28-0.525, z 0.8-0.9 m: bin2_pos (0.1, 0.28, 0.8) and
# bin_size (0.39, 0.49) for the fourth object) and the gripper's reach reward 1 - tanh(10 d) below 0.6
BIN = ((0.1, 0.295), (0.28, 0.525), (0.8, 0.9))
RELEASED_DISTANCE = math.atanh(1 - 0.6) / 10  # metres: where the reach reward falls below 0.6
NEAR = 0.03  # metres: the gripper is at the can
# robosuite PickPlace's hover target for the can (target_bin_placements[3]: the middle of its quarter of the
# bin) and the box around it that counts as above the bin (a quarter of bin_size each way)
BIN_TARGET = (0.1975, 0.4025)
ABOVE_BIN = (0.39 / 4, 0.49 / 4)
LIFT_TARGET = 1.05  # metres: robosuite's lifting target for the can (the bin's floor + 0.25)
# The grasp test standing in for robosuite's finger contact: the can within 4 cm of the gripper with the
# fingers' gap in this range. Chosen against robosuite's contact test on 10 expert and noisy-expert episodes
# (seeds 5000-5009, which no dataset uses): the gaps round the can, held in any orientation, run from 3.4 to
# 7.1 cm; fully open is 8 cm. tests/core/test_tasks.py checks the reward along a noisy-expert episode.
GRASP_GAP = (0.03, 0.072)
GRASP_REACH = 0.04
# the can's centre standing on either bin's floor, measured in robosuite PickPlaceCan (expert episodes, seeds
# 5000-5005: 0.8603 m at the start and placed); lying down it is lower
REST_HEIGHT = 0.86
STAGES = (
    CriticStage("approach", "no_reach", "the gripper stays {distance:.0f} cm from the can"),
    CriticStage("at_object", "no_grasp", "the gripper reaches the can but does not close on it"),
    CriticStage("grasped", "no_place", "the can is grasped but not put in the bin"),
    CriticStage("placed", "", "the can is in the bin"),
)


def placed(state: ArrayT, agent_pos: ArrayT) -> ArrayT:
    """Success on (imagined) environment_state [N, E] and agent_pos [N, P], as robosuite checks it: the can in
    its bin and the gripper away from it."""
    can, offset = state[..., OBJECT_POSITION], state[..., GRIPPER_OFFSET]
    inside = (offset * offset).sum(-1) > RELEASED_DISTANCE ** 2  # a length in any frame
    for axis, (low, high) in enumerate(BIN):
        inside = inside & (can[..., axis] > low) & (can[..., axis] < high)
    return inside


def shaped_reward(state: np.ndarray, agent_pos: np.ndarray, success: np.ndarray) -> dict[str, np.ndarray]:
    """robosuite PickPlaceCan's shaped reward on (imagined) state: 1 on success, else the best of reaching
    (0.1 (1 - tanh 10 d) to the can) and hovering: grasping (0.35 while the can is grasped) and lifting (0.15
    (1 - tanh 15 z) more, z how far the can is below 1.05 m), or 0.5 while the can is above its bin, plus
    0.2 (1 - tanh 10 b) for its distance b across to the bin's target. (robosuite's grasping and lifting
    stages never beat hovering. Its three hidden objects fall from 10 m at reset: until they land, about step
    30, they count as lifted and its lifting term is the full 0.15 while grasped, which this leaves out.) Only
    the winning stage's terms are nonzero, so the terms sum to the reward."""
    distance = np.linalg.norm(state[:, GRIPPER_OFFSET], axis=1)
    held = grasped(distance, finger_gap(agent_pos), GRASP_REACH, GRASP_GAP)
    across = state[:, OBJECT_POSITION][:, :2] - np.asarray(BIN_TARGET)
    above = (np.abs(across[:, 0]) < ABOVE_BIN[0]) & (np.abs(across[:, 1]) < ABOVE_BIN[1])
    below = np.maximum(LIFT_TARGET - state[:, OBJECT_POSITION.stop - 1], 0.0)
    reach = 0.1 * (1 - np.tanh(10 * distance))
    grasp = 0.35 * (held | above)
    lift = np.where(above, 0.15, 0.15 * held * (1 - np.tanh(15 * below)))
    hover = 0.2 * (1 - np.tanh(10 * np.linalg.norm(across, axis=1)))
    reaching = ~success & (reach > grasp + lift + hover)
    hovering = ~success & ~reaching
    terms = {"reach": reaching * reach, "grasp": hovering * grasp, "lift": hovering * lift,
             "hover": hovering * hover, "place": 1.0 * success}
    return {name: term.astype(np.float32) for name, term in terms.items()}


def _product(a: tuple, b: tuple) -> tuple:
    """The Hamilton product of quaternions given as (x, y, z, w) components."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def derive_state(state: ArrayT, agent_pos: ArrayT) -> ArrayT:
    """The can's position and orientation in the gripper's frame (robosuite's Can_to_robot0_eef_pos and
    _quat) from its world pose and the gripper's (agent_pos: position, xyzw quaternion), in place. Written
    out component by component so that numpy arrays and torch tensors both take it."""
    grip = tuple(agent_pos[..., 3 + i] for i in range(4))
    inverse = (-grip[0], -grip[1], -grip[2], grip[3])
    world = tuple(state[..., OBJECT_POSITION.start + i] - agent_pos[..., i] for i in range(3))
    world = world + (0 * grip[3],)  # the offset as a pure quaternion
    rotated = _product(_product(inverse, world), grip)  # q^-1 v q: v in the gripper's frame
    quat = _product(inverse, tuple(state[..., OBJECT_POSE.start + 3 + i] for i in range(4)))
    for i in range(3):
        state[..., GRIPPER_OFFSET.start + i] = rotated[i]
    for i in range(4):
        state[..., 3 + i] = quat[i]
    return state


TASK = Task(
    name="PickPlaceCan",
    robosuite_env="PickPlaceCan",
    instruction="put the can in the bin",
    object_name="can",
    steps=("move above the can", "grasp the can", "lift the can", "move it over the bin",
           "release it into the bin"),
    object_position=OBJECT_POSITION,
    gripper_offset=GRIPPER_OFFSET,
    object_pose=OBJECT_POSE,
    state_reward=shaped_reward,
    state_success=placed,
    derive_state=derive_state,
    rest_height=REST_HEIGHT,
    grasp_reach=GRASP_REACH,
    grasp_gap=GRASP_GAP,
    object_extents=CAN_HALF_EXTENTS,
    object_joint="Can_joint0",
    critic_stages=STAGES,
    stage_labels=stages_by_distance(GRIPPER_OFFSET, NEAR, len(STAGES)),
    failure_hints={
        "no_reach": "first move the gripper right above the can",
        "closed_early": "keep the gripper open until it is around the can",
        "no_grasp": "close the gripper firmly around the can",
        "no_place": "after grasping, carry the can over the bin and lower it in before releasing",
        "implausible": "keep the can in the gripper; it must not move unless the gripper touches it",
    },
    distractors=("take the can out of the bin", "knock the can over", "wave the arm in the air",
                 "pour the water"),
    near=NEAR,
    max_episode_steps=250,
)

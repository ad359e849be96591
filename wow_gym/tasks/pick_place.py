"""PickPlaceCan: put the can in the bin (robosuite PickPlaceCan)."""

from __future__ import annotations

import math

from wow_gym.tasks.base import ArrayT, CriticStage, Task, stages_by_distance

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
    state_success=placed,
    derive_state=derive_state,
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

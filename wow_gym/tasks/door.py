"""Door: turn the handle and pull the door open (robosuite Door)."""

from __future__ import annotations

import numpy as np

from wow_gym.tasks.base import ArrayT, CriticStage, Task, stages_by_distance

# environment_state: door_pos (3), handle_pos (3), hinge_qpos (1), door_to_eef_pos (3), handle_to_eef_pos (3),
# handle_qpos (1). The handle is what the gripper moves; the door body swings with the hinge.
DOOR_POSITION = slice(0, 3)
OBJECT_POSITION = slice(3, 6)
HINGE_ANGLE = 6
DOOR_OFFSET = slice(7, 10)  # door minus gripper
GRIPPER_OFFSET = slice(10, 13)  # handle minus gripper
HANDLE_ANGLE = 13
# What the world model carries of the door (world_models/video/dynamics.py ObjectDynamics): the handle's
# position, the door body's, the hinge's and the handle's angles; the offsets to the gripper follow
CARRIED = (3, 4, 5, 0, 1, 2, HINGE_ANGLE, HANDLE_ANGLE)
OPEN = 0.3  # radians: robosuite Door's success, the hinge turned past this
NEAR = 0.03  # metres: the gripper is at the handle


def opened(state: ArrayT, agent_pos: ArrayT) -> ArrayT:
    """robosuite Door's success on (imagined) environment_state [N, E]: the hinge turned past 0.3 rad."""
    return state[..., HINGE_ANGLE] > OPEN


def derive_state(state: ArrayT, agent_pos: ArrayT) -> ArrayT:
    """The door's offset from the gripper (robosuite's door_to_robot0_eef_pos), in place."""
    state[..., DOOR_OFFSET] = state[..., DOOR_POSITION] - agent_pos[..., :3]
    return state


def shaped_reward(state: np.ndarray, agent_pos: np.ndarray, success: np.ndarray) -> dict[str, np.ndarray]:
    """robosuite Door's shaped reward (with its latch) on (imagined) state: reach 0.25 (1 - tanh(10 d)) to the
    handle and 0.25 |handle angle| / (pi / 2), at most 0.25, or 1 on success."""
    distance = np.linalg.norm(state[:, GRIPPER_OFFSET], axis=1)
    reach = np.where(success, 0.0, 0.25 * (1 - np.tanh(10 * distance)))
    turn = np.where(success, 0.0, np.minimum(0.25 * np.abs(state[:, HANDLE_ANGLE]) / (0.5 * np.pi), 0.25))
    return {"reach": reach.astype(np.float32), "turn": turn.astype(np.float32),
            "open": success.astype(np.float32)}

STAGES = (
    CriticStage("approach", "no_reach", "the gripper stays {distance:.0f} cm from the door handle"),
    CriticStage("at_object", "no_grasp", "the gripper reaches the door handle but does not close on it"),
    CriticStage("grasped", "no_open", "the handle is grasped but the door is not pulled open"),
    CriticStage("opened", "", "the door is pulled open"),
)

TASK = Task(
    name="Door",
    robosuite_env="Door",
    instruction="open the door",
    object_name="door handle",
    steps=("reach the door handle", "grasp the handle", "turn the handle", "pull the door open"),
    object_position=OBJECT_POSITION,
    gripper_offset=GRIPPER_OFFSET,
    object_pose=CARRIED,
    object_quaternion=False,
    state_reward=shaped_reward,
    state_success=opened,
    derive_state=derive_state,
    object_joint="Door_hinge",
    critic_stages=STAGES,
    stage_labels=stages_by_distance(GRIPPER_OFFSET, NEAR, len(STAGES)),
    failure_hints={
        "no_reach": "first move the gripper right in front of the door handle",
        "closed_early": "keep the gripper open until it is around the handle",
        "no_grasp": "close the gripper firmly around the handle",
        "no_open": "after grasping, turn the handle down and pull the door towards the robot",
        "implausible": "the door must not move unless the gripper pulls it",
    },
    distractors=("close the door", "knock on the door", "wave the arm in the air", "pour the water"),
    near=NEAR,
    max_episode_steps=200,
)

"""PickPlaceCan: put the can in the bin (robosuite PickPlaceCan)."""

from __future__ import annotations

from wow_gym.tasks.base import CriticStage, Task, stages_by_distance

# environment_state: Can_to_robot0_eef_pos (3), Can_to_robot0_eef_quat (4), Can_pos (3), Can_quat (4).
OBJECT_POSITION = slice(7, 10)
GRIPPER_OFFSET = slice(0, 3)  # the can relative to the gripper, in the gripper's frame (not the world's)
NEAR = 0.03  # metres: the gripper is at the can
STAGES = (
    CriticStage("approach", "no_reach", "the gripper stays {distance:.0f} cm from the can"),
    CriticStage("at_object", "no_grasp", "the gripper reaches the can but does not close on it"),
    CriticStage("grasped", "no_place", "the can is grasped but not put in the bin"),
    CriticStage("placed", "", "the can is in the bin"),
)

TASK = Task(
    name="PickPlaceCan",
    robosuite_env="PickPlaceCan",
    instruction="put the can in the bin",
    object_name="can",
    steps=("move above the can", "grasp the can", "lift the can", "move it over the bin",
           "release it into the bin"),
    object_position=OBJECT_POSITION,
    gripper_offset=GRIPPER_OFFSET,
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

"""Door: turn the handle and pull the door open (robosuite Door)."""

from __future__ import annotations

from wow_gym.tasks.base import CriticStage, Task, stages_by_distance

# environment_state: door_pos (3), handle_pos (3), hinge_qpos (1), door_to_eef_pos (3), handle_to_eef_pos (3),
# handle_qpos (1). The handle is what the gripper moves (the door body's origin sits on its hinge).
OBJECT_POSITION = slice(3, 6)
GRIPPER_OFFSET = slice(10, 13)  # handle minus gripper
NEAR = 0.03  # metres: the gripper is at the handle
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

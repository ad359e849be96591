"""Stack: put the red cube on the green cube (robosuite Stack)."""

from __future__ import annotations

from wow_gym.tasks.base import CriticStage, Task, stages_by_distance

# environment_state: cubeA_pos (3), cubeA_quat (4), cubeB_pos (3), cubeB_quat (4), cubeA_to_cubeB (3),
# gripper_to_cubeA (3), gripper_to_cubeB (3); cubeA is the red cube the gripper moves.
OBJECT_POSITION = slice(0, 3)
GRIPPER_OFFSET = slice(17, 20)  # red cube minus gripper
NEAR = 0.03  # metres: the gripper is at the red cube
STAGES = (
    CriticStage("approach", "no_reach", "the gripper stays {distance:.0f} cm from the red cube"),
    CriticStage("at_object", "no_grasp", "the gripper reaches the red cube but does not close on it"),
    CriticStage("grasped", "no_stack", "the red cube is grasped but not put on the green cube"),
    CriticStage("stacked", "", "the red cube stands on the green cube"),
)

TASK = Task(
    name="Stack",
    robosuite_env="Stack",
    instruction="stack the red cube on the green cube",
    object_name="red cube",
    steps=("move above the red cube", "grasp the red cube", "lift it", "move it above the green cube",
           "lower it onto the green cube and release"),
    object_position=OBJECT_POSITION,
    gripper_offset=GRIPPER_OFFSET,
    object_joint="cubeA_joint0",
    critic_stages=STAGES,
    stage_labels=stages_by_distance(GRIPPER_OFFSET, NEAR, len(STAGES)),
    failure_hints={
        "no_reach": "first move the gripper right above the red cube",
        "closed_early": "keep the gripper open until it is around the red cube",
        "no_grasp": "close the gripper firmly around the red cube",
        "no_stack": "after grasping, carry the red cube above the green cube and lower it on top",
        "implausible": "keep the red cube in the gripper; it must not move unless the gripper touches it",
    },
    distractors=("put the green cube on the red cube", "push the cubes off the table",
                 "wave the arm in the air", "pour the water"),
    near=NEAR,
    max_episode_steps=200,
)

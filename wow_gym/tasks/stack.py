"""Stack: put the red cube on the green cube (robosuite Stack)."""

from __future__ import annotations

import numpy as np

from wow_gym.tasks.base import ArrayT, CriticStage, Task, finger_gap, grasped, stages_by_distance

# environment_state: cubeA_pos (3), cubeA_quat (4), cubeB_pos (3), cubeB_quat (4), cubeA_to_cubeB (3),
# gripper_to_cubeA (3), gripper_to_cubeB (3); cubeA is the red cube the gripper moves.
OBJECT_POSITION = slice(0, 3)
OBJECT_POSE = slice(0, 7)  # the red cube's position, quaternion
GRIPPER_OFFSET = slice(17, 20)  # red cube minus gripper
BASE_POSITION = slice(7, 10)  # the green cube's position
BASE_POSE = slice(7, 14)  # ... and its quaternion
CUBE_HALF_EXTENTS = (0.02, 0.02, 0.02)  # robosuite Stack's red cube (fixed size; the green one is 0.025)
# The success test on state, its thresholds chosen on the training split (train-expert, -noisy, -walk): the
# red cube's centre within 2.5 cm of the green cube's across and 4-5 cm above it (resting on it: 0.045 m),
# and not held (the fingers' gap round a 4 cm cube with the cube within reach; robosuite asks for no finger
# contact). tests/core/test_tasks.py checks it against robosuite's own verdict on states set in MuJoCo.
STACK_ACROSS = 0.025
STACK_HEIGHT = (0.04, 0.05)
GRASP_GAP = (0.034, 0.05)
GRASP_REACH = 0.04
NEAR = 0.03  # metres: the gripper is at the red cube
# Where the red cube rests, measured in robosuite Stack (expert episodes, seeds 5000-5005): its centre at
# 0.818 m on the table, 0.045 m above the green cube's centre on it; on it means its centre over the green
# cube's top (half-extent 0.025 m each way across: further out it tips off)
REST_HEIGHT = 0.818
ON_GREEN = 0.045
GREEN_HALF = 0.025
GREEN_HALF_EXTENTS = (GREEN_HALF,) * 3
# The green cube's centre resting on the table: robosuite puts it at 0.835 m at a reset and it settles to
# 0.8249 m within the first step (seeds 5000-5019, 5 zero-action steps). Started at 0.835, the imagined green
# cube stood 1 cm high for the whole episode: a red cube set on it was 3.4 cm above its centre, under the
# stacking test's 4 cm (stop 56's closing note).
GREEN_REST = 0.825
LIFTED = 0.84  # metres: robosuite Stack's lifting test, the red cube's centre above the table (0.8) + 0.04
STAGES = (
    CriticStage("approach", "no_reach", "the gripper stays {distance:.0f} cm from the red cube"),
    CriticStage("at_object", "no_grasp", "the gripper reaches the red cube but does not close on it"),
    CriticStage("grasped", "no_stack", "the red cube is grasped but not put on the green cube"),
    CriticStage("stacked", "", "the red cube stands on the green cube"),
)



def _length(x: ArrayT) -> ArrayT:
    return (x * x).sum(-1) ** 0.5  # on arrays and tensors alike


def stacked(state: ArrayT, agent_pos: ArrayT) -> ArrayT:
    """Success on (imagined) environment_state [N, E] and agent_pos [N, P]: the red cube rests on the green
    one and the gripper does not hold it."""
    offset = state[..., OBJECT_POSITION] - state[..., BASE_POSITION]
    held = grasped(_length(state[..., GRIPPER_OFFSET]), finger_gap(agent_pos), GRASP_REACH, GRASP_GAP)
    return ((_length(offset[..., :2]) < STACK_ACROSS) & (offset[..., 2] > STACK_HEIGHT[0])
            & (offset[..., 2] < STACK_HEIGHT[1]) & ~held)


def rest_on(position: ArrayT, state: ArrayT) -> ArrayT:
    """[N]: the height the red cube's centre rests at, at `position` [N, 3] in the scene of
    environment_state [N, E] (the green cube's position): on the green cube's top over it, else on the
    table."""
    offset = position - state[..., BASE_POSITION]
    over = (abs(offset[..., 0]) < GREEN_HALF) & (abs(offset[..., 1]) < GREEN_HALF)
    return REST_HEIGHT + over * (state[..., BASE_POSITION.stop - 1] + ON_GREEN - REST_HEIGHT)


def derive_state(state: ArrayT, agent_pos: ArrayT) -> ArrayT:
    """The offsets to the green cube, from the red cube's and the gripper's positions (in place)."""
    state[..., 14:17] = state[..., BASE_POSITION] - state[..., OBJECT_POSITION]  # cubeA_to_cubeB
    state[..., 20:23] = state[..., BASE_POSITION] - agent_pos[..., :3]  # gripper_to_cubeB
    return state


def shaped_reward(state: np.ndarray, agent_pos: np.ndarray, success: np.ndarray) -> dict[str, np.ndarray]:
    """robosuite Stack's shaped reward on (imagined) state, / 2: the best of reaching (0.25 (1 - tanh 10 d)
    to the red cube, 0.25 more while it is grasped), lifting (1 once its centre is above 0.84 m, 0.5 (1 - tanh
    h) more for its distance h across to the green cube) and stacking (2, on success). robosuite checks the
    grasp by finger contact and stacking by contact with the green cube; here the fingers' gap (GRASP_GAP,
    GRASP_REACH) and the `stacked` test stand in. Only the winning stage's terms are nonzero, so the terms
    sum to the reward."""
    distance = np.linalg.norm(state[:, GRIPPER_OFFSET], axis=1)
    held = grasped(distance, finger_gap(agent_pos), GRASP_REACH, GRASP_GAP)
    reach, grasp = 0.25 * (1 - np.tanh(10 * distance)), 0.25 * held
    lifted = state[:, OBJECT_POSITION.stop - 1] > LIFTED
    across = np.linalg.norm(state[:, OBJECT_POSITION][:, :2] - state[:, BASE_POSITION][:, :2], axis=1)
    lift, align = 1.0 * lifted, np.where(lifted, 0.5 * (1 - np.tanh(across)), 0.0)
    reaching = ~success & (reach + grasp >= lift + align)
    lifting = ~success & ~reaching
    terms = {"reach": reaching * reach, "grasp": reaching * grasp, "lift": lifting * lift,
             "align": lifting * align, "stack": 2.0 * success}
    return {name: (term / 2).astype(np.float32) for name, term in terms.items()}


TASK = Task(
    name="Stack",
    robosuite_env="Stack",
    instruction="stack the red cube on the green cube",
    object_name="red cube",
    steps=("move above the red cube", "grasp the red cube", "lift it", "move it above the green cube",
           "lower it onto the green cube and release"),
    object_position=OBJECT_POSITION,
    gripper_offset=GRIPPER_OFFSET,
    object_pose=OBJECT_POSE,
    state_reward=shaped_reward,
    state_success=stacked,
    derive_state=derive_state,
    rest_height=REST_HEIGHT,
    rest_on=rest_on,
    grasp_reach=GRASP_REACH,
    grasp_gap=GRASP_GAP,
    object_extents=CUBE_HALF_EXTENTS,
    square_object=True,
    scene_pose=BASE_POSE,
    scene_extents=GREEN_HALF_EXTENTS,
    scene_rest_height=GREEN_REST,
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

"""The robot's own arm in imagination (arm_physics): robosuite's controller stepped for a batch of arm states
against the simulator's own arm, starts solved from agent_pos, the hand moved by the contact stop, and a world
model that imagines with it."""

import mujoco
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from wow_gym.world_models.video.arm import ARM_JOINTS, POSTURE, STATE_DIM, PhysicsArm


@pytest.fixture(scope="module")
def arm():
    return PhysicsArm("Lift")


def exact_state(env) -> torch.Tensor:
    """The simulator's own arm state: joints, velocities, the controller's posture target."""
    posture = env.robosuite.robots[0].composite_controller.part_controllers["right"].initial_joint
    return torch.tensor(np.concatenate([env.data.qpos[:7], env.data.qvel[:7], posture]))[None]


def hand_of(arm: PhysicsArm, state: np.ndarray) -> np.ndarray:
    data = arm._pool(1)[0]
    arm._load(data, state, np.array([0.02, -0.02]))
    mujoco.mj_kinematics(arm.model, data)
    mujoco.mj_comPos(arm.model, data)
    return arm.pose(data)


def turn_degrees(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.degrees((Rotation.from_quat(first) * Rotation.from_quat(second).inv()).magnitude()))


def test_the_arm_steps_as_the_simulated_one(lift_physics, arm):
    """From the simulator's exact state, 20 steps of sweeping actions (position, turn, grip) above the table:
    the same hand, to a tenth of a millimetre."""
    obs = lift_physics.reset(seed=4)[0]
    state = exact_state(lift_physics)
    rng = np.random.default_rng(0)
    worst = 0.0
    for t in range(20):
        action = np.concatenate([rng.uniform(-1, 1, 3) * [1, 1, 0.3] + [0, 0, 0.3], rng.uniform(-0.5, 0.5, 3),
                                 [1.0 if t >= 10 else -1.0]]).astype(np.float32)
        fingers = torch.tensor(obs["agent_pos"][None, 7:9])
        obs = lift_physics.step(action)[0]
        state, hand = arm.step(state, fingers, torch.tensor(action)[None])
        worst = max(worst, float(np.abs(hand[0, :3].numpy() - obs["agent_pos"][:3]).max()))
        assert turn_degrees(hand[0, 3:7].double().numpy(), obs["agent_pos"][3:7]) < 0.1
    assert worst < 1e-4, f"the hand strays {worst * 1000:.2f} mm from the simulated one"


def test_the_start_is_solved_from_two_poses(lift_physics, arm):
    obs = lift_physics.reset(seed=5)[0]
    before = obs["agent_pos"]
    after = lift_physics.step(np.array([0.5, -0.3, 0.2, 0.1, 0.0, -0.2, -1.0], np.float32))[0]["agent_pos"]
    state = arm.solve(torch.tensor(np.stack([before, after]))[None].double())
    assert state.shape == (1, STATE_DIM)
    np.testing.assert_allclose(state[0, POSTURE].numpy(), arm.rest_posture)
    np.testing.assert_allclose(hand_of(arm, state[0].numpy())[:3], after[:3], atol=1e-6)
    assert turn_degrees(hand_of(arm, state[0].numpy())[3:7], after[3:7]) < 1e-3
    # the joints move the hand as the last step did, on average
    data = arm._pool(1)[0]
    hand = arm._jacobian(data) @ state[0, ARM_JOINTS:2 * ARM_JOINTS].numpy()
    np.testing.assert_allclose(hand[:3], (after[:3] - before[:3]) * 20, atol=1e-6)


def test_a_pose_far_from_the_rest_posture_is_solved(arm):
    """A twisted posture near the joints' limits, where the search from the rest posture alone stalls."""
    joints = np.clip(arm.rest_posture + np.array([0.3, 0.6, 0.5, -0.35, 2.6, -1.2, -2.6]), *arm.joint_range)
    pose = np.concatenate([hand_of(arm, np.concatenate([joints, np.zeros(14)])), [0.02, -0.02]])
    solved = arm.joints(pose)
    reached = hand_of(arm, np.concatenate([solved, np.zeros(14)]))
    np.testing.assert_allclose(reached[:3], pose[:3], atol=1e-6)
    assert turn_degrees(reached[3:7], pose[3:7]) < 1e-3


def test_a_start_shot_from_the_last_action_moves_on_as_the_simulator(lift_physics, arm):
    """Solved from two poses and the action between them, the arm's next 4 steps stay within 2 mm of the
    simulator's, closer than from the last step's average velocity. (Later steps part further: the elbow,
    which the hand's pose leaves free, is solved toward the rest posture, not read.)"""
    obs = lift_physics.reset(seed=6)[0]
    rng = np.random.default_rng(1)
    actions = (rng.uniform(-1, 1, (8, 7)) * 0.5).astype(np.float32)
    actions[:, 6] = np.sign(actions[:, 6])
    poses = [obs["agent_pos"]]
    for action in actions:
        poses.append(lift_physics.step(action)[0]["agent_pos"])
    context = torch.tensor(np.stack(poses[2:4]))[None].double()
    errors = {}
    for name, last in (("shot", torch.tensor(actions[2:3])), ("average", None)):
        state = arm.solve(context, last)
        errors[name] = 0.0
        for t in range(3, 7):
            state, hand = arm.step(state, torch.tensor(poses[t][None, 7:9]), torch.tensor(actions[t:t + 1]))
            errors[name] = max(errors[name], float(np.abs(hand[0, :3].numpy() - poses[t + 1][:3]).max()))
    assert errors["shot"] < 2e-3
    assert errors["shot"] < errors["average"]


def test_the_joints_follow_a_hand_the_contact_stop_held_up(arm):
    """A hand stopped 5 mm above where the step took it: the joints put it there, and its downward speed is
    gone while its sideways speed stays."""
    start = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.02, -0.02]]).double()
    state = arm.solve(torch.stack([start, start], dim=1))
    state, hand = arm.step(state, start[:, 7:9], torch.tensor([[0.5, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0]]))
    stopped = torch.cat([hand.double(), start[:, 7:9]], dim=1)
    stopped[0, 2] += 0.005
    moved = arm.follow(state, stopped, stopped[:, 7:9])
    np.testing.assert_allclose(hand_of(arm, moved[0].numpy())[:3], stopped[0, :3].numpy(), atol=1e-4)
    data = arm._pool(1)[0]
    before = arm._jacobian(data) @ state[0, ARM_JOINTS:2 * ARM_JOINTS].numpy()
    arm._load(data, moved[0].numpy(), np.array([0.02, -0.02]))
    mujoco.mj_kinematics(arm.model, data)
    mujoco.mj_comPos(arm.model, data)
    after = arm._jacobian(data) @ moved[0, ARM_JOINTS:2 * ARM_JOINTS].numpy()
    assert before[2] < -0.05 and abs(after[2]) < 1e-3
    assert after[0] == pytest.approx(before[0], abs=0.01)


def test_a_world_model_imagines_with_the_robot_arm(lift_data):
    from wow_gym.data import DatasetReader
    from wow_gym.world_models import WorldModel

    wm = WorldModel.random("dit-test", env_state_dim=10, object_dims=list(range(7)),
                           object_offset_dims=[7, 8, 9], arm_physics=True, finger_rule=True, arm_contact=True)
    ep = DatasetReader(lift_data)[0]
    state = wm.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1],
                     environment_state=ep.environment_state[1:2].copy())
    assert state.arm.shape == (1, STATE_DIM) and state.gripper.shape == (1, 3)
    outs = [wm.step(state, ep.action[t:t + 1]) for t in range(1, 11)]
    # the untrained pose dynamics plays no part: the hand follows the recorded episode within millimetres (its
    # elbow is solved toward the rest posture, not read)
    worst = max(np.abs(o.agent_pos[0, :3] - ep.agent_pos[t + 2, :3]).max() for t, o in enumerate(outs))
    assert worst < 3e-3
    assert state.select([0, 0]).arm.shape == (2, STATE_DIM)
    wm.config.arm_physics = False
    plain = wm.start(ep.pixels[None, :1], ep.agent_pos[None, :1],
                     environment_state=ep.environment_state[:1].copy())
    wm.config.arm_physics = True
    with pytest.raises(ValueError, match="without the robot arm's state"):
        wm.step(plain, ep.action[:1])


def test_the_imagined_env_takes_the_robot_arm_as_an_option(lift_data):
    from wow_gym.data import DatasetReader
    from wow_gym.envs.imagined_env import ImaginedVectorEnv
    from wow_gym.world_models import WorldModel

    wm = WorldModel.random("dit-test", env_state_dim=10, object_dims=list(range(7)),
                           object_offset_dims=[7, 8, 9], arm_contact=True)
    ep = DatasetReader(lift_data)[0]
    env = ImaginedVectorEnv(num_envs=2, model=wm, reward_model="state", max_episode_steps=6,
                            world_model_options={"arm_physics": True, "finger_rule": True})
    assert wm.config.arm_physics and wm.config.finger_rule
    env.reset(seed=0, options={"episode": [ep, ep], "start": 1})
    for t in range(1, 6):
        observation, *_ = env.step(np.repeat(ep.action[t:t + 1], 2, axis=0))
        # the untrained pose dynamics plays no part: both hands follow the recorded episode
        assert np.abs(observation["agent_pos"][:, :3] - ep.agent_pos[t + 1, :3]).max() < 3e-3
    arm = env.batch.imagination.state.arm.clone()
    _, _, _, truncated, _ = env.step(np.zeros((2, 7), np.float32))
    restarted = env.batch.imagination.state.arm  # both rows restarted from a fresh layout, their arms solved
    assert truncated.all() and restarted.shape == (2, STATE_DIM) and not torch.equal(restarted, arm)
    with pytest.raises(ValueError, match="world_model_options set the shipped DiT's sampler"):
        ImaginedVectorEnv(num_envs=1, backend="copy-last", world_model_options={"arm_physics": True})

"""The robot's own arm in imagination (arm_physics): robosuite's controller stepped for a batch of arm states
against the simulator's own arm, the start solved from agent_pos, fingers on the cube, and a world model that
imagines with it."""

import numpy as np
import pytest
import torch

from wow_gym.tasks.lift import CUBE_HALF_EXTENTS
from wow_gym.world_models.video.arm import COMMAND, POSTURE, STATE_DIM, PhysicsArm, _quat_matrix_xyzw
from wow_gym.world_models.video.fingers import infer_gripper


@pytest.fixture(scope="module")
def arm():
    return PhysicsArm("Lift")


def exact_state(env) -> torch.Tensor:
    """The simulator's own arm state: joints, velocities, the controller's posture target, fingers,
    command."""
    data, robot = env.data, env.robosuite.robots[0]
    posture = robot.composite_controller.part_controllers["right"].initial_joint
    command = np.atleast_1d(robot.gripper["right"].current_action)[:1]
    parts = [data.qpos[:7], data.qvel[:7], posture, data.qvel[7:9], command]
    return torch.tensor(np.concatenate(parts))[None]


def test_the_arm_steps_as_the_simulated_one(lift_physics, arm):
    """From the simulator's exact state, 20 steps of sweeping actions (position, turn, grip) above the table:
    the same hand, to a fraction of a millimetre."""
    obs = lift_physics.reset(seed=4)[0]
    state = exact_state(lift_physics)
    pose = torch.tensor(obs["agent_pos"])[None].double()
    cube = torch.tensor(obs["environment_state"][:7])[None].double()
    rng = np.random.default_rng(0)
    worst = 0.0
    for t in range(20):
        action = np.concatenate([rng.uniform(-1, 1, 3) * [1, 1, 0.3] + [0, 0, 0.3], rng.uniform(-0.5, 0.5, 3),
                                 [1.0 if t >= 10 else -1.0]]).astype(np.float32)
        obs = lift_physics.step(action)[0]
        state, pose = arm.step(state, pose[:, 7:9], cube, torch.tensor(action)[None])
        worst = max(worst, float(np.abs(pose[0, :3].numpy() - obs["agent_pos"][:3]).max()))
        turn = _quat_matrix_xyzw(pose[0, 3:7].double().numpy()) @ _quat_matrix_xyzw(obs["agent_pos"][3:7]).T
        assert np.degrees(np.arccos(np.clip((np.trace(turn) - 1) / 2, -1, 1))) < 0.1
        np.testing.assert_allclose(pose[0, 7:9].numpy(), obs["agent_pos"][7:9], atol=3e-4)
    assert worst < 1e-4, f"the hand strays {worst * 1000:.2f} mm from the simulated one"
    assert state[0, COMMAND].item() == pytest.approx(-1.0)  # ten closing steps of 0.2 from +1


def test_the_start_is_solved_from_two_poses(lift_physics, arm):
    obs = lift_physics.reset(seed=5)[0]
    before = obs["agent_pos"]
    after = lift_physics.step(np.array([0.5, -0.3, 0.2, 0.1, 0.0, -0.2, -1.0], np.float32))[0]["agent_pos"]
    poses = torch.tensor(np.stack([before, after]))[None].double()
    state = arm.solve(poses, infer_gripper(poses.float(), None))
    assert state.shape == (1, STATE_DIM)
    data = arm._pool(1)[0]
    arm._load(data, state[0].numpy(), after[7:9], None)
    import mujoco

    mujoco.mj_kinematics(arm.model, data)
    np.testing.assert_allclose(arm.pose(data)[:3], after[:3], atol=1e-6)
    np.testing.assert_allclose(np.abs(arm.pose(data)[3:7] @ after[3:7]), 1.0, atol=1e-6)
    np.testing.assert_allclose(state[0, POSTURE].numpy(), arm.rest_posture)
    # the joints move the hand as the last step did, on average: positive where the pose rose
    hand = arm._jacobian(data) @ state[0, 7:14].numpy()
    np.testing.assert_allclose(hand[:3], (after[:3] - before[:3]) * 20, atol=1e-6)


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
    gripper = infer_gripper(context.float(), torch.tensor(actions[2:3, -1]))
    errors = {}
    for name, last in (("shot", torch.tensor(actions[2:3])), ("average", None)):
        state, pose = arm.solve(context, gripper, last), context[:, -1]
        errors[name] = 0.0
        for t in range(3, 7):
            state, pose = arm.step(state, pose[:, 7:9], None, torch.tensor(actions[t:t + 1]))
            errors[name] = max(errors[name], float(np.abs(pose[0, :3].numpy() - poses[t + 1][:3]).max()))
    assert errors["shot"] < 2e-3
    assert errors["shot"] < errors["average"]


@pytest.mark.parametrize(("offset", "held"), [(0.0, True), (0.04, False)])
def test_the_fingers_close_on_the_cube_and_past_it(arm, offset, held):
    """Fingers open around the cube close to its width; with the cube beside the pads they close past it."""
    start = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.039, -0.039]]).double()  # hand pointing down
    poses = torch.cat([start, start])[None]
    state = arm.solve(poses, infer_gripper(poses.float(), None))
    pose = start
    data = arm._pool(1)[0]
    arm._load(data, state[0].numpy(), pose[0, 7:9].numpy(), None)
    import mujoco

    mujoco.mj_kinematics(arm.model, data)
    across = data.xmat[arm.hand].reshape(3, 3)[:, 1]  # the fingers close along the hand's y axis
    rest = 0.8 + CUBE_HALF_EXTENTS[2]
    tips = data.site_xpos[arm.site] + np.array([0.0, 0.0, -0.01])
    cube = torch.tensor([[*(tips[:2] + across[:2] * offset), rest, 0.0, 0.0, 0.0, 1.0]]).double()
    # lower the open hand so that the pads reach 2 cm down the cube, hold, then close
    for t in range(60):
        down = np.clip((rest + 0.0 - pose[0, 2].item()) * 10, -1, 1)
        action = torch.tensor([[0.0, 0.0, down, 0.0, 0.0, 0.0, 1.0 if t >= 30 else -1.0]])
        state, pose = arm.step(state, pose[:, 7:9], cube, action)
    gap = (pose[0, 7] - pose[0, 8]).item()
    if held:
        assert gap == pytest.approx(2 * CUBE_HALF_EXTENTS[1], abs=0.003)
    else:
        assert gap < 0.01


def test_a_cube_turned_to_the_fingers_is_squared_to_them(arm):
    start = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.039, -0.039]]).double()
    poses = torch.cat([start, start])[None]
    state = arm.solve(poses, infer_gripper(poses.float(), None))
    half = np.radians(40) / 2  # the cube turned 40 degrees about the vertical, xyzw
    cube = np.array([[0.0, 0.0, 0.82, 0.0, 0.0, np.sin(half), np.cos(half)]])
    squared = arm.squared(cube, state)
    data = arm._pool(1)[0]
    data.qpos[:7] = state[0, :7].numpy()
    import mujoco

    mujoco.mj_kinematics(arm.model, data)
    hand = data.xmat[arm.hand].reshape(3, 3)
    box = _quat_matrix_xyzw(squared[0, 3:7])
    heading = np.degrees(np.arctan2(hand[1, 0], hand[0, 0]) - np.arctan2(box[1, 0], box[0, 0]))
    assert min(abs(heading % 90), 90 - abs(heading % 90)) < 1e-6
    np.testing.assert_array_equal(squared[:, :3], cube[:, :3])


def test_a_world_model_imagines_with_the_robot_arm(lift_data):
    from wow_gym.data import DatasetReader
    from wow_gym.world_models import WorldModel

    with pytest.raises(ValueError, match="arm_physics needs object_dims"):
        WorldModel.random("dit-test", env_state_dim=10, arm_physics=True)
    wm = WorldModel.random("dit-test", env_state_dim=10, object_dims=list(range(7)),
                           object_offset_dims=[7, 8, 9], arm_physics=True)
    ep = DatasetReader(lift_data)[0]
    state = wm.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1],
                     environment_state=ep.environment_state[1:2].copy())
    assert state.arm.shape == (1, STATE_DIM) and state.gripper.shape == (1, 0)
    outs = [wm.step(state, ep.action[t:t + 1]) for t in range(1, 11)]
    # the untrained pose dynamics plays no part: the hand follows the recorded episode within millimetres (the
    # start's joint velocities come from the context's average velocity, its elbow from the rest posture)
    worst = max(np.abs(o.agent_pos[0, :3] - ep.agent_pos[t + 2, :3]).max() for t, o in enumerate(outs))
    assert worst < 5e-3
    assert state.select([0, 0]).arm.shape == (2, STATE_DIM)
    wm.config.arm_physics = False
    plain = wm.start(ep.pixels[None, :1], ep.agent_pos[None, :1],
                     environment_state=ep.environment_state[:1].copy())
    wm.config.arm_physics = True
    with pytest.raises(ValueError, match="without the robot arm's state"):
        wm.step(plain, ep.action[:1])

"""The finger rule: its constants against the simulator's gripper, its fingers against the simulator's closing
on the cube and beside it, and a world model that imagines with it."""

import mujoco
import numpy as np
import pytest
import torch

from wow_gym.envs.robosuite_env import CONTROL_FREQ, RobosuiteEnv
from wow_gym.tasks.lift import CUBE_HALF_EXTENTS
from wow_gym.world_models.video import fingers
from wow_gym.world_models.video.fingers import command_step, finger_step, infer_gripper, push_between
from wow_gym.world_models.video.object_layer import quat_matrix

EXTENTS = torch.tensor(CUBE_HALF_EXTENTS)


def test_the_constants_are_the_simulated_gripper(lift_physics):
    m = lift_physics.model
    for finger in ("finger_joint1", "finger_joint2"):
        joint, actuator = finger, f"gripper_{finger}"
        j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"gripper0_right_{joint}")
        a = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"gripper0_right_{actuator}")
        dof = m.jnt_dofadr[j]
        assert m.dof_damping[dof] == fingers.DAMPING
        assert m.dof_frictionloss[dof] == fingers.FRICTION_LOSS
        assert m.actuator_gainprm[a, 0] == fingers.KP
        assert tuple(np.abs(m.actuator_forcerange[a])) == (fingers.FORCE_LIMIT, fingers.FORCE_LIMIT)
        assert np.ptp(m.jnt_range[j]) == pytest.approx(fingers.RANGE)
        # the joint's inertia: armature, then the finger and its pad
        body = m.jnt_bodyid[j]
        moved = m.body_mass[body] + m.body_mass[m.body_parentid == body].sum()
        assert m.dof_armature[dof] + moved == pytest.approx(fingers.MASS)
    assert m.opt.timestep == fingers.TIMESTEP
    assert round(1 / CONTROL_FREQ / m.opt.timestep) == fingers.SUBSTEPS
    gripper = lift_physics.robosuite.robots[0].gripper["right"]
    assert gripper.speed == fingers.SPEED


def observe(obs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    pose = torch.tensor(obs["agent_pos"])[None].float()
    return pose, torch.tensor(obs["environment_state"][:7])[None].float()


def drive(env: RobosuiteEnv, obs: dict[str, np.ndarray], target: np.ndarray, grips: list[float]
          ) -> tuple[dict[str, np.ndarray], list[torch.Tensor], torch.Tensor]:
    """Steps from `obs` with proportional OSC moves toward `target` (x, y, z) and the grip actions `grips`:
    the last observation, the simulator's agent_pos before and after each step, and the actions."""
    poses, actions = [observe(obs)[0]], []
    for grip in grips:
        action = np.zeros(7, np.float32)
        action[:3] = np.clip((target - poses[-1][0, :3].numpy()) * 15, -1, 1)
        action[6] = grip
        obs = env.step(action)[0]
        poses.append(observe(obs)[0])
        actions.append(torch.tensor(action)[None])
    return obs, poses, torch.cat(actions)


def run_rule(poses: list[torch.Tensor], actions: torch.Tensor, cube: torch.Tensor, turned: bool = False
             ) -> torch.Tensor:
    """The rule's finger gaps [T] along the simulator's arm, open loop from the first pose (an episode's
    start); `turned`: the rule takes the cube's turn (grip_turn)."""
    gripper = infer_gripper(poses[0][:, None].expand(-1, 2, -1), None)
    now, gaps = poses[0], []
    for t, arm in enumerate(poses[1:]):
        now, gripper = finger_step(now, arm.clone(), gripper, actions[t:t + 1, 6], cube, EXTENTS, turned)
        gaps.append(now[0, 7] - now[0, 8])
    return torch.stack(gaps)


def test_free_fingers_follow_the_simulated_ones_open_loop(lift_physics):
    obs = lift_physics.reset(seed=0)[0]
    pose, cube = observe(obs)
    # far above the cube: open, close, hesitate (0 leaves the command), open again
    grips = [-1.0] * 12 + [1.0] * 12 + [0.0] * 3 + [-0.3] * 10
    _, poses, actions = drive(lift_physics, obs, pose[0, :3].numpy() + np.array([0.0, 0.0, 0.05]), grips)
    gaps = run_rule(poses, actions, cube)
    simulated = torch.stack([p[0, 7] - p[0, 8] for p in poses[1:]])
    assert (gaps - simulated).abs().max().item() < 0.002
    assert simulated.min().item() < 0.005 and simulated.max().item() > 0.075  # it did close and open fully


def test_fingers_close_on_a_cube_between_them_and_past_one_beside_them(lift_physics):
    # the pads (8.7 mm half width) overlap the 21 mm cube by 9.7 / 2.7 mm at 20 / 27 mm off centre: the
    # simulator holds the first and squeezes the second out, the near miss the rule must tell from a grasp
    for offset, held in ((0.0, True), (0.02, True), (0.027, False), (0.04, False)):
        obs = lift_physics.reset(seed=3)[0]
        pose, cube = observe(obs)
        across = quat_matrix(pose[:, 3:7])[0, :, 0].numpy()  # the pads' width axis
        # open above the cube (moved `offset` along the pads' width), down around it, then close
        beside = cube[0, :3].numpy() + across * offset
        obs, poses, actions = drive(lift_physics, obs, beside + np.array([0.0, 0.0, 0.06]), [-1.0] * 25)
        _, down, more = drive(lift_physics, obs, beside, [-1.0] * 25 + [1.0] * 15)
        poses, actions = poses + down[1:], torch.cat([actions, more])
        gaps = run_rule(poses, actions, cube)
        simulated = poses[-1][0, 7] - poses[-1][0, 8]
        width = 2 * CUBE_HALF_EXTENTS[1]
        if held:
            assert simulated.item() == pytest.approx(width, abs=0.003), "the simulator grips the cube"
            assert gaps[-1].item() == pytest.approx(width, abs=0.003)
        else:
            assert simulated.item() < 0.02, "the simulator closes past the cube"
            assert gaps[-1].item() < 0.02


def test_the_command_steps_toward_the_action_sign_and_is_read_off_resting_fingers():
    command = torch.tensor([0.0, 1.0, -1.0, 0.4])
    assert torch.allclose(command_step(command, torch.tensor([1.0, -0.2, 0.7, 0.0])),
                          torch.tensor([-0.2, 1.0, -1.0, 0.4]))
    # an episode's start (robosuite's reset: command 0, fingers at 20.8 mm), fully open, fully closed
    poses = torch.zeros(3, 2, 9)
    poses[:, :, 7] = torch.tensor([0.0208, 0.039, 0.0])[:, None]
    poses[:, :, 8] = -poses[:, :, 7]
    assert torch.allclose(infer_gripper(poses, None)[:, 0], torch.tensor([0.0, 1.0, -1.0]))
    # fingers stopped on a cube under a closing action: fully closed
    held = poses[:1].clone()
    held[:, :, 7], held[:, :, 8] = 0.021, -0.021
    assert infer_gripper(held, torch.tensor([1.0]))[0, 0].item() == -1.0
    assert infer_gripper(held, torch.tensor([-1.0]))[0, 0].item() == pytest.approx(0.0, abs=1e-6)


def test_closing_fingers_push_the_cube_between_them_and_off_the_pads_edge():
    # the gripper pointing down at the origin (local y = world y, local z = world down)
    pose = torch.zeros(1, 9)
    pose[0, 3:7] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # 180 degrees about x
    pose[0, 7], pose[0, 8] = 0.025, -0.025  # 50 mm apart
    cube = torch.tensor([[0.0, -0.01, 0.0, 0.0, 0.0, 0.0, 1.0]])  # 10 mm toward finger 1, between the pads
    rotation = quat_matrix(pose[:, 3:7])[0]
    assert torch.allclose(rotation[:, 1], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    pushed = push_between(pose, pose, cube, EXTENTS)
    local = rotation.T @ (pushed[0, :3] - pose[0, :3])
    assert local[1].item() == pytest.approx(0.025 - CUBE_HALF_EXTENTS[1], abs=1e-6)  # against finger 1's face
    # a cube overlapping the pads across by 3 mm (less than OVERLAP_ACROSS), fingers closed past its width
    edge = fingers.TIP_HALF_WIDTH + CUBE_HALF_EXTENTS[0]
    pose[0, 7], pose[0, 8] = 0.01, -0.01
    grazed = cube.clone()
    grazed[0, :3] = pose[0, :3] + rotation @ torch.tensor([edge - 0.003, 0.0, 0.0])
    out = rotation.T @ (push_between(pose, pose, grazed, EXTENTS)[0, :3] - pose[0, :3])
    assert out[0].item() == pytest.approx(edge, abs=1e-6)
    # well away from the gripper nothing moves
    far = cube.clone()
    far[0, 0] = 0.2
    assert torch.equal(push_between(pose, pose, far, EXTENTS), far)


def test_a_world_model_imagines_with_the_finger_rule(lift_data):
    from wow_gym.data import DatasetReader
    from wow_gym.world_models import WorldModel

    with pytest.raises(ValueError, match="finger_rule needs object_dims"):
        WorldModel.random("dit-test", env_state_dim=10, finger_rule=True)
    wm = WorldModel.random("dit-test", env_state_dim=10, object_dims=list(range(7)),
                           object_offset_dims=[7, 8, 9], finger_rule=True)
    ep = DatasetReader(lift_data)[0]
    state = wm.start(ep.pixels[None, :1], ep.agent_pos[None, :1],
                     environment_state=ep.environment_state[:1].copy())
    assert state.gripper.shape == (1, 3)
    close = np.zeros((1, 7), np.float32)
    close[0, 6] = 1.0
    for _ in range(3):
        out = wm.step(state, close)
    assert state.gripper[0, 0].item() == pytest.approx(-0.6)  # three steps of closing from the reset's 0
    # the episode starts high above the cube: the fingers close freely, as the servo alone moves them,
    # whatever the untrained pose dynamics says
    opening = torch.tensor(ep.agent_pos[:1, 7:9]).float() * torch.tensor([1.0, -1.0])
    velocity = torch.zeros(1, 2)
    for command in (-0.2, -0.4, -0.6):
        opening, velocity = fingers.servo(opening, velocity, torch.tensor([command]))
    assert out.agent_pos[0, 7] == pytest.approx(opening[0, 0].item(), abs=1e-5)
    assert out.agent_pos[0, 8] == pytest.approx(-opening[0, 1].item(), abs=1e-5)
    assert out.agent_pos[0, 7] < ep.agent_pos[0, 7] - 0.004
    assert state.select([0, 0]).gripper.shape == (2, 3)


def test_fingers_gripping_a_cube_stay_where_they_found_it():
    # the gripper pointing down, fingers on a cube a little smaller than the nominal one (40.9 mm, off centre)
    pose = torch.zeros(1, 9)
    pose[0, 3:7] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    pose[0, 7], pose[0, 8] = 0.0208, -0.0201
    cube = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    gripper = torch.tensor([[-1.0, 0.0, 0.0]])  # closing
    held, after = finger_step(pose, pose.clone(), gripper, torch.ones(1), cube, EXTENTS)
    assert torch.equal(held[0, 7:9], pose[0, 7:9])
    assert after[0, 0].item() == -1.0
    assert torch.equal(push_between(pose, held, cube, EXTENTS), cube)  # a gripped cube is not re-centred
    # opening lets go
    opening = torch.tensor([[1.0, 0.0, 0.0]])
    opened, _ = finger_step(pose, pose.clone(), opening, -torch.ones(1), cube, EXTENTS)
    assert opened[0, 7] - opened[0, 8] > pose[0, 7] - pose[0, 8] + 0.005


def test_the_rule_never_opens_fingers_around_a_cube_inside_them():
    # closed fingers with a cube centred between them (a drifted arm or a misread start): they stay closed
    pose = torch.zeros(1, 9)
    pose[0, 3:7] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    cube = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    closing = torch.tensor([[-1.0, 0.0, 0.0]])
    closed, _ = finger_step(pose, pose.clone(), closing, torch.ones(1), cube, EXTENTS)
    assert closed[0, 7].item() == 0.0 and closed[0, 8].item() == 0.0
    # the same cube between open fingers stops them at its width
    pose[0, 7], pose[0, 8] = 0.03, -0.03
    gripper = torch.tensor([[-1.0, 0.0, 0.0]])
    for _ in range(5):
        pose, gripper = finger_step(pose, pose.clone(), gripper, torch.ones(1), cube, EXTENTS)
    assert (pose[0, 7] - pose[0, 8]).item() == pytest.approx(2 * CUBE_HALF_EXTENTS[1], abs=1e-6)


def test_a_resting_object_reads_at_its_rest_height_for_the_rule(lift_data):
    from wow_gym.world_models import WorldModel

    wm = WorldModel.random("dit-test", env_state_dim=10, object_dims=list(range(7)),
                           object_offset_dims=[7, 8, 9], finger_rule=True)
    rest, lean = wm.support[:2]
    objects = torch.tensor([[0.0, 0.0, rest + lean / 2, 0, 0, 0, 1], [0.0, 0.0, rest + 3 * lean, 0, 0, 0, 1]])
    settled = wm._settled(objects)
    assert settled[0, 2].item() == pytest.approx(rest)  # drifted up within the lean: on the table
    assert torch.equal(settled[1], objects[1])  # lifted: where it is
    state = wm.start(np.zeros((1, 1, 64, 64, 3), np.uint8), np.zeros((1, 1, 9), np.float32),
                     environment_state=np.zeros((1, 10), np.float32))
    wm.config.finger_rule = False
    plain = wm.start(np.zeros((1, 1, 64, 64, 3), np.uint8), np.zeros((1, 1, 9), np.float32),
                     environment_state=np.zeros((1, 10), np.float32))
    assert plain.gripper.shape == (1, 0)
    wm.config.finger_rule = True
    with pytest.raises(ValueError, match="started without the finger rule"):
        wm.step(plain, np.zeros((1, 7), np.float32))
    state.replace([0], state.select([0]))  # rows carry their gripper state
    assert state.gripper.shape == (1, 3)


def _turned_square_width(turn: float, offset: float, half: float) -> float:
    """The width across the pads' span (TIP_HALF_WIDTH either side of a line `offset` from the square's
    centre) of a square of half-size `half` turned `turn` radians: its boundary sampled densely, the points
    within the span, their spread across. Independent of box_across's closed form."""
    corners = np.array([[half, half], [-half, half], [-half, -half], [half, -half]])
    c, s = np.cos(turn), np.sin(turn)
    corners = corners @ np.array([[c, s], [-s, c]])
    t = np.linspace(0, 1, 20001)[:, None]
    boundary = np.concatenate([a + t * (b - a) for a, b in zip(corners, np.roll(corners, -1, 0))])
    inside = np.abs(boundary[:, 0] - offset) <= fingers.TIP_HALF_WIDTH
    return float(np.ptp(boundary[inside, 1]))


@pytest.mark.parametrize("turn_deg, offset", [(0, 0.0), (30, 0.0), (45, 0.0), (40, 0.01), (20, -0.017),
                                              (35, 0.005), (80, 0.012)])
def test_a_turned_cube_is_as_wide_across_the_pads_as_its_outline_there(turn_deg, offset):
    pose = torch.zeros(1, 9)
    pose[0, 3:7] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # pointing down: local x = world x, local y = -world y
    turn = np.radians(turn_deg)
    cube = torch.tensor([[-offset, 0.0, 0.0, 0.0, 0.0, np.sin(turn / 2), np.cos(turn / 2)]],
                        dtype=torch.float32)
    _, _, width, reach = fingers.box_across(pose, cube, EXTENTS, turned=True)
    half = CUBE_HALF_EXTENTS[0]
    assert width.item() == pytest.approx(_turned_square_width(turn, offset, half), abs=2e-5)
    folded = min(turn_deg % 90, 90 - turn_deg % 90)
    folded = np.radians(folded)
    assert reach.item() == pytest.approx(half * (np.cos(folded) + np.sin(folded)), abs=1e-5)
    # square to the pads unless turned: the cube's side
    _, _, side, _ = fingers.box_across(pose, cube, EXTENTS)
    assert side.item() == pytest.approx(2 * CUBE_HALF_EXTENTS[1])


def test_the_fingers_stop_on_a_turned_cube_where_the_simulated_ones_do(lift_physics):
    # robosuite's fingers close on Lift's cube turned about the vertical at its width across the pads, up to
    # its diagonal, and lift it; the rule with the turn stops them there, without it at the cube's side
    robosuite = lift_physics.robosuite
    for turn, offset in ((30.0, 0.0), (40.0, 0.01), (45.0, 0.0)):
        lift_physics.reset(seed=3)
        qpos = robosuite.sim.data.get_joint_qpos("cube_joint0").copy()  # position, wxyz
        pose, _ = observe(lift_physics.step(np.zeros(7, np.float32))[0])
        gripper = quat_matrix(pose[:, 3:7])[0].numpy()
        yaw = np.arctan2(gripper[1, 0], gripper[0, 0]) + np.radians(turn)  # the pads' width axis, turned
        qpos[3:7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        robosuite.sim.data.set_joint_qpos("cube_joint0", qpos)
        robosuite.sim.forward()
        obs = lift_physics.step(np.zeros(7, np.float32))[0]
        pose, cube = observe(obs)
        beside = cube[0, :3].numpy() + quat_matrix(pose[:, 3:7])[0, :, 0].numpy() * offset
        obs, poses, actions = drive(lift_physics, obs, beside + np.array([0.0, 0.0, 0.06]), [-1.0] * 25)
        obs, down, more = drive(lift_physics, obs, beside, [-1.0] * 25 + [1.0] * 15)
        poses, actions = poses + down[1:], torch.cat([actions, more])
        simulated = (poses[-1][0, 7] - poses[-1][0, 8]).item()
        raised, _, _ = drive(lift_physics, obs, beside + np.array([0.0, 0.0, 0.1]), [1.0] * 20)
        assert raised["environment_state"][2] > cube[0, 2].item() + 0.05, "the simulator lifts the cube"
        width = fingers.box_across(poses[-1], cube, EXTENTS, turned=True)[2].item()
        assert simulated > 2 * CUBE_HALF_EXTENTS[1] + 0.005 and simulated == pytest.approx(width, abs=0.003)
        assert run_rule(poses, actions, cube, turned=True)[-1].item() == pytest.approx(simulated, abs=0.004)
        assert run_rule(poses, actions, cube)[-1].item() < simulated - 0.008  # square to the pads: its side

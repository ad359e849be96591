"""Door's joint rule: the door's kinematics against the simulator's, a gripped lever turning and the door
swinging only past the latch, and a world model that imagines with the rule."""

import mujoco
import numpy as np
import pytest
import torch

from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.registry import task_info
from wow_gym.tasks import door
from wow_gym.tasks.door import CARRIED, door_frame, door_state, joint_step, lever_box
from wow_gym.world_models import WorldModel
from wow_gym.world_models.video.fingers import gripping_box

EXTENTS = torch.tensor(door.LEVER_EXTENTS, dtype=torch.float64)


@pytest.fixture(scope="module")
def door_env():
    env = RobosuiteEnv("door", use_camera=False)
    yield env
    env.close()


def carried(state: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(state, np.float64)[..., list(CARRIED)]).reshape(-1, len(CARRIED))


def set_joints(env: RobosuiteEnv, hinge: float, handle: float) -> np.ndarray:
    """The simulator's environment_state with the door's joints set (kinematics only)."""
    for name, angle in zip(env.robosuite.door.joints[:2], (hinge, handle)):
        env.data.qpos[env.model.jnt_qposadr[env.model.joint(name).id]] = angle
    return np.asarray(env._refresh()["object-state"])


def test_the_constants_are_the_simulated_door(door_env):
    m, rs = door_env.model, door_env.robosuite
    hinge, latch = (m.joint(name) for name in rs.door.joints[:2])
    assert tuple(m.jnt_pos[hinge.id]) == pytest.approx(door.HINGE_ANCHOR)
    assert tuple(m.body_pos[m.jnt_bodyid[latch.id]]) == pytest.approx(door.LATCH_ANCHOR)
    assert tuple(m.jnt_axis[hinge.id]) == pytest.approx((0, 0, 1))
    assert tuple(m.jnt_axis[latch.id]) == pytest.approx((0, 1, 0))
    assert tuple(m.jnt_range[hinge.id]) == pytest.approx(door.HINGE_RANGE)
    assert tuple(m.jnt_range[latch.id]) == pytest.approx(door.HANDLE_RANGE)
    assert door.LONG_GRIP_STOP < door.HANDLE_RANGE[1]  # gripped far out, the lever stops short of its stop
    site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, rs.door.important_sites["handle"])
    assert tuple(m.site_pos[site]) == pytest.approx(door.HANDLE_SITE)
    lever = m.geom(f"{rs.door.naming_prefix}handle")
    assert tuple(m.geom_pos[lever.id]) == pytest.approx(door.LEVER_CENTRE)
    assert tuple(m.geom_size[lever.id][:2]) == pytest.approx((door.LEVER_EXTENTS[0], 0.015))


def test_the_carried_door_is_where_the_simulator_puts_it(door_env):
    """From one reset's state, the door's position and the handle site at other joint angles come out where
    the simulator's kinematics put them; door_frame reads the same hinge anchor off any of those states."""
    for seed in (0, 7):
        obs, _ = door_env.reset(seed=seed)
        start = carried(obs["environment_state"])
        yaw, anchor = door_frame(start)
        for hinge, handle in ((0.2, 0.5), (0.4, 1.38), (0.05, -0.6)):
            state = carried(set_joints(door_env, hinge, handle))
            ours = door_state(yaw, anchor, torch.tensor([hinge], dtype=torch.float64),
                              torch.tensor([handle], dtype=torch.float64))
            torch.testing.assert_close(ours, state, atol=1e-5, rtol=0)
            turned, moved = door_frame(state)
            torch.testing.assert_close(moved, anchor, atol=1e-5, rtol=0)
            assert (turned - yaw).item() == pytest.approx(hinge, abs=1e-5)


def grip_on_lever(state: torch.Tensor) -> torch.Tensor:
    """A hand (agent_pos [1, 9]) with the lever between its fingers 1.5 cm out from its centre (90 mm from
    the latch's axis), closed on it."""
    centre = lever_box(state)[:, :3]
    yaw, _ = door_frame(state)
    along = torch.stack([torch.cos(yaw), torch.sin(yaw), torch.zeros_like(yaw)], dim=-1)  # the lever's length
    hand = torch.zeros(1, 9, dtype=torch.float64)
    hand[:, :3] = centre + 0.015 * along
    # pointing down, the fingers closing across the lever (along the door's normal): the gripper's x along
    # the lever, its y across, its z down
    c, s = np.cos(yaw.item()), np.sin(yaw.item())
    rotation = np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])
    from scipy.spatial.transform import Rotation

    hand[:, 3:7] = torch.tensor(Rotation.from_matrix(rotation).as_quat())
    width = 2 * door.LEVER_EXTENTS[1]
    hand[:, 7], hand[:, 8] = width / 2, -width / 2
    return hand


def circle_step(state: torch.Tensor, hand: torch.Tensor, handle: float, hinge: float) -> torch.Tensor:
    """Where a point held on the lever at `hand` [1, 3] goes with the lever turned by `handle` and the door
    by `hinge`."""
    yaw, anchor = door_frame(state)
    before = door_state(yaw - state[:, 6], anchor, state[:, 6], state[:, 7])
    offset = hand - lever_box(before)[:, :3]
    after = door_state(yaw - state[:, 6], anchor, state[:, 6] + hinge, state[:, 7] + handle)
    # the offset in the lever's frame, turned with the lever and the door
    local = door._rotate(door._rotate(offset, -yaw, "z"), -state[:, 7], "y")
    return lever_box(after)[:, :3] + door._rotate(door._rotate(local, state[:, 7] + handle, "y"),
                                                  yaw + hinge, "z")


def test_a_gripped_lever_turns_and_past_the_latch_the_door_swings(door_env):
    obs, _ = door_env.reset(seed=3)
    state = carried(obs["environment_state"])
    hand = grip_on_lever(state)
    assert gripping_box(hand, lever_box(state), EXTENTS).item()
    opened = hand.clone()
    opened[:, 7], opened[:, 8] = 0.035, -0.035
    assert not gripping_box(opened, lever_box(state), EXTENTS).item()
    held, free = torch.tensor([True]), torch.tensor([False])
    still = torch.zeros(1, 3, dtype=torch.float64)  # no push along the door's arc
    # the hand pushed 3 cm down turns the lever down with it; the hand stays on the lever's circle
    down = hand[:, :3] - torch.tensor([[0.0, 0.0, 0.03]], dtype=torch.float64)
    turned, at = joint_step(state, hand[:, :3], down, held, still)
    assert 0.2 < turned[0, 7].item() < 0.5
    assert turned[0, 6].item() == 0.0
    torch.testing.assert_close(at, circle_step(state, hand[:, :3], turned[0, 7].item(), 0.0), atol=1e-6,
                               rtol=0)
    # pulled along the door's arc with the latch holding (lever at 1.0) the door stays shut and holds the
    # hand; past the latch it swings
    for handle, opens in ((1.0, False), (door.LATCH_FREE + 0.05, True)):
        assert door.LATCH_FREE + 0.05 < door.LATCH_CLEAR
        yaw, anchor = door_frame(state)
        ready = door_state(yaw, anchor, torch.zeros(1, dtype=torch.float64),
                           torch.tensor([handle], dtype=torch.float64))
        grip = circle_step(state, hand[:, :3], handle, 0.0)
        pulled = circle_step(ready, grip, 0.0, 0.1)
        along = (pulled - grip) / (pulled - grip).norm()  # the push along the arc
        weak, _ = joint_step(ready, grip, pulled, held, (door.BREAKAWAY - 0.1) * along)
        assert weak[0, 6].item() == 0.0  # too weak to move the door
        after, at = joint_step(ready, grip, pulled, held, along)
        if opens:  # the hand goes where it pulled, along the door's arc
            assert after[0, 6].item() == pytest.approx(0.1, abs=1e-6)
            torch.testing.assert_close(at, pulled, atol=1e-6, rtol=0)
        else:  # the pull only turns the lever a little further, the hand on its circle
            assert after[0, 6].item() == 0.0
            torch.testing.assert_close(at, circle_step(ready, grip, (after[0, 7] - handle).item(), 0.0),
                                       atol=1e-6, rtol=0)
    # a pull straight up, along the lever turned near upright (radially): the hand stays where the point it
    # holds goes, which the lever and door barely move
    ajar = door_state(yaw, anchor, torch.tensor([0.2], dtype=torch.float64),
                      torch.tensor([1.3], dtype=torch.float64))
    grip = circle_step(state, hand[:, :3], 1.3, 0.2)
    out = grip + torch.tensor([[0.0, 0.0, 0.05]], dtype=torch.float64)
    after, at = joint_step(ajar, grip, out, held, still)
    turned_by, swung_by = (after[0, 7] - 1.3).item(), (after[0, 6] - 0.2).item()
    torch.testing.assert_close(at, circle_step(ajar, grip, turned_by, swung_by), atol=1e-6, rtol=0)
    assert (at - out).norm().item() > 0.04
    # turned past CAGE_TURN the lever is caged in a hand near it (the fingers may close under it), not before
    turned_hand = hand.clone()
    turned_hand[:, :3] = circle_step(state, hand[:, :3], door.CAGE_TURN + 0.1, 0.0)
    turned_lever = door_state(yaw, anchor, torch.zeros(1, dtype=torch.float64),
                              torch.tensor([door.CAGE_TURN + 0.1], dtype=torch.float64))
    assert door.lever_caged(turned_lever, turned_hand).item()
    assert not door.lever_caged(state, hand).item()
    away = turned_hand.clone()
    away[:, 2] += 0.1
    assert not door.lever_caged(turned_lever, away).item()
    # with the lever past LATCH_CLEAR the latch no longer rubs: a lighter pull moves the door, a weaker not
    clear = door.LATCH_CLEAR + 0.05
    ready = door_state(yaw, anchor, torch.zeros(1, dtype=torch.float64),
                       torch.tensor([clear], dtype=torch.float64))
    grip = circle_step(state, hand[:, :3], clear, 0.0)
    pulled = circle_step(ready, grip, 0.0, 0.05)
    along = (pulled - grip) / (pulled - grip).norm()
    light = door.LATCH_CLEAR_BREAKAWAY
    for push, opens in ((light + 0.05, True), (light - 0.05, False)):
        after, _ = joint_step(ready, grip, pulled, held, push * along)
        assert (after[0, 6].item() > 0.04) == opens
    # gripped further out than SHORT_GRIP the lever stops at LONG_GRIP_STOP; one already past stays there
    far = hand.clone()
    far[:, :3] = hand[:, :3] + 0.02 * (lever_box(state)[:, :3] - hand[:, :3]).neg() / 0.015
    for start, stop in ((1.2, door.LONG_GRIP_STOP), (1.5, 1.5)):
        turned_to = door_state(yaw, anchor, torch.zeros(1, dtype=torch.float64),
                               torch.tensor([start], dtype=torch.float64))
        grip = circle_step(state, far[:, :3], start, 0.0)
        deeper = circle_step(turned_to, grip, 0.3, 0.0)
        after, _ = joint_step(turned_to, grip, deeper, held, still)
        assert after[0, 7].item() == pytest.approx(stop, abs=1e-6)
    # once the door is ajar the pull turns such a lever on past the stop
    swinging = door_state(yaw, anchor, torch.tensor([0.1], dtype=torch.float64),
                          torch.tensor([1.2], dtype=torch.float64))
    grip = circle_step(state, far[:, :3], 1.2, 0.1)
    after, _ = joint_step(swinging, grip, circle_step(swinging, grip, 0.3, 0.0), held, still)
    assert after[0, 7].item() > door.LONG_GRIP_STOP + 0.1
    # a batch: each row by its own grip
    both = torch.cat([state, state])
    after, at = joint_step(both, torch.cat([hand[:, :3]] * 2), torch.cat([down] * 2),
                           torch.tensor([True, False]), torch.cat([still] * 2))
    torch.testing.assert_close(after[0], turned[0])
    assert after[1, 7].item() == 0.0
    torch.testing.assert_close(at[1], down[0])
    # let go: the lever springs back, the door drifts shut, the hand goes where the arm took it
    after, at = joint_step(ajar, grip, out, free, still)
    assert after[0, 7].item() == pytest.approx(1.3 - door.SPRING_BACK)
    assert after[0, 6].item() == pytest.approx(0.2 - door.DOOR_DRIFT)
    torch.testing.assert_close(at, out)


def door_model(**options) -> WorldModel:
    model = WorldModel.random("dit-test", task="Door", instruction=task_info("door").instruction,
                              env_state_dim=14, object_dims=list(CARRIED), object_offset_dims=[10, 11, 12],
                              object_quaternion=False)
    model.set_options(options)
    return model


def test_the_joint_rule_is_checked():
    with pytest.raises(ValueError, match="turn finger_rule on too"):
        door_model(joint_rule=True)
    lift = WorldModel.random("dit-test", env_state_dim=10, object_dims=list(range(7)),
                             object_offset_dims=[7, 8, 9])
    with pytest.raises(ValueError, match="joint_rule=true needs"):
        lift.set_options({"finger_rule": True, "joint_rule": True})


def latch_radius(agent_pos: np.ndarray, state: np.ndarray) -> float:
    """The grip site's distance (metres) from the latch's axis, in the door body's frame."""
    objects = carried(state)
    yaw, _ = door_frame(objects)
    local = door._rotate(torch.tensor(agent_pos[None, :3], dtype=torch.float64) - objects[:, 3:6], -yaw, "z")
    offset = local[0] - torch.tensor(door.LATCH_ANCHOR, dtype=torch.float64)
    return float(offset[[0, 2]].norm())


def test_imagination_turns_a_gripped_lever_with_the_robot_arm(door_env):
    """The robot's own arm pushing down with its fingers closed on the lever turns the imagined lever, the
    door held shut by its latch, and the hand stays on the lever's circle, gripping it."""
    obs, _ = door_env.reset(seed=3)
    state = np.asarray(obs["environment_state"], np.float64)
    hand = grip_on_lever(carried(state))
    agent_pos = np.asarray(obs["agent_pos"], np.float64)[None].copy()
    agent_pos[:, :3] = hand[:, :3].numpy()
    agent_pos[:, 7:9] = hand[:, 7:9].numpy()
    state[10:13] = state[3:6] - agent_pos[0, :3]
    push = np.array([[0.0, 0.0, -0.6, 0.0, 0.0, 0.0, 1.0]], np.float32)
    model = door_model(finger_rule=True, arm_physics=True, joint_rule=True)
    size = model.config.image_size
    imagined = model.start(np.zeros((1, 1, size, size, 3), np.uint8), agent_pos[:, None].astype(np.float32),
                           environment_state=state[None].astype(np.float32))
    for _ in range(4):
        out = model.step(imagined, push)
    assert out.environment_state[0, door.HANDLE_ANGLE] > 0.2
    # the robot's arm follows the hand the lever holds
    arm = model.physics_arm
    data = arm._pool(1)[0]
    arm._load(data, imagined.arm.double().numpy()[0], out.agent_pos[0, 7:9].astype(np.float64))
    mujoco.mj_kinematics(arm.model, data)
    assert np.linalg.norm(data.site_xpos[arm.site] - out.agent_pos[0, :3]) < 1e-3
    # the rule runs in float32 under the DiT's bf16 autocast too: the same state
    model.autocast = True
    again = model.start(np.zeros((1, 1, size, size, 3), np.uint8), agent_pos[:, None].astype(np.float32),
                        environment_state=state[None].astype(np.float32))
    for _ in range(4):
        under = model.step(again, push)
    np.testing.assert_allclose(under.environment_state, out.environment_state, atol=1e-5)
    assert out.environment_state[0, door.HINGE_ANGLE] == 0.0
    assert latch_radius(out.agent_pos[0], out.environment_state[0]) == pytest.approx(
        latch_radius(agent_pos[0], state), abs=1e-3)
    assert gripping_box(torch.tensor(out.agent_pos, dtype=torch.float64),
                        lever_box(carried(out.environment_state)), EXTENTS).item()

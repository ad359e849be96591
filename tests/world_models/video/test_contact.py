"""Arm contact in imagination: the fingertip geometry against the simulator's gripper meshes, and the stop
against the real simulator's arm pressing a finger down on the cube's top."""

import mujoco
import numpy as np
import pytest
import torch

from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.tasks.lift import CUBE_HALF_EXTENTS, TABLE_HEIGHT
from wow_gym.world_models.video import contact
from wow_gym.world_models.video.contact import contact_stop, fingertips
from wow_gym.world_models.video.object_layer import quat_matrix

EXTENTS = torch.tensor(CUBE_HALF_EXTENTS)


def observe(obs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """agent_pos [1, 9] and the cube's pose [1, 7] of an observation."""
    return (torch.tensor(obs["agent_pos"])[None].double(),
            torch.tensor(obs["environment_state"][:7])[None].double())


def test_fingertips_are_the_lowest_corners_of_the_simulated_fingers(lift_physics):
    pose, _ = observe(lift_physics.reset(seed=0)[0])
    m, d = lift_physics.model, lift_physics.data
    tips = fingertips(pose.float())[0].numpy()  # [8, 3]
    rotation = quat_matrix(pose[:, 3:7].float())[0].numpy()
    for finger, corners in (("finger1", tips[:4]), ("finger2", tips[4:])):
        geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"gripper0_right_{finger}_collision")
        mesh = m.geom_dataid[geom]
        start, count = m.mesh_vertadr[mesh], m.mesh_vertnum[mesh]
        world = m.mesh_vert[start:start + count] @ d.geom_xmat[geom].reshape(3, 3).T + d.geom_xpos[geom]
        local = (world - pose[0, :3].numpy()) @ rotation  # the gripper's frame
        mine = (corners - pose[0, :3].numpy()) @ rotation
        # the tip plane: the finger's farthest point along the approach
        assert mine[:, 2].max() == pytest.approx(local[:, 2].max(), abs=5e-4)
        tip = local[local[:, 2] > local[:, 2].max() - 0.004]  # the mesh's tip face
        assert mine[:, 0].min() == pytest.approx(tip[:, 0].min(), abs=1e-3)
        assert mine[:, 0].max() == pytest.approx(tip[:, 0].max(), abs=1e-3)
        inner, outer = np.abs(tip[:, 1]).min(), np.abs(tip[:, 1]).max()
        assert np.abs(mine[:, 1]).min() == pytest.approx(inner, abs=1e-3)
        assert np.abs(mine[:, 1]).max() == pytest.approx(outer, abs=1.5e-3)


def press(env: RobosuiteEnv, obs: dict[str, np.ndarray], target: np.ndarray, steps: int, down: float = 0.0
          ) -> dict[str, np.ndarray]:
    """Drive the open gripper from `obs` to `target` (x, y, z) with proportional OSC actions, pushing `down`
    in z; the last observation."""
    for _ in range(steps):
        pose, _ = observe(obs)
        action = np.zeros(7, np.float32)
        action[:3] = np.clip((target - pose[0, :3].numpy()) * 15, -1, 1)
        if down:
            action[2] = -down
        action[6] = -1.0  # open
        obs = env.step(action)[0]
    return obs


def test_the_stop_holds_a_finger_on_the_cube_top_where_the_simulator_does(lift_physics):
    obs = lift_physics.reset(seed=3)[0]
    pose, cube = observe(obs)
    obs = press(lift_physics, obs, pose[0, :3].numpy(), 10)  # open the fingers where the arm is
    pose, cube = observe(obs)
    # one finger's tip over the middle of the cube's top, the other beyond it: open fingers are 8 cm apart
    above = cube[0, :3].numpy() + np.array([0.0, 0.0, 0.08])
    finger_axis = quat_matrix(pose[:, 3:7].float())[0, :, 1].numpy()
    above -= finger_axis * (pose[0, 7].item() + 0.004)
    obs = press(lift_physics, obs, above, 40)
    pose, cube = observe(press(lift_physics, obs, above, 30, down=0.5))
    z = pose[0, 2].item()
    top = cube[0, 2].item() + CUBE_HALF_EXTENTS[2]
    assert fingertips(pose.float())[0, :, 2].min().item() > top - 0.015, "the finger rests on the top"
    # the learned step would carry the arm on down 5 mm; the rule stops it within 3 mm of where MuJoCo
    # holds it
    start = pose.clone()
    start[0, 2] = z + 0.004  # the arm a little above its rest, coming down
    lower = start.clone()
    lower[0, 2] = z - 0.005
    stopped = contact_stop(start.float(), lower.float(), cube.float(), EXTENTS, TABLE_HEIGHT)
    assert stopped[0, 2].item() == pytest.approx(z, abs=0.003)
    assert stopped[0, 2].item() > lower[0, 2].item() + 0.004


def test_fingers_beside_the_cube_and_an_arm_going_up_are_untouched(lift_physics):
    pose, cube = observe(lift_physics.reset(seed=3)[0])
    # the open gripper centred over the cube: both fingers outside its faces, going down past its top
    now = pose.clone()
    now[0, :3] = cube[0, :3] + torch.tensor([0.0, 0.0, 0.03], dtype=now.dtype)
    now[0, 7:] = torch.tensor([0.04, -0.04])  # open
    nxt = now.clone()
    nxt[0, 2] -= 0.02
    stopped = contact_stop(now.float(), nxt.float(), cube.float(), EXTENTS, TABLE_HEIGHT)
    assert torch.equal(stopped, nxt.float())
    # going up, nothing is cut, even from inside the table
    low = now.clone()
    low[0, 2] = TABLE_HEIGHT - 0.02
    up = low.clone()
    up[0, 2] += 0.003
    assert torch.equal(contact_stop(low.float(), up.float(), cube.float(), EXTENTS, TABLE_HEIGHT), up.float())


def test_the_table_stops_the_fingertips_and_the_stop_never_lifts(lift_physics):
    pose, cube = observe(lift_physics.reset(seed=3)[0])
    far = cube.clone()
    far[0, :2] += 0.3  # the cube out of the way
    now = pose.clone()
    now[0, 2] = TABLE_HEIGHT + contact.TIP_AHEAD + 0.004  # fingertips 4 mm above the table
    nxt = now.clone()
    nxt[0, 2] -= 0.01
    stopped = contact_stop(now.float(), nxt.float(), far.float(), EXTENTS, TABLE_HEIGHT)
    assert fingertips(stopped)[0, :, 2].min().item() == pytest.approx(TABLE_HEIGHT, abs=1e-3)
    # an arm already inside the table (an earlier error) is not pushed up: it can only stop
    inside = now.clone()
    inside[0, 2] = TABLE_HEIGHT
    deeper = inside.clone()
    deeper[0, 2] -= 0.002
    assert contact_stop(inside.float(), deeper.float(), far.float(), EXTENTS, TABLE_HEIGHT)[0, 2].item() == \
        pytest.approx(inside[0, 2].item(), abs=1e-6)


def test_an_imagined_arm_pushed_into_the_table_stops_on_it(lift_data):
    """A world model whose pose dynamics says "down 2 cm a step" (its output layer set so): with arm_contact
    the imagined fingertips stop on the table; without it they go through."""
    from wow_gym.data import DatasetReader
    from wow_gym.world_models import WorldModel

    with pytest.raises(ValueError, match="arm_contact needs object_dims"):
        WorldModel.random("dit-test", env_state_dim=10, arm_contact=True)
    ep = DatasetReader(lift_data)[0]
    far = ep.environment_state[1:2].copy()
    far[0, :2] += 0.3  # the cube out of the way
    lowest = {}
    for on in (False, True):
        model = WorldModel.random("dit-test", env_state_dim=10, object_dims=list(range(7)),
                                  object_offset_dims=[7, 8, 9], arm_contact=on)
        with torch.no_grad():
            model.pose.net[-1].weight.zero_()
            model.pose.net[-1].bias.zero_()
            model.pose.net[-1].bias[2] = -0.02  # metres: the statistics are the identity
        state = model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1],
                            environment_state=far)
        tips = []
        for _ in range(15):
            out = model.step(state, np.zeros((1, 7), np.float32), torch.Generator().manual_seed(0))
            tips.append(fingertips(torch.as_tensor(out.agent_pos))[0, :, 2].min().item())
        lowest[on] = min(tips)
    assert lowest[False] < TABLE_HEIGHT - 0.05  # 30 cm down from the start
    assert lowest[True] == pytest.approx(TABLE_HEIGHT, abs=1e-4)

"""The object layer: the pictured cube goes where the carried object state says, checked against the real
simulator's frames of a scripted-expert lift."""

import numpy as np
import pytest
import torch

from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.tasks.lift import CUBE_HALF_EXTENTS
from wow_gym.world_models import WorldModel
from wow_gym.world_models.video.config import WorldModelConfig
from wow_gym.world_models.video.object_layer import ObjectLayer

OBJECTS = {"object_dims": list(range(7)), "object_offset_dims": [7, 8, 9]}
REST = 10  # the expert's episode: the cube rests on the table here, and is lifted at its end


@pytest.fixture(scope="module")
def camera():
    env = RobosuiteEnv("Lift", use_camera=False)
    yield env.camera_matrix()
    env.close()


@pytest.fixture(scope="module")
def layer(camera):
    return ObjectLayer(torch.tensor(camera), CUBE_HALF_EXTENTS, 64)


def red(frame: np.ndarray) -> np.ndarray:
    """The red cube's pixels of a uint8 frame [H, W, 3]: red well above green and blue."""
    px = frame.astype(int)
    return px[..., 0] - np.maximum(px[..., 1], px[..., 2]) > 40


def centre(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


def pose(episode, t: int) -> torch.Tensor:
    return torch.as_tensor(episode.environment_state[t:t + 1, :7])


def test_the_box_outline_matches_the_simulators_cube(layer, lift_expert_episode):
    ep = lift_expert_episode
    assert ep.environment_state[-1, 2] > 0.9 > ep.environment_state[REST, 2]  # lifted at the end
    for t, least in ((REST, 0.75), (len(ep.pixels) - 1, 0.6)):  # lifted: the fingers hide some of it
        outline = layer.outline(pose(ep, t))[0].numpy()
        cube = red(ep.pixels[t])
        assert (outline & cube).sum() / (outline | cube).sum() > least
        assert np.abs(centre(outline) - centre(cube)).max() < 1.0  # pixels


def test_the_cube_is_drawn_at_its_new_pose_and_erased_from_its_old_one(layer, lift_expert_episode):
    ep = lift_expert_episode
    end = len(ep.pixels) - 1
    frame = torch.as_tensor(ep.pixels[REST]).float()[None]
    composed = layer(frame.clone(), frame, pose(ep, REST), pose(ep, end))[0].round().byte().numpy()
    # the cube where the simulator shows it lifted, and nothing red left on the table
    assert np.abs(centre(red(composed)) - centre(red(ep.pixels[end]))).max() < 1.5
    old = layer.outline(pose(ep, REST))[0]
    assert not red(composed)[old.numpy()].any()
    # everything away from the old and the new cube (beyond the outline's margin) keeps the frame's pixels
    new = layer.outline(pose(ep, end))[0]
    near = torch.nn.functional.max_pool2d((old | new)[None, None].float(), 9, 1, 4)[0, 0]
    np.testing.assert_array_equal(composed[near.numpy() == 0], ep.pixels[REST][near.numpy() == 0])


def test_the_arm_drawn_over_the_object_is_kept_and_a_faded_object_redrawn(layer, lift_expert_episode):
    ep = lift_expert_episode
    frame = torch.as_tensor(ep.pixels[REST]).float()[None]
    cube = layer.outline(pose(ep, REST))[0]
    lifted = pose(ep, REST) + torch.tensor([0, 0, 0.1, 0, 0, 0, 0])
    # the arm drawn (in blue) over where the cube stood is kept
    arm = frame.clone()
    arm[0][cube] = torch.tensor([20.0, 30.0, 160.0])
    torch.testing.assert_close(layer(arm, frame, pose(ep, REST), lifted)[0][cube], arm[0][cube])
    # a cube the DiT faded is erased where it stood, or drawn again where it has not moved
    faded = 0.2 * frame + 0.8 * torch.tensor([235.0, 235.0, 235.0])
    assert not red(layer(faded, frame, pose(ep, REST), lifted)[0].round().byte().numpy())[cube.numpy()].any()
    assert not red(faded[0].round().byte().numpy())[cube.numpy()].any()
    redrawn = layer(faded, frame, pose(ep, REST), pose(ep, REST))[0].round().byte().numpy()
    assert red(redrawn)[cube.numpy()].mean() > 0.8
    assert (red(redrawn) == red(ep.pixels[REST])).mean() > 0.99


def test_the_world_model_draws_its_carried_object(camera, lift_expert_episode):
    ep = lift_expert_episode
    model = WorldModel.random("dit-test", env_state_dim=10, camera=camera.tolist(), object_layer=True,
                              **OBJECTS)
    with torch.no_grad():  # object dynamics that lift the cube 5 cm in one step, the moving gate open
        model.objects.net[-1].weight.zero_()
        rise = torch.tensor([0, 0, 0.05, 0, 0, 0, 0]) / model._dobject_std
        model.objects.net[-1].bias.copy_(torch.cat([rise, torch.ones(1)]))
    support, model.support = model.support, None  # no gravity: the test's cube is not held

    def lifted_frame(on: bool) -> np.ndarray:
        model.config.object_layer = on
        context, now = slice(REST - 1, REST + 1), slice(REST, REST + 1)
        state = model.start(ep.pixels[None, context], ep.agent_pos[None, context], ep.action[None, now],
                            environment_state=ep.environment_state[now])
        torch.testing.assert_close(state.anchor, state.objects)
        return model.step(state, ep.action[None, REST + 1], torch.Generator().manual_seed(0)).pixels[0]

    rest = centre(red(ep.pixels[REST]))
    up = centre(red(lifted_frame(True)))
    assert up[1] < rest[1] - 2  # 5 cm up is several pixels up the picture
    assert np.abs(centre(red(lifted_frame(False))) - rest).max() < 1.0  # the untrained DiT leaves it be
    # pushed along the table (less than PUSH) the object is drawn where it stood; lifted, dropped from a
    # lifted start, or set down further away, where it is carried to
    anchor = pose(ep, REST)
    pushed = anchor + torch.tensor([0, 0.03, 0, 0, 0, 0, 0])
    raised = anchor + torch.tensor([0, 0, 0.05, 0, 0, 0, 0])
    model.support = support
    torch.testing.assert_close(model._drawn_pose(pushed, anchor), anchor)
    torch.testing.assert_close(model._drawn_pose(raised, anchor), raised)
    torch.testing.assert_close(model._drawn_pose(anchor, raised), anchor)
    carried = anchor + torch.tensor([0.10, 0, 0, 0, 0, 0, 0])  # set down 10 cm away: drawn where it is now
    torch.testing.assert_close(model._drawn_pose(carried, anchor), carried)


def test_the_object_layer_is_checked(camera):
    with pytest.raises(ValueError, match="object_layer needs"):
        WorldModelConfig(env_state_dim=10, object_layer=True, **OBJECTS)  # no camera
    with pytest.raises(ValueError, match="object_layer needs"):
        WorldModelConfig(env_state_dim=10, camera=camera.tolist(), object_layer=True)  # no object state
    with pytest.raises(ValueError, match="3x4"):
        ObjectLayer(torch.zeros(3, 3), CUBE_HALF_EXTENTS, 64)
    with pytest.raises(ValueError, match="positive"):
        ObjectLayer(torch.tensor(camera), (0.02, 0.0, 0.02), 64)
    with pytest.raises(ValueError, match="64 px"):
        ObjectLayer(torch.tensor(camera), CUBE_HALF_EXTENTS, 64)(
            torch.zeros(1, 32, 32, 3), torch.zeros(1, 32, 32, 3), torch.zeros(1, 7), torch.ones(1, 7))


def test_stack_s_green_cube_is_drawn_again_where_the_scene_has_it():
    """The scene layer (scene_layer): the DiT fades Stack's still green cube where the arm passes near it;
    each imagined frame draws it again from the start frame where the start's scene has it. Checked on the
    real simulator's frame and state, through a model's step, against the same step without the layer."""
    env = RobosuiteEnv("Stack")
    try:
        observation, _ = env.reset(seed=5000)
        camera = env.camera_matrix()
    finally:
        env.close()
    frame, start = observation["pixels"], observation["environment_state"][None]
    wm = WorldModel.random("dit-test", task="Stack", env_state_dim=start.shape[1], object_dims=list(range(7)),
                           object_offset_dims=[17, 18, 19], camera=camera.tolist())
    # the layer's outline of the green cube is where the simulator draws it
    outline = wm.scene_layer.outline(torch.as_tensor(start[:, 7:14]))[0].numpy()
    px = frame.astype(int)
    # the green cube's top and its darker sides, below the robot's base
    green = (px[..., 1] - np.maximum(px[..., 0], px[..., 2]) > 12) & (np.arange(64)[:, None] > 16)
    assert (outline & green).sum() / (outline | green).sum() > 0.6
    # an untrained DiT: without the layer the imagined frame does not keep the green cube's pixels ...
    action = np.zeros((1, 7), np.float32)
    frames = frame[None, None]
    torch.manual_seed(0)  # the same DiT noise for both steps
    plain = wm.step(wm.start(frames, observation["agent_pos"][None, None], environment_state=start), action)
    assert np.abs(plain.pixels[0].astype(int) - px)[green].mean() > 3
    # ... with it, every pixel of it is the start frame's again, and the frame away from it is the DiT's
    wm.set_options({"scene_layer": True})
    torch.manual_seed(0)
    drawn = wm.step(wm.start(frames, observation["agent_pos"][None, None], environment_state=start), action)
    assert np.abs(drawn.pixels[0].astype(int) - px)[green].max() <= 1
    away = torch.nn.functional.max_pool2d(torch.as_tensor(outline)[None, None].float(), 9, 1, 4)[0, 0] == 0
    np.testing.assert_array_equal(drawn.pixels[0][away.numpy()], plain.pixels[0][away.numpy()])
    # it needs the scene, and a task with a still object
    with pytest.raises(ValueError, match="no scene"):
        wm.draw_scene(torch.as_tensor(frame)[None].float(), torch.as_tensor(frame)[None].float(), None)
    lift = WorldModel.random("dit-test", task="Lift", env_state_dim=10, object_dims=list(range(7)),
                             object_offset_dims=[7, 8, 9], camera=camera.tolist())
    with pytest.raises(ValueError, match="scene_layer=true needs a task with a still object"):
        lift.set_options({"scene_layer": True})

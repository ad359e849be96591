"""The arm layer: imagined frames show the robot's own arm where the imagined pose state has it, checked
against the real simulator's frames of a scripted-expert lift."""

import numpy as np
import pytest
import torch

from wow_gym.world_models import WorldModel
from wow_gym.world_models.video.arm import shared_arm
from wow_gym.world_models.video.arm_layer import ArmLayer, shared_arm_layer

STEPS = (0, 20, 35, 69)  # the expert's episode: above the table, reaching, grasping, lifting


@pytest.fixture(scope="module")
def layer():
    return shared_arm_layer("Lift", 64)


def test_the_arm_is_drawn_where_the_simulator_shows_it(layer, lift_expert_episode):
    """From agent_pos alone (the hand by inverse kinematics, the fingers as given): the simulator's arm
    pixels, in the simulator's colours, at every stage of a lift."""
    from wow_gym.envs.robosuite_env import RobosuiteEnv

    ep = lift_expert_episode
    env = RobosuiteEnv("Lift", use_camera=True)
    try:
        sim_masks = env.arm_masks(ep.sim_state[list(STEPS)])
    finally:
        env.close()
    for t, sim_mask in zip(STEPS, sim_masks):
        colour, drawn = layer.render(ep.agent_pos[t].astype(float))
        iou = (drawn & sim_mask).sum() / (drawn | sim_mask).sum()
        assert iou > 0.95, f"step {t}: the drawn arm overlaps the simulator's by IoU {iou:.2f}"
        both = drawn & sim_mask
        error = np.abs(colour[both].astype(int) - ep.pixels[t][both].astype(int)).mean()
        assert error < 4, f"step {t}: the drawn arm's colours are {error:.1f} levels off the simulator's"


def test_a_world_model_with_the_layer_pastes_the_arm_over_its_imagined_frames(lift_expert_episode):
    ep, t = lift_expert_episode, 20
    model = WorldModel.random("dit-test", env_state_dim=10)

    def imagined(on: bool) -> tuple[np.ndarray, object]:
        model.set_options({"arm_layer": on})
        context = slice(t - 1, t + 1)
        state = model.start(ep.pixels[None, context], ep.agent_pos[None, context], ep.action[None, t:t + 1])
        context = model.observe_context(state).pixels[0]
        out = model.step(state, ep.action[None, t + 1], torch.Generator().manual_seed(0))
        return context, out

    context_off, off = imagined(False)
    context_on, on = imagined(True)
    np.testing.assert_array_equal(context_on, context_off)  # the context frame is real: nothing drawn on it
    colour, arm = shared_arm_layer("Lift", 64).render(on.agent_pos[0].astype(float))
    assert arm.sum() > 50
    np.testing.assert_array_equal(on.pixels[0][arm], colour[arm])  # the arm at the imagined pose ...
    np.testing.assert_array_equal(on.pixels[0][~arm], off.pixels[0][~arm])  # ... the DiT's frame elsewhere
    with pytest.raises(ValueError, match="arm_layer must be true or false"):
        model.set_options({"arm_layer": "yes"})


def test_the_layer_checks_its_frames_and_skips_rows_without_a_pose(layer, lift_expert_episode):
    frames = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    poses = torch.as_tensor(np.stack([lift_expert_episode.agent_pos[0], np.full(9, np.nan)]))
    drawn = layer(frames, poses)
    assert drawn[0].any() and not drawn[1].any()  # a plan's row (no pose state) keeps the DiT's drawing
    with pytest.raises(ValueError, match="64 px frames"):
        layer(torch.zeros(1, 32, 32, 3, dtype=torch.uint8), poses[:1])
    with pytest.raises(ValueError, match="camera 'nowhere' is not in the task scene"):
        ArmLayer(shared_arm("Lift"), "nowhere", 64)


def test_the_start_frame_s_arm_is_erased_where_the_arm_has_left(layer, lift_expert_episode):
    """The start frame (step 0, above the table) with the arm moved to step 35's pose (at the cube): where
    the old arm was and the new one is not, the erased frame shows what the simulator shows there."""
    ep, now = lift_expert_episode, 35
    start = torch.as_tensor(ep.pixels[None, 0])
    pose, shown = (torch.as_tensor(ep.agent_pos[None, t].astype(float)) for t in (now, 0))
    kept, erased = layer(start, pose)[0].numpy(), layer(start, pose, shown=shown)[0].numpy()
    cell, known = layer.cell
    assert known.mean() > 0.95  # the swung arm's renders show nearly all of the Lift cell
    colour_now, arm_now = layer.render(ep.agent_pos[now].astype(float))
    colour_then, arm_then = layer.drawn(ep.agent_pos[0].astype(float))
    gone = arm_then & ~arm_now
    still = arm_now & arm_then & (np.abs(colour_now.astype(int) - colour_then).max(-1) <= 8)
    assert gone.sum() > 30  # the hand moved down to the cube
    np.testing.assert_array_equal(erased[still], ep.pixels[0][still])  # the frame's own arm where it stays
    rest = ~gone & ~still
    np.testing.assert_array_equal(erased[rest], kept[rest])  # the moved arm pasted, nothing else changes
    truth = ep.pixels[now].astype(int)
    before, after = (np.abs(x[gone].astype(int) - truth[gone]).mean() for x in (kept, erased))
    # (the cell has no cube: where the truth shows it behind the old arm, the erased frame shows table)
    assert after < 15 and after < before / 4, f"erased pixels {after:.1f} levels off the truth ({before:.1f})"


def test_an_arm_that_has_not_moved_leaves_the_frame_as_it_is(layer, lift_expert_episode):
    """Where the imagined pose is the start frame's, the layer with erase keeps the real frame: its own arm
    beats a render of a solved posture (without erase, that render is pasted over it)."""
    ep, t = lift_expert_episode, 20
    frame, pose = torch.as_tensor(ep.pixels[None, t]), torch.as_tensor(ep.agent_pos[None, t].astype(float))
    np.testing.assert_array_equal(layer(frame, pose, shown=pose)[0].numpy(), ep.pixels[t])
    assert not np.array_equal(layer(frame, pose)[0].numpy(), ep.pixels[t])


def test_arm_erase_is_an_option_of_a_trained_model():
    model = WorldModel.random("dit-test", env_state_dim=10)
    model.set_options({"arm_layer": True, "arm_erase": True})
    assert model.config.arm_layer and model.config.arm_erase
    with pytest.raises(ValueError, match="arm_erase must be true or false"):
        model.set_options({"arm_erase": 1})

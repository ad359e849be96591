"""wow_gym.checks: one set of rules for frames, actions, poses and instructions, and every model keeps them."""

import numpy as np
import pytest
import torch

from wow_gym.checks import check_actions, check_frames, check_instruction, check_poses
from wow_gym.world_models.critic.config import CriticConfig
from wow_gym.world_models.critic.model import LearnedCritic
from wow_gym.world_models.idm.config import IDMConfig
from wow_gym.world_models.idm.model import InverseDynamics

CLIP = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)


def test_uint8_frames_pass_unchanged_and_lists_become_arrays():
    assert check_frames(CLIP) is CLIP
    listed = check_frames([CLIP[0], CLIP[1]])
    assert isinstance(listed, np.ndarray) and listed.shape == (2, 64, 64, 3) and listed.dtype == np.uint8
    tensor = torch.from_numpy(CLIP)
    assert check_frames(tensor) is tensor  # checked where it lies, not copied


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint16])
def test_frames_of_any_other_dtype_are_refused_even_when_integral_and_in_range(dtype):
    with pytest.raises(ValueError, match=f"uint8.*{np.dtype(dtype).name}"):
        check_frames(CLIP.astype(dtype))


@pytest.mark.parametrize("bad", [np.full((2, 8, 8, 3), np.nan), np.full((2, 8, 8, 3), 300.0)])
def test_float_frames_are_refused_for_their_dtype_whatever_they_hold(bad):
    with pytest.raises(ValueError, match="got dtype float64"):
        check_frames(bad)


@pytest.mark.parametrize("shape", [(64, 64), (3, 64, 64), (3, 64, 64, 4), (3, 3, 64, 64), (2, 3, 64, 64, 3)])
def test_frames_of_the_wrong_layout_name_the_shape_they_had(shape):
    with pytest.raises(ValueError, match=rf"got shape \({shape[0]}, "):
        check_frames(np.zeros(shape, np.uint8))


def test_one_frame_is_a_clip_of_one_only_when_asked():
    with pytest.raises(ValueError, match=r"\(64, 64, 3\)"):
        check_frames(CLIP[0])
    assert check_frames(CLIP[0], one_frame=True).shape == (1, 64, 64, 3)


def test_frame_size_count_and_leading_axes():
    with pytest.raises(ValueError, match=r"\(T, 32, 32, 3\).*\(3, 64, 64, 3\)"):
        check_frames(CLIP, size=32)
    with pytest.raises(ValueError, match="at least 4"):
        check_frames(CLIP, min_frames=4)
    with pytest.raises(ValueError, match="at least 1"):
        check_frames(CLIP[:0])
    batch = CLIP.reshape(1, 3, 64, 64, 3)
    assert check_frames(batch, leading=2) is batch and check_frames(batch, leading=None) is batch
    with pytest.raises(ValueError, match=r"\(1, 3, 64, 64, 3\)"):
        check_frames(batch)


def test_actions_shape_free_axes_and_dtype():
    actions = check_actions(np.zeros((4, 7), np.float64), ("T", 7))
    assert actions.dtype == np.float32 and actions.shape == (4, 7)
    assert check_actions([0.0] * 7, (7,), dtype=np.float64).dtype == np.float64
    assert check_actions(np.zeros((2, 7), np.int64), (2, 7)).dtype == np.float32
    with pytest.raises(ValueError, match=r"\(3, 7\).*gripper.*got shape \(2, 7\)"):
        check_actions(np.zeros((2, 7)), (3, 7))
    with pytest.raises(ValueError, match=r"\(T, 7\).*got shape \(7,\)"):
        check_actions(np.zeros(7), ("T", 7))
    with pytest.raises(ValueError, match="dtype"):
        check_actions(np.array(["a"] * 7), (7,))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_actions_and_poses_are_refused(bad):
    actions = np.zeros((2, 7), np.float32)
    actions[1, 3] = bad
    with pytest.raises(ValueError, match="finite.*1 NaN or infinite"):
        check_actions(actions, ("T", 7))
    with pytest.raises(ValueError, match="agent_pos must be finite"):
        check_poses(np.full((2, 9), bad), ("T", 9))


def test_poses():
    poses = check_poses(np.ones((3, 9), np.float64), (3, 9))
    assert poses.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(3, 9\).*got shape \(3, 8\)"):
        check_poses(np.ones((3, 8)), (3, 9))


def test_instruction():
    assert check_instruction("  lift the cube ") == "lift the cube"
    for bad in ("", "   ", None, 3):
        with pytest.raises(ValueError, match="non-empty string"):
            check_instruction(bad)


@pytest.fixture(scope="module")
def idm_and_critic():
    return InverseDynamics(IDMConfig(width=8)).eval(), LearnedCritic(CriticConfig(width=32, layers=1))


BAD_CLIPS = {  # name: (clip, a fragment both must name)
    "float": (CLIP.astype(np.float32), "float32"),
    "integral float": (np.round(CLIP.astype(np.float64)), "float64"),
    "nan": (np.full((3, 64, 64, 3), np.nan), "got dtype float64"),
    "out of range": (np.full((3, 64, 64, 3), 300.0), "got dtype float64"),
    "other size": (CLIP[:, :32, :32], r"\(3, 32, 32, 3\)"),
    "channels first": (CLIP.transpose(0, 3, 1, 2), r"\(3, 3, 64, 64\)"),
    "int64": (CLIP.astype(np.int64), "int64"),
}


@pytest.mark.parametrize("name", list(BAD_CLIPS))
def test_the_idm_and_the_critic_refuse_the_same_clips_alike(idm_and_critic, name):
    idm, critic = idm_and_critic
    clip, fragment = BAD_CLIPS[name]
    with pytest.raises(ValueError, match=fragment):
        idm.predict(clip)
    with pytest.raises(ValueError, match=fragment):
        critic.critique(clip, "lift the red cube")


def test_the_idm_and_the_critic_take_a_good_clip(idm_and_critic):
    idm, critic = idm_and_critic
    assert idm.predict(CLIP).shape == (2, 7)
    assert 0.0 <= critic.critique(CLIP, "lift the red cube").progress <= 1.0

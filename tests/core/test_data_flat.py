"""read_episodes and flatten_episodes: the one reader and flattening every trainer uses."""

import numpy as np
import pytest

from wow_gym.data.fakes import random_rollout, write_random_dataset
from wow_gym.data.flat import check_episode, flatten_episodes, read_episodes

STEPS = (5, 3, 7)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_random_dataset(tmp_path_factory.mktemp("flat"), STEPS, image_size=(16, 16))


def test_flattened_frames_actions_and_offsets_match_each_episode(root):
    episodes = [r for _, _, r in read_episodes([root], "test", image_size=16, progress=False)]
    flat = flatten_episodes(episodes)
    assert flat.lengths.tolist() == [s + 1 for s in STEPS]
    assert flat.starts.tolist() == [0, 6, 10]
    for e, (start, rollout) in enumerate(zip(flat.starts, episodes)):
        frames = slice(start, start + rollout.num_steps + 1)
        assert np.array_equal(flat.pixels[frames], rollout.pixels)
        assert np.array_equal(flat.agent_pos[frames], rollout.agent_pos)
        assert np.array_equal(flat.action[frames][:-1], rollout.action) and not flat.action[frames][-1].any()
        assert flat.reward[start] == 0 and np.allclose(flat.reward[frames][1:], rollout.reward)
        assert np.array_equal(flat.success[frames][1:], rollout.is_success) and not flat.success[start]
        assert np.array_equal(flat.environment_state[frames], rollout.environment_state)
        assert (flat.episode_of[frames] == e).all()
    # steps: every frame but each episode's last, in order
    assert flat.steps.tolist() == [i for i in range(sum(flat.lengths)) if i not in (5, 9, 17)]


def test_read_filters_and_caps(root):
    kept = read_episodes([root], "test", max_episodes=2, keep=lambda r: r.num_steps > 3, progress=False)
    assert [(i, r.num_steps) for _, i, r in kept] == [(0, 5)]


def test_bad_input_names_the_dataset_and_what_was_expected(root, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
        read_episodes([tmp_path / "nothing"], "test", progress=False)
    with pytest.raises(ValueError, match="16x16 frames.*32x32"):
        read_episodes([root], "test", image_size=32, progress=False)
    with pytest.raises(ValueError, match="no sim_state"):
        check_episode(random_rollout(steps=2, full=False), root, 0, "test", needs=["sim_state"])
    with pytest.raises(ValueError, match="no episodes"):
        flatten_episodes([])

"""WindowDataset: window shapes, the valid-start rule, episode boundaries, batching and throughput."""

import numpy as np
import pytest
from torch.utils.data import DataLoader

from wow_gym.data import DatasetReader, DatasetWriter, WindowDataset, benchmark_windows, collate_windows
from wow_gym.data.fakes import random_rollout, write_random_dataset

STEPS = (6, 3, 9)


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    return DatasetReader(write_random_dataset(tmp_path_factory.mktemp("windows"), STEPS))


def test_a_window_holds_context_actions_and_targets(reader):
    dataset = WindowDataset(reader, context=2, action_chunk=4, horizon=1, progress=False)
    sample = dataset[0]
    assert (
        sample["context_pixels"].shape == (2, 32, 48, 3)
        and str(sample["context_pixels"].dtype) == "torch.uint8"
    )
    assert sample["context_agent_pos"].shape == (2, 9)
    assert sample["actions"].shape == (4, 7) and not sample["actions_is_pad"].any()
    assert sample["target_pixels"].shape == (1, 32, 48, 3) and sample["target_agent_pos"].shape == (1, 9)
    assert (sample["episode_index"], sample["frame_index"], sample["instruction"]) == (0, 1, "task 0")


def test_every_window_matches_its_episode(reader):
    dataset = WindowDataset(reader, context=3, action_chunk=3, horizon=2, progress=False)
    rollouts = [reader[i] for i in range(len(reader))]
    # c in [context-1, T-action_chunk]: T - action_chunk - context + 2 windows per episode.
    assert len(dataset) == sum(max(0, t - 3 - 3 + 2) for t in STEPS)
    for i in range(len(dataset)):
        sample = dataset[i]
        rollout, c = rollouts[sample["episode_index"]], sample["frame_index"]
        assert c >= 2 and c + 3 <= rollout.num_steps
        np.testing.assert_array_equal(sample["context_pixels"].numpy(), rollout.pixels[c - 2 : c + 1])
        np.testing.assert_array_equal(sample["context_agent_pos"].numpy(), rollout.agent_pos[c - 2 : c + 1])
        np.testing.assert_array_equal(sample["actions"].numpy(), rollout.action[c : c + 3])
        np.testing.assert_array_equal(sample["target_pixels"].numpy(), rollout.pixels[c + 1 : c + 3])
        np.testing.assert_array_equal(sample["target_agent_pos"].numpy(), rollout.agent_pos[c + 1 : c + 3])
        assert sample["subtask"] == rollout.subtask[c]
        assert sample["instruction"] == rollout.instruction


def test_short_episodes_give_no_windows_and_none_cross_a_boundary(reader):
    dataset = WindowDataset(reader, context=2, action_chunk=4, horizon=1, progress=False)
    episodes = [dataset[i]["episode_index"] for i in range(len(dataset))]
    assert 1 not in episodes  # 3 steps cannot hold 2 context frames and 4 actions
    assert episodes == sorted(episodes) and len(dataset) == (6 - 4 - 1 + 1) + (9 - 4 - 1 + 1)


def test_padded_action_chunks_repeat_the_last_action(reader):
    dataset = WindowDataset(
        reader, context=1, action_chunk=4, horizon=1, pad_action_chunk=True, progress=False
    )
    assert len(dataset) == sum(STEPS)  # every c with a next frame: 0..T-1
    last = [i for i in range(len(dataset)) if dataset[i]["episode_index"] == 0][-1]
    sample, rollout = dataset[last], reader[0]
    assert sample["frame_index"] == 5
    assert sample["actions_is_pad"].tolist() == [False, True, True, True]
    np.testing.assert_array_equal(sample["actions"].numpy(), np.repeat(rollout.action[5:6], 4, axis=0))


def test_an_episode_subset_and_bad_arguments(reader):
    assert {WindowDataset(reader, progress=False, episodes=[2])[i]["episode_index"] for i in range(4)} == {2}
    with pytest.raises(ValueError, match="horizon .* must be <= action_chunk"):
        WindowDataset(reader, action_chunk=2, horizon=3, progress=False)
    with pytest.raises(ValueError, match=r"episodes \[7\] are not complete"):
        WindowDataset(reader, episodes=[7], progress=False)


def test_batches_stack_tensors_and_keep_strings_as_lists(reader):
    dataset = WindowDataset(reader, progress=False)
    batch = next(iter(DataLoader(dataset, batch_size=5, collate_fn=collate_windows)))
    assert batch["context_pixels"].shape == (5, 2, 32, 48, 3) and batch["actions"].shape == (5, 4, 7)
    assert batch["instruction"] == ["task 0"] * 2 + ["task 2"] * 3  # episode 0 has anchors 1, 2
    assert isinstance(batch["subtask"], list) and batch["frame_index"].tolist() == [1, 2, 1, 2, 3]


def test_benchmark_reports_samples_per_second(reader):
    dataset = WindowDataset(reader, context=1, action_chunk=1, horizon=1, progress=False)
    rate = benchmark_windows(dataset, batch_size=4, seconds=0.05)
    assert isinstance(rate, float) and np.isfinite(rate) and rate > 0  # at least one timed batch of 4


@pytest.mark.slow
def test_loader_delivers_2000_samples_per_second(tmp_path):
    writer = DatasetWriter(tmp_path)
    for seed in range(20):
        writer.write(random_rollout(seed=seed, steps=50, image_size=(64, 64), full=False))
    rate = benchmark_windows(WindowDataset(tmp_path, progress=False), batch_size=64, seconds=2.0)
    assert rate >= 2000, f"{rate:.0f} samples/s"

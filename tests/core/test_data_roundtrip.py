"""Rollouts written by DatasetWriter come back from DatasetReader exactly, in LeRobot v3.0's layout."""

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest

import wow_gym  # noqa: F401  (registers the env ids)
from wow_gym.data import DatasetReader, DatasetWriter, default_codec, frame_error
from wow_gym.data.fakes import random_rollout
from wow_gym.data.video import LOSSLESS_YUV444
from wow_gym.rollout import Rollout


def differences(a: Rollout, b: Rollout) -> list[str]:
    """Fields whose values, dtypes or shapes differ."""
    wrong = []
    for field in dataclasses.fields(Rollout):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            same = isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y)
        elif isinstance(x, dict):
            same = x.keys() == y.keys() and all(
                x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x
            )
        else:
            same = x == y
        if not same:
            wrong.append(field.name)
    return wrong


@pytest.fixture(scope="module")
def lift_rollout() -> Rollout:
    """Ten steps of the real Lift env with random-walk actions."""
    env = gym.make("WoW/Lift-v0")
    observation, info = env.reset(seed=0)
    observations, states = [observation], [env.unwrapped.get_sim_state()]
    actions, rewards, successes = [], [], []
    rng = np.random.default_rng(0)
    for _ in range(10):
        action = rng.uniform(-1, 1, 7).astype(np.float32)
        observation, reward, terminated, truncated, info = env.step(action)
        observations.append(observation)
        states.append(env.unwrapped.get_sim_state())
        actions.append(action)
        rewards.append(reward)
        successes.append(info["is_success"])
    env.close()
    return Rollout(
        pixels=np.stack([o["pixels"] for o in observations]),
        agent_pos=np.stack([o["agent_pos"] for o in observations]),
        environment_state=np.stack([o["environment_state"] for o in observations]),
        sim_state=np.stack(states),
        action=np.stack(actions),
        reward=np.asarray(rewards, np.float32),
        terminated=np.zeros(10, bool),
        truncated=np.eye(10, dtype=bool)[-1],
        is_success=np.asarray(successes),
        subtask=["reach"] * 5 + ["grasp"] * 5,
        source="sim",
        env_id="WoW/Lift-v0",
        task="Lift",
        instruction=info["instruction"],
        seed=0,
        pair_id="lift-0",
    )


def test_random_rollout_round_trips_exactly(tmp_path):
    rollouts = [random_rollout(seed=0), random_rollout(seed=1, steps=5, full=False, instruction="other")]
    writer = DatasetWriter(tmp_path)
    assert [writer.write(r) for r in rollouts] == [0, 1]
    reader = DatasetReader(tmp_path)
    assert len(reader) == 2
    assert differences(rollouts[0], reader[0]) == []
    assert differences(rollouts[1], reader[1]) == []
    assert reader[1].sim_state is None and reader[1].subtask is None and reader[1].reward_terms == {}
    assert reader[-1].instruction == "other"


def test_real_lift_rollout_round_trips_exactly(tmp_path, lift_rollout):
    DatasetWriter(tmp_path).write(lift_rollout)
    back = DatasetReader(tmp_path)[0]
    assert back.sim_state.dtype == np.float64
    if default_codec().lossless:
        assert differences(lift_rollout, back) == []
    else:
        assert differences(lift_rollout, back) == ["pixels"]


def test_real_lift_frames_decode_above_45_db(tmp_path, lift_rollout):
    DatasetWriter(tmp_path).write(lift_rollout)
    psnr, _ = frame_error(lift_rollout.pixels, DatasetReader(tmp_path)[0].pixels)
    assert psnr >= 45.0


def test_layout_follows_lerobot_v3(tmp_path):
    rollout = random_rollout(seed=3, steps=6)
    DatasetWriter(tmp_path, fps=10, camera="frontview").write(rollout)
    info = json.loads((tmp_path / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (1, 7, 1)
    assert info["splits"] == {"train": "0:1"}
    assert info["features"]["observation.images.frontview"]["shape"] == [32, 48, 3]
    assert info["features"]["observation.state"]["shape"] == [9]
    assert (tmp_path / "videos/observation.images.frontview/chunk-000/file-000.mp4").is_file()
    data = pq.read_table(tmp_path / "data/chunk-000/file-000.parquet").to_pydict()
    expected = {
        "observation.state",
        "observation.environment_state",
        "action",
        "next.reward",
        "next.done",
        "next.success",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
        "source",
        "pair_id",
        "seed",
        "sim_state",
        "subtask",
        "reward.sim",
        "reward.critic",
        "reward.reach",
        "action.idm",
        "action_is_pad",
    }
    assert expected <= set(data)
    assert len(data["frame_index"]) == 7 and data["action_is_pad"] == [False] * 6 + [True]
    assert data["timestamp"] == pytest.approx([i / 10 for i in range(7)])
    assert data["next.done"][:6] == list(rollout.terminated | rollout.truncated)
    episode = pq.read_table(tmp_path / "meta/episodes/chunk-000/file-000.parquet").to_pylist()[0]
    assert (episode["length"], episode["tasks"], episode["dataset_to_index"]) == (7, [rollout.instruction], 7)
    tasks = pq.read_table(tmp_path / "meta/tasks.parquet").to_pydict()
    assert tasks == {"task_index": [0], "task": [rollout.instruction]}


def test_stats_cover_every_completed_episode(tmp_path):
    rollouts = [random_rollout(seed=s, steps=4 + s) for s in range(3)]
    writer = DatasetWriter(tmp_path)
    for rollout in rollouts:
        writer.write(rollout)
    stats = DatasetReader(tmp_path).stats()
    actions = np.concatenate([r.action for r in rollouts]).astype(np.float64)
    assert stats["action"]["count"] == [len(actions)]
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(0), rtol=1e-9)
    np.testing.assert_allclose(stats["action"]["min"], actions.min(0))
    pixels = np.concatenate([r.pixels for r in rollouts]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(
        np.ravel(stats["observation.images.agentview"]["mean"]), pixels.mean(0), rtol=1e-9
    )
    np.testing.assert_allclose(
        np.ravel(stats["observation.images.agentview"]["std"]), pixels.std(0), rtol=1e-9
    )
    assert np.shape(stats["observation.images.agentview"]["mean"]) == (3, 1, 1)


def test_episode_records_carry_provenance(tmp_path):
    writer = DatasetWriter(tmp_path)
    writer.write(random_rollout(seed=5, steps=3))
    writer.write(random_rollout(seed=6, steps=2, instruction="stack"))
    reader = DatasetReader(tmp_path)
    first, second = reader.episodes
    assert (first.episode_index, first.length, first.num_steps, first.seed, first.pair_id) == (
        0,
        4,
        3,
        5,
        "pair-5",
    )
    assert (first.source, first.env_id, first.task_name) == ("imagined", "WoW/Lift-v0", "Lift")
    assert (second.dataset_from_index, second.task, second.task_index) == (4, "stack", 1)
    assert reader.tasks == {0: "lift the red cube", 1: "stack"}
    assert reader.camera == "agentview" and reader.fps == 20


def test_the_yuv444_fallback_codec_keeps_everything_but_pixels_exact(tmp_path):
    rollout = random_rollout(seed=4, steps=5)
    rollout.pixels = np.repeat(np.linspace(0, 255, 48, dtype=np.uint8)[None, None, :, None], 32, axis=1)
    rollout.pixels = np.repeat(np.repeat(rollout.pixels, 6, axis=0), 3, axis=3)
    DatasetWriter(tmp_path, codec=LOSSLESS_YUV444).write(rollout)
    reader = DatasetReader(tmp_path)
    back = reader[0]
    assert reader.info["features"]["observation.images.agentview"]["info"]["video.pix_fmt"] == "yuv444p"
    assert differences(rollout, back) in ([], ["pixels"])
    assert frame_error(rollout.pixels, back.pixels)[0] >= 45.0

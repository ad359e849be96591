"""SOPHIA's default critic: labels and corruptions from the real simulator, the network's causality, the
shipped critic on fresh sim episodes, streaming = batch readings, the reward model in the imagined env and
beside the sim reward, checkpoints and bad input."""

import dataclasses
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from wow_gym.data import DatasetReader
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.envs.wrappers import CriticReward
from wow_gym.sophia import SCORE_NAMES, Critique
from wow_gym.tasks import register_task, task_info, unregister_task
from wow_gym.world_models import CheckpointError
from wow_gym.world_models.critic.config import CriticConfig
from wow_gym.world_models.critic.data import CORRUPTIONS, corrupt, frame_labels, smoothness
from wow_gym.world_models.critic.model import (
    KINDS,
    CriticNet,
    CriticRewardModel,
    CriticStream,
    LearnedCritic,
    success_verdict,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


@pytest.fixture(scope="module")
def episodes(lift_data):
    reader = DatasetReader(lift_data)
    return [reader[i] for i in range(len(reader))]


@pytest.fixture(scope="module")
def sim():
    env = RobosuiteEnv("Lift", image_size=64)
    yield env
    env.close()


def test_frame_labels_follow_the_simulator(episodes):
    ep = episodes[0]
    labels = frame_labels(ep)
    assert {k: v.shape[0] for k, v in labels.items()} == {k: ep.num_steps + 1 for k in labels}
    assert not labels["success"][0] and np.array_equal(labels["success"][1:], ep.is_success)
    assert np.allclose(labels["progress"][1:], np.clip(ep.reward, 0, 1))
    distance = np.linalg.norm(ep.environment_state[:, -3:], axis=1)
    assert np.all(labels["stage"][distance > 0.05] == 0), "far from the cube is the approach stage"


def test_smoothness_label_sees_shuffled_paths():
    path = np.linspace([0, 0, 0], [0.04, 0.02, 0.01], 8)
    assert smoothness(path) == pytest.approx(1.0)
    assert smoothness(path[[0, 5, 2, 7, 1, 4, 6, 3]]) < 0.6


@pytest.mark.parametrize("kind", ["teleport", "vanish", "levitate", "reverse"])
def test_corruptions_edit_the_rendered_clip(kind, episodes, sim):
    ep, length = episodes[0], 8
    rng = np.random.default_rng(0)
    clip = corrupt(sim, ep, 0, ep.num_steps, kind, length, rng)
    assert clip is not None and clip.kind == kind and clip.frames.shape == (length, 64, 64, 3)
    original = ep.pixels[ep.num_steps - length + 1:]
    changed = np.abs(clip.frames.astype(int) - original).reshape(length, -1).max(axis=1) > 0
    if kind == "reverse":
        assert np.array_equal(clip.frames, original[::-1])
    else:
        first = int(np.argmax(changed))
        assert changed.any() and 2 <= first and changed[first:].all(), "frames from the edit on differ"
        assert not changed[:first].any(), "frames before the edit are the real ones"


def test_corrupt_rejects_unknown_kinds_and_unsuitable_clips(episodes, sim):
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(sim, episodes[0], 0, 10, "melt", 8, np.random.default_rng(0))
    # the first steps of an episode have no 8 frames before them
    assert corrupt(sim, episodes[0], 0, 3, "teleport", 8, np.random.default_rng(0)) is None
    assert set(CORRUPTIONS) < set(KINDS)


def test_readings_are_causal():
    torch.manual_seed(0)
    net = CriticNet(CriticConfig(width=32, layers=1)).eval()
    frames = torch.randint(0, 255, (1, 8, 64, 64, 3)).float()
    text = torch.randn(1, 384)
    changed = frames.clone()
    changed[:, 5:] = 255 - changed[:, 5:]
    a, b = net(frames, text), net(changed, text)
    assert torch.allclose(a["success"][:, :5], b["success"][:, :5], atol=1e-5)
    assert not torch.allclose(a["success"][:, 5:], b["success"][:, 5:], atol=1e-5)


def test_shipped_critic_judges_a_fresh_expert_episode(lift_critic, lift_expert_episode):
    critique = lift_critic.critique(lift_expert_episode.pixels, lift_expert_episode.instruction)
    assert isinstance(critique, Critique) and set(critique.scores) == set(SCORE_NAMES)
    assert critique.success, critique.text
    start = lift_critic.critique(lift_expert_episode.pixels[:6], lift_expert_episode.instruction)
    assert not start.success and start.failure in ("no_reach", "closed_early"), start.text
    assert start.progress < critique.progress
    first_lift = int(np.argmax(lift_expert_episode.is_success))
    judged = critique.per_frame["success"] > 0.5
    assert not judged[:max(first_lift - 5, 1)].any(), "no success claimed long before the cube is lifted"


def test_shipped_critic_finds_a_vanishing_cube_less_plausible(lift_critic, lift_expert_episode, sim):
    end = int(np.argmax(lift_expert_episode.is_success)) + 6
    real = lift_expert_episode.pixels[end - 7:end + 1]
    clip = corrupt(sim, lift_expert_episode, 0, end, "vanish", 8, np.random.default_rng(3))
    instruction = lift_expert_episode.instruction
    assert (lift_critic.critique(clip.frames, instruction).scores["physical_plausibility"]
            < lift_critic.critique(real, instruction).scores["physical_plausibility"])


def test_stream_matches_whole_clip_readings(lift_critic, lift_expert_episode):
    frames = lift_expert_episode.pixels[:20]
    whole = lift_critic.readings(frames, lift_expert_episode.instruction)
    stream = CriticStream(lift_critic, lift_expert_episode.instruction)
    first = stream.reset(np.array([0, 1]), np.stack([frames[0], frames[0]]), 2)
    progress = [first["progress"][0]]
    for frame in frames[1:]:
        progress.append(stream.push(np.stack([frame, frame]))["progress"][0])
    assert np.allclose(progress, np.clip(whole["progress"], 0, 1), atol=1e-4)


def test_scoring_whole_episodes_pays_what_the_step_by_step_wrapper_pays(lift_critic, lift_expert_episode):
    frames = lift_expert_episode.pixels
    episodes = np.stack([frames, frames[::-1]])  # a lift, and the same frames run backwards
    scorer = CriticRewardModel(lift_critic)
    reward, success = scorer.score_episodes(episodes, lift_expert_episode.instruction)
    assert scorer.stream is None  # scored on a stream of its own: an env's stream would be left as it was
    assert reward.shape == success.shape == (2, len(frames) - 1)
    for row, episode in enumerate(episodes):  # one env's stream at batch 1, as CriticReward reads it
        model, step = CriticRewardModel(lift_critic), [SimpleNamespace(pixels=frame[None]) for frame in episode]
        model(step[0], [lift_expert_episode.instruction], rows=np.array([0]), batch_size=1)
        steps = [model(step[t], [lift_expert_episode.instruction]) for t in range(1, len(frames))]
        assert np.allclose(reward[row], [r[0] for r, _, _ in steps], atol=1e-5)
        assert success[row].tolist() == [bool(s[0]) for _, s, _ in steps]
    # the lift is seen where it happens: late in the episode, early when it runs backwards
    assert success[0].any() and not success[0, :5].any() and success[1, :10].any()
    with pytest.raises(ValueError, match=r"expected episodes of frames \[n, T\+1, H, W, 3\]"):
        CriticRewardModel(lift_critic).score_episodes(frames, lift_expert_episode.instruction)


def test_success_needs_consecutive_frames():
    assert success_verdict(np.array([0.9, 0.2, 0.9, 0.9, 0.1]), 2).tolist() == [False, False, False, True, False]


def test_critic_reward_in_the_imagined_vector_env(lift_model, lift_critic):
    from wow_gym.envs.imagined_env import ImaginedVectorEnv

    env = ImaginedVectorEnv(num_envs=2, model=lift_model, reward_model=CriticRewardModel(lift_critic),
                            max_episode_steps=3)
    env.reset(seed=0)
    for _ in range(3):
        _, reward, _, truncated, info = env.step(np.zeros((2, 7), np.float32))
        expected = info["reward_critic_progress"] + info["reward_critic_success"]
        assert np.allclose(reward, expected) and info["_reward_critic_progress"].all()
        assert np.all((info["reward_critic_plausible"] >= 0) & (info["reward_critic_plausible"] <= 1))
    assert truncated.all()  # both envs were reset in the same step and keep going
    env.step(np.zeros((2, 7), np.float32))
    env.close()


def test_the_imagined_env_defaults_to_the_critic(lift_model):
    from wow_gym.envs.imagined_env import ImaginedEnv

    env = ImaginedEnv(model=lift_model)
    env.reset(seed=1)
    _, reward, _, _, info = env.step(np.zeros(7, np.float32))
    assert reward == pytest.approx(info["reward_critic_progress"] + info["reward_critic_success"])
    with pytest.raises(ValueError, match="reward_model must be"):
        ImaginedEnv(model=lift_model, reward_model="oracle")


def test_critic_reward_beside_the_sim_reward(lift_critic):
    env = CriticReward(gym.make("WoW/Lift-v0"), CriticRewardModel(lift_critic))
    env.reset(seed=3)
    _, reward, _, _, info = env.step(np.zeros(7, np.float32))
    assert reward == pytest.approx(info["reward_critic_progress"] + info["reward_critic_success"])
    assert np.isfinite(info["reward_sim"]) and isinstance(info["critic_success"], bool)
    with pytest.raises(ValueError, match="use must be"):
        CriticReward(gym.make("WoW/Lift-v0"), CriticRewardModel(lift_critic), use="both")


def test_checkpoint_roundtrip_and_errors(tmp_path):
    torch.manual_seed(0)
    critic = LearnedCritic(CriticConfig(width=32, layers=1))
    critic.save(tmp_path / "c")
    loaded = LearnedCritic.load(tmp_path / "c")
    frames = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    a, b = critic.readings(frames, "lift the red cube"), loaded.readings(frames, "lift the red cube")
    assert np.allclose(a["progress"], b["progress"], atol=1e-2)  # float16 weights on disk
    with pytest.raises(ValueError, match=r"\(T, 64, 64, 3\).*\(5, 32, 32, 3\)"):
        loaded.critique(frames[:, :32, :32], "lift the red cube")
    with pytest.raises(ValueError, match="uint8.*float32"):
        loaded.critique(frames.astype(np.float32), "lift the red cube")
    with pytest.raises(ValueError, match="instruction"):
        loaded.critique(frames, "  ")
    (tmp_path / "c" / "config.json").write_text('{"format_version": 99}')
    with pytest.raises(CheckpointError, match="train-critic"):
        LearnedCritic.load(tmp_path / "c")
    register_task(dataclasses.replace(task_info("lift"), name="LiftWithoutCritic"))
    try:
        with pytest.raises(CheckpointError, match="no critic is shipped for LiftWithoutCritic"):
            LearnedCritic.load(task="liftwithoutcritic")
    finally:
        unregister_task("LiftWithoutCritic")


def test_each_task_s_corruptions_pose_its_own_object():
    """PickPlaceCan's scene holds four free objects: the corruptions move the can (Task.object_joint), not the
    first of them. The door hangs on a hinge: teleport swings it, and it cannot vanish."""
    from wow_gym.envs.collection import CollectConfig, make_env, make_policy, record_episode

    can = RobosuiteEnv("PickPlaceCan", image_size=64)
    try:
        observation, _ = can.reset(seed=3)
        pose = can.object_qpos_index()
        assert pose.size == 7
        where = task_info("pickplacecan").object_position
        assert np.allclose(can.get_sim_state()[pose[:3]], observation["environment_state"][where], atol=1e-6)
    finally:
        can.close()
    config = CollectConfig(task="door", policy="expert", max_steps=12)
    env = make_env(config)
    try:
        episode = record_episode(env, make_policy(config, np.random.default_rng(0)), seed=4)
        door = env.unwrapped
        hinge = door.object_qpos_index()
        assert hinge.size == 1
        clip = corrupt(door, episode, 0, episode.num_steps, "teleport", 8, np.random.default_rng(0))
        assert clip is not None and clip.kind == "teleport"
        original = episode.pixels[episode.num_steps - 7:]
        changed = np.abs(clip.frames.astype(int) - original).reshape(8, -1).max(axis=1) > 0
        assert changed.any() and not changed[:2].any(), "the door swings from the edited frame on"
        assert corrupt(door, episode, 0, episode.num_steps, "vanish", 8, np.random.default_rng(0)) is None
    finally:
        env.close()

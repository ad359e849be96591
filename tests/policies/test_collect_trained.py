"""Collecting with a trained policy: its own actions (plus seeded noise) in worker processes or in-process."""

import numpy as np
import pytest

from wow_gym.data import DatasetReader
from wow_gym.envs.collection import CollectConfig, collect, make_policy
from wow_gym.envs.experts import ExpertNoiseConfig
from wow_gym.policies.collection import policy_factory
from wow_gym.policies.evaluation import PolicyEntry
from wow_gym.policies.evaluation import make_policy as make_eval_policy

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def _collect(root, workers, action_std):
    config = CollectConfig(task="lift", policy="shipped", episodes=2, seed=7, max_steps=6, workers=workers,
                           noise=ExpertNoiseConfig(action_std=action_std), root=str(root), progress=False)
    result = collect(config, policy_factory=policy_factory(config))
    assert result.written == 2
    reader = DatasetReader(root)
    return [reader[i] for i in range(len(reader))]


def test_the_shipped_policy_collects_its_own_actions_with_seeded_noise(tmp_path, lift_env):
    clean = _collect(tmp_path / "clean", 1, 0.0)
    policy = make_eval_policy(PolicyEntry("bc", "shipped"), lift_env.observation_space)
    policy.reset(1, 0)
    for episode in clean:
        assert episode.num_steps == 6 and episode.instruction == "lift the red cube"
        acted = policy.act({"pixels": episode.pixels[:-1], "agent_pos": episode.agent_pos[:-1]})
        np.testing.assert_allclose(episode.action, acted, atol=1e-5)  # what the policy does on those frames
    noisy = _collect(tmp_path / "noisy", 1, 0.3)
    assert not np.allclose(noisy[0].action, clean[0].action) and np.abs(noisy[0].action).max() <= 1.0
    in_workers = _collect(tmp_path / "workers", 2, 0.3)  # the factory is pickled into 2 processes
    for here, there in zip(noisy, in_workers):
        np.testing.assert_array_equal(here.action, there.action)
        np.testing.assert_array_equal(here.pixels, there.pixels)


def test_trained_policy_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="policy=sb3 needs policy_path"):
        CollectConfig(policy="sb3")
    with pytest.raises(ValueError, match="takes noise.action_std only"):
        CollectConfig(policy="shipped", noise=ExpertNoiseConfig(pause_prob=0.1))
    with pytest.raises(ValueError, match="not found; expected a stable-baselines3 zip"):
        policy_factory(CollectConfig(policy="sb3", policy_path=str(tmp_path / "missing.zip")))
    with pytest.raises(ValueError, match="wow_gym.policies.collection.collect"):
        make_policy(CollectConfig(policy="shipped"), np.random.default_rng(0))
    assert policy_factory(CollectConfig(policy="expert")) is None

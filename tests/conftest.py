"""Shared fixtures: real robosuite envs, made once per test module where possible."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import wow_gym  # noqa: E402,F401  (registers the env ids)


@pytest.fixture(scope="module")
def lift_env():
    env = gym.make("WoW/Lift-v0")
    yield env
    env.close()


@pytest.fixture(scope="module")
def lift_physics():
    """The Lift sim twin without a camera (physics only), made once per test module."""
    from wow_gym.envs.robosuite_env import RobosuiteEnv

    env = RobosuiteEnv("Lift", use_camera=False)
    yield env
    env.close()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: two threads fighting a background job on 2 cores run ~50x slower."""
    yield from _one_torch_thread()


@pytest.fixture(scope="session")
def torch_thread():
    """One torch thread for session-scoped models (made before any module's one_torch_thread)."""
    yield from _one_torch_thread()


@pytest.fixture(scope="module")
def lift_model(lift_env):
    """An untrained dit-test world model with the Lift env's spaces."""
    from wow_gym.world_models import WorldModel

    dim = lift_env.observation_space["environment_state"].shape[0]
    return WorldModel.random("dit-test", env_state_dim=dim)


@pytest.fixture(scope="session")
def lift_data(tmp_path_factory):
    """Two 12-step scripted-expert Lift episodes in a LeRobot dataset, collected once per test session."""
    from wow_gym.envs.collection import CollectConfig, collect

    root = tmp_path_factory.mktemp("lift") / "expert"
    collect(CollectConfig(task="lift", episodes=2, policy="expert", root=str(root), seed=5, workers=1,
                          max_steps=12, progress=False))
    return root


@pytest.fixture(scope="session")
def lift_critic():
    """The shipped SOPHIA critic for Lift."""
    from wow_gym.world_models.critic.model import LearnedCritic

    return LearnedCritic.load(task="lift")


@pytest.fixture(scope="session")
def lift_expert_episode():
    """A 70-step scripted-expert Lift episode that lifts the cube (a seed no dataset was collected with)."""
    from wow_gym.envs.collection import CollectConfig, make_env, make_policy, record_episode

    config = CollectConfig(task="lift", policy="expert", max_steps=70)
    env = make_env(config)
    try:
        episode = record_episode(env, make_policy(config, np.random.default_rng(0)), seed=987654)
    finally:
        env.close()
    assert episode.success, "the scripted expert should lift the cube in 70 steps"
    return episode

"""Shared by the policy tests: one real Lift env over {pixels, agent_pos}, small SB3 policies, an export."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import FilterObservation


def small_policy() -> dict:
    """policy_kwargs of a small CNN policy; a fresh dict each time, as SB3 writes into the one it is given."""
    return {"features_extractor_kwargs": {"cnn_output_dim": 32}, "net_arch": [32]}


@pytest.fixture(name="small_policy")
def small_policy_fixture():
    return small_policy


@pytest.fixture(scope="session")
def robot_env():
    """WoW/Lift-v0 as a robot sees it: pixels and agent_pos, no environment_state."""
    env = FilterObservation(gym.make("WoW/Lift-v0"), ["pixels", "agent_pos"])
    yield env
    env.close()


@pytest.fixture(scope="session")
def sim_observations(robot_env):
    """Five consecutive observations of the real simulator under seeded random actions."""
    observation, _ = robot_env.reset(seed=3)
    observations = [observation]
    rng = np.random.default_rng(3)
    for _ in range(4):
        observation, *_ = robot_env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        observations.append(observation)
    return observations


@pytest.fixture(scope="session")
def ppo(robot_env, torch_thread):
    from stable_baselines3 import PPO

    return PPO("MultiInputPolicy", robot_env, policy_kwargs=small_policy(), n_steps=16, batch_size=16, seed=0,
               device="cpu")


@pytest.fixture(scope="session")
def exported_ppo(ppo, tmp_path_factory):
    """The fresh PPO exported: the folder holding policy.onnx and policy.json."""
    from wow_gym.policies.export import export_policy

    out = tmp_path_factory.mktemp("ppo-policy")
    export_policy(ppo, out, task="lift", checkpoint="in-memory")
    return out

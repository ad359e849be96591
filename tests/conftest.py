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


@pytest.fixture
def rng():
    return np.random.default_rng(0)

"""Shipped policies: safetensors + JSON, rebuilt into the same SB3 algorithm; each task's shipped policy loads."""

import json

import numpy as np
import pytest
from stable_baselines3 import PPO

from wow_gym.policies.features import policy_kwargs
from wow_gym.policies.shipped import load_policy, save_policy, shipped_policy
from wow_gym.tasks import task_info

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_saved_policy_comes_back_acting_the_same(tmp_path, robot_env, sim_observations):
    model = PPO("MultiInputPolicy", robot_env, policy_kwargs=policy_kwargs([0.1] * 9, [2.0] * 9, features_dim=32,
                                                                            net_arch=(32,)), seed=1, device="cpu")
    folder = save_policy(model, tmp_path / "lift-policy", "lift", notes={"trained": "nowhere"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["algorithm"] == "PPO" and config["image_size"] == 64 and config["notes"] == {"trained": "nowhere"}
    loaded = load_policy(folder, env=robot_env, n_steps=8)
    assert loaded.n_steps == 8, "hyperparameters reach the rebuilt algorithm"
    for observation in sim_observations:
        expected, _ = model.predict(observation, deterministic=True)
        got, _ = loaded.predict(observation, deterministic=True)
        np.testing.assert_array_equal(got, expected)


def test_shipping_needs_our_extractor_and_loading_checks_the_files(tmp_path, robot_env, small_policy):
    plain = PPO("MultiInputPolicy", robot_env, policy_kwargs=small_policy(), device="cpu")
    with pytest.raises(ValueError, match="must use ImageProprioExtractor"):
        save_policy(plain, tmp_path / "plain", "lift")
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        load_policy(tmp_path / "nothing", env=robot_env)
    model = PPO("MultiInputPolicy", robot_env, policy_kwargs=policy_kwargs(features_dim=32), device="cpu")
    folder = save_policy(model, tmp_path / "old", "lift")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        load_policy(folder, env=robot_env)
    (folder / "config.json").write_text(json.dumps({**config, "image_size": 96}))
    with pytest.raises(ValueError, match="reads 96 px frames"):
        load_policy(folder, env=robot_env)


def test_the_shipped_lift_policy_loads_on_the_simulator(robot_env, sim_observations):
    assert (shipped_policy("lift") / "model.safetensors").is_file()
    model = load_policy(task="lift", env=robot_env)
    action, _ = model.predict(sim_observations[0], deterministic=True)
    assert action.shape == (7,) and np.all(np.abs(action) <= 1)


@pytest.mark.parametrize("task", ["stack", "door", "pickplacecan"])
def test_each_other_task_s_shipped_policy_acts_in_its_own_simulator(task):
    """make policy-tasks ships one BC policy per task: it loads on the task's simulator (load_policy builds
    it) and acts there, reading that task's frames and agent_pos."""
    assert json.loads((shipped_policy(task) / "config.json").read_text())["task"] == task_info(task).name
    model = load_policy(task=task)
    env = model.get_env()
    try:
        observation = env.reset()
        action, _ = model.predict(observation, deterministic=True)
        assert action.shape == (1, 7) and np.all(np.abs(action) <= 1) and np.any(action != 0)
    finally:
        env.close()

"""The one SB3 adapter over Gymnasium vector envs: autoreset semantics, terminal observations, PPO."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from wow_gym.sb3_vec_env import SB3VecEnv

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


class GripperOpen:
    """A RewardModel: success (and termination) once the imagined gripper opening exceeds a threshold."""

    def __init__(self, threshold):
        self.threshold = threshold

    def __call__(self, output, instructions, rows=None, batch_size=None):
        opening = output.agent_pos[:, 7] - output.agent_pos[:, 8]
        return opening.astype(np.float32), opening > self.threshold


def _imagined(model, num_envs=2, **kwargs):
    return SB3VecEnv(gym.make_vec("WoW/Lift-Imagined-v0", num_envs=num_envs, model=model, **kwargs))


def test_ppo_learns_in_imagination_through_the_adapter(lift_model):
    venv = VecMonitor(_imagined(lift_model, max_episode_steps=8))
    agent = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    agent.learn(total_timesteps=64)
    assert agent.num_timesteps == 64
    lengths = [episode["l"] for episode in agent.ep_info_buffer]
    assert lengths == [8] * 8, "2 envs x 32 steps in 8-step episodes: 8 finished episodes seen by SB3"
    venv.close()


def test_a_truncated_episode_returns_its_terminal_observation_and_a_reset_one(lift_model):
    venv = _imagined(lift_model, max_episode_steps=2)
    venv.seed(3)
    first = venv.reset()
    assert set(first) == {"pixels", "agent_pos", "environment_state"}
    assert first["pixels"].shape == (2, 64, 64, 3)
    assert [info["source"] for info in venv.reset_infos] == ["imagined", "imagined"]
    actions = np.zeros((2, 7), np.float32)
    obs, reward, done, infos = venv.step(actions)
    assert not done.any() and reward.dtype == np.float32
    assert all("terminal_observation" not in info and info["TimeLimit.truncated"] is False for info in infos)
    obs, reward, done, infos = venv.step(actions)
    assert done.all()
    for i, info in enumerate(infos):
        terminal = info["terminal_observation"]
        assert terminal in venv.observation_space and info["TimeLimit.truncated"] is True
        assert not np.array_equal(terminal["pixels"], obs["pixels"][i]), "the returned obs is the reset frame"
    obs, _, done, _ = venv.step(actions)
    assert not done.any(), "the reset env starts a fresh 2-step episode"
    venv.close()


def test_a_terminated_episode_is_not_marked_truncated(lift_model):
    venv = _imagined(lift_model, num_envs=3, terminate_on_success=True, reward_model=GripperOpen(-np.inf))
    venv.reset()
    _, reward, done, infos = venv.step(np.zeros((3, 7), np.float32))
    assert done.all()
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is False and info["is_success"]
        np.testing.assert_allclose(reward[i], info["terminal_observation"]["agent_pos"][7]
                                   - info["terminal_observation"]["agent_pos"][8], rtol=1e-6)
    venv.close()


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_sim_vector_envs_get_sb3_semantics_in_either_autoreset_mode(mode):
    actions = np.random.default_rng(0).uniform(-1, 1, (2, 2, 7)).astype(np.float32)
    sync = gym.make_vec("WoW/Lift-v0", num_envs=2, vectorization_mode="sync", max_episode_steps=2,
                        vector_kwargs={"autoreset_mode": mode})
    venv = SB3VecEnv(sync)
    venv.seed(11)
    venv.reset()
    venv.step(actions[0])
    obs, _, done, infos = venv.step(actions[1])
    assert done.all() and all(info["TimeLimit.truncated"] for info in infos)
    reference = gym.make("WoW/Lift-v0")
    for i in range(2):  # SB3's seed(11) gives env i the seed 11 + i
        reference.reset(seed=11 + i)
        for action in actions[:, i]:
            expected, *_ = reference.step(action)
        for key in expected:
            np.testing.assert_array_equal(infos[i]["terminal_observation"][key], expected[key])
        assert not np.array_equal(obs["pixels"][i], expected["pixels"]), "the returned obs is a reset one"
    assert venv.get_attr("render_mode") == [None, None]
    assert venv.env_is_wrapped(gym.wrappers.TimeLimit) == [True, True]
    states = venv.env_method("get_sim_state", indices=[1])
    assert len(states) == 1 and states[0].shape == (reference.unwrapped.sim_state_size,)
    obs, _, done, _ = venv.step(actions[0])
    assert not done.any(), "after the adapter's reset the envs run a fresh episode, not a reset step"
    reference.close()
    venv.close()


def test_attributes_of_a_batched_env(lift_model):
    venv = _imagined(lift_model, max_episode_steps=5)
    assert venv.get_attr("max_episode_steps", indices=[0, 1]) == [5, 5]
    assert venv.env_is_wrapped(gym.wrappers.TimeLimit) == [False, False]
    venv.set_attr("terminate_on_success", True)
    assert venv.env.terminate_on_success is True
    with pytest.raises(ValueError, match="indices=None"):
        venv.set_attr("terminate_on_success", False, indices=[0])
    venv.set_options({"pixels": np.zeros((2, 1, 64, 64, 3), np.uint8), "agent_pos": np.zeros((2, 1, 9))})
    obs = venv.reset()
    assert not obs["pixels"].any(), "the options given to set_options reach the vector env's reset"
    venv.set_options([{}, {"sim_state": np.zeros(3)}])
    with pytest.raises(ValueError, match="one options dict"):
        venv.reset()
    venv.close()


def test_keys_keep_only_what_a_policy_may_read_even_in_terminal_observations(lift_model):
    venv = SB3VecEnv(gym.make_vec("WoW/Lift-Imagined-v0", num_envs=2, model=lift_model, max_episode_steps=1),
                     keys=("pixels", "agent_pos"))
    assert set(venv.observation_space.spaces) == {"pixels", "agent_pos"}
    assert set(venv.reset()) == {"pixels", "agent_pos"}
    obs, _, done, infos = venv.step(np.zeros((2, 7), np.float32))
    assert done.all() and set(obs) == {"pixels", "agent_pos"}
    assert all(set(info["terminal_observation"]) == {"pixels", "agent_pos"} for info in infos)
    venv.close()
    with pytest.raises(ValueError, match=r"keys \['joints'\] are not among them"):
        SB3VecEnv(gym.make_vec("WoW/Lift-Imagined-v0", num_envs=1, model=lift_model), keys=("pixels", "joints"))

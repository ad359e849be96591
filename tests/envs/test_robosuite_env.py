"""The sim envs: Gymnasium/SB3 compliance for every id, determinism, exact restore, errors."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from wow_gym import TASKS, sim_env_ids


def _rollout(env, actions, seed=None, options=None):
    obs, _ = env.reset(seed=seed, options=options)
    frames, states = [obs["pixels"]], [env.unwrapped.get_sim_state()]
    for action in actions:
        obs, *_ = env.step(action)
        frames.append(obs["pixels"])
        states.append(env.unwrapped.get_sim_state())
    return np.stack(frames), np.stack(states)


@pytest.mark.parametrize("env_id", sim_env_ids())
def test_every_id_passes_gymnasium_and_sb3_checks(env_id):
    env = gym.make(env_id)
    try:
        gym_check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(env, warn=True)
        obs, info = env.reset(seed=0)
        assert set(obs) == {"pixels", "agent_pos", "environment_state"}
        assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
        assert obs["agent_pos"].shape == (9,)
        assert env.action_space.shape == (7,)
        task = env_id.split("/")[1].rsplit("-", 1)[0]
        assert info["instruction"] == TASKS[task].instruction == env.spec.kwargs["instruction"]
        assert info["is_success"] is False
    finally:
        env.close()


def test_same_seed_and_actions_give_identical_observations(rng):
    actions = rng.uniform(-1, 1, (15, 7)).astype(np.float32)
    env_a, env_b = gym.make("WoW/Lift-v0"), gym.make("WoW/Lift-v0")
    frames_a, states_a = _rollout(env_a, actions, seed=7)
    frames_b, states_b = _rollout(env_b, actions, seed=7)
    frames_c, _ = _rollout(env_a, actions, seed=8)
    assert np.array_equal(frames_a, frames_b) and np.array_equal(states_a, states_b)
    assert not np.array_equal(frames_a[0], frames_c[0]), "a different seed should give a different layout"
    env_a.close(), env_b.close()


@pytest.mark.parametrize("task", ["Lift", "Door"])
def test_restore_step_k_and_replay_gives_identical_frames(task, rng):
    actions = rng.uniform(-1, 1, (20, 7)).astype(np.float32)
    actions[:, 6] = np.where(np.arange(20) < 10, 1.0, -1.0)  # close then open the gripper
    env = gym.make(f"WoW/{task}-v0")
    frames, states = _rollout(env, actions, seed=3)
    other = gym.make(f"WoW/{task}-v0")  # a fresh instance, as in a different process
    for k in (0, 7, 12):
        replay_frames, replay_states = _rollout(other, actions[k:], options={"sim_state": states[k]})
        assert np.array_equal(replay_frames, frames[k:]), f"frames differ after restoring step {k}"
        assert np.array_equal(replay_states, states[k:])
    env.close(), other.close()


def test_horizon_is_truncation_not_termination():
    env = gym.make("WoW/Lift-v0", use_camera=False, max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(np.zeros(7, np.float32))[2:4] for _ in range(5)]
    assert flags[-1] == (False, True)
    assert all(f == (False, False) for f in flags[:-1])
    env.close()


def test_bad_input_gets_clear_errors(lift_env):
    lift_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(7,\).*got shape \(6,\)"):
        lift_env.step(np.zeros(6))
    with pytest.raises(ValueError, match="finite.*7 NaN"):
        lift_env.step(np.full(7, np.nan))
    with pytest.raises(ValueError, match="sim_state for Lift must have shape"):
        lift_env.reset(options={"sim_state": np.zeros(3)})
    with pytest.raises(ValueError, match="unknown task 'Pour'"):
        gym.make("WoW/Lift-v0", task="Pour")
    with pytest.raises(ValueError, match="camera 'nope' is not in the Lift scene"):
        gym.make("WoW/Lift-v0", camera="nope")


def test_render_settings_change_the_picture():
    fast = gym.make("WoW/Lift-v0", render_mode="rgb_array")
    full = gym.make("WoW/Lift-v0", shadows=True, reflections=True, skybox=True)
    big = gym.make("WoW/Lift-v0", image_size=128)
    obs_fast, _ = fast.reset(seed=0)
    obs_full, _ = full.reset(seed=0)
    obs_big, _ = big.reset(seed=0)
    assert not np.array_equal(obs_fast["pixels"], obs_full["pixels"])
    assert obs_big["pixels"].shape == (128, 128, 3)
    assert np.array_equal(fast.render(), obs_fast["pixels"])
    for env in (fast, full, big):
        env.close()


def test_success_is_reported_when_the_cube_is_lifted(lift_env):
    lift_env.reset(seed=0)
    robosuite = lift_env.unwrapped.robosuite
    state = lift_env.unwrapped.get_sim_state()
    # Raise the cube 10 cm through its free joint: robosuite's own success test must see it.
    qpos_adr = robosuite.sim.model.get_joint_qpos_addr(robosuite.cube.joints[0])[0]
    state[1 + qpos_adr + 2] += 0.10  # state[0] is time, then qpos
    _, info = lift_env.reset(options={"sim_state": state})
    assert info["is_success"] is True

"""The learned envs: checks for every id, the twin's spaces, starts, determinism, errors, batches."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector.utils import batch_space

from wow_gym import TASKS, Rollout
from wow_gym.data import DatasetReader
from wow_gym.envs.imagined_env import ImaginedEnv
from wow_gym.envs.imagined_starts import StartPool
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.registry import imagined_env_ids
from wow_gym.world_models import CheckpointError, WorldModel, shipped_checkpoint
from wow_gym.world_models.checkpoint import shipped_tasks

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


@pytest.fixture(scope="module")
def lift_episode(lift_env):
    """A short real Lift episode as a Rollout."""
    actions = np.random.default_rng(1).uniform(-1, 1, (5, 7)).astype(np.float32)
    obs, _ = lift_env.reset(seed=4)
    observations, states = [obs], [lift_env.unwrapped.get_sim_state()]
    for action in actions:
        observations.append(lift_env.step(action)[0])
        states.append(lift_env.unwrapped.get_sim_state())
    n = len(actions)
    return Rollout(pixels=np.stack([o["pixels"] for o in observations]),
                   agent_pos=np.stack([o["agent_pos"] for o in observations]), action=actions,
                   reward=np.zeros(n, np.float32), terminated=np.zeros(n, bool), truncated=np.zeros(n, bool),
                   task="Lift", sim_state=np.stack(states),
                   environment_state=np.stack([o["environment_state"] for o in observations]))


class DistanceReward:
    """A RewardModel of our own: negative distance of the gripper to a goal; success within `radius`."""

    def __init__(self, goal, radius):
        self.goal, self.radius = np.asarray(goal, np.float32), radius

    def __call__(self, output, instructions, rows=None, batch_size=None):
        distance = np.linalg.norm(output.agent_pos[:, :3] - self.goal, axis=1)
        return -distance.astype(np.float32), distance < self.radius


class RowSucceeds:
    """A RewardModel under which only one row of the batch succeeds."""

    def __init__(self, row):
        self.row = row

    def __call__(self, output, instructions, rows=None, batch_size=None):
        success = np.arange(len(output.pixels)) == self.row
        return success.astype(np.float32), success


def _run(env, actions, **reset):
    obs, _ = env.reset(**reset)
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, *_ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
    return {k: np.stack([o[k] for o in observations]) for k in obs}, np.array(rewards)


# -- spaces, registration, the checker ------------------------------------------------------------------


def test_spaces_equal_the_sim_twin_and_need_no_simulator(lift_env, lift_model, tmp_path):
    checkpoint = lift_model.save(tmp_path / "lift")
    env = gym.make("WoW/Lift-Imagined-v0", checkpoint=checkpoint)
    assert env.observation_space == lift_env.observation_space
    assert env.action_space == lift_env.action_space
    assert env.unwrapped.source.twin is None, "building the spaces must not build a simulator"
    assert env.spec.max_episode_steps == TASKS["Lift"].max_episode_steps
    assert env.spec.vector_entry_point == "wow_gym.envs.imagined_env:ImaginedVectorEnv"
    assert imagined_env_ids() == [t.imagined_env_id for t in TASKS.values()]
    assert all(i in gym.registry for i in imagined_env_ids())
    env.close()


@pytest.mark.parametrize("env_id", imagined_env_ids())
def test_every_imagined_id_passes_the_gymnasium_checker(env_id):
    task = env_id.split("/")[1].split("-")[0]
    probe = RobosuiteEnv(task=task, use_camera=False)
    dim = probe.observation_space["environment_state"].shape[0]
    probe.close()
    model = WorldModel.random("dit-test", task=task, instruction=TASKS[task].instruction, env_state_dim=dim)
    env = gym.make(env_id, model=model)
    try:
        # the render check re-makes the env from its spec (a second simulator twin): once is enough
        check_env(env.unwrapped, skip_render_check=task != "Lift")
        twin = env.unwrapped.source.twin  # made by the checker's default resets
        assert env.observation_space == twin.observation_space and env.action_space == twin.action_space
        obs, info = env.reset(seed=0)
        assert obs in env.observation_space
        assert info == {"is_success": info["is_success"], "instruction": TASKS[task].instruction,
                        "source": "imagined"}
    finally:
        env.close()


# -- starts and determinism -----------------------------------------------------------------------------


def test_same_seed_and_actions_give_identical_observations(lift_model):
    actions = np.random.default_rng(0).uniform(-1, 1, (6, 7)).astype(np.float32)
    env_a, env_b = ImaginedEnv(model=lift_model), ImaginedEnv(model=lift_model)
    obs_a, rewards_a = _run(env_a, actions, seed=7)
    obs_b, rewards_b = _run(env_b, actions, seed=7)
    for key in obs_a:
        assert np.array_equal(obs_a[key], obs_b[key]), f"{key} differs between two runs with seed 7"
    assert np.array_equal(rewards_a, rewards_b)
    obs_c, _ = _run(env_a, actions, seed=8)
    assert not np.array_equal(obs_a["pixels"][0], obs_c["pixels"][0]), "seed 8 should start another layout"
    # the seed also drives the sampler's noise: same start frames, other seed, other imagined frames
    frames = {"pixels": obs_a["pixels"][:1], "agent_pos": obs_a["agent_pos"][:1]}
    obs_d, _ = _run(env_a, actions, seed=1, options=frames)
    obs_e, _ = _run(env_a, actions, seed=2, options=frames)
    assert np.array_equal(obs_d["pixels"][0], obs_e["pixels"][0])
    assert not np.array_equal(obs_d["pixels"][1:], obs_e["pixels"][1:])
    env_a.close(), env_b.close()


def test_reset_from_sim_state_starts_from_that_frame_and_never_steps_the_simulator(lift_env, lift_model,
                                                                                   lift_episode):
    env = ImaginedEnv(model=lift_model)
    obs, info = env.reset(options={"sim_state": lift_episode.sim_state[3]})
    assert np.array_equal(obs["pixels"], lift_episode.pixels[3])
    assert np.array_equal(obs["agent_pos"], lift_episode.agent_pos[3])
    twin_state = env.source.twin.get_sim_state()
    for _ in range(3):
        obs, *_, info = env.step(env.action_space.sample())
    assert np.array_equal(env.source.twin.get_sim_state(), twin_state), "steps must not touch the simulator"
    assert info["source"] == "imagined" and obs in env.observation_space
    env.close()


def test_known_state_starts_the_object_from_the_reset_s_state_and_pixels_from_the_probe(lift_env,
                                                                                        lift_episode):
    """world_model_options.known_state: a reset from a simulator state, or from a stored episode, starts
    the carried cube where that state has it (the support rule may still set it on the table, within lean);
    without the option, and on a reset from pixels alone, the probe reads it off the frame."""
    dim = lift_env.observation_space["environment_state"].shape[0]
    model = WorldModel.random("dit-test", env_state_dim=dim, object_dims=list(range(7)),
                              object_offset_dims=[7, 8, 9])  # an untrained probe: far off
    observation, _ = lift_env.reset(seed=11)
    sim_state, true = lift_env.unwrapped.get_sim_state(), observation["environment_state"]
    env = ImaginedEnv(model=model)
    try:
        probed = env.reset(options={"sim_state": sim_state})[0]["environment_state"]
        model.set_options({"known_state": True})
        known = env.reset(options={"sim_state": sim_state})[0]["environment_state"]
        from_pixels = env.reset(options={"pixels": observation["pixels"][None],
                                         "agent_pos": observation["agent_pos"][None]})[0]["environment_state"]
        from_episode = env.reset(options={"episode": lift_episode, "start": 3})[0]["environment_state"]
    finally:
        env.close()
    np.testing.assert_allclose(known[:2], true[:2], atol=1e-5)
    np.testing.assert_allclose(from_episode[:2], lift_episode.environment_state[3][:2], atol=1e-5)
    assert abs(known[2] - true[2]) <= model.support[1] + 1e-6
    assert np.abs(probed[:3] - true[:3]).max() > 1e-3, "the probe's reading is not the state"
    np.testing.assert_allclose(from_pixels, probed, atol=1e-5)


def test_reset_from_an_episode_uses_its_frames_and_actions_up_to_start(lift_model, lift_episode):
    env = ImaginedEnv(model=lift_model)
    obs, _ = env.reset(options={"episode": lift_episode, "start": 3})
    assert np.array_equal(obs["pixels"], lift_episode.pixels[3])
    assert np.array_equal(obs["agent_pos"], lift_episode.agent_pos[3])
    k = lift_model.config.context_frames
    expected = lift_model.start(lift_episode.pixels[None, 4 - k:4], lift_episode.agent_pos[None, 4 - k:4],
                                lift_episode.action[None, 4 - k:3], env.instruction)
    for name in ("latents", "poses", "actions", "text"):
        state = env.batch.imagination.state
        torch.testing.assert_close(getattr(state, name), getattr(expected, name), msg=name)
    obs, _ = env.reset(options={"episode": lift_episode})  # start defaults to the first frame
    assert np.array_equal(obs["pixels"], lift_episode.pixels[0])
    env.close()


def test_reset_from_given_frames(lift_model, lift_episode):
    env = ImaginedEnv(model=lift_model, render_mode="rgb_array")
    frames = {"pixels": lift_episode.pixels[:3], "agent_pos": lift_episode.agent_pos[:3],
              "actions": lift_episode.action[:2]}
    obs, _ = env.reset(seed=0, options=frames)
    assert np.array_equal(obs["pixels"], lift_episode.pixels[2])
    torch.testing.assert_close(env.batch.imagination.state.poses[0].numpy(), lift_episode.agent_pos[1:3])
    assert np.array_equal(env.render(), obs["pixels"])
    obs, *_ = env.step(np.zeros(7, np.float32))
    assert np.array_equal(env.render(), obs["pixels"]), "render() returns the last imagined frame"
    plan = env.generate(3)
    assert plan.shape == (3, 64, 64, 3) and plan.dtype == np.uint8
    assert env.source.twin is None, "a start from given frames needs no simulator"
    env.close()


def test_a_pluggable_reward_model_sets_reward_and_termination(lift_model, lift_episode):
    start = {"pixels": lift_episode.pixels[:1], "agent_pos": lift_episode.agent_pos[:1]}
    goal = lift_episode.agent_pos[0, :3]
    for terminate in (False, True):
        env = ImaginedEnv(model=lift_model, reward_model=DistanceReward(goal, radius=1.0),
                          terminate_on_success=terminate)
        env.reset(seed=0, options=start)
        obs, reward, terminated, _, info = env.step(np.zeros(7, np.float32))
        assert reward == pytest.approx(-np.linalg.norm(obs["agent_pos"][:3] - goal))
        assert info["is_success"] is True  # within a metre of where it started
        assert terminated is terminate


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, match", [
    ({"pixels": np.zeros((1, 32, 32, 3), np.uint8), "agent_pos": np.zeros((1, 9))}, r"\(T, 64, 64, 3\).*\(1, 32, 32, 3\)"),
    ({"pixels": np.zeros((2, 64, 64, 3), np.float32), "agent_pos": np.zeros((2, 9))}, "uint8"),
    ({"pixels": np.zeros((2, 64, 64, 3), np.uint8), "agent_pos": np.zeros((2, 7))}, r"shape \(2, 9\)"),
    ({"pixels": np.zeros((2, 64, 64, 3), np.uint8), "agent_pos": np.full((2, 9), np.nan)}, "finite"),
    ({"pixels": np.zeros((2, 64, 64, 3), np.uint8), "agent_pos": np.zeros((2, 9)),
      "actions": np.zeros((2, 7))}, r"'actions'.*shape \(1, 7\)"),
    ({"pixels": np.zeros((1, 64, 64, 3), np.uint8)}, "needs options\\['agent_pos'\\]"),
    ({"sim_state": np.zeros(3), "pixels": np.zeros((1, 64, 64, 3), np.uint8)}, "exactly one"),
    ({"start": 2}, "goes with options\\['episode'\\]"),
    ({"frames": 1}, "unknown reset options"),
    ({"episode": "episode_0"}, "must be a wow_gym Rollout"),
])
def test_bad_reset_options_raise_clear_errors(lift_model, options, match):
    env = ImaginedEnv(model=lift_model)
    with pytest.raises((ValueError, TypeError), match=match):
        env.reset(options=options)


def test_bad_actions_episode_steps_and_sim_states_raise_clear_errors(lift_model, lift_episode):
    env = ImaginedEnv(model=lift_model)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7, np.float32))
    with pytest.raises(ValueError, match=r"\['start'\] must be a step in 0..5"):
        env.reset(options={"episode": lift_episode, "start": 6})
    env.reset(options={"pixels": lift_episode.pixels[:1], "agent_pos": lift_episode.agent_pos[:1]})
    with pytest.raises(ValueError, match=r"\(7,\).*got shape \(6,\)"):
        env.step(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match="finite.*1 NaN"):
        env.step(np.array([0, 0, np.nan, 0, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match=r"sim_state for Lift must have shape"):
        env.reset(options={"sim_state": np.zeros(5)})
    env.close()


def test_checkpoint_problems_raise_checkpoint_errors(lift_model, tmp_path):
    with pytest.raises(CheckpointError, match=r"64x64.*96x96"):
        ImaginedEnv(model=lift_model, image_size=96)
    with pytest.raises(CheckpointError, match="trained on task 'Lift'.*'Door'"):
        ImaginedEnv(task="Door", model=lift_model)
    checkpoint = lift_model.save(tmp_path / "corrupt")
    (checkpoint / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt"):
        gym.make("WoW/Lift-Imagined-v0", checkpoint=checkpoint)
    with pytest.raises(CheckpointError, match="has no config.json"):
        ImaginedEnv(checkpoint=tmp_path / "missing")
    try:  # with no checkpoint given, the env loads the shipped one or raises the same clear error
        shipped = shipped_checkpoint("PickPlaceCan", "world-model")
    except CheckpointError as error:
        with pytest.raises(CheckpointError, match="no world model is shipped for PickPlaceCan") as raised:
            ImaginedEnv(task="PickPlaceCan")
        assert str(raised.value) == str(error)
    else:
        assert ImaginedEnv(task="PickPlaceCan").model.config.task == "PickPlaceCan", shipped
    wrong_state = WorldModel.random("dit-test", env_state_dim=3)
    env = ImaginedEnv(model=wrong_state)  # the spaces come from the model; the twin shows the mismatch
    with pytest.raises(CheckpointError, match="do not match the Lift simulator"):
        env.reset(seed=0)


# -- the vector env --------------------------------------------------------------------------------------


def test_make_vec_steps_every_env_in_one_model_call_and_truncates(lift_model, monkeypatch):
    venv = gym.make_vec("WoW/Lift-Imagined-v0", num_envs=4, vectorization_mode="vector_entry_point",
                        model=lift_model, max_episode_steps=3)
    assert venv.observation_space == batch_space(venv.single_observation_space, 4)
    assert venv.single_observation_space == ImaginedEnv(model=lift_model).observation_space
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    calls = []
    real_step = lift_model.step
    monkeypatch.setattr(lift_model, "step", lambda state, *a, **k: calls.append(state.batch_size) or
                        real_step(state, *a, **k))
    obs, info = venv.reset(seed=0)
    assert obs in venv.observation_space and info["_is_success"].all()
    for t in range(1, 4):
        obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
        assert reward.shape == (4,) and not terminated.any()
        assert truncated.all() == (t == 3), f"every env is truncated at max_episode_steps=3, not at step {t}"
    assert calls == [4, 4, 4], "one batched model call per vector step"
    assert info["_final_obs"].all() and info["final_info"]["_is_success"].all()
    for i in range(4):
        assert info["final_obs"][i] in venv.single_observation_space
        assert not np.array_equal(info["final_obs"][i]["pixels"], obs["pixels"][i]), "obs is the reset frame"
    assert venv.unwrapped.episode_steps.tolist() == [0, 0, 0, 0]
    _, _, _, truncated, _ = venv.step(venv.action_space.sample())
    assert not truncated.any()
    venv.close()


def test_vector_env_is_deterministic_and_autoresets_only_finished_envs(lift_model):
    actions = np.random.default_rng(3).uniform(-1, 1, (2, 4, 7)).astype(np.float32)

    def run(**kwargs):
        venv = gym.make_vec("WoW/Lift-Imagined-v0", num_envs=4, model=lift_model, **kwargs)
        out = [venv.reset(seed=5)] + [venv.step(a) for a in actions]
        venv.close()
        return out

    plain, again = run(), run()
    for (obs_a, *_), (obs_b, *_) in zip(plain, again):
        assert all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a), "same seed, same actions, same frames"
    ending = run(terminate_on_success=True, reward_model=RowSucceeds(1))
    _, _, terminated, truncated, info = ending[1]
    assert terminated.tolist() == [False, True, False, False] and not truncated.any()
    assert info["_final_obs"].tolist() == [False, True, False, False]
    np.testing.assert_array_equal(info["final_obs"][1]["pixels"], plain[1][0]["pixels"][1])
    assert not info["is_success"][1], "a reset env reports its reset info"
    assert info["final_info"]["is_success"][1]
    # the other rows carry on exactly as in the run where nobody finished
    for step in (1, 2):
        for row in (0, 2, 3):
            np.testing.assert_allclose(ending[step][0]["agent_pos"][row], plain[step][0]["agent_pos"][row],
                                       atol=1e-5)


def _stored_step(episodes, pixels, agent_pos):
    """(episode index, step) of the stored frame equal to pixels and agent_pos; None when there is none."""
    for e, episode in enumerate(episodes):
        for t in range(len(episode.pixels)):
            if np.array_equal(episode.pixels[t], pixels) and np.array_equal(episode.agent_pos[t], agent_pos):
                return e, t
    return None


def test_a_start_pool_starts_episodes_at_stored_steps_and_cuts_them_at_the_horizon(lift_model, lift_data):
    episodes = [DatasetReader(lift_data)[i] for i in range(2)]

    def run():
        venv = gym.make_vec("WoW/Lift-Imagined-v0", num_envs=4, model=lift_model, starts=[str(lift_data)],
                            start_steps=(3, 6), max_episode_steps=2)
        out = [venv.reset(seed=2)] + [venv.step(np.zeros((4, 7), np.float32)) for _ in range(2)]
        poses = venv.unwrapped.batch.imagination.state.poses.clone()
        venv.close()
        return out, poses

    (first, one, two), poses = run()
    starts = [_stored_step(episodes, first[0]["pixels"][i], first[0]["agent_pos"][i]) for i in range(4)]
    assert all(s is not None and 3 <= s[1] <= 6 for s in starts), starts
    assert len(set(starts)) > 1, "four draws from 2 episodes x 4 steps are not all the same"
    assert not one[3].any() and two[3].all(), "truncated after max_episode_steps"
    assert two[4]["_final_obs"].all()
    restarts = [_stored_step(episodes, two[0]["pixels"][i], two[0]["agent_pos"][i]) for i in range(4)]
    assert all(s is not None and 3 <= s[1] <= 6 for s in restarts), "autoreset draws from the pool too"
    for i, (e, t) in enumerate(restarts):  # the context is the stored frames up to the start step
        torch.testing.assert_close(poses[i], torch.tensor(episodes[e].agent_pos[t - 1:t + 1]))
    (again, *_), _ = run()
    assert all(np.array_equal(first[0][k], again[0][k]) for k in first[0]), "same seed, same starts"


def test_start_pool_errors_say_what_was_expected(lift_model, lift_data):
    episodes = [DatasetReader(lift_data)[0]]
    with pytest.raises(ValueError, match="0 <= first <= last"):
        StartPool(episodes, (5, 2))
    with pytest.raises(ValueError, match="reaches step 40.*longest has 12 steps"):
        StartPool(episodes, (40, 50))
    with pytest.raises(ValueError, match="start_steps must be"):
        ImaginedEnv(model=lift_model, starts=[str(lift_data)], start_steps=(1, 2, 3))
    assert StartPool(episodes, (10, 30)).draw(np.random.default_rng(0))[1] in (10, 11, 12), \
        "the last step is clipped to the episode's"


def test_vector_reset_mask_restarts_only_the_masked_envs_from_given_frames(lift_model, lift_episode):
    venv = gym.make_vec("WoW/Lift-Imagined-v0", num_envs=3, model=lift_model)
    before, _ = venv.reset(seed=0)
    latents = venv.unwrapped.batch.imagination.state.latents.clone()
    mask = np.array([False, True, True])
    frames = {"pixels": np.stack([lift_episode.pixels[:2], lift_episode.pixels[2:4]]),
              "agent_pos": np.stack([lift_episode.agent_pos[:2], lift_episode.agent_pos[2:4]])}
    obs, info = venv.reset(options={"reset_mask": mask, **frames})
    assert info["_is_success"].tolist() == mask.tolist()
    assert np.array_equal(obs["pixels"][0], before["pixels"][0])
    assert np.array_equal(obs["pixels"][1], lift_episode.pixels[1])
    assert np.array_equal(obs["pixels"][2], lift_episode.pixels[3])
    torch.testing.assert_close(venv.unwrapped.batch.imagination.state.latents[0], latents[0])
    with pytest.raises(ValueError, match=r"one entry per env being reset \(2\)"):
        venv.reset(options={"reset_mask": mask, **{k: v[:1] for k, v in frames.items()}})
    with pytest.raises(ValueError, match=r"shape \(3, 7\)"):
        venv.step(np.zeros((2, 7), np.float32))
    venv.close()


# -- the shipped models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", shipped_tasks("world-model"))
def test_a_shipped_model_loads_with_no_arguments_and_follows_actions(task):
    path = shipped_checkpoint(task, "world-model")
    assert sum(f.stat().st_size for f in path.iterdir()) < 40 * 2**20
    env = gym.make(TASKS[task].imagined_env_id)
    try:
        assert env.unwrapped.model.config.task == task
        twin = RobosuiteEnv(task=task)
        assert env.observation_space == twin.observation_space and env.action_space == twin.action_space
        twin.close()
        start, _ = env.reset(seed=3)
        assert start in env.observation_space
        ends = {}
        for axis, sign in ((0, 1.0), (0, -1.0), (2, 1.0)):  # +x, -x, up: 5 steps of the full delta
            env.reset(seed=3)
            action = np.zeros(7, np.float32)
            action[axis] = sign
            for _ in range(5):
                observation, reward, terminated, truncated, info = env.step(action)
            assert observation in env.observation_space and np.isfinite(reward) and not truncated
            ends[(axis, sign)] = observation["agent_pos"][:3] - start["agent_pos"][:3]
        assert ends[(0, 1.0)][0] > 0.03 and ends[(0, -1.0)][0] < -0.03 and ends[(2, 1.0)][2] > 0.03, ends
        # the picture moves with the pose: different actions from one start give different frames
        assert not np.array_equal(observation["pixels"], start["pixels"])
    finally:
        env.close()

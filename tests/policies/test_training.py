"""train-policy's parts on real data, the real world model and the real simulator: the image + proprio
extractor, behaviour cloning, the sim-twin evaluation, checkpoints, resume and the wall-clock budget."""

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.logger import configure

from wow_gym.policies.bc import BCConfig, behaviour_clone, load_bc_dataset, object_state_dims, random_shift
from wow_gym.policies.export import check_parity, export_policy
from wow_gym.policies.features import ImageProprioExtractor, SpatialSoftArgmax, policy_kwargs
from wow_gym.policies.shipped import load_policy
from wow_gym.policies.sim_eval import SimEvalConfig, make_sim, run_sim_episodes, sb3_actor
from wow_gym.policies.training import (
    AbsorbingSuccess,
    PolicyTrainer,
    PPOConfig,
    SelfImitation,
    TrainPolicyConfig,
    latest_checkpoint,
    make_train_env,
    parse_env_id,
)
from wow_gym.policies.spec import POLICY_KEYS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACE = gym.spaces.Dict({"pixels": gym.spaces.Box(0, 255, (3, 64, 64), np.uint8),
                         "agent_pos": gym.spaces.Box(-np.inf, np.inf, (9,), np.float32)})


def test_spatial_soft_argmax_finds_the_peak():
    maps = torch.full((1, 2, 16, 16), -50.0)
    maps[0, 0, 0, 15] = 50.0  # top right: x = +1, y = -1
    maps[0, 1, 15, 0] = 50.0  # bottom left: x = -1, y = +1
    points = SpatialSoftArgmax(16, 16)(maps)[0]
    assert torch.allclose(points, torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-3)


def test_extractor_standardises_agent_pos_and_rejects_other_spaces():
    extractor = ImageProprioExtractor(SPACE, agent_pos_mean=[1.0] * 9, agent_pos_std=[2.0] * 9)
    obs = {"pixels": torch.rand(3, 3, 64, 64), "agent_pos": torch.ones(3, 9)}
    assert extractor(obs).shape == (3, 256)
    assert torch.equal(extractor.agent_pos_mean, torch.ones(9)) and torch.equal(extractor.agent_pos_std,
                                                                                torch.full((9,), 2.0))
    with_state = gym.spaces.Dict({**SPACE.spaces, "environment_state": gym.spaces.Box(-1, 1, (10,))})
    with pytest.raises(ValueError, match="exactly pixels and agent_pos"):
        ImageProprioExtractor(with_state)
    with pytest.raises(ValueError, match="std > 0"):
        ImageProprioExtractor(SPACE, agent_pos_std=[0.0] * 9)


def test_random_shift_moves_whole_frames_within_the_pad():
    frames = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    assert torch.equal(random_shift(frames, 0, torch.Generator()), frames)
    shifted = random_shift(frames, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == frames.shape
    padded = torch.nn.functional.pad(frames, (2, 2, 2, 2), mode="replicate")
    for i in range(2):  # every output frame is one 8x8 window of its padded frame
        windows = [padded[i, :, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(shifted[i], w) for w in windows)


def test_bc_fits_expert_actions_and_exports_at_parity(lift_data, robot_env, sim_observations):
    data = load_bc_dataset([lift_data], successful_only=False, progress=False)
    assert len(data) == 24 and data.pixels.shape == (24, 64, 64, 3) and data.action.shape == (24, 7)
    mean, std = data.agent_pos_stats()
    assert np.all(std >= 1e-2)
    model = PPO("MultiInputPolicy", robot_env, policy_kwargs=policy_kwargs(mean, std, features_dim=64,
                                                                            net_arch=(64,)), seed=0,
                n_steps=16, batch_size=16, device="cpu")
    config = BCConfig(epochs=1, batch_size=8, val_fraction=0.0, shift=0)
    first = behaviour_clone(model, data, config, progress=False)["bc/train_loss"]
    last = behaviour_clone(model, data, BCConfig(epochs=15, batch_size=8, val_fraction=0.0, shift=0),
                           progress=False)["bc/train_loss"]
    assert last < first - 0.3, (first, last)
    # the fitted policy reproduces the expert's actions on its own frames
    predicted, _ = model.predict({"pixels": data.pixels, "agent_pos": data.agent_pos}, deterministic=True)
    assert np.sqrt(np.mean((predicted - data.action) ** 2)) < 0.35
    # the extractor (keypoints, standardisation) goes through the ONNX export exactly
    onnx = export_policy(model, lift_data.parent / "bc-export", task="lift", checkpoint="in-memory")
    assert check_parity(model, onnx, sim_observations) < 1e-5


def test_bc_data_errors(lift_data, tmp_path):
    with pytest.raises(ValueError, match="none succeeds; pass successful_only=False"):
        load_bc_dataset([lift_data], progress=False)  # two 12-step episodes: too short to lift the cube
    with pytest.raises(ValueError, match="32x32"):
        load_bc_dataset([lift_data], successful_only=False, image_size=32, progress=False)
    with pytest.raises(FileNotFoundError, match="nothing"):
        load_bc_dataset([tmp_path / "nothing"], progress=False)


def test_bc_with_the_auxiliary_state_loss_learns_where_the_cube_is(lift_data, robot_env):
    """bc.aux_state_weight: the actor's features also predict the simulator's environment_state through a
    head that is not part of the policy; its loss falls, and the policy keeps its own parameters only."""
    data = load_bc_dataset([lift_data], successful_only=False, progress=False, with_state=True)
    assert data.state is not None and data.state.shape == (24, 10)
    assert load_bc_dataset([lift_data], successful_only=False, progress=False).state is None
    kwargs = policy_kwargs(*data.agent_pos_stats(), features_dim=64, net_arch=(64,))
    model = PPO("MultiInputPolicy", robot_env, policy_kwargs=kwargs, seed=0, n_steps=16, batch_size=16,
                device="cpu")
    names = set(model.policy.state_dict())
    aux = [behaviour_clone(model, data, BCConfig(epochs=e, batch_size=8, val_fraction=0.0, shift=0,
                                                 aux_state_weight=1.0), progress=False)["bc/aux_state_loss"]
           for e in (1, 15)]
    assert aux[1] < 0.7 * aux[0], aux
    assert set(model.policy.state_dict()) == names, "the head is dropped: the policy exports as before"
    some = BCConfig(epochs=1, batch_size=8, val_fraction=0.0, aux_state_weight=1.0,
                    aux_state_dims=[0, 1, 2, 7, 8, 9])
    assert behaviour_clone(model, data, some, progress=False)["bc/aux_state_loss"] > 0
    with pytest.raises(ValueError, match="must be indices into the 10 environment_state entries"):
        behaviour_clone(model, data, dataclasses.replace(some, aux_state_dims=[10]), progress=False)
    plain = behaviour_clone(model, data, BCConfig(epochs=1, batch_size=8, val_fraction=0.0), progress=False)
    assert "bc/aux_state_loss" not in plain
    with pytest.raises(ValueError, match="needs the dataset's environment_state"):
        behaviour_clone(model, load_bc_dataset([lift_data], successful_only=False, progress=False),
                        BCConfig(epochs=1, aux_state_weight=1.0), progress=False)
    kwargs = policy_kwargs(*data.agent_pos_stats(), features_dim=32, net_arch=(32,), algo="sac")
    sac = SAC("MultiInputPolicy", robot_env, policy_kwargs=kwargs, buffer_size=100, seed=0, device="cpu")
    with pytest.raises(ValueError, match="is for PPO/A2C policies"):
        behaviour_clone(sac, data, BCConfig(epochs=1, aux_state_weight=1.0), progress=False)


def test_bc_can_clone_each_episode_as_the_world_model_imagines_it_too(lift_data):
    """bc.imagined: load_bc_dataset(imagined_by=<world model>) adds, after the recorded pairs, each episode
    imagined from its first frame under its recorded actions: imagined frame t with its imagined agent_pos
    and object state, labelled with the recorded action t, in episodes of their own."""
    from wow_gym.data.flat import read_episodes
    from wow_gym.world_models.video.imagination import load_world_model

    wm = load_world_model("Lift")
    real = load_bc_dataset([lift_data], successful_only=False, progress=False, with_state=True)
    both = load_bc_dataset([lift_data], successful_only=False, progress=False, with_state=True,
                           imagined_by=wm)
    episodes = [r for _, _, r in read_episodes([lift_data], "test", progress=False)]
    n = len(real)
    assert len(both) == n + sum(r.num_steps - 1 for r in episodes) == 2 * 24 - 2
    for key in ("pixels", "agent_pos", "action", "episode", "state"):
        np.testing.assert_array_equal(getattr(both, key)[:n], getattr(real, key), err_msg=key)
    imagined = slice(n, None)
    assert set(both.episode[imagined]).isdisjoint(both.episode[:n]), "imagined episodes are their own"
    first = episodes[0]
    np.testing.assert_array_equal(both.action[n:n + first.num_steps - 1], first.action[1:])
    assert not np.array_equal(both.pixels[n], first.pixels[1]), "imagined frames, not the recorded ones"
    assert np.abs(both.agent_pos[n] - first.agent_pos[1]).max() < 0.02, "the imagined arm follows the actions"
    assert np.abs(both.state[n, :3] - first.environment_state[1, :3]).max() < 0.03, "the cube where it was"
    plain = load_bc_dataset([lift_data], successful_only=False, progress=False, imagined_by=wm)
    assert plain.state is None and len(plain) == len(both)


def test_sac_is_cloned_through_its_deterministic_actor(lift_data, robot_env):
    data = load_bc_dataset([lift_data], successful_only=False, progress=False)
    model = SAC("MultiInputPolicy", robot_env, policy_kwargs=policy_kwargs(*data.agent_pos_stats(), features_dim=32,
                                                                            net_arch=(32,), algo="sac"),
                buffer_size=100, seed=0, device="cpu")
    losses = [behaviour_clone(model, data, BCConfig(epochs=e, batch_size=8, val_fraction=0.0, shift=0),
                              progress=False)["bc/train_loss"] for e in (1, 10)]
    assert losses[1] < losses[0]


def test_sim_episodes_start_from_their_seeds_and_stop_on_success():
    config = SimEvalConfig(episodes=2, seed=7, max_steps=3)
    zero = lambda obs: np.zeros((len(obs["agent_pos"]), 7), np.float32)  # noqa: E731
    first = run_sim_episodes(zero, "lift", config, keep_frames=True, progress=False)
    again = run_sim_episodes(zero, "lift", config, keep_frames=True, progress=False)
    assert [r.seed for r in first] == [7, 8] and [r.length for r in first] == [3, 3]
    assert np.array_equal(first[0].frames, again[0].frames) and first[0].frames.shape == (4, 64, 64, 3)
    assert not np.array_equal(first[0].frames[0], first[1].frames[0]), "two seeds, two layouts"
    assert not any(r.success for r in first)
    waves = run_sim_episodes(zero, "lift", SimEvalConfig(episodes=3, seed=7, max_steps=3, parallel=2),
                             keep_frames=True, progress=False)
    assert [r.seed for r in waves] == [7, 8, 9], "three episodes on two simulators: two waves"
    assert np.array_equal(waves[1].frames, first[1].frames), "a second-wave episode is the same episode"
    with pytest.raises(ValueError, match="randomize must be one of"):
        make_sim("lift", "sometimes")
    env = make_sim("lift", "unseen")
    frame = env.reset(seed=7)[0]["pixels"]
    assert not np.array_equal(frame, first[0].frames[0]), "an unseen randomization changes the scene"
    env.close()


def test_env_ids_are_checked():
    assert parse_env_id("WoW/Lift-Imagined-v0") == ("Lift", True)
    assert parse_env_id("WoW/Lift-v0") == ("Lift", False)
    with pytest.raises(ValueError, match="unknown env 'WoW/Lift-v9'"):
        parse_env_id("WoW/Lift-v9")
    with pytest.raises(ValueError, match="algo must be one of"):
        PolicyTrainer(TrainPolicyConfig(algo="dqn", out="/tmp/unused"))


def test_bc_aux_state_dims_object_names_each_task_s_object(tmp_path):
    """bc.aux_state_dims=object: the task's object position and gripper-to-object offset, per task."""
    assert object_state_dims("lift") == [0, 1, 2, 7, 8, 9]
    assert object_state_dims("Stack") == [0, 1, 2, 17, 18, 19]
    assert object_state_dims("door") == [3, 4, 5, 10, 11, 12]
    assert object_state_dims("pickplacecan") == [7, 8, 9, 0, 1, 2]
    bc = BCConfig(aux_state_weight=1.0, aux_state_dims="object")
    trainer = PolicyTrainer(TrainPolicyConfig(env="WoW/Stack-v0", out=str(tmp_path), bc=bc))
    assert trainer.config.bc.aux_state_dims == [0, 1, 2, 17, 18, 19]
    with pytest.raises(ValueError, match="'object' \\(the task's object position"):
        PolicyTrainer(TrainPolicyConfig(out=str(tmp_path), bc=dataclasses.replace(bc, aux_state_dims="cube")))


def test_simulators_in_subprocesses_step_as_the_in_process_ones():
    config = _tiny("/tmp/unused", env="WoW/Lift-v0", terminate_on_success=False)
    envs = [make_train_env(config), make_train_env(dataclasses.replace(config, sim_vec_env="subproc"))]
    try:
        first = [env.reset() for env in envs]
        assert sorted(first[1]) == sorted(POLICY_KEYS), "the policy sees only its keys"
        actions = np.random.default_rng(0).uniform(-1, 1, (3, 2, 7)).astype(np.float32)
        steps = [[env.step(a)[:2] for a in actions] for env in envs]
    finally:
        for env in envs:
            env.close()
    for key in POLICY_KEYS:
        assert np.array_equal(first[0][key], first[1][key])
    for (obs_a, reward_a), (obs_b, reward_b) in zip(*steps):
        assert np.array_equal(reward_a, reward_b.astype(np.float32))  # SB3VecEnv hands SB3 float32 rewards
        assert all(np.array_equal(obs_a[key], obs_b[key]) for key in POLICY_KEYS)
    with pytest.raises(ValueError, match="sim_vec_env must be 'sync'"):
        PolicyTrainer(dataclasses.replace(config, sim_vec_env="ray"))


def _tiny(out, **kwargs):
    values = dict(out=str(out), n_envs=2, total_timesteps=16, checkpoint_every=8, progress=False,
                  bc=BCConfig(datasets=[], epochs=0),
                  eval=SimEvalConfig(every_steps=8, episodes=2, max_steps=4))
    values.update(kwargs)
    values.setdefault("ppo", PPOConfig(n_steps=4, batch_size=8, n_epochs=1))
    return TrainPolicyConfig(**values)


def test_train_in_imagination_with_bc_then_resume(tmp_path, lift_data):
    config = _tiny(tmp_path / "run", bc=BCConfig(datasets=[str(lift_data)], epochs=1, batch_size=8, successful_only=False))
    summary = PolicyTrainer(config).run()
    out = tmp_path / "run"
    assert summary["timesteps"] == 16 and summary["bc"]["bc/train_loss"] > 0
    for name in ("bc.zip", "final.zip", "curves.json", "curves.png", "state.json", "summary.json"):
        assert (out / name).exists(), name
    curves = json.loads((out / "curves.json").read_text())
    assert [c["timesteps"] for c in curves] == [0, 8, 16], "the sim twin before RL and every 8 steps"
    assert all(0.0 <= c["sim_success_rate"] <= 1.0 for c in curves)
    seconds = [c["rl_seconds"] for c in curves]  # RL wall-clock at each point (compare-runs plots against it)
    assert seconds == sorted(seconds) and seconds[-1] <= json.loads((out / "state.json").read_text())["rl_seconds"]
    assert latest_checkpoint(out).name == "rl_16_steps.zip"
    model = PPO.load(out / "final.zip", device="cpu")
    assert set(model.observation_space.spaces) == {"pixels", "agent_pos"}, "no environment_state"
    assert isinstance(model.policy.features_extractor, ImageProprioExtractor)

    more = PolicyTrainer(_tiny(out, total_timesteps=24, bc=BCConfig(datasets=[str(lift_data)], epochs=1, successful_only=False))).run()
    assert more["timesteps"] == 24, "the rerun resumes at 16 and trains the 8 steps left"
    assert [c["timesteps"] for c in json.loads((out / "curves.json").read_text())] == [0, 8, 16, 24]


def test_a_warm_started_run_gives_the_same_policy_every_time(tmp_path, robot_env):
    """SB3's load seeds nothing; the trainer seeds a warm start, so one init and one seed give one policy."""
    load_policy(task="lift", env=robot_env).save(tmp_path / "init.zip")
    finals = []
    for name in ("first", "second"):
        config = _tiny(tmp_path / name, init=str(tmp_path / "init.zip"),
                       eval=SimEvalConfig(every_steps=0, episodes=1, max_steps=2))
        PolicyTrainer(config).run()
        finals.append(PPO.load(tmp_path / name / "final.zip", device="cpu").policy.state_dict())
    start = PPO.load(tmp_path / "init.zip", device="cpu").policy.state_dict()
    assert any(not torch.equal(start[k], finals[0][k]) for k in start), "PPO changed the policy"
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in start)


def test_train_in_the_sim_stops_at_its_wall_clock_budget(tmp_path):
    config = _tiny(tmp_path / "sim", env="WoW/Lift-v0", total_timesteps=10_000, max_minutes=0.05,
                   eval=SimEvalConfig(every_steps=0, episodes=1, max_steps=2))
    summary = PolicyTrainer(config).run()
    assert 0 < summary["timesteps"] < 10_000 and summary["rl_seconds"] >= 3.0
    assert [c["timesteps"] for c in summary["curves"]] == [0, summary["timesteps"]], "before RL and at its end"
    actor = sb3_actor(PPO.load(tmp_path / "sim" / "final.zip", device="cpu"))
    assert actor({"pixels": np.zeros((2, 64, 64, 3), np.uint8), "agent_pos": np.zeros((2, 9), np.float32),
                  "environment_state": np.zeros((2, 10), np.float32)}).shape == (2, 7)
    again = PolicyTrainer(config).run()
    assert again["timesteps"] == summary["timesteps"], "the budget is spent: a rerun trains no further"


def test_imagined_starts_and_horizon_reach_the_imagined_env_and_only_it(lift_data):
    config = _tiny("/tmp/unused", imagined_starts=[str(lift_data)], imagined_start_steps=[2, 4],
                   imagined_horizon=3)
    venv = make_train_env(config)
    env = venv.venv.env  # VecMonitor -> SB3VecEnv -> the imagined vector env
    assert env.max_episode_steps == 3 and env.source.starts.steps == (2, 4)
    assert len(env.source.starts.episodes) == 2
    venv.close()
    with pytest.raises(ValueError, match="is the simulator"):
        PolicyTrainer(_tiny("/tmp/unused", env="WoW/Lift-v0", imagined_starts=[str(lift_data)]))
    with pytest.raises(ValueError, match="imagined_horizon must be >= 1"):
        PolicyTrainer(_tiny("/tmp/unused", imagined_horizon=0))
    with pytest.raises(ValueError, match="0 <= first <= last"):
        PolicyTrainer(_tiny("/tmp/unused", imagined_starts=[str(lift_data)], imagined_start_steps=[9, 3]))
    with pytest.raises(ValueError, match="does not exist"):
        PolicyTrainer(_tiny("/tmp/unused", imagined_starts=["/nonexistent/dataset"]))


def test_randomize_is_for_the_simulator():
    with pytest.raises(ValueError, match="the imagined env has none to perturb"):
        PolicyTrainer(_tiny("/tmp/unused", randomize=True)).run()


def test_a_run_can_start_from_a_shared_warm_start(tmp_path, robot_env):
    start = PPO("MultiInputPolicy", robot_env, policy_kwargs=policy_kwargs(features_dim=32, net_arch=(32,)),
                n_steps=16, batch_size=16, seed=3, device="cpu")
    start.save(tmp_path / "start.zip")
    config = _tiny(tmp_path / "from-start", env="WoW/Lift-v0", init=str(tmp_path / "start.zip"),
                   total_timesteps=0, eval=SimEvalConfig(every_steps=0, episodes=1, max_steps=2))
    summary = PolicyTrainer(config).run()
    assert summary["timesteps"] == 0 and len(summary["curves"]) == 1, "BC only: one sim-twin evaluation"
    copied = PPO.load(tmp_path / "from-start" / "bc.zip", device="cpu").policy.state_dict()
    for name, value in start.policy.state_dict().items():
        assert torch.equal(copied[name], value), name
    assert json.loads((tmp_path / "from-start" / "state.json").read_text())["init"] == str(tmp_path / "start.zip")
    with pytest.raises(ValueError, match="is neither an SB3 zip"):
        PolicyTrainer(_tiny(tmp_path / "missing", env="WoW/Lift-v0", init=str(tmp_path / "none.zip"))).run()

    # the shipped policy's folder is a warm start too: the run's bc.zip holds exactly its weights
    from wow_gym.policies.shipped import load_policy, shipped_policy

    shipped = _tiny(tmp_path / "from-shipped", env="WoW/Lift-v0", init=str(shipped_policy("lift")),
                    total_timesteps=0, eval=SimEvalConfig(every_steps=0, episodes=1, max_steps=2))
    PolicyTrainer(shipped).run()
    copied = PPO.load(tmp_path / "from-shipped" / "bc.zip", device="cpu").policy.state_dict()
    for name, value in load_policy(task="lift").policy.state_dict().items():
        assert torch.equal(copied[name], value), name


def test_value_warmup_freezes_the_actor_and_bc_steps_keep_cloning(tmp_path, robot_env, lift_data):
    start = PPO("MultiInputPolicy", robot_env, policy_kwargs=policy_kwargs(features_dim=32, net_arch=(32,)),
                n_steps=16, batch_size=16, seed=3, device="cpu")
    start.save(tmp_path / "start.zip")
    initial = {k: v.clone() for k, v in start.policy.state_dict().items()}
    warm = PolicyTrainer(_tiny(tmp_path / "warm", init=str(tmp_path / "start.zip"), value_warmup_steps=100,
                               eval=SimEvalConfig(every_steps=0, episodes=1, max_steps=2))).run()
    after = PPO.load(warm["final"], device="cpu").policy.state_dict()
    assert torch.equal(after["action_net.weight"], initial["action_net.weight"]), "the actor is frozen"
    assert torch.equal(after["features_extractor.cnn.0.weight"], initial["features_extractor.cnn.0.weight"])
    assert not torch.equal(after["value_net.weight"], initial["value_net.weight"]), "the critic learns"
    both = PolicyTrainer(_tiny(tmp_path / "both", init=str(tmp_path / "start.zip"), value_warmup_steps=100,
                               bc_steps_per_update=2, eval=SimEvalConfig(every_steps=0, episodes=1, max_steps=2),
                               bc=BCConfig(datasets=[str(lift_data)], successful_only=False, batch_size=8))).run()
    after = PPO.load(both["final"], device="cpu").policy.state_dict()
    assert torch.equal(after["action_net.weight"], initial["action_net.weight"]), "no cloning while frozen"
    with pytest.raises(ValueError, match="bc_steps_per_update needs bc.datasets"):
        PolicyTrainer(_tiny(tmp_path / "nobc", init=str(tmp_path / "start.zip"), bc_steps_per_update=2)).run()
    cloned = PolicyTrainer(_tiny(tmp_path / "bc", init=str(tmp_path / "start.zip"), bc_steps_per_update=3,
                                 ppo=PPOConfig(n_steps=4, batch_size=8, n_epochs=1, learning_rate=0.0), eval=SimEvalConfig(every_steps=0, episodes=1, max_steps=2),
                                 bc=BCConfig(datasets=[str(lift_data)], successful_only=False, batch_size=8))).run()
    after = PPO.load(cloned["final"], device="cpu").policy.state_dict()
    assert not torch.equal(after["action_net.weight"], initial["action_net.weight"]), "BC steps move the actor"
    assert torch.equal(after["value_net.weight"], initial["value_net.weight"]), "PPO at lr 0, BC leaves the critic"
    frozen = PolicyTrainer(_tiny(tmp_path / "frozen", init=str(tmp_path / "start.zip"), freeze_features=True,
                                 bc_steps_per_update=2, eval=SimEvalConfig(every_steps=0, episodes=1, max_steps=2),
                                 bc=BCConfig(datasets=[str(lift_data)], successful_only=False, batch_size=8))).run()
    after = PPO.load(frozen["final"], device="cpu").policy.state_dict()
    extractor = [k for k in after if k.startswith("features_extractor.")]
    assert extractor and all(torch.equal(after[k], initial[k]) for k in extractor), "the features stay"
    assert not torch.equal(after["action_net.weight"], initial["action_net.weight"]), "the layers after learn"


def test_an_asymmetric_critic_reads_the_object_state_and_final_zip_keeps_the_actor(tmp_path, robot_env,
                                                                                    lift_data):
    """value_state: in imagination, PPO's value function reads agent_pos + the imagined object state, the
    actor pixels + agent_pos; checkpoints resume as asymmetric policies and final.zip is the actor alone in
    the warm start's standard policy."""
    from wow_gym.data import DatasetReader
    from wow_gym.policies.features import AsymmetricActorCriticPolicy, StateExtractor

    start = PPO("MultiInputPolicy", robot_env, policy_kwargs=policy_kwargs(features_dim=32, net_arch=(32,)),
                n_steps=16, batch_size=16, seed=3, device="cpu")
    start.save(tmp_path / "start.zip")
    initial = {k: v.clone() for k, v in start.policy.state_dict().items()}
    bc = BCConfig(datasets=[str(lift_data)], epochs=0)
    quiet = SimEvalConfig(every_steps=0, episodes=1, max_steps=2)
    warm = PolicyTrainer(_tiny(tmp_path / "warm", init=str(tmp_path / "start.zip"), value_state=True,
                               value_warmup_steps=100, bc_steps_per_update=2, eval=quiet,
                               bc=BCConfig(datasets=[str(lift_data)], successful_only=False, batch_size=8))).run()
    final = PPO.load(warm["final"], device="cpu")
    assert type(final.policy) is not AsymmetricActorCriticPolicy
    assert set(final.observation_space.spaces) == set(POLICY_KEYS), "final.zip reads what a robot gives"
    after = final.policy.state_dict()
    actor = [k for k in initial if not k.startswith(("value_net", "mlp_extractor.value"))]
    assert all(torch.equal(after[k], initial[k]) for k in actor), "the warmed-up actor, copied both ways"

    trained = PolicyTrainer(_tiny(tmp_path / "rl", init=str(tmp_path / "start.zip"), value_state=True, bc=bc,
                                  ppo=PPOConfig(n_steps=4, batch_size=8, n_epochs=2, learning_rate=1e-3),
                                  eval=quiet)).run()
    checkpoint = PPO.load(latest_checkpoint(tmp_path / "rl"), device="cpu")
    policy = checkpoint.policy
    assert isinstance(policy, AsymmetricActorCriticPolicy)
    assert isinstance(policy.vf_features_extractor, StateExtractor)
    assert set(checkpoint.observation_space.spaces) == {*POLICY_KEYS, "environment_state"}
    stats = DatasetReader(lift_data).stats()
    expected = stats["observation.state"]["mean"] + stats["observation.environment_state"]["mean"]
    assert np.allclose(policy.vf_features_extractor.mean.numpy(), expected, atol=1e-6), "the data's stats"
    final = PPO.load(trained["final"], device="cpu").policy.state_dict()
    moved = [k for k in initial if k.startswith("action_net") and not torch.equal(final[k], initial[k])]
    assert moved, "PPO moved the actor"
    source = policy.state_dict()
    for name in ("action_net.weight", "log_std", "mlp_extractor.policy_net.0.weight",
                 "features_extractor.cnn.0.weight"):
        assert torch.equal(final[name], source[name]), name

    observation = {"pixels": torch.zeros(2, 3, 64, 64), "agent_pos": torch.zeros(2, 9),
                   "environment_state": torch.zeros(2, 10)}
    moved_object = {**observation, "environment_state": torch.tensor([[0.0] * 10, [0.1] * 10])}
    with torch.no_grad():
        values = policy.predict_values(moved_object).squeeze(1)
        actions = [policy.get_distribution(o).distribution.mean for o in (observation, moved_object)]
    assert values[0] != values[1], "the value reads the object state"
    assert torch.equal(actions[0], actions[1]), "the actor does not"
    resumed = PolicyTrainer(_tiny(tmp_path / "rl", init=str(tmp_path / "start.zip"), value_state=True, bc=bc,
                                  total_timesteps=24, eval=quiet)).run()
    assert resumed["timesteps"] == 24, "an asymmetric run resumes from its checkpoint"
    for bad in ({"algo": "sac"}, {"init": None}):
        with pytest.raises(ValueError, match="value_state .* fine-tunes a warm start with PPO"):
            PolicyTrainer(_tiny(tmp_path / "bad", value_state=True,
                                **{"init": str(tmp_path / "start.zip"), **bad})).run()


def test_self_imitation_clones_only_finished_successful_episodes(robot_env):
    from gymnasium.wrappers import FilterObservation
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: robot_env, lambda: FilterObservation(gym.make("WoW/Lift-v0"), ["pixels", "agent_pos"])])
    model = PPO("MultiInputPolicy", venv, policy_kwargs=policy_kwargs(features_dim=32, net_arch=(32,)),
                n_steps=4, batch_size=8, seed=0, device="cpu")
    model.set_logger(configure(None, []))  # learn() would set one
    callback = SelfImitation(steps=3, frames=5, lr=1e-2, config=BCConfig(batch_size=4), seed=0)
    callback.init_callback(model)
    callback.on_rollout_start()  # the first call only builds the optimizer
    model._last_obs = model.get_env().reset()  # channel-first, as SB3 wraps image envs
    frames = []

    def step(actions, dones, successes):
        frames.append({k: v.copy() for k, v in model._last_obs.items()})
        callback.update_locals({"actions": np.asarray(actions, np.float32), "dones": np.asarray(dones),
                                "infos": [{"is_success": s} for s in successes]})
        assert callback.on_step()
        model._last_obs = {k: np.roll(v, 1, axis=0) for k, v in model._last_obs.items()}  # other frames

    step([[2.0] * 7, [0.5] * 7], [False, False], [False, False])
    callback.on_rollout_start()
    assert callback._dataset() is None, "nothing finished yet, nothing to clone"
    step([[-3.0] * 7, [0.25] * 7], [True, True], [True, False])  # env 0 succeeds, env 1 fails
    data = callback._dataset()
    assert len(data) == 2 and callback.episodes == 1
    np.testing.assert_array_equal(data.action, [[1.0] * 7, [-1.0] * 7])  # env 0's actions, clipped to the space
    for row, frame in enumerate(frames):  # the frames the actions were taken on, channel-last
        np.testing.assert_array_equal(data.pixels[row], frame["pixels"][0].transpose(1, 2, 0))
        np.testing.assert_array_equal(data.agent_pos[row], frame["agent_pos"][0])
    for _ in range(3):  # three more two-step successes of env 1
        step([[0.0] * 7, [0.1] * 7], [False, False], [False, False])
        step([[0.0] * 7, [0.2] * 7], [False, True], [False, True])
    step([[0.0] * 7, [0.3] * 7], [False, False], [False, True])  # a success before the episode ends
    step([[0.0] * 7, [0.4] * 7], [False, True], [False, False])  # (without terminate_on_success) counts
    data = callback._dataset()
    assert callback.episodes == 5 and len(data) == 5
    np.testing.assert_allclose(data.action[:, 0], [0.2, 0.1, 0.2, 0.3, 0.4], rtol=1e-6)  # the newest 5 frames
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    callback.on_rollout_start()
    after = model.policy.state_dict()
    assert not torch.equal(after["action_net.weight"], before["action_net.weight"]), "successes are cloned"
    assert torch.equal(after["value_net.weight"], before["value_net.weight"]), "the critic is left alone"
    with pytest.raises(ValueError, match="self_imitation_frames >= 1"):
        SelfImitation(steps=1, frames=0, lr=1e-4, config=BCConfig(), seed=0)
    venv.envs[1].close()


class _StartLifted(gym.Wrapper):
    """Every episode starts from one stored simulator state (the env's own sim_state reset option)."""

    def __init__(self, env, sim_state):
        super().__init__(env)
        self.sim_state = sim_state

    def reset(self, **kwargs):
        return self.env.reset(options={"sim_state": self.sim_state})


def test_a_terminating_success_is_paid_the_reward_of_staying_in_it(tmp_path):
    import mujoco
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    lifted = gym.make("WoW/Lift-v0", terminate_on_success=True)
    lifted.reset(seed=0)
    sim = lifted.unwrapped
    joint = sim.model.joint("cube_joint0")
    sim.data.qpos[sim.model.jnt_qposadr[joint.id] + 2] += 0.15  # the cube 15 cm up: lifted at the next step
    mujoco.mj_forward(sim.model, sim.data)
    bare = DummyVecEnv([lambda: _StartLifted(lifted, sim.get_sim_state()),
                        lambda: gym.make("WoW/Lift-v0", terminate_on_success=True)])
    with pytest.raises(ValueError, match="wraps a VecMonitor"):
        AbsorbingSuccess(bare, 0.9, 100)
    venv = VecMonitor(bare)  # the episode lengths it counts are the steps taken
    gamma = 0.9
    for horizon in (100, 10):
        wrapped = AbsorbingSuccess(venv, gamma, horizon)
        wrapped.reset()
        for _ in range(3):  # three one-step episodes: the step count starts again after each
            _, rewards, dones, infos = wrapped.step(np.zeros((2, 7), np.float32))
            assert dones.tolist() == [True, False] and infos[0]["is_success"] and not infos[1]["is_success"]
            left = horizon - 1
            bonus = gamma * (1 - gamma ** left) / (1 - gamma)  # robosuite pays a lifted step 1.0
            assert infos[0]["success_bonus"] == pytest.approx(bonus)
            assert rewards[0] == pytest.approx(1.0 + bonus) and "success_bonus" not in infos[1]
            assert 0 <= rewards[1] < 0.6, "an unfinished step keeps the env's own reward"
    with pytest.raises(ValueError, match="0 < gamma < 1"):
        AbsorbingSuccess(venv, 1.0, 100)
    venv.close()
    config = _tiny(tmp_path, env="WoW/Lift-v0")
    for changes, wrapped in (({}, True), ({"absorbing_success": False}, False),
                             ({"terminate_on_success": False}, False)):
        env = make_train_env(dataclasses.replace(config, **changes))
        assert isinstance(env, AbsorbingSuccess) is wrapped, changes
        env.close()


def test_world_model_options_are_refused_for_a_simulator_run():
    config = TrainPolicyConfig(env="WoW/Lift-v0",
                               world_model_options={"arm_physics": True, "finger_rule": None})
    with pytest.raises(ValueError, match=r"options \['arm_physics'\] set the imagined env's world model"):
        make_train_env(config)
    # ... unless bc.imagined clones the demonstrations through that world model: the simulator run is built
    config.bc, config.n_envs = BCConfig(imagined=True), 1
    venv = make_train_env(config)
    try:
        assert venv.num_envs == config.n_envs
    finally:
        venv.close()

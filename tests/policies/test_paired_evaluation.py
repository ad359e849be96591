"""wow-gym evaluate: policies in the imagined env and the simulator from the same start states, the ranking
metrics, the expansion of training runs, and the errors a user meets. Real shipped world model, critic and
simulator; an untrained SB3 PPO over {pixels, agent_pos}."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from wow_gym.policies.evaluation import (
    EvaluateConfig,
    PolicyEntry,
    correlation,
    evaluate,
    expand_entries,
    make_policy,
    mmrv,
)
from wow_gym.policies.evaluation_report import write_report, write_tensorboard

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _DictEnv(gym.Env):
    """Only the spaces a policy is built on; never stepped."""

    def __init__(self, size: int = 64, keys: tuple[str, ...] = ("pixels", "agent_pos")) -> None:
        every = {"pixels": spaces.Box(0, 255, (size, size, 3), np.uint8),
                 "agent_pos": spaces.Box(-np.inf, np.inf, (9,), np.float32),
                 "wrist": spaces.Box(0, 255, (size, size, 3), np.uint8)}
        self.observation_space = spaces.Dict({k: every[k] for k in keys})
        self.action_space = spaces.Box(-1.0, 1.0, (7,), np.float32)


def _save_ppo(path, small_policy, **env_kwargs):
    from stable_baselines3 import PPO

    model = PPO("MultiInputPolicy", _DictEnv(**env_kwargs), policy_kwargs=small_policy(), n_steps=16,
                batch_size=16, seed=0, device="cpu")
    model.save(path)
    return path


@pytest.fixture(scope="module")
def ppo_zip(ppo, tmp_path_factory):
    """The untrained session PPO (over the real env's pixels and agent_pos) saved as a zip."""
    path = tmp_path_factory.mktemp("ppo") / "ppo.zip"
    ppo.save(path)
    return path


@pytest.fixture(scope="module")
def evaluated(ppo_zip, tmp_path_factory):
    """2 policies x 2 start states x 4 steps in both worlds, with the report written."""
    config = EvaluateConfig(policies=[{"name": "random", "kind": "random"}], sb3=str(ppo_zip), n_episodes=2,
                            max_steps=4, progress=False)
    results = evaluate(config)
    out = tmp_path_factory.mktemp("evaluate")
    write_report(results, out)
    write_tensorboard(results, out / "tensorboard")
    return results, out


# -- metrics -----------------------------------------------------------------------------------------------


def test_mmrv_on_hand_computed_rankings():
    assert mmrv([0.1, 0.5, 0.9], [0.2, 0.3, 0.8]) == 0.0  # the same order
    # reversed: rows 0 and 2 are worst against each other (0.8), row 1 against either (0.4)
    assert mmrv([0.1, 0.5, 0.9], [0.9, 0.5, 0.1]) == pytest.approx((0.8 + 0.4 + 0.8) / 3)
    # tied in imagination, apart in the sim: counts once, in the row of the policy worse in the sim
    assert mmrv([0.2, 0.6], [0.5, 0.5]) == pytest.approx(0.4 / 2)
    assert mmrv([0.5, 0.5], [0.1, 0.9]) == 0.0  # tied in the sim: no weight
    assert mmrv([0.3], [0.7]) is None


def test_correlations_and_when_they_are_undefined():
    sim, imagined = np.array([0.0, 0.25, 1.0]), np.array([0.1, 0.2, 0.4])
    c = correlation(sim, imagined)
    assert c.pearson == pytest.approx(np.corrcoef(sim, imagined)[0, 1])
    assert c.spearman == pytest.approx(1.0) and c.mmrv == 0.0 and c.note == ""
    assert correlation([0.0, 0.5, 1.0], [0.5, 0.5, 0.0]).spearman == pytest.approx(-np.sqrt(3) / 2)  # a tie
    flat = correlation([0.5, 0.5], [0.1, 0.9])
    assert flat.pearson is None and flat.spearman is None and "sim" in flat.note and flat.mmrv == 0.0
    single = correlation([0.5], [0.5])
    assert single.pearson is None and single.mmrv is None and "at least 2" in single.note


# -- policies and runs -------------------------------------------------------------------------------------


def test_run_expands_to_its_checkpoints_in_training_order(tmp_path):
    run = tmp_path / "my-run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("checkpoints/rl_10000_steps.zip", "checkpoints/rl_4096_steps.zip",
                 "checkpoints/rl_512_steps.zip", "checkpoints/rl_512_steps.replay.pkl", "bc.zip", "final.zip"):
        (run / name).touch()
    entries = expand_entries(EvaluateConfig(policies=[], run=str(run)).policies)
    assert [e.name for e in entries] == ["my-run@bc", "my-run@rl_512_steps", "my-run@rl_4096_steps",
                                         "my-run@rl_10000_steps", "my-run@final"]
    assert {e.kind for e in entries} == {"sb3"}
    assert entries[1].path == str(run / "checkpoints" / "rl_512_steps.zip")
    noisy = expand_entries([PolicyEntry("r", "run", str(run), noise_std=0.2)])
    assert noisy[0].name == "r@bc" and {e.noise_std for e in noisy} == {0.2}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no policies; expected checkpoints/"):
        expand_entries([PolicyEntry(kind="run", path=str(tmp_path / "empty"))])
    with pytest.raises(ValueError, match="run folder .* not found"):
        expand_entries([PolicyEntry(kind="run", path=str(tmp_path / "missing"))])


def test_noise_is_seeded_and_clipped():
    policy = make_policy(PolicyEntry("z", "zero", noise_std=5.0), None)
    policy.reset(3, seed=7)
    first = policy.act({})
    policy.reset(3, seed=7)
    assert first.shape == (3, 7) and first.dtype == np.float32 and np.array_equal(first, policy.act({}))
    assert np.abs(first).max() == 1.0


def test_errors_say_what_was_expected(tmp_path, small_policy):
    from wow_gym.envs.imagined_env import imagined_spaces
    from wow_gym.world_models import WorldModel

    with pytest.raises(ValueError, match="unknown kind 'expert'; expected one of"):
        EvaluateConfig(policies=[{"name": "e", "kind": "expert"}])
    with pytest.raises(ValueError, match="unknown policy keys \\['std'\\]"):
        EvaluateConfig(policies=[{"name": "e", "std": 0.1}])
    with pytest.raises(ValueError, match="n_episodes must be >= 1"):
        EvaluateConfig(n_episodes=0)
    with pytest.raises(ValueError, match="randomize must be one of"):
        EvaluateConfig(randomize="some")
    with pytest.raises(ValueError, match="needs a path"):
        EvaluateConfig(policies=[{"kind": "sb3"}])
    with pytest.raises(ValueError, match="appear more than once"):
        expand_entries([PolicyEntry("a"), PolicyEntry("a", "zero")])
    space, _ = imagined_spaces(WorldModel.random("dit-test", env_state_dim=10))
    with pytest.raises(ValueError, match=r"missing\.zip.*stable-baselines3"):
        make_policy(PolicyEntry("m", "sb3", str(tmp_path / "missing.zip")), space)
    small = _save_ppo(tmp_path / "small.zip", small_policy, size=48)
    with pytest.raises(ValueError, match=r"48x48.*64x64"):
        make_policy(PolicyEntry("small", "sb3", str(small)), space)
    wrist = _save_ppo(tmp_path / "wrist.zip", small_policy, keys=("pixels", "wrist"))
    with pytest.raises(ValueError, match=r"\['wrist'\]"):
        make_policy(PolicyEntry("wrist", "sb3", str(wrist)), space)
    with pytest.raises(ValueError, match="policy 'mine': no shipped policy at"):
        make_policy(PolicyEntry("mine", "shipped", str(tmp_path)), space)
    shipped = make_policy(PolicyEntry("bc", "shipped"), space)  # the shipped Lift policy
    shipped.reset(2, 0)
    observation = {"pixels": np.zeros((2, 64, 64, 3), np.uint8), "agent_pos": np.zeros((2, 9), np.float32)}
    assert shipped.act(observation).shape == (2, 7)


# -- end to end --------------------------------------------------------------------------------------------


def test_both_worlds_start_from_the_same_states(evaluated):
    results, _ = evaluated
    assert [p.name for p in results.policies] == ["random", "ppo"]
    for policy in results.policies:
        assert [e.seed for e in policy.episodes] == [0, 1]
        assert all(e.start_psnr == 100.0 for e in policy.episodes)  # identical first frames
        assert np.array_equal(policy.frames["sim"][0], policy.frames["imagined"][0])
        assert policy.frames["sim"].shape == (5, 64, 64, 3)
        assert not np.array_equal(policy.frames["sim"][-1], policy.frames["imagined"][-1])
    # the same start states for every policy: both policies see the same first sim frame
    assert np.array_equal(results.policies[0].frames["sim"][0], results.policies[1].frames["sim"][0])


def test_episodes_run_in_waves_of_parallel_simulators_with_the_same_outcomes():
    def run(parallel: int):
        config = EvaluateConfig(policies=[{"name": "zero", "kind": "zero"}], n_episodes=3, max_steps=3,
                                seed=7, parallel=parallel, gifs=False, progress=False)
        return evaluate(config).policies[0].episodes

    waves, single = run(2), run(3)  # waves of 2 + 2 (one row dropped) against one wave of 3
    assert [e.seed for e in waves] == [7, 8, 9] == [e.seed for e in single]
    assert all(e.start_psnr == 100.0 for e in waves)  # every wave starts both worlds from its own states
    # the zero policy in the deterministic simulator: the same episodes whatever the wave
    assert [e.sim_return for e in waves] == pytest.approx([e.sim_return for e in single], abs=1e-9)
    assert len({round(e.sim_return, 9) for e in waves}) == 3, "three different start states"
    with pytest.raises(ValueError, match="parallel must be >= 1"):
        EvaluateConfig(parallel=0)


def test_the_world_model_s_own_heads_can_pay_the_imagined_env():
    """imagined_reward=heads, on the shipped shared model's Stack: the reward and success heads pay the
    imagined env, and exploitability is measured against the simulator's reward."""
    with pytest.raises(ValueError, match=r"one of \['auto', 'critic', 'state', 'heads'\]"):
        EvaluateConfig(imagined_reward="head")
    config = EvaluateConfig(task="stack", policies=[{"name": "zero", "kind": "zero"}], n_episodes=1,
                            max_steps=3, imagined_reward="heads", gifs=False, progress=False)
    results = evaluate(config)
    (policy,) = results.policies
    (episode,) = policy.episodes
    assert results.imagined_reward == "heads" and episode.imagined_return != 0.0
    assert policy.exploitability == pytest.approx(episode.imagined_return - episode.sim_return)


def test_per_policy_figures_are_consistent(evaluated):
    results, _ = evaluated
    for p in results.policies:
        e = p.episodes
        assert 0.0 <= p.agreement <= 1.0 and 0.0 <= p.sim_success_rate <= 1.0
        assert p.agreement == np.mean([x.imagined_success == x.sim_success for x in e])
        # the imagined env pays the critic or, for a model that carries the object state, the shaped reward
        same = "sim_critic_return" if results.imagined_reward == "critic" else "sim_return"
        gap = [x.imagined_return - getattr(x, same) for x in e]
        assert p.exploitability == pytest.approx(np.mean(gap))
        assert p.sim_return == pytest.approx(np.mean([x.sim_return for x in e]))
        assert all(np.isfinite([x.sim_return, x.imagined_return, x.sim_critic_return]).all() for x in e)
        assert all(x.imagined_return >= 0 and x.sim_critic_return >= 0 for x in e)  # critic progress is >= 0


def test_report_results_and_plots_are_written(evaluated):
    _, out = evaluated
    data = json.loads((out / "results.json").read_text())
    assert {"task", "world_model", "critic", "policies", "success", "returns", "seconds"} <= set(data)
    assert 0 < data["cpu_seconds"] < 2 * torch.get_num_threads() * data["seconds"]  # this process's threads
    policy = data["policies"][1]
    assert policy["name"] == "ppo" and "frames" not in policy and len(policy["episodes"]) == 2
    assert {"sim_success", "imagined_success", "sim_return", "imagined_return", "sim_critic_return",
            "start_psnr"} <= set(policy["episodes"][0])
    assert set(data["success"]) == {"pearson", "spearman", "mmrv", "note"}
    if data["success"]["pearson"] is None:
        assert data["success"]["note"]
    report = (out / "report.md").read_text()
    assert "| ppo |" in report and "MMRV" in report and "![success rates](agreement.png)" in report
    for name in ("agreement.png", "returns.png", "episode0_random.gif", "episode0_ppo.gif"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "tensorboard").glob("events.*"))


def test_cli_runs_a_tiny_budget_under_unseen_randomization(ppo_zip, tmp_path, capsys):
    from wow_gym.cli import main

    out = tmp_path / "run"
    assert main(["evaluate", "n_episodes=1", "max_steps=2", "policies=[{name:zero,kind:zero}]",
                 f"+sb3={ppo_zip}", "randomize=unseen", "gifs=false", "progress=false", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "| zero |" in printed and "| ppo |" in printed and f"report: {out / 'report.md'}" in printed
    data = json.loads((out / "results.json").read_text())
    assert data["randomize"] == "unseen"
    # the sim side is randomized, the world model starts from the nominal rendering of the same state
    assert data["policies"][0]["episodes"][0]["start_psnr"] < 100.0
    assert (out / "config.yaml").exists() and (out / "run.json").exists() and not list(out.glob("*.gif"))
    with pytest.raises(SystemExit, match="n_episodes must be >= 1"):
        main(["evaluate", "n_episodes=0", f"out={tmp_path / 'bad'}"])


def test_auto_pays_the_shaped_reward_on_state_only_where_the_task_has_one():
    """imagined_reward=auto: the shaped reward on the carried state for every shipped task (Lift, Stack, Door,
    PickPlaceCan); the critic for a model that reads its object off frames, and for a task registered
    without a shaped reward on state."""
    import dataclasses

    from wow_gym.policies.evaluation import imagined_reward
    from wow_gym.tasks import TASKS, register_task, unregister_task
    from wow_gym.world_models import WorldModel

    carried = {"object_dims": list(range(7))}
    lift = WorldModel.random("dit-test", env_state_dim=10, object_offset_dims=[7, 8, 9], **carried)
    stack = WorldModel.random("dit-test", task="Stack", env_state_dim=23, object_offset_dims=[17, 18, 19],
                              **carried)
    door = WorldModel.random("dit-test", task="Door", env_state_dim=14, object_dims=[3, 4, 5, 0, 1, 2, 6, 13],
                             object_quaternion=False, object_offset_dims=[10, 11, 12])
    can = WorldModel.random("dit-test", task="PickPlaceCan", env_state_dim=14, object_offset_dims=[0, 1, 2],
                            object_dims=list(range(7, 14)))
    plain = WorldModel.random("dit-test", env_state_dim=10)
    assert [imagined_reward("auto", m) for m in (lift, stack, door, can, plain)] == ["state"] * 4 + ["critic"]
    register_task(dataclasses.replace(TASKS["Stack"], name="StackUnpaid", state_reward=None))
    try:
        unpaid = WorldModel.random("dit-test", task="StackUnpaid", env_state_dim=23,
                                   object_offset_dims=[17, 18, 19], **carried)
        assert imagined_reward("auto", unpaid) == "critic"
    finally:
        unregister_task("StackUnpaid")
    assert imagined_reward("heads", stack) == "heads"

"""wow-gym wowbench: a user's own backend ranked beside the built-in rows against the real simulator, the
physical-law checks on hand-made object paths, the expected-order check, and clear config errors."""

import json
import textwrap

import numpy as np
import pytest

from tests.world_models.wow.tiny_pipelines import save_tiny_wan_i2v
from wow_gym.backends import BackendError, make_backend
from wow_gym.cli import main as wow_gym
from wow_gym.policies.wowbench import (
    FAMILIES,
    LAWS,
    BenchError,
    WowBenchConfig,
    expected_order,
    frechet_features,
    law_violations,
    window_starts,
)
from wow_gym.tasks import task_info

USER_BACKEND = '''
import numpy as np
from wow_gym.backends import BackendStep, Capabilities


class Brighter:
    """A user's world model: the newest frame, a little brighter every step (it steps; it plans too)."""

    name = "brighter"

    def __init__(self, task="Lift", gain=3):
        self.gain = gain
        self.capabilities = Capabilities(steps_under_actions=True, plans_from_instruction=True,
                                         resolution=(64, 64), fps=20.0)

    def start(self, pixels, agent_pos, actions, instructions):
        self.frame = pixels[:, -1].astype(np.int16)

    def step(self, actions):
        self.frame = np.clip(self.frame + self.gain, 0, 255)
        return BackendStep(self.frame.astype(np.uint8))

    def plan(self, pixels, agent_pos, instructions, horizon):
        self.start(pixels, agent_pos, None, instructions)
        return np.stack([self.step(None).pixels for _ in range(horizon)], axis=1)
'''


def lift_state(obj: np.ndarray, eef: np.ndarray) -> np.ndarray:
    """Lift's environment_state [T,10] from object and gripper paths [T,3] (offset = object - gripper)."""
    info = task_info("lift")
    state = np.zeros((len(obj), 10), np.float32)
    state[:, info.object_position] = obj
    state[:, info.gripper_offset] = obj - eef
    return state


def test_a_users_backend_and_a_converted_wow_model_run_through_the_benchmark(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_world_model.py").write_text(textwrap.dedent(USER_BACKEND))
    monkeypatch.syspath_prepend(str(tmp_path))
    save_tiny_wan_i2v(tmp_path / "models" / "wow-wan-14b")  # as `wow-gym convert-wow` would leave it
    out = tmp_path / "bench"
    wan = "{height: 32, width: 32, num_inference_steps: 2, device: cpu}"
    assert wow_gym(["wowbench", "backends=[my_world_model:Brighter]",
                    f"backend_options={{Brighter: {{gain: 4}}, wow-wan-14b: {wan}}}", f"wow_dir={tmp_path / 'models'}",
                    "dit_steps=[1]", "kinds=[expert]", "episodes=2", "unseen_episodes=0", "episode_steps=6",
                    "horizons=[1,4]", "windows=1", "plans=1", "plan_horizon=4", "bootstrap=20", "progress=false",
                    f"out={out}"]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["figures"]["none"]
    assert list(rows) == ["copy-last", "dit-1step", "dit-2step+shuffled-actions", "brighter", "wow-wan-14b"]
    plan_only = rows["wow-wan-14b"]
    assert set(plan_only) == {"plan_success", "instruction_following"}, "a plan-only model is ranked on plans"
    assert 0 <= plan_only["plan_success"][0] <= 1
    mine = rows["brighter"]
    for metric in ("psnr@1", "psnr@4", "ssim@4", "perceptual@4", "frechet_video", "eef_dtw_mm", "object_dtw_mm",
                   "law_violations", "plausibility", "plan_success", "instruction_following"):
        mean, low, high = mine[metric]
        assert np.isfinite(mean) and low <= mean <= high, (metric, mine[metric])
    # a frame brightened by 4 per step is exactly that far from copy-last's frame in the first step
    assert mine["psnr@1"][0] < rows["copy-last"]["psnr@1"][0]
    assert "plan_success" not in rows["dit-2step+shuffled-actions"], "the degraded row does not plan"
    assert set(results["laws"]["none"]["simulator (true state)"]) == set(LAWS)
    assert set(results["laws"]["none"]["simulator (probe)"]) == set(LAWS)
    board = (out / "leaderboard.md").read_text()
    assert "| brighter |" in board and all(f"## {f} (randomize=none)" in board for f in FAMILIES)
    assert (out / "report.html").stat().st_size > 0 and (out / "psnr_none.png").exists()
    assert "brighter" in capsys.readouterr().out


def test_each_physical_law_is_broken_by_its_own_path_and_kept_by_a_lift():
    rest = task_info("lift").rest_height
    t = np.arange(30)[:, None]
    home = np.array([0.0, 0.0, rest])
    far = np.array([0.0, 0.3, 1.0])  # the gripper, far from the cube
    # a real lift: the gripper comes down to the cube, closes, and both rise together
    eef = np.where(t < 10, home + (far - home) * (1 - t / 10), home + [0, 0, 0.01] * np.maximum(t - 15, 0))
    obj = np.where(t < 15, home, home + [0, 0, 0.01] * (t - 15))
    assert law_violations("lift", lift_state(obj, eef)) == dict.fromkeys(LAWS, False)
    still = np.broadcast_to(far, (30, 3))
    broken = {
        "permanence": np.where(t >= 12, home + [0.2, 0, 0], home),  # the cube teleports away
        "interpenetration": home - [0, 0, 0.05] * (t > 5),  # sinks into the table
        "motion_before_contact": home + [0.002, 0, 0] * t,  # slides with nothing touching it
        "gravity": np.where(t < 5, home, home + [0, 0, 0.1]),  # rises (slowly, in a step-sized jump) and floats
    }
    for law, path in broken.items():
        hits = law_violations("lift", lift_state(np.asarray(path, np.float32), still))
        assert hits[law], f"{law} not detected"
    # the probe's one-frame spikes are not a law broken (the checks read a running median)
    spike = np.where(t == 12, home + [0.2, 0, 0], home)
    assert not law_violations("lift", lift_state(spike, still))["permanence"]


def test_expected_order_names_each_row_that_does_not_rank_as_expected():
    figures = {"copy-last": {"psnr@1": [20.0, 19, 21]}, "dit-2step": {"psnr@1": [25.0, 24, 26]},
               "dit-2step+shuffled-actions": {"psnr@1": [22.0, 21, 23]}}
    names = list(figures)
    assert expected_order(figures, names, "prediction") == (True, [])
    figures["dit-2step"]["psnr@1"] = [21.0, 20, 22]
    ok, why = expected_order(figures, names, "prediction")
    assert not ok and len(why) == 1 and "dit-2step+shuffled-actions" in why[0]


def test_bench_helpers_and_errors():
    assert window_starts(48, 2, 16, 3) == [1, 16, 32]
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 4))
    assert frechet_features(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_features(a, a + 1.0) == pytest.approx(4.0, rel=0.05)
    with pytest.raises(BenchError, match="kinds must be some of"):
        WowBenchConfig(kinds=["dancing"])
    with pytest.raises(BenchError, match="must cover the context"):
        WowBenchConfig(episode_steps=10, horizons=[16])
    with pytest.raises(BackendError, match="or 'module:Class'"):
        make_backend("no-such-model")
    with pytest.raises(BackendError, match="cannot import"):
        make_backend("not_a_module_anywhere:Model")
    with pytest.raises(BackendError, match="not a world-model backend"):
        make_backend("collections:OrderedDict")

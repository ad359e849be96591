"""wow-gym replay-check on the shipped policy and world model and the real simulator."""

import json

import numpy as np
import pytest

from wow_gym.experiments.replay_check import main
from wow_gym.policies.replay_check import ReplayCheckConfig, ReplayCheckResult, report_lines

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_replay_check_replays_the_imagined_actions_in_the_simulator(tmp_path):
    # 3 episodes in waves of 2 (the last wave partial), 3 steps each
    assert main([f"out={tmp_path}", "episodes=3", "parallel=2", "max_steps=3", "horizons=[1,3]",
                 "progress=false"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["imagined_success"]) == len(results["replay_success"]) == 3
    for key in ("eef_error_mm", "gap_error_mm", "object_error_mm"):
        errors = np.array(results[key])
        assert errors.shape == (3, 3) and np.isfinite(errors).all() and (errors >= 0).all()
    # each world's own finger gap and gripper-object distance, [imagined / replayed, episode, step]: the gap
    # error is their difference
    gap, reach, height = (np.array(results[f"{name}_mm"]) for name in ("gap", "reach", "height"))
    assert gap.shape == reach.shape == height.shape == (2, 3, 3) and (reach > 0).all()
    assert 800 < height.min() and height.max() < 900  # the cube's centre on Lift's table (0.8 m) or above
    np.testing.assert_allclose(np.abs(gap[0] - gap[1]), results["gap_error_mm"], atol=0.02)
    # one step of the learned pose dynamics under the same action lands near the simulator's gripper
    assert 0 < np.array(results["eef_error_mm"])[:, 0].mean() < 20
    figures = results["figures"]
    assert figures["agreement"] == pytest.approx(1 - (figures["false_successes"] + figures["missed_successes"]) / 3)
    assert figures["eef_error_h3_mm"] == pytest.approx(np.array(results["eef_error_mm"])[:, 2].mean(), abs=0.01)
    # the first step each world calls a success (0: none), and the task's test on the replayed states
    first = np.array(results["first_success"])
    assert first.shape == (2, 3) and ((first >= 0) & (first <= 3)).all()
    assert list(first[0] > 0) == results["imagined_success"] and list(first[1] > 0) == results["replay_success"]
    assert len(results["replay_state_success"]) == 3 and results["seed"] == 960000
    assert 0 <= figures["state_test_agreement"] <= 1
    report = (tmp_path / "report.md").read_text()
    assert "imagined successes physics rejects" in report and "object height (mm)" in report
    assert (tmp_path / "errors.png").stat().st_size > 0 and (tmp_path / "config.yaml").exists()


def test_the_report_shows_where_the_worlds_part():
    """An episode physics calls a success at step 2 and imagination never does: its row shows each world at
    that step, and whether the task's test on the replayed state agrees with the simulator."""
    steps = np.arange(1, 4) / 1000
    result = ReplayCheckResult(
        "bc", 2, [True, False], [True, True], np.zeros((2, 3)), np.zeros((2, 3)),
        gap=np.stack([np.full((2, 3), 0.04), np.full((2, 3), 0.05)]),
        reach=np.stack([np.full((2, 3), 0.01), np.full((2, 3), 0.02)]),
        height=np.stack([0.85 + np.tile(steps, (2, 1)), 0.87 + np.tile(steps, (2, 1))]), horizons=[1, 3],
        first_success=np.array([[1, 0], [1, 2]]), replay_state_success=[True, False], seed=970000)
    assert result.figures["state_test_agreement"] == 0.5
    lines = report_lines(result)
    assert any(line.endswith("agrees with the simulator's verdict in 50.0% of the episodes.") for line in lines)
    assert "| 1 (970001) | simulator | 2 | no success | 852.0 / 872.0 | 10.0 / 20.0 | 40.0 / 50.0 |" in lines
    assert not any(line.startswith("| 0 (970000)") for line in lines)  # both worlds agree on episode 0


def test_replay_check_config_is_checked():
    with pytest.raises(ValueError, match="outside 1..max_steps"):
        ReplayCheckConfig(max_steps=8, horizons=[1, 16])
    with pytest.raises(ValueError, match="episodes, max_steps and parallel must be >= 1"):
        ReplayCheckConfig(episodes=0)
    with pytest.raises(ValueError, match="unknown kind"):
        ReplayCheckConfig(policy={"kind": "expert"})

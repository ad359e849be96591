"""wow-gym replay-check on the shipped policy and world model and the real simulator."""

import json

import numpy as np
import pytest

from wow_gym.experiments.replay_check import main
from wow_gym.policies.replay_check import ReplayCheckConfig

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
    report = (tmp_path / "report.md").read_text()
    assert "imagined successes physics rejects" in report and "object height (mm)" in report
    assert (tmp_path / "errors.png").stat().st_size > 0 and (tmp_path / "config.yaml").exists()


def test_replay_check_config_is_checked():
    with pytest.raises(ValueError, match="outside 1..max_steps"):
        ReplayCheckConfig(max_steps=8, horizons=[1, 16])
    with pytest.raises(ValueError, match="episodes, max_steps and parallel must be >= 1"):
        ReplayCheckConfig(episodes=0)
    with pytest.raises(ValueError, match="unknown kind"):
        ReplayCheckConfig(policy={"kind": "expert"})

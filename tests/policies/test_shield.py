"""The shield's action filter and the watchdog, on their own."""

import time

import numpy as np
import pytest

from wow_gym.policies.shield import Shield, ShieldConfig, StopReason, Watchdog
from wow_gym.policies.spec import RobotConfig

EEF = np.array([0.0, 0.0, 1.0, 0, 0, 0, 1, 0.02, -0.02])


def test_clipping_and_per_step_caps():
    robot = RobotConfig(max_position_delta=0.02, max_rotation_delta=0.1, max_velocity=10.0)
    shielded = Shield(ShieldConfig(), robot).filter(np.array([3.0, 0, 0, 0, 0, 2.0, 5.0]), EEF)
    assert shielded.stop is None
    assert shielded.action[0] * robot.position_scale == pytest.approx(0.02)
    assert shielded.action[5] * robot.rotation_scale == pytest.approx(0.1)
    assert shielded.action[6] == 1.0
    assert shielded.interventions == ["clipped", "position_cap", "rotation_cap"]


def test_velocity_limit_caps_the_step_and_keeps_the_direction():
    robot = RobotConfig(max_velocity=0.2)  # 0.01 m per step at 20 Hz
    action = Shield(ShieldConfig(), robot).filter(np.array([0.6, 0.8, 0, 0, 0, 0, 0]), EEF).action
    step = action[:3] * robot.position_scale
    assert np.linalg.norm(step) == pytest.approx(0.01, rel=1e-5)
    assert step[1] / step[0] == pytest.approx(0.8 / 0.6, rel=1e-5)


def test_smoothing_blends_arm_dims_but_not_the_gripper():
    shield = Shield(ShieldConfig(smoothing=0.25), RobotConfig())
    shield.filter(np.zeros(7), EEF)
    action = shield.filter(np.array([0.4, 0, 0, 0, 0, 0, 1.0]), EEF).action
    assert action[0] == pytest.approx(0.1) and action[6] == 1.0
    shield.reset()
    assert shield.filter(np.array([0.4, 0, 0, 0, 0, 0, 1.0]), EEF).action[0] == pytest.approx(0.4)


def test_non_finite_action_is_a_stop_and_a_wrong_shape_an_error():
    shield = Shield(ShieldConfig(), RobotConfig())
    assert shield.filter(np.array([0, 0, np.inf, 0, 0, 0, 0]), EEF).stop is StopReason.NON_FINITE_ACTION
    with pytest.raises(ValueError, match="shape"):
        shield.filter(np.zeros(6), EEF)


def test_workspace_clip_from_outside_moves_back_toward_the_box():
    robot = RobotConfig(workspace_high=(-0.1, 0.35, 1.25))  # the eef (x=0) is already beyond x=-0.1
    action = Shield(ShieldConfig(), robot).filter(np.array([0.5, 0, 0, 0, 0, 0, 0]), EEF).action
    assert action[0] < 0


def test_config_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="workspace must be one of"):
        ShieldConfig(workspace="bounce")
    with pytest.raises(ValueError, match=r"smoothing must be in \(0, 1\]"):
        ShieldConfig(smoothing=0.0)
    with pytest.raises(ValueError, match="workspace_low .* below"):
        RobotConfig(workspace_low=(0, 0, 0), workspace_high=(1, -1, 1))


def test_watchdog_fires_only_without_kicks():
    fired = []
    watchdog = Watchdog(0.1, lambda: fired.append(time.monotonic()))
    watchdog.start()
    for _ in range(5):
        time.sleep(0.03)
        watchdog.kick()
    assert not fired
    time.sleep(0.25)
    watchdog.close()
    assert len(fired) == 1 and watchdog.fired.is_set()

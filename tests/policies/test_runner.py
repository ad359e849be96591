"""The deployment runner on the simulated arm: every stop reason, deadlines, shadow mode, the step log."""

import threading
import time

import numpy as np
import pytest

from wow_gym.policies.arms import SimArm
from wow_gym.policies.runner import (
    ExportedPolicy,
    ObservationError,
    Runner,
    RunnerConfig,
    read_log,
    summarize,
)
from wow_gym.policies.shield import ShieldConfig, StopReason
from wow_gym.policies.spec import SIM_POSITION_SCALE, RobotConfig, SpecError, check_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TwistedPolicy:
    """The exported policy with a test's twist: slower, another action, or a side effect at a call."""

    def __init__(self, inner, delay=0.0, action=None, at_call=None):
        self.inner, self.delay, self.action, self.at_call = inner, delay, action, at_call
        self.spec = inner.spec
        self.calls = 0
        self.returned: list[float] = []

    def __call__(self, observation):
        action = self.inner(observation)
        self.calls += 1
        if self.at_call is not None:
            self.at_call(self.calls)
        time.sleep(self.delay)
        self.returned.append(time.monotonic())
        return action if self.action is None else self.action(self.calls, action)


class CountingSimArm(SimArm):
    """The real simulated arm, counting what the runner asks of it."""

    def __init__(self, env):
        super().__init__(env=env)
        self.sends = 0
        self.stop_times: list[float] = []

    def send(self, action):
        self.sends += 1
        super().send(action)

    def stop(self):
        self.stop_times.append(time.monotonic())
        super().stop()


@pytest.fixture(scope="module")
def policy(exported_ppo):
    return ExportedPolicy(exported_ppo)


@pytest.fixture
def arm(robot_env):
    return CountingSimArm(robot_env)


def _run(policy, arm, steps, tmp_path, robot=None, **kwargs):
    shield_keys = {"smoothing", "workspace", "max_observation_age", "watchdog_timeout"}
    shield = ShieldConfig(**{k: v for k, v in kwargs.items() if k in shield_keys})
    estop = kwargs.pop("estop", None)
    config = RunnerConfig(max_steps=steps, **{k: v for k, v in kwargs.items() if k not in shield_keys})
    log = tmp_path / "steps.jsonl"
    runner = Runner(policy, arm, robot or RobotConfig(), config, shield, log_path=log, estop=estop)
    results = runner.run()
    return results, read_log(log)


def test_exported_policy_completes_an_episode_on_the_sim_and_logs_every_step(policy, arm, tmp_path):
    results, log = _run(policy, arm, 6, tmp_path)
    (result,) = results
    assert result.reason is StopReason.MAX_STEPS and result.steps == 6 and result.sent == 6 == arm.sends
    steps = [r for r in log if r["event"] == "step"]
    assert [r["step"] for r in steps] == list(range(6)) and all(r["sent"] for r in steps)
    for record in steps:
        assert len(record["action"]) == 7 and np.all(np.abs(record["action"]) <= 1.0)
        assert len(record["agent_pos"]) == 9 and record["observation_age"] >= 0
    assert log[-1] == {"event": "episode_end", **result.to_json()}
    assert sum(r["deadline_missed"] for r in steps) == result.deadline_misses
    assert arm.stop_times, "the arm is stopped at the end of every episode"
    assert summarize(results)["stop_reasons"] == {"max_steps": 1}


def test_nan_action_stops_before_reaching_the_arm(policy, arm, tmp_path):
    nan_from_third = TwistedPolicy(policy, action=lambda call, a: a * np.nan if call >= 3 else a)
    (result,), log = _run(nan_from_third, arm, 10, tmp_path)
    assert result.reason is StopReason.NON_FINITE_ACTION and result.steps == 3
    assert arm.sends == 2 and result.sent == 2
    assert log[-2]["stop"] == "non_finite_action" and "action" not in log[-2]


def _start_x(robot_env, seed=0):
    observation, _ = robot_env.reset(seed=seed)
    return float(observation["agent_pos"][0])


def test_target_outside_the_workspace_is_clipped_onto_it(policy, arm, robot_env, tmp_path):
    high_x = _start_x(robot_env) + 0.02
    robot = RobotConfig(workspace_high=(high_x, 0.35, 1.25))
    push_x = TwistedPolicy(policy, action=lambda call, a: np.array([1, 0, 0, 0, 0, 0, -1], np.float32))
    (result,), log = _run(push_x, arm, 12, tmp_path, robot=robot)
    assert result.reason is StopReason.MAX_STEPS and result.sent == 12
    steps = [r for r in log if r["event"] == "step"]
    assert any("workspace" in r["interventions"] for r in steps)
    for record in steps:
        assert record["agent_pos"][0] + record["action"][0] * SIM_POSITION_SCALE <= high_x + 1e-6
    final_x = arm.observe()["agent_pos"][0]
    assert final_x <= high_x + 0.005, "the arm itself stayed inside the box"
    assert final_x > high_x - 0.02, "and it still moved toward the edge"


def test_target_outside_the_workspace_stops_when_configured(policy, arm, robot_env, tmp_path):
    robot = RobotConfig(workspace_high=(_start_x(robot_env) + 0.02, 0.35, 1.25))
    push_x = TwistedPolicy(policy, action=lambda call, a: np.array([1, 0, 0, 0, 0, 0, -1], np.float32))
    (result,), log = _run(push_x, arm, 12, tmp_path, robot=robot, workspace="stop")
    assert result.reason is StopReason.WORKSPACE and arm.sends == 0 and log[-2]["stop"] == "workspace"


def test_stale_observation_stops(policy, arm, tmp_path):
    slow = TwistedPolicy(policy, delay=0.12)
    (result,), log = _run(slow, arm, 5, tmp_path, max_observation_age=0.05, watchdog_timeout=2.0)
    assert result.reason is StopReason.STALE_OBSERVATION and arm.sends == 0
    assert log[-2]["observation_age"] > 0.05 and log[-2]["stop"] == "stale_observation"


def test_missed_deadlines_are_logged_and_fatal_only_when_configured(policy, arm, tmp_path):
    slow = TwistedPolicy(policy, delay=0.07)  # longer than the 50 ms period at 20 Hz
    (result,), log = _run(slow, arm, 3, tmp_path, max_observation_age=1.0, watchdog_timeout=2.0)
    assert result.reason is StopReason.MAX_STEPS and result.sent == 3
    assert result.deadline_misses == 3 == sum(r["deadline_missed"] for r in log if r["event"] == "step")
    (result,), _ = _run(slow, arm, 3, tmp_path, max_observation_age=1.0, watchdog_timeout=2.0,
                        max_deadline_misses=0)
    assert result.reason is StopReason.DEADLINE and result.steps == 1


def test_shadow_mode_computes_and_logs_but_sends_nothing(policy, arm, tmp_path):
    (result,), log = _run(policy, arm, 4, tmp_path, shadow=True)
    assert result.reason is StopReason.MAX_STEPS and result.steps == 4
    assert arm.sends == 0 and result.sent == 0 and not arm.stop_times
    steps = [r for r in log if r["event"] == "step"]
    assert len(steps) == 4 and all(len(r["action"]) == 7 and not r["sent"] for r in steps)


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_estop_stops_within_the_step(policy, arm, tmp_path, kind):
    event = threading.Event()
    estop = event if kind == "event" else event.is_set
    press_at_third = TwistedPolicy(policy, at_call=lambda call: call == 3 and event.set())
    (result,), log = _run(press_at_third, arm, 10, tmp_path, estop=estop)
    assert result.reason is StopReason.ESTOP and result.steps == 3 and arm.sends == 2
    assert log[-1]["reason"] == "estop"


def test_watchdog_stops_the_arm_while_a_step_hangs(policy, arm, tmp_path):
    hung = TwistedPolicy(policy, delay=0.4)
    (result,), _ = _run(hung, arm, 5, tmp_path, watchdog_timeout=0.15, max_observation_age=5.0)
    assert result.reason is StopReason.WATCHDOG and arm.sends == 0
    assert arm.stop_times[0] < hung.returned[0], "stopped from the watchdog thread before the step returned"


def test_spec_and_robot_mismatch_is_refused(policy, arm):
    robot = RobotConfig(name="ur5", control_freq=10, image_size=96, position_scale=0.01,
                        observation_keys=("pixels",))
    with pytest.raises(SpecError) as error:
        Runner(policy, arm, robot)
    message = str(error.value)
    for expected in ("20 Hz", "(96, 96, 3)", "['agent_pos']", "position_scale"):
        assert expected in message
    check_spec(policy.spec, RobotConfig())  # the simulated Panda fits
    with pytest.raises(ValueError, match="watchdog_timeout"):
        Runner(policy, arm, RobotConfig(), shield=ShieldConfig(watchdog_timeout=0.01))


def test_exported_policy_checks_observations(policy, sim_observations):
    good = sim_observations[0]
    assert policy(good).shape == (7,)
    assert policy.predict_batch({k: np.stack([o[k] for o in sim_observations]) for k in good}).shape == (5, 7)
    cases = [
        ({"pixels": good["pixels"]}, "lacks 'agent_pos'"),
        ({**good, "pixels": good["pixels"].astype(np.float32)}, "must be uint8"),
        ({**good, "pixels": good["pixels"].transpose(2, 0, 1)}, r"shape \(3, 64, 64\).*HWC"),
        ({**good, "agent_pos": np.full(9, np.nan, np.float32)}, "finite"),
    ]
    for observation, message in cases:
        with pytest.raises(ObservationError, match=message):
            policy(observation)


def test_sim_robot_defaults_match_the_simulator(robot_env):
    controller = robot_env.unwrapped._arm_controllers()[0]
    robot = RobotConfig()
    assert robot.position_scale == pytest.approx(controller.output_max[0])
    assert robot.rotation_scale == pytest.approx(controller.output_max[3])
    assert robot.control_freq == robot_env.unwrapped.robosuite.control_freq
    start = robot_env.reset(seed=0)[0]["agent_pos"][:3]
    assert np.all(start > robot.workspace_low) and np.all(start < robot.workspace_high)

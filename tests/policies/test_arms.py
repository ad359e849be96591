"""Arm adapters against fakes of their SDKs (only hardware SDKs are faked): units, frames, stops, NaN."""

import math
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from wow_gym.policies.arms import FrankaArm, SimArm, URArm, XArm, make_arm
from wow_gym.policies.runner import ExportedPolicy, Runner, RunnerConfig, read_log
from wow_gym.policies.shield import StopReason
from wow_gym.policies.spec import RobotConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRAME = np.zeros((64, 64, 3), np.uint8)


class FakeSDKObject:
    """Records every method call; returns canned values by method name."""

    def __init__(self, *args, returns=None, **kwargs):
        self.init = (args, kwargs)
        self.calls = []
        self._returns = returns or {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self._returns.get(name)

        return call

    def named(self, name):
        return [c for c in self.calls if c[0] == name]


def _module(monkeypatch, name, **attributes):
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return module


@pytest.fixture
def fake_xarm(monkeypatch):
    api = FakeSDKObject(returns={"get_position": (0, [300.0, 0.0, 200.0, math.pi, 0.0, 0.0]),
                                 "get_gripper_position": (0, 850), "set_position": 0,
                                 "set_gripper_position": 0})
    _module(monkeypatch, "xarm")
    _module(monkeypatch, "xarm.wrapper", XArmAPI=lambda ip, **kwargs: api)
    return api


def test_xarm_speaks_millimetres_and_radians(fake_xarm):
    robot = RobotConfig(name="xarm7", base_position=(-0.56, 0.0, 0.912), gripper_max_width=0.085)
    arm = XArm("192.168.1.10", lambda: FRAME, robot)
    arm.connect()
    assert ("set_mode", (7,), {}) in fake_xarm.calls
    observation = arm.observe()
    assert np.allclose(observation["agent_pos"][:3], [-0.26, 0.0, 1.112])
    assert np.allclose(np.abs(observation["agent_pos"][3:7]), [1, 0, 0, 0], atol=1e-6)  # xyzw, pointing down
    assert np.allclose(observation["agent_pos"][7:], [0.0425, -0.0425])
    arm.send(np.array([1.0, 0.0, -0.5, 0.0, 0.0, 1.0, 1.0]))
    (_, _, move), = fake_xarm.named("set_position")
    assert (move["x"], move["y"], move["z"]) == pytest.approx((350.0, 0.0, 175.0))
    assert abs(move["roll"]) == pytest.approx(math.pi) and move["yaw"] == pytest.approx(0.5)
    assert move["is_radian"] is True and move["wait"] is False and move["speed"] == pytest.approx(1000.0)
    assert fake_xarm.named("set_gripper_position")[0][1] == (0.0,)  # +1 closes the gripper
    arm.stop()
    arm.close()
    assert fake_xarm.named("emergency_stop") and fake_xarm.named("disconnect")


def test_a_nan_never_reaches_the_sdk(fake_xarm, exported_ppo):
    everywhere = RobotConfig(workspace_low=(-5, -5, -5), workspace_high=(5, 5, 5))
    arm = XArm("192.168.1.10", lambda: FRAME, everywhere)
    arm.connect()
    with pytest.raises(ValueError, match="finite.*1 NaN"):
        arm.send(np.array([np.nan, 0, 0, 0, 0, 0, 0]))
    assert not fake_xarm.named("set_position")

    policy = ExportedPolicy(exported_ppo)

    class NaNPolicy:
        """The exported policy run on the arm's observation, its action then turned to NaN."""

        spec = policy.spec

        def __call__(self, observation):
            policy(observation)
            return np.full(7, np.nan, np.float32)

    (result,) = Runner(NaNPolicy(), arm, arm.robot, RunnerConfig(max_steps=3)).run()
    assert result.reason is StopReason.NON_FINITE_ACTION
    assert not fake_xarm.named("set_position") and fake_xarm.named("emergency_stop")
    assert fake_xarm.named("disconnect"), "the runner closes the arm"


def test_sdk_errors_and_bad_frames_stop_the_run_with_a_reason(fake_xarm, exported_ppo, tmp_path):
    policy = ExportedPolicy(exported_ppo)
    fake_xarm._returns["set_position"] = 9  # an xArm error code
    arm = XArm("192.168.1.10", lambda: FRAME, RobotConfig())
    (result,) = Runner(policy, arm, arm.robot, RunnerConfig(max_steps=3)).run()
    assert result.reason is StopReason.ARM_ERROR and result.sent == 0 and fake_xarm.named("emergency_stop")
    small_frames = XArm("192.168.1.10", lambda: FRAME[:32, :32], RobotConfig())
    (result,) = Runner(policy, small_frames, small_frames.robot, RunnerConfig(max_steps=3),
                       log_path=tmp_path / "log.jsonl").run()
    assert result.reason is StopReason.BAD_OBSERVATION
    assert "(32, 32, 3)" in read_log(tmp_path / "log.jsonl")[0]["error"]


def test_franky_gets_absolute_cartesian_motions_in_metres(monkeypatch):
    robot_api = FakeSDKObject()
    pose = SimpleNamespace(translation=[0.4, 0.0, 0.3], quaternion=[1.0, 0.0, 0.0, 0.0])
    robot_api.current_cartesian_state = SimpleNamespace(pose=SimpleNamespace(end_effector_pose=pose))
    gripper_api = FakeSDKObject()
    gripper_api.width = 0.08
    _module(monkeypatch, "franky", Robot=lambda ip: robot_api, Gripper=lambda ip: gripper_api,
            Affine=lambda translation, quaternion: ("affine", translation, quaternion),
            CartesianMotion=lambda target, reference: ("motion", target, reference),
            ReferenceType=SimpleNamespace(Absolute="absolute", Relative="relative"))
    arm = FrankaArm("172.16.0.2", lambda: FRAME, RobotConfig())
    arm.connect()
    assert robot_api.relative_dynamics_factor == FrankaArm.dynamics_factor
    assert np.allclose(arm.observe()["agent_pos"][7:], [0.04, -0.04])
    arm.send(np.array([0.0, 0.2, 0.0, 0.0, 0.0, 0.0, -1.0]))  # -1: stay open, no gripper command
    ((_, (motion,), kwargs),) = robot_api.named("move")
    _, (_, translation, quaternion), reference = motion
    assert translation == pytest.approx([0.4, 0.01, 0.3]) and reference == "absolute"
    assert kwargs == {"asynchronous": True}
    assert np.allclose(np.abs(quaternion), [1, 0, 0, 0])
    assert not gripper_api.named("move_async")
    arm.send(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
    assert gripper_api.named("move_async")[0][1] == (0.0, FrankaArm.gripper_speed)
    arm.stop()
    assert robot_api.named("stop")


def test_ur_rtde_servos_to_tcp_poses(monkeypatch):
    control = FakeSDKObject()
    receive = FakeSDKObject(returns={"getActualTCPPose": [0.4, 0.1, 0.3, 0.0, math.pi, 0.0]})
    _module(monkeypatch, "rtde_control", RTDEControlInterface=lambda ip: control)
    _module(monkeypatch, "rtde_receive", RTDEReceiveInterface=lambda ip: receive)
    widths = []
    arm = URArm("10.0.0.5", lambda: FRAME, RobotConfig(), gripper=widths.append)
    arm.connect()
    arm.send(np.array([0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]))
    ((_, (pose, speed, _, dt, *_), _),) = control.named("servoL")
    assert pose[:3] == pytest.approx([0.425, 0.1, 0.3])
    expected = Rotation.from_rotvec([0.5, 0, 0]) * Rotation.from_rotvec([0, math.pi, 0])
    assert (Rotation.from_rotvec(pose[3:]) * expected.inv()).magnitude() == pytest.approx(0, abs=1e-9)
    assert (speed, dt) == (1.0, 0.05) and widths == [0.0]
    arm.stop()
    arm.close()
    assert [c[0] for c in control.calls[-3:]] == ["servoStop", "stopScript", "disconnect"]
    assert receive.named("disconnect")


@pytest.mark.parametrize("name, module, extra", [("xarm", "xarm", "xarm"), ("franka", "franky", "franka"),
                                                 ("ur", "rtde_control", "ur")])
def test_a_missing_sdk_names_the_extra(monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    arm = make_arm(name, RobotConfig(), ip="10.0.0.1", camera=lambda: FRAME)
    with pytest.raises(ImportError, match=rf"pip install 'wow_gym\[{extra}\]'"):
        arm.connect()


def test_make_arm_errors():
    with pytest.raises(ValueError, match="needs the arm's address"):
        make_arm("xarm", RobotConfig())
    with pytest.raises(ValueError, match="unknown arm 'kuka'"):
        make_arm("kuka", RobotConfig())
    assert isinstance(make_arm("sim", RobotConfig()), SimArm)

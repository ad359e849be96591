"""Arms the runner drives: the simulated Panda (robosuite physics) and adapters for real arm SDKs.

Every arm speaks the same small protocol and the same action, robosuite's OSC_POSE delta: the adapters
turn it into an absolute cartesian target (current pose + action x RobotConfig scales, the rotation composed
in the base frame like robosuite's controller) and hand it to the SDK's streaming call. The SDKs are optional
extras, imported only when an adapter connects.
"""

from __future__ import annotations

import abc
import importlib
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from wow_gym.checks import check_actions
from wow_gym.policies.spec import RobotConfig

Camera = Callable[[], np.ndarray]  # returns the newest HxWx3 uint8 frame
XARM_GRIPPER_UNITS_PER_METRE = 850 / 0.085  # the xArm gripper's 0..850 position range spans 85 mm


class Arm(Protocol):
    """The runner's view of an arm; observe() gives pixels, agent_pos and a time.monotonic() timestamp."""

    def connect(self) -> None: ...
    def reset(self, seed: int | None = None) -> None: ...
    def observe(self) -> dict[str, Any]: ...
    def send(self, action: np.ndarray) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


class ArmError(RuntimeError):
    """An arm refused a command or reported an error."""


def checked_action(action: np.ndarray) -> np.ndarray:
    """The action as float64 (7,), or a ValueError: a NaN or a wrong shape must never reach an arm."""
    return check_actions(action, (7,), "an arm action (refused, nothing sent)", np.float64)


class SimArm:
    """The simulated arm: a WoW robosuite env stepped by send(); environment_state is never observed."""

    def __init__(self, env_id: str = "WoW/Lift-v0", env: gym.Env | None = None) -> None:
        self.env_id = env_id
        self.env = env
        self._owns_env = env is None
        self._observation: dict[str, np.ndarray] = {}
        self._success = False
        self.stopped = False

    def connect(self) -> None:
        if self.env is None:
            import wow_gym  # noqa: F401  (registers the env ids)

            self.env = gym.make(self.env_id)

    def reset(self, seed: int | None = None) -> None:
        self._observation, info = self._env().reset(seed=seed)
        self._success = bool(info["is_success"])
        self.stopped = False

    def observe(self) -> dict[str, Any]:
        """The current observation. The simulated world stands still between sends, so the last rendered
        frame is the current one and its timestamp is now."""
        if not self._observation:
            raise ArmError("observe() before reset(): call reset(seed) to start an episode")
        return {"pixels": self._observation["pixels"], "agent_pos": self._observation["agent_pos"],
                "timestamp": time.monotonic(), "is_success": self._success}

    def send(self, action: np.ndarray) -> None:
        action = checked_action(action)
        if self.stopped:
            raise ArmError("send() after stop(): the arm is stopped until the next reset()")
        self._observation, _, _, _, info = self._env().step(action)
        self._success = bool(info["is_success"])

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        if self._owns_env and self.env is not None:
            self.env.close()
            self.env = None

    def _env(self) -> gym.Env:
        if self.env is None:
            raise ArmError("the sim arm is not connected; call connect() first")
        return self.env


def import_sdk(module: str, arm: str, extra: str, package: str) -> ModuleType:
    """Import an arm SDK module, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"the {arm} arm needs the {package} SDK ({module} is not importable: {error}); "
                          f"install it with pip install 'wow_gym[{extra}]'") from None


class CartesianArm(abc.ABC):
    """Shared by the hardware adapters: observation assembly and action -> absolute target mapping.

    Subclasses read the pose (`_pose`: metres and a Rotation, the arm's base frame), move to a target
    (`_move`) and command the gripper (`_grip`, a width in metres). reset() does not move the arm: between
    episodes the operator resets the scene, and nothing moves a real arm outside the shield.
    """

    gripper_deadband = 0.005  # metres; a smaller change of the gripper target is not resent

    def __init__(self, ip: str, camera: Camera, robot: RobotConfig) -> None:
        self.ip = ip
        self.camera = camera
        self.robot = robot
        self._gripper_target = robot.gripper_max_width

    def reset(self, seed: int | None = None) -> None:
        """Nothing to do: a real scene is reset by the operator (seed is for the simulator only)."""

    def observe(self) -> dict[str, Any]:
        timestamp = time.monotonic()
        pixels = np.asarray(self.camera())
        position, rotation = self._pose()
        half = self._gripper_width() / 2
        agent_pos = np.concatenate([np.asarray(self.robot.base_position) + position, rotation.as_quat(),
                                    [half, -half]])  # quaternion xyzw and finger joints as robosuite's Panda
        return {"pixels": pixels, "agent_pos": agent_pos.astype(np.float32), "timestamp": timestamp}

    def send(self, action: np.ndarray) -> None:
        action = checked_action(action)
        position, rotation = self._pose()
        turn = Rotation.from_rotvec(action[3:6] * self.robot.rotation_scale)
        self._move(position + action[:3] * self.robot.position_scale, turn * rotation)
        width = self.robot.gripper_max_width * (1.0 - action[6]) / 2.0  # -1 open, +1 closed, as in robosuite
        if abs(width - self._gripper_target) > self.gripper_deadband:
            self._gripper_target = width
            self._grip(width)

    def _gripper_width(self) -> float:
        """The last commanded width, for grippers that cannot be read."""
        return self._gripper_target

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def _pose(self) -> tuple[np.ndarray, Rotation]: ...

    @abc.abstractmethod
    def _move(self, position: np.ndarray, rotation: Rotation) -> None: ...

    @abc.abstractmethod
    def _grip(self, width: float) -> None: ...


class XArm(CartesianArm):
    """UFACTORY xArm through xarm-python-sdk, in mode 7 (online cartesian planning: a new target replaces the
    one in flight instead of queueing behind it). The SDK speaks millimetres and, with is_radian, radians."""

    def connect(self) -> None:
        wrapper = import_sdk("xarm.wrapper", "xarm", "xarm", "xarm-python-sdk")
        self.api = wrapper.XArmAPI(self.ip, is_radian=True)
        self.api.motion_enable(enable=True)
        self.api.set_mode(7)
        self.api.set_state(state=0)
        self.api.set_gripper_enable(True)

    def _pose(self) -> tuple[np.ndarray, Rotation]:
        code, pose = self.api.get_position(is_radian=True)
        _check_code(code, "get_position")
        return np.asarray(pose[:3], dtype=np.float64) / 1000.0, Rotation.from_euler("xyz", pose[3:6])

    def _gripper_width(self) -> float:
        code, units = self.api.get_gripper_position()
        _check_code(code, "get_gripper_position")
        return float(units) / XARM_GRIPPER_UNITS_PER_METRE

    def _move(self, position: np.ndarray, rotation: Rotation) -> None:
        x, y, z = (position * 1000.0).tolist()
        roll, pitch, yaw = rotation.as_euler("xyz").tolist()
        code = self.api.set_position(x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw,
                                     speed=self.robot.max_velocity * 1000.0, is_radian=True, wait=False)
        _check_code(code, "set_position")

    def _grip(self, width: float) -> None:
        _check_code(self.api.set_gripper_position(width * XARM_GRIPPER_UNITS_PER_METRE, wait=False),
                    "set_gripper_position")

    def stop(self) -> None:
        self.api.emergency_stop()

    def close(self) -> None:
        self.api.disconnect()


class FrankaArm(CartesianArm):
    """Franka (Panda, FR3) via franky: asynchronous absolute cartesian motions, each replacing the last."""

    dynamics_factor = 0.1  # franky's relative_dynamics_factor: the fraction of the arm's speed limits used
    gripper_speed = 0.05  # m/s of the fingers

    def connect(self) -> None:
        self.franky = import_sdk("franky", "franka", "franka", "franky-control")
        self.arm = self.franky.Robot(self.ip)
        self.arm.relative_dynamics_factor = self.dynamics_factor
        self.gripper = self.franky.Gripper(self.ip)

    def _pose(self) -> tuple[np.ndarray, Rotation]:
        pose = self.arm.current_cartesian_state.pose.end_effector_pose
        return np.asarray(pose.translation, dtype=np.float64), Rotation.from_quat(pose.quaternion)

    def _gripper_width(self) -> float:
        return float(self.gripper.width)

    def _move(self, position: np.ndarray, rotation: Rotation) -> None:
        target = self.franky.Affine(position.tolist(), rotation.as_quat().tolist())
        motion = self.franky.CartesianMotion(target, self.franky.ReferenceType.Absolute)
        self.arm.move(motion, asynchronous=True)

    def _grip(self, width: float) -> None:
        self.gripper.move_async(width, self.gripper_speed)

    def stop(self) -> None:
        self.arm.stop()

    def close(self) -> None:
        """franky holds no connection to close; dropping the objects releases the arm."""
        self.arm = self.gripper = None


class URArm(CartesianArm):
    """Universal Robots through ur_rtde: servoL streaming of absolute TCP poses (metres, rotation vectors).
    UR grippers vary, so the gripper is an optional callable given the target width in metres."""

    lookahead_time = 0.1  # servoL smoothing horizon, seconds (0.03 .. 0.2)
    gain = 300  # servoL proportional gain (100 .. 2000)

    def __init__(self, ip: str, camera: Camera, robot: RobotConfig,
                 gripper: Callable[[float], None] | None = None) -> None:
        super().__init__(ip, camera, robot)
        self.gripper = gripper

    def connect(self) -> None:
        control = import_sdk("rtde_control", "ur", "ur", "ur-rtde")
        receive = import_sdk("rtde_receive", "ur", "ur", "ur-rtde")
        self.control = control.RTDEControlInterface(self.ip)
        self.receive = receive.RTDEReceiveInterface(self.ip)

    def _pose(self) -> tuple[np.ndarray, Rotation]:
        pose = np.asarray(self.receive.getActualTCPPose(), dtype=np.float64)
        return pose[:3], Rotation.from_rotvec(pose[3:6])

    def _move(self, position: np.ndarray, rotation: Rotation) -> None:
        pose = [*position.tolist(), *rotation.as_rotvec().tolist()]
        self.control.servoL(pose, self.robot.max_velocity, 4 * self.robot.max_velocity, self.robot.period,
                            self.lookahead_time, self.gain)

    def _grip(self, width: float) -> None:
        if self.gripper is not None:
            self.gripper(width)

    def stop(self) -> None:
        self.control.servoStop()

    def close(self) -> None:
        self.control.stopScript()
        self.control.disconnect()
        self.receive.disconnect()


def _check_code(code: int, call: str) -> None:
    if code != 0:
        raise ArmError(f"xArm {call} returned error code {code}; see the xArm SDK's code table, clear the "
                       f"error (clean_error) and reconnect")


HARDWARE_ARMS: dict[str, type[CartesianArm]] = {"xarm": XArm, "franka": FrankaArm, "ur": URArm}


def make_arm(name: str, robot: RobotConfig, env_id: str = "WoW/Lift-v0", ip: str | None = None,
             camera: Camera | None = None) -> Arm:
    """An arm by name: 'sim' (the simulator of env_id) or a hardware adapter that needs ip and camera."""
    if name == "sim":
        return SimArm(env_id)
    if name not in HARDWARE_ARMS:
        raise ValueError(f"unknown arm {name!r}; expected sim or one of {sorted(HARDWARE_ARMS)}")
    if ip is None or camera is None:
        raise ValueError(f"arm={name} needs the arm's address (ip=...) and a camera (camera=module:function)")
    return HARDWARE_ARMS[name](ip, camera, robot)

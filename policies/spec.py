"""The exported policy's contract (policy.json) and the robot it may run on, checked against each other.

policy.json says what the ONNX graph reads (keys, shapes, dtypes, image size, normalisation) and what its
action means (robosuite OSC_POSE deltas, how far one unit moves the arm, the control rate). RobotConfig is
the arm's side: its own limits and what it can observe. `check_spec` refuses a pairing that would run the
policy at another rate, scale or image size than it was trained for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wow_gym.registry import CONTROL_FREQ

SPEC_VERSION = 1
SPEC_FILE = "policy.json"
ONNX_FILE = "policy.onnx"
POLICY_KEYS = ("pixels", "agent_pos")  # what a real robot can give; environment_state is the simulator's only
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
AGENT_POS_NAMES = ("eef_x", "eef_y", "eef_z", "eef_qx", "eef_qy", "eef_qz", "eef_qw",
                   "finger_left", "finger_right")
CONTROLLER = "OSC_POSE"
# robosuite's BASIC Panda controller maps an action of 1.0 to these offsets of the end-effector target.
SIM_POSITION_SCALE = 0.05  # metres per action unit
SIM_ROTATION_SCALE = 0.5  # radians (axis-angle, base frame) per action unit


class SpecError(ValueError):
    """policy.json is missing, from another format version, or does not fit the robot."""


def load_spec(folder: str | Path) -> dict[str, Any]:
    """Read and check <folder>/policy.json."""
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise SpecError(f"{path} not found; export a policy first with `wow-gym export-policy "
                        f"checkpoint=<zip> out={folder}`")
    spec = json.loads(path.read_text())
    version = spec.get("format_version")
    if version != SPEC_VERSION:
        raise SpecError(f"{path} has format_version {version!r}, this wow_gym reads version {SPEC_VERSION}; "
                        f"re-export the policy with this version")
    missing = sorted({"observation", "action", "control_freq", "onnx"} - set(spec))
    if missing:
        raise SpecError(f"{path} lacks {missing}; it was not written by wow_gym's export_policy")
    return spec


@dataclass
class RobotConfig:
    """One arm's own limits and what it observes; the defaults are the simulated Panda of WoW/Lift-v0."""

    name: str = "sim-panda"
    control_freq: int = CONTROL_FREQ  # Hz the arm is commanded at
    observation_keys: tuple[str, ...] = POLICY_KEYS
    image_size: int = 64  # the camera's frames are image_size x image_size x 3 uint8
    position_scale: float = SIM_POSITION_SCALE  # metres the end-effector target moves per action unit
    rotation_scale: float = SIM_ROTATION_SCALE  # radians the target turns per action unit
    workspace_low: tuple[float, float, float] = (-0.35, -0.35, 0.82)  # eef box, metres, the policy's frame
    workspace_high: tuple[float, float, float] = (0.25, 0.35, 1.25)
    max_position_delta: float = 0.05  # metres per step the target may move
    max_rotation_delta: float = 0.5  # radians per step the target may turn
    max_velocity: float = 1.0  # m/s of commanded end-effector motion
    base_position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the arm's base in the policy's frame
    gripper_max_width: float = 0.08  # metres between the fingers when open

    def __post_init__(self) -> None:
        self.observation_keys = tuple(self.observation_keys)
        for name in ("workspace_low", "workspace_high", "base_position"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3:
                raise ValueError(f"robot {self.name}: {name} must have 3 values (x, y, z in metres), got "
                                 f"{value}")
            setattr(self, name, value)
        if not np.all(np.less(self.workspace_low, self.workspace_high)):
            raise ValueError(f"robot {self.name}: workspace_low {self.workspace_low} must be below "
                             f"workspace_high {self.workspace_high} on every axis")
        for name in ("control_freq", "image_size", "position_scale", "rotation_scale", "max_position_delta",
                     "max_rotation_delta", "max_velocity", "gripper_max_width"):
            if not getattr(self, name) > 0:
                raise ValueError(f"robot {self.name}: {name} must be positive, got {getattr(self, name)}")

    @property
    def period(self) -> float:
        """Seconds per control step."""
        return 1.0 / self.control_freq


def check_spec(spec: dict[str, Any], robot: RobotConfig) -> None:
    """Raise SpecError naming every way the policy and the robot do not fit together."""
    problems = []
    if spec["control_freq"] != robot.control_freq:
        problems.append(f"the policy runs at {spec['control_freq']} Hz, robot {robot.name} at "
                        f"{robot.control_freq} Hz (set robot.control_freq={spec['control_freq']})")
    missing = [key for key in spec["observation"] if key not in robot.observation_keys]
    if missing:
        problems.append(f"the policy reads {missing}, which robot {robot.name} does not observe (it gives "
                        f"{list(robot.observation_keys)})")
    pixels = spec["observation"].get("pixels")
    if pixels is not None and tuple(pixels["shape"]) != (robot.image_size, robot.image_size, 3):
        camera = (robot.image_size, robot.image_size, 3)
        problems.append(f"the policy reads {tuple(pixels['shape'])} frames, robot {robot.name}'s camera "
                        f"gives {camera} (set robot.image_size or resize the camera)")
    action = spec["action"]
    if action.get("controller") != CONTROLLER or tuple(action["names"]) != ACTION_NAMES:
        problems.append(f"the policy commands {action.get('controller')} {action['names']}; robot arms here "
                        f"take {CONTROLLER} {list(ACTION_NAMES)}")
    for key in ("position_scale", "rotation_scale"):
        if not np.isclose(action[key], getattr(robot, key)):
            problems.append(f"one action unit is {action[key]} ({key}) for the policy, {getattr(robot, key)} "
                            f"for robot {robot.name}; the arm would move differently from training")
    if problems:
        raise SpecError("policy and robot do not fit:\n  - " + "\n  - ".join(problems))

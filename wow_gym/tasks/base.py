"""What wow_gym knows about one task: `Task`, a frozen record that every generic module reads instead of
holding task-specific constants (instruction, sub-steps, success geometry, critic stages and texts, where
the object sits in `environment_state`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

SIM_VERSION = 0
IMAGINED_VERSION = 0

ArrayT = TypeVar("ArrayT")  # a numpy array or a torch tensor

# environment_state [T+1, E], per-frame reward [T+1] and success [T+1] -> the critic's stage label [T+1]
StageLabeller = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# environment_state [N, E], agent_pos [N, P] and success [N] -> the simulator's shaped reward as named terms
# [N] each (their sum is the reward), for a world model that imagines the object state
StateReward = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]
# environment_state [N, E] and agent_pos [N, P], numpy arrays or torch tensors -> success [N] (bool), read off
# the (imagined) state where the world model carries the task object
StateSuccess = Callable[[ArrayT, ArrayT], ArrayT]
# environment_state [N, E] and agent_pos [N, P] -> the same state with the entries that follow from the
# carried object's position and the gripper's (offsets to other objects) recomputed, in place
DeriveState = Callable[[ArrayT, ArrayT], ArrayT]
# an object's position [N, 3] and the scene's environment_state [N, E], arrays or tensors -> the height [N]
# its centre rests at there (metres): what stands under it besides the table (Stack: the green cube's top)
RestOn = Callable[[ArrayT, ArrayT], ArrayT]


def finger_gap(agent_pos: ArrayT) -> ArrayT:
    """The fingers' gap (metres) from agent_pos [..., P]'s gripper joints, on arrays or tensors."""
    return agent_pos[..., 7] - agent_pos[..., 8]


def grasped(distance: ArrayT, gap: ArrayT, reach: float, gap_range: tuple[float, float]) -> ArrayT:
    """The grasp test on arrays or tensors alike: the object within `reach` metres of the gripper (`distance`)
    and the fingers' gap (finger_gap) strictly inside `gap_range`. The one definition the
    tasks' shaped rewards and the world model's support rule share."""
    return (distance < reach) & (gap > gap_range[0]) & (gap < gap_range[1])


def success_on_state(state: ArrayT, agent_pos: ArrayT, height: float | None, height_index: int,
                     test: StateSuccess | None) -> ArrayT | None:
    """[N] bool on environment_state [N, E] and agent_pos [N, P], arrays or tensors: the object's centre
    (state[..., height_index]) above `height` where the task has a success height (Lift), else the task's
    `test` (Task.state_success); None with neither. Numbers and a function, not the Task: the world model
    holds them and deep-copies."""
    if height is not None:
        return state[..., height_index] > height
    return None if test is None else test(state, agent_pos)


def rest_level(table: float, rest_on: RestOn | None, position: ArrayT, state: ArrayT) -> ArrayT:
    """[N]: where an object at `position` [N, 3] rests (Task.rest_height `table`, or `rest_on` where the task
    has one), on arrays or tensors alike; the world model holds the numbers and the function, not the Task."""
    if rest_on is not None:
        return rest_on(position, state)
    return position[..., 2] * 0 + table


@dataclass(frozen=True)
class CriticStage:
    """One stage of a task as the critic reads it: its name, the failure key of a failed clip that got no
    further, and the critique's sentence for it (the first stage's may use {distance}, in cm)."""

    name: str
    failure: str
    text: str


@dataclass(frozen=True, kw_only=True)
class Task:
    """A task: its robosuite environment, words, success geometry and what the critic reads in it.

    The critic's stages run from the first (approaching the object) to the last (the task done); its
    failure keys are those of the stages plus "closed_early" and "implausible", each with a hint in
    `failure_hints` for the default refiner.
    """

    name: str
    robosuite_env: str
    instruction: str
    object_name: str  # what critiques call the task object ("cube", "can", ...)
    steps: tuple[str, ...]  # the known sub-steps in order (what the default refiner spells out)
    # where environment_state holds the task object's (x, y, z) and the object relative to the gripper, metres
    object_position: slice = field(hash=False)
    gripper_offset: slice = field(hash=False)
    # where environment_state holds the object's full pose (position 3, quaternion 4), when the world model can
    # carry it with learned dynamics (world_models/video/dynamics.py ObjectDynamics); None: it cannot yet. An
    # object that is not one free body (Door) gives, with object_quaternion false, the entries of its position
    # (3) then of the rest of its state (a slice, or indices in order)
    object_pose: slice | tuple[int, ...] | None = field(default=None, hash=False)
    object_quaternion: bool = True
    # the MuJoCo joint that moves the task object (a free joint, or a hinge such as the door's): the critic's
    # corruptions pose the object through it; None: the scene's first free joint
    object_joint: str | None = None
    state_reward: StateReward | None = field(default=None, compare=False)
    # success read off a carried object's state (Stack: the red cube resting on the green one), where no
    # success_height says it; None: the world model's success head
    state_success: StateSuccess | None = field(default=None, compare=False)
    # environment_state entries beyond object_pose and gripper_offset that move with the carried object or
    # the gripper (Stack: the red cube's and the gripper's offsets to the green cube); None: none
    derive_state: DeriveState | None = field(default=None, compare=False)
    # Support and gravity for an object carried as state: it rests at `rest_height` (its centre, metres) and
    # can rise more than `lean` above it only while held, i.e. within `grasp_reach` of the gripper with the
    # fingers' gap (agent_pos[7] - agent_pos[8]) inside `grasp_gap`; unheld above that, it falls. Where more
    # than the table can hold it, `rest_on` gives the rest height at the object's place (`rest_height` stays
    # the table's); None: the table everywhere.
    rest_height: float | None = None
    rest_on: RestOn | None = field(default=None, compare=False)
    lean: float = 0.01
    grasp_reach: float = 0.03
    grasp_gap: tuple[float, float] | None = None
    # the object's half-extents as a box (metres, in its own frame): the world model's object layer draws it
    # where its carried pose says (world_models/video/object_layer.py); None: the picture is the DiT's alone
    object_extents: tuple[float, float, float] | None = None
    # the box the fingers close on where it is not the object itself, from the carried object state [B, O]
    # (tensors) to its pose [B, 7] (Door: the handle's lever), and its half-extents: the finger rule's box
    grip_box: Callable[[Any], Any] | None = field(default=None, compare=False)
    grip_extents: tuple[float, float, float] | None = None
    # (carried state [B, O], agent_pos [B, P]) -> [B] bool: the grip box is held in the hand without the pads
    # (Door: the turned lever slid toward the palm), where it no longer stops the closing fingers; None: never
    grip_caged: Callable[[Any, Any], Any] | None = field(default=None, compare=False)
    # an articulated object's joints under the hand (Door: lever and hinge), the world model's joint rule
    # (WorldModelConfig.joint_rule): (carried state [B, O], grip site before [B, 3] and after [B, 3] the arm's
    # step, held [B], the action's position part [B, 3]) -> (carried state after the step, where the hand is
    # [B, 3]); tensors
    joint_step: Callable[..., Any] | None = field(default=None, compare=False)
    # the object is a box with a square footprint (Lift's and Stack's cubes; not PickPlaceCan's round can):
    # the finger rule may take its turn about the approach (WorldModelConfig.grip_turn)
    square_object: bool = False
    # a still object the task's object is put on or beside (Stack's green cube): its raw pose (position,
    # quaternion) in environment_state and its half-extents; the world model's scene layer draws it where
    # the start's scene has it (world_models/video/model.py, scene_layer); None: no such object
    scene_pose: slice | None = None
    scene_extents: tuple[float, float, float] | None = None
    # where that still object's centre rests on the table (metres): robosuite drops it from 1 cm above at a
    # reset, so a reset's state has it there until the first physics step; the world model starts it at rest
    scene_rest_height: float | None = None
    # the table's top (metres): where the world model's arm contact stops the imagined fingertips
    table_height: float | None = None
    critic_stages: tuple[CriticStage, ...]
    stage_labels: StageLabeller = field(compare=False)
    failure_hints: Mapping[str, str] = field(hash=False)
    distractors: tuple[str, ...]  # instructions near the task that a clip of it does not follow
    success_height: float | None = None  # metres: the object's centre above this shows success (Lift)
    near: float = 0.03  # metres: the gripper is at the object
    camera: str = "agentview"
    max_episode_steps: int = 200

    def __post_init__(self) -> None:
        object.__setattr__(self, "failure_hints", MappingProxyType(dict(self.failure_hints)))
        if len(self.critic_stages) < 2:
            raise ValueError(f"task {self.name!r} needs at least two critic stages (approach ... done), got "
                             f"{len(self.critic_stages)}")
        for stage in self.critic_stages[:-1]:
            if stage.failure not in self.failure_hints:
                raise ValueError(f"task {self.name!r}: failure {stage.failure!r} of stage {stage.name!r} has "
                                 f"no hint; add it to failure_hints")
        if not self.steps:
            raise ValueError(f"task {self.name!r} needs its sub-steps")
        if self.rest_on is not None and self.rest_height is None:
            raise ValueError(f"task {self.name!r}: rest_on needs the table's rest_height")
        if (self.scene_pose is None) != (self.scene_extents is None):
            raise ValueError(f"task {self.name!r}: scene_pose and scene_extents go together (the still "
                             "object's pose in environment_state and its half-extents)")
        if (self.grip_box is None) != (self.grip_extents is None):
            raise ValueError(f"task {self.name!r}: grip_box and grip_extents go together (the finger "
                             "rule's box and its half-extents)")
        if self.grip_caged is not None and self.grip_box is None:
            raise ValueError(f"task {self.name!r}: grip_caged needs grip_box (what the hand cages)")
        if self.joint_step is not None and self.grip_box is None:
            raise ValueError(f"task {self.name!r}: joint_step needs grip_box (the joint rule asks "
                             "whether the fingers grip it)")
        if self.scene_rest_height is not None and self.scene_pose is None:
            raise ValueError(f"task {self.name!r}: scene_rest_height needs the still object's scene_pose")
        # how many entries the slice takes of any environment_state long enough to hold it
        if self.scene_pose is not None and len(range(*self.scene_pose.indices(1 << 16))) != 7:
            raise ValueError(f"task {self.name!r}: scene_pose must take 7 entries (position, quaternion), "
                             f"got {self.scene_pose}")

    def rest_heights(self, position: ArrayT, state: ArrayT) -> ArrayT:
        """[N]: the height (metres) the object's centre rests at, at `position` [N, 3] in the scene of
        environment_state [N, E]; needs `rest_height`."""
        if self.rest_height is None:
            raise ValueError(f"task {self.name!r} has no rest height")
        return rest_level(self.rest_height, self.rest_on, position, state)

    def success_on_state(self, state: ArrayT, agent_pos: ArrayT) -> ArrayT | None:
        """[N] bool: the task's success test on environment_state [N, E] and agent_pos [N, P], as the imagined
        env calls success on its carried state (success_on_state); None for a task with neither test."""
        return success_on_state(state, agent_pos, self.success_height, self.object_position.stop - 1,
                                self.state_success)

    @property
    def env_id(self) -> str:
        return f"WoW/{self.name}-v{SIM_VERSION}"

    @property
    def imagined_env_id(self) -> str:
        return f"WoW/{self.name}-Imagined-v{IMAGINED_VERSION}"

    @property
    def success_text(self) -> str:
        """The critique's sentence for a clip that does the task."""
        return self.critic_stages[-1].text

    def stage_index(self, name: str) -> int:
        """The index of the critic stage called `name` ("grasped", ...)."""
        names = [stage.name for stage in self.critic_stages]
        if name not in names:
            raise ValueError(f"task {self.name!r} has no critic stage {name!r}; its stages are {names}")
        return names.index(name)

    def stage_of_failure(self, stage: int) -> CriticStage:
        """The stage that names the failure of a clip whose furthest stage is `stage`."""
        return self.critic_stages[min(stage, len(self.critic_stages) - 2)]


def stages_by_distance(gripper_offset: slice, near: float, stages: int) -> StageLabeller:
    """Stage labels from simulator state alone: the last stage on success, the second when the gripper is
    within `near` of the object, else the first (for tasks whose grasp the reward does not single out)."""

    def label(state: np.ndarray, reward: np.ndarray, success: np.ndarray) -> np.ndarray:
        distance = np.linalg.norm(state[:, gripper_offset], axis=1)
        return np.where(success, stages - 1, np.where(distance < near, 1, 0))

    return label

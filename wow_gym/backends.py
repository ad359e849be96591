"""World-model backends: the one protocol the imagined env's plans, the refine loop, the physics check and
`wow-gym wowbench` drive, so the shipped DiT, the released WoW models (through diffusers), baselines and
a user's own model are interchangeable.

A backend declares what it can do (`Capabilities`): step one control step at a time under 7-DoF actions,
plan a video from an instruction only, or both; the resolution and frame rate it generates at. Whatever
it generates natively, it hands back frames at the task's image size and control rate (`resample_video`),
because FM-IDM, the critic and the simulator comparison all read those.

`make_backend("module:Class", task)` builds a user's backend; the built-in names map to classes by
string (`BUILTIN`), so this core module imports no model code.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["BUILTIN", "BackendError", "BackendStep", "Capabilities", "CopyLast", "ShuffledActions",
           "WorldModelBackend", "backend_name", "load_callable", "make_backend", "require",
           "require_env_backend", "resample_video", "stack_steps"]


class BackendError(ValueError):
    """A backend that cannot be built, or asked for something it cannot do."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, and what it generates natively (before resampling to the task's frames)."""

    steps_under_actions: bool  # start() then step(actions [B,7]) one control step at a time
    plans_from_instruction: bool  # plan(context, instructions, horizon) with no actions
    resolution: tuple[int, int]  # (height, width) it generates at
    fps: float  # frames per second of what it generates
    predicts_state: bool = False  # step() also returns agent_pos, object state and success
    state_dims: tuple[int, int] | None = None  # (agent_pos, environment_state) sizes when it predicts them
    context_frames: int = 1  # real frames it starts from (the newest last)
    # start() also takes environment_state [B, E]: the object state where the reset knows it (a simulator
    # state or a stored episode), None where it starts from pixels alone
    starts_from_state: bool = False

    def __post_init__(self) -> None:
        if self.predicts_state and self.state_dims is None:
            raise BackendError("a backend that predicts state declares state_dims=(agent_pos size, "
                               "environment_state size)")
        if self.context_frames < 1:
            raise BackendError(f"context_frames must be >= 1, got {self.context_frames}")


@dataclass
class BackendStep:
    """One step of every row: frames [B,H,W,3] uint8 at the task's size; what the backend also predicts
    ([B,P] agent_pos, [B,E] environment_state, [B] success, [B] reward), None where it predicts nothing."""

    pixels: np.ndarray
    agent_pos: np.ndarray | None = None
    environment_state: np.ndarray | None = None
    success: np.ndarray | None = None
    reward: np.ndarray | None = None


@runtime_checkable
class WorldModelBackend(Protocol):
    """A world model the project can drive. Context frames are [B,k,H,W,3] uint8 at the task's image size
    (oldest first) with agent_pos [B,k,P] and the actions between them [B,k-1,7] (None: unknown).

    The imagined env (WoW/<Task>-Imagined-v0, `backend=`) needs more: a backend that steps under actions and
    predicts state, with `start(..., rows=)` restarting only those rows of the batch (a vector env's
    autoreset; a backend that cannot may raise BackendError for rows, then run it with one env),
    `observe(rows=None) -> BackendStep` (its reading of the newest context frame of each row) and
    `seed(int)` (the env's seed reaches its sampler). `require_env_backend` checks them.
    """

    name: str
    capabilities: Capabilities

    def start(self, pixels: np.ndarray, agent_pos: np.ndarray, actions: np.ndarray | None,
              instructions: list[str]) -> None:
        """Start B episodes from their context (a backend that cannot step may raise BackendError)."""

    def step(self, actions: np.ndarray) -> BackendStep:
        """One control step of every started row under actions [B,7] in [-1,1]."""

    def plan(self, pixels: np.ndarray, agent_pos: np.ndarray, instructions: list[str], horizon: int
             ) -> np.ndarray:
        """An instruction-only plan from the context: frames [B,horizon,H,W,3] uint8 at the task's size and
        control rate, the steps after the newest context frame."""


ABILITIES = {"steps_under_actions": "step under actions", "plans_from_instruction": "plan from an instruction"}


def require(backend: Any, ability: str) -> None:
    """BackendError unless `backend` has `ability` ("steps_under_actions" or "plans_from_instruction")."""
    caps = getattr(backend, "capabilities", None)
    if not isinstance(caps, Capabilities):
        raise BackendError(f"{backend!r} is not a world-model backend: it needs a `capabilities` attribute "
                           "(wow_gym.backends.Capabilities), a `name`, and start/step/plan methods")
    if not getattr(caps, ability):
        can = [a for a in ("steps_under_actions", "plans_from_instruction") if getattr(caps, a)]
        raise BackendError(f"backend {backend_name(backend)!r} cannot {ABILITIES[ability]}; "
                           f"it declares only {can or 'nothing'}")


def require_env_backend(backend: Any) -> None:
    """BackendError unless `backend` can drive the imagined env (see WorldModelBackend)."""
    require(backend, "steps_under_actions")
    if not backend.capabilities.predicts_state:
        raise BackendError(f"the imagined env observes agent_pos and environment_state; backend "
                           f"{backend_name(backend)!r} does not predict them (predicts_state=False). Use it for "
                           "plans, the physics check and `wow-gym wowbench`")
    missing = [m for m in ("observe", "seed") if not callable(getattr(backend, m, None))]
    if missing:
        raise BackendError(f"backend {backend_name(backend)!r} needs {' and '.join(missing)}() to drive the "
                           "imagined env (see wow_gym.backends.WorldModelBackend)")


def backend_name(backend: Any) -> str:
    return str(getattr(backend, "name", type(backend).__name__))


def resample_video(frames: np.ndarray, fps: float, target_fps: float, size: int | tuple[int, int],
                   horizon: int) -> np.ndarray:
    """Frames [B,T,H,W,3] (uint8, or float in [0,1]) generated at `fps`, whose frame 0 is the context frame,
    as `horizon` uint8 frames [B,horizon,h,w,3] at `target_fps` after it: step t takes the generated frame
    nearest in time to t / target_fps (the last one past the video's end), resized with area averaging.
    BackendError when the video does not reach one control step."""
    import cv2  # OpenCV's area resize: the anti-aliased downscale a 480p->64px plan needs

    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise BackendError(f"expected frames [B,T,H,W,3], got shape {frames.shape}")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if fps <= 0 or target_fps <= 0 or horizon < 1:
        raise BackendError(f"fps, target_fps and horizon must be positive, got {fps}, {target_fps}, {horizon}")
    count = frames.shape[1]
    if count < 2:
        raise BackendError(f"a plan needs the context frame and at least one generated frame, got {count}")
    index = np.minimum(np.rint(np.arange(1, horizon + 1) * fps / target_fps).astype(int), count - 1)
    h, w = (size, size) if isinstance(size, int) else size
    picked = frames[:, index]
    if picked.shape[2:4] == (h, w):
        return np.ascontiguousarray(picked)
    flat = picked.reshape(-1, *picked.shape[2:])
    shrink = flat.shape[1] >= h and flat.shape[2] >= w
    resized = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
               for f in flat]
    return np.stack(resized).reshape(*picked.shape[:2], h, w, 3)


class CopyLast:
    """The baseline every world model must beat: the newest context frame, repeated."""

    name = "copy-last"

    def __init__(self, task: str = "Lift", image_size: int = 64, fps: float = 20.0) -> None:
        self.capabilities = Capabilities(True, True, (image_size, image_size), fps)
        self._last: np.ndarray | None = None

    def start(self, pixels: np.ndarray, agent_pos: np.ndarray, actions: np.ndarray | None,
              instructions: list[str]) -> None:
        self._last = np.asarray(pixels)[:, -1].copy()

    def step(self, actions: np.ndarray) -> BackendStep:
        if self._last is None:
            raise BackendError("start the backend before stepping it")
        if len(actions) != len(self._last):
            raise BackendError(f"expected actions [{len(self._last)}, 7], got shape {np.shape(actions)}")
        return BackendStep(self._last.copy())

    def plan(self, pixels: np.ndarray, agent_pos: np.ndarray, instructions: list[str], horizon: int
             ) -> np.ndarray:
        last = np.asarray(pixels)[:, -1:]
        return np.repeat(last, horizon, axis=1)


class ShuffledActions:
    """A deliberately degraded backend: `inner` stepped under the wrong actions. Row i gets row i+1's
    action (B > 1), or the action mirrored (-a) when there is one row; a benchmark must rank it below the
    model it wraps. Plans pass through unchanged (they have no actions to shuffle)."""

    def __init__(self, inner: WorldModelBackend) -> None:
        require(inner, "steps_under_actions")
        self.inner = inner
        self.name = f"{backend_name(inner)}+shuffled-actions"
        self.capabilities = dataclasses.replace(inner.capabilities, plans_from_instruction=False)

    def start(self, pixels: np.ndarray, agent_pos: np.ndarray, actions: np.ndarray | None,
              instructions: list[str]) -> None:
        self.inner.start(pixels, agent_pos, actions, instructions)

    def step(self, actions: np.ndarray) -> BackendStep:
        actions = np.asarray(actions)
        wrong = np.roll(actions, -1, axis=0) if len(actions) > 1 else -actions
        return self.inner.step(wrong)

    def plan(self, pixels: np.ndarray, agent_pos: np.ndarray, instructions: list[str], horizon: int
             ) -> np.ndarray:
        raise BackendError(f"{self.name} does not plan; plan with {backend_name(self.inner)!r} itself")


# name -> "module:callable(task, **options)"; strings, so the core imports no model code.
BUILTIN: dict[str, str] = {
    "copy-last": "wow_gym.backends:CopyLast",
    "dit": "wow_gym.world_models.video.backend:DiTBackend",
    "wow-dit-2b": "wow_gym.world_models.wow.adapters:WoWDiT2B",
    "wow-wan-14b": "wow_gym.world_models.wow.adapters:WoWWan14B",
}


def load_callable(spec: str) -> Callable[..., Any]:
    """The object `module:attr` names; BackendError that says what was expected when it cannot be found."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BackendError(f"expected a backend name ({', '.join(BUILTIN)}) or 'module:Class', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BackendError(f"backend {spec!r}: cannot import {module_name!r} ({error})") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise BackendError(f"backend {spec!r}: module {module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise BackendError(f"backend {spec!r}: {attr!r} is not a class or function")
    return target


def make_backend(spec: str, task: str = "Lift", shuffled_actions: bool = False, **options: Any
                 ) -> WorldModelBackend:
    """A backend from a built-in name or `module:Class`, called as Class(task=task, **options); wrapped in
    ShuffledActions with `shuffled_actions`. BackendError when the result does not declare Capabilities."""
    factory = load_callable(BUILTIN.get(spec, spec))
    try:
        backend = factory(task=task, **options)
    except TypeError as error:
        raise BackendError(f"backend {spec!r}: {error} (options given: {sorted(options) or 'none'})") from None
    caps = getattr(backend, "capabilities", None)
    if not isinstance(caps, Capabilities) or not all(callable(getattr(backend, m, None))
                                                     for m in ("start", "step", "plan")):
        raise BackendError(f"backend {spec!r} built {type(backend).__name__}, which is not a world-model "
                           "backend: it needs `capabilities` (wow_gym.backends.Capabilities), `name`, and "
                           "start/step/plan methods")
    if not hasattr(backend, "name"):
        backend.name = spec
    return ShuffledActions(backend) if shuffled_actions else backend


def stack_steps(steps: Sequence[BackendStep]) -> dict[str, np.ndarray | None]:
    """Steps over time as arrays [B,T,...] per field (None where the backend predicts nothing)."""
    out: dict[str, np.ndarray | None] = {}
    for key in ("pixels", "agent_pos", "environment_state", "success"):
        values = [getattr(s, key) for s in steps]
        out[key] = None if any(v is None for v in values) else np.stack(values, 1)
    return out

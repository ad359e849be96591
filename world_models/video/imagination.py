"""One imagination path: a `WorldModel` rolled forward from a start under actions or an instruction.

`Start` is where N episodes begin (context frames, poses and actions, instructions; the real object state
where known): windows of stored episodes, or frames rendered from a simulator state. `Imagination` holds
episodes in flight in one model batch; the gym env steps it one action at a time. `imagine` rolls a Start
under actions [N, T, 7] and `plan` under its instructions, batch_size episodes at a time; `rollouts`
turns either result into `Rollout`s (`plan_rollout`: one plan from an episode's first frame). Every
caller that imagines goes through here, so one random-stream order (start, then step after step, batch
after batch) serves them all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from wow_gym.backends import BackendError, WorldModelBackend, backend_name, require
from wow_gym.devices import resolve_autocast, resolve_device
from wow_gym.rollout import ACTION_DIM, Rollout
from wow_gym.world_models.checkpoint import CheckpointError, shipped_checkpoint
from wow_gym.world_models.video.model import ImaginationState, StepOutput, WorldModel


def world_model_path(task: str, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint directory to load: `checkpoint` as given, else the shipped model of `task`."""
    return Path(checkpoint) if checkpoint else shipped_checkpoint(task, "world-model")


def load_world_model(task: str, checkpoint: str | Path | None = None, *, model: WorldModel | None = None,
                     device: str | torch.device = "cpu", autocast: bool | str = False, compile: bool = False,
                     image_size: int | None = None, agent_pos_dim: int | None = None,
                     options: dict[str, Any] | None = None) -> WorldModel:
    """The world model of a task: `model` as given, else `checkpoint`, else the shipped checkpoint, on
    `device` ("auto": a GPU if present) with bf16 `autocast` (wow_gym.devices.resolve_autocast), its DiTs
    torch.compiled with `compile` (WorldModel.compile_samplers; a model passed in too), its imagination
    switches set from `options` (WorldModel.set_options: arm_physics, finger_rule, ...; a model passed in
    too); CheckpointError when it cannot serve this task, these sizes or these options."""
    if model is None:
        source = str(world_model_path(task, checkpoint))
        model = WorldModel.load(source, device=resolve_device(device), task=task)
        model.autocast = resolve_autocast(autocast, model.device)
    else:
        source = "the model passed in"
    if model.config.task.lower() != task.lower():
        raise CheckpointError(f"world model ({source}) was trained on task {model.config.task!r}, not "
                              f"{task!r}; pass a {task} checkpoint")
    if agent_pos_dim is not None and model.config.agent_pos_dim != agent_pos_dim:
        raise CheckpointError(f"world model ({source}) predicts {model.config.agent_pos_dim}-D agent_pos, "
                              f"the env has {agent_pos_dim}-D agent_pos; train a model on data from this env")
    model.check_compatible(image_size=image_size, action_dim=ACTION_DIM, source=source)
    try:
        model.set_options(options or {})
    except ValueError as error:
        raise CheckpointError(f"world model ({source}): {error}") from None
    if compile:
        model.compile_samplers()
    return model


def probe_object_state(wm: WorldModel, pixels: np.ndarray, batch: int = 256) -> np.ndarray:
    """The object-state probe's reading of frames [..., H, W, 3] uint8 -> environment_state [..., E].

    The probe was trained on encoded simulator frames only; applied to imagined and simulated frames
    alike, so that its own error cancels out of a comparison.
    """
    return wm.read_state(pixels, batch)


@dataclass
class Start:
    """Where N episodes start: context frames [N,k,H,W,3] uint8 (oldest first), agent_pos [N,k,P], one
    instruction each; the actions between the frames [N,k-1,7] (None: zeros) and, where known, the real
    object state at the newest frame [N,E]; task and seed of each for the Rollouts' provenance."""

    pixels: np.ndarray
    agent_pos: np.ndarray
    instructions: list[str]
    actions: np.ndarray | None = None
    environment_state: np.ndarray | None = None
    tasks: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pixels)

    @classmethod
    def from_episodes(cls, episodes: Sequence[Rollout], ends: Sequence[int], context: int,
                      instruction: str = "") -> Start:
        """Frames end-context+1 .. end of each episode; `instruction` for episodes without one."""
        window = [slice(end - context + 1, end + 1) for end in ends]
        states = [e.environment_state for e in episodes]
        known = all(s is not None for s in states)
        return cls(np.stack([e.pixels[w] for e, w in zip(episodes, window)]),
                   np.stack([e.agent_pos[w] for e, w in zip(episodes, window)]),
                   [e.instruction or instruction for e in episodes],
                   np.stack([e.action[w.start:w.stop - 1] for e, w in zip(episodes, window)]),
                   np.stack([s[end] for s, end in zip(states, ends)]) if known else None,
                   [e.task for e in episodes], [e.seed for e in episodes])


@dataclass
class Imagined:
    """Imagined steps after each start's newest frame: pixels [N,T,H,W,3] uint8, agent_pos [N,T,P] (NaN in
    a plan), environment_state [N,T,E] (the object head, or the probe on a plan's frames), success [N,T]
    (None for a plan); row i holds steps[i] steps (padding after), `seconds` in the model's step calls."""

    pixels: np.ndarray
    agent_pos: np.ndarray
    environment_state: np.ndarray
    success: np.ndarray | None
    steps: np.ndarray
    seconds: float = 0.0


class Imagination:
    """Episodes in flight in one model batch: (re)start rows from context, step every row, or plan."""

    def __init__(self, wm: WorldModel, generator: torch.Generator | None = None,
                 sampling_steps: int | None = None) -> None:
        self.wm, self.generator, self.sampling_steps = wm, generator, sampling_steps
        self.state: ImaginationState | None = None

    def start(self, pixels: np.ndarray, agent_pos: np.ndarray, actions: np.ndarray | None,
              instructions: list[str], rows: np.ndarray | None = None,
              environment_state: np.ndarray | None = None) -> None:
        """Start every row from context frames (rows None), or restart only `rows` of the batch; a model that
        carries the object state reads it off the frames, or takes `environment_state` [n,E] where given."""
        new = self.wm.start(pixels, agent_pos, actions, instructions, environment_state)
        if rows is None:
            self.state = new
        elif self.state is None:
            raise RuntimeError("start every row (rows=None) before restarting some of them")
        else:
            self.state.replace(rows, new)

    def observe(self, rows: np.ndarray | None = None) -> StepOutput:
        """The heads' reading of the newest context frame of every row, or of `rows`."""
        state = self._require()
        return self.wm.observe_context(state if rows is None else state.select(rows))

    def step(self, actions: np.ndarray) -> StepOutput:
        """One imagined step of every row under actions [B, 7]."""
        return self.wm.step(self._require(), actions, generator=self.generator,
                            sampling_steps=self.sampling_steps)

    def plan(self, pixels: np.ndarray, agent_pos: np.ndarray, instructions: str | list[str], horizon: int
             ) -> np.ndarray:
        """An instruction-conditioned plan (no actions) from context frames: frames [B, horizon, H, W, 3]."""
        return self.wm.generate(pixels, agent_pos, instructions, horizon, self.generator, self.sampling_steps)

    def _require(self) -> ImaginationState:
        if self.state is None:
            raise RuntimeError("start the imagination (reset the env) before stepping or observing it")
        return self.state


def imagine_batches(wm: WorldModel, start: Start, actions: np.ndarray, steps: np.ndarray | None = None,
                    generator: torch.Generator | None = None, sampling_steps: int | None = None,
                    batch_size: int = 256, progress: bool = False, desc: str = "imagine",
                    known_state: bool = False) -> Iterator[tuple[int, Imagined]]:
    """(first row, Imagined) of each batch of `start` under actions [N,T,7]; row i runs steps[i] steps
    (default T; actions past them are ignored, steps past them padding) and a batch runs as many steps as
    its longest row. A model that carries the object state starts it from the probe's reading of the
    newest frame (as the imagined env does), or with `known_state` from `start.environment_state`."""
    if known_state and start.environment_state is None:
        raise ValueError("known_state=True needs a Start with environment_state (episodes that record it)")
    n, horizon = actions.shape[:2]
    steps = np.full(n, horizon) if steps is None else np.asarray(steps)
    if len(start) != n or steps.shape != (n,) or steps.max(initial=0) > horizon:
        raise ValueError(f"a start of {len(start)} episodes needs actions [{len(start)}, T, 7] and steps "
                         f"[{len(start)}] <= T, got actions {actions.shape} and steps {steps.shape}")
    session = Imagination(wm, generator, sampling_steps)
    bar = tqdm(total=int(steps.sum()), desc=desc, disable=not progress, unit="step")
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        session.start(start.pixels[lo:hi], start.agent_pos[lo:hi],
                      None if start.actions is None else start.actions[lo:hi], start.instructions[lo:hi],
                      environment_state=start.environment_state[lo:hi] if known_state else None)
        outputs, seconds = [], 0.0
        for t in range(int(steps[lo:hi].max(initial=0))):
            begin = time.perf_counter()
            outputs.append(session.step(actions[lo:hi, t]))
            seconds += time.perf_counter() - begin
            bar.update(int((t < steps[lo:hi]).sum()))
        past = np.arange(len(outputs))[None] >= steps[lo:hi, None]  # [b, T]: steps after a row's end
        yield lo, Imagined(*(_blank(np.stack([getattr(o, key) for o in outputs], 1), past) for key in
                             ("pixels", "agent_pos", "environment_state", "success")), steps[lo:hi], seconds)
    bar.close()


def _blank(x: np.ndarray, where: np.ndarray) -> np.ndarray:
    """x [N,T,...] with the steps `where` [N,T] set to padding: 0 / False for frames and flags, else NaN."""
    x[where] = 0 if x.dtype in (np.uint8, np.bool_) else np.nan
    return x


def imagine(wm: WorldModel, start: Start, actions: np.ndarray, steps: np.ndarray | None = None,
            generator: torch.Generator | None = None, sampling_steps: int | None = None,
            batch_size: int = 256, progress: bool = False, desc: str = "imagine",
            known_state: bool = False) -> Imagined:
    """Every episode of `start` imagined under actions [N,T,7] (see imagine_batches), batches padded to T."""
    parts = list(imagine_batches(wm, start, actions, steps, generator, sampling_steps, batch_size, progress,
                                 desc, known_state))
    horizon = actions.shape[1]

    def padded(x: np.ndarray) -> np.ndarray:
        wider = np.concatenate([x, np.empty((len(x), horizon - x.shape[1], *x.shape[2:]), x.dtype)], 1)
        return _blank(wider, np.broadcast_to(np.arange(horizon) >= x.shape[1], wider.shape[:2]))

    return Imagined(*(np.concatenate([padded(getattr(p, key)) for _, p in parts]) for key in
                      ("pixels", "agent_pos", "environment_state", "success")),
                    np.concatenate([p.steps for _, p in parts]), sum(p.seconds for _, p in parts))


def plan(wm: WorldModel, start: Start, horizon: int, generator: torch.Generator | None = None,
         sampling_steps: int | None = None, batch_size: int | None = None) -> Imagined:
    """Instruction-conditioned plans (no actions) of `horizon` steps from every start, batch_size at a time
    (None: all at once); the object state is the probe's reading of the planned frames."""
    session, n = Imagination(wm, generator, sampling_steps), len(start)
    frames, states = [], []
    for lo in range(0, n, batch_size or max(n, 1)):
        hi = min(lo + (batch_size or n), n)
        frames.append(session.plan(start.pixels[lo:hi], start.agent_pos[lo:hi], start.instructions[lo:hi],
                                   horizon))
        states.append(probe_object_state(wm, frames[-1]))
    pixels = np.concatenate(frames)
    unknown = np.full((n, horizon, start.agent_pos.shape[-1]), np.nan, np.float32)  # a plan imagines no pose
    return Imagined(pixels, unknown, np.concatenate(states), None, np.full(n, horizon))


def rollouts(start: Start, imagined: Imagined, actions: np.ndarray | None = None) -> list[Rollout]:
    """Each start's newest context frame and its imagined steps as an imagined Rollout; `actions` [N,T,7]
    are those imagined under (None: a plan, zero actions, pose unknown)."""
    mode = "plan" if actions is None else "actions"
    out = []
    for i in range(len(start)):
        t = int(imagined.steps[i])
        state = (start.environment_state[i:i + 1] if start.environment_state is not None
                 else np.full((1, imagined.environment_state.shape[-1]), np.nan, np.float32))
        out.append(Rollout(
            pixels=np.concatenate([start.pixels[i, -1:], imagined.pixels[i, :t]]),
            agent_pos=np.concatenate([start.agent_pos[i, -1:], imagined.agent_pos[i, :t]]).astype(np.float32),
            action=(np.zeros((t, ACTION_DIM), np.float32) if actions is None
                    else actions[i, :t].astype(np.float32)),
            reward=np.zeros(t, np.float32), terminated=np.zeros(t, bool), truncated=np.zeros(t, bool),
            source="imagined", task=start.tasks[i] if start.tasks else "", instruction=start.instructions[i],
            seed=start.seeds[i] if start.seeds else -1, pair_id=f"{mode}-{i}",
            is_success=None if imagined.success is None else imagined.success[i, :t],
            environment_state=np.concatenate([state, imagined.environment_state[i, :t]]).astype(np.float32)))
    return out


def plan_rollout(wm: WorldModel | WorldModelBackend, episode: Rollout, instruction: str, horizon: int,
                 generator: torch.Generator | None = None, sampling_steps: int | None = None) -> Rollout:
    """A plan of `horizon` steps from an episode's first frame under `instruction`, as an imagined Rollout
    that carries the probe's object state (so the physics check can verify it). `wm` may be any backend
    that plans (wow_gym.backends); its object state is its `read_state` of the frames where it has one,
    else unknown (NaN: the physics check then judges the replay's success alone)."""
    start = replace(Start.from_episodes([episode], [0], 1), instructions=[instruction])
    if isinstance(wm, WorldModel):
        return rollouts(start, plan(wm, start, horizon, generator, sampling_steps))[0]
    require(wm, "plans_from_instruction")
    frames = np.asarray(wm.plan(start.pixels, start.agent_pos, [instruction], horizon))
    expected = (1, horizon, *start.pixels.shape[2:])
    if frames.shape != expected or frames.dtype != np.uint8:
        raise BackendError(f"backend {backend_name(wm)!r} planned {frames.dtype} frames {frames.shape}; expected "
                           f"uint8 {expected} (the task's frames, see wow_gym.backends.resample_video)")
    env_dim = episode.environment_state.shape[-1] if episode.environment_state is not None else 0
    state = (wm.read_state(frames) if callable(getattr(wm, "read_state", None))
             else np.full((1, horizon, env_dim), np.nan, np.float32))
    unknown = np.full((1, horizon, start.agent_pos.shape[-1]), np.nan, np.float32)
    return rollouts(start, Imagined(frames, unknown, state, None, np.full(1, horizon)))[0]

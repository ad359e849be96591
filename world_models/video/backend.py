"""The shipped DiT world model as a `wow_gym.backends.WorldModelBackend`: it steps under actions and plans
from instructions, at the task's 64 px and control rate, and predicts the arm pose, the object state and
success beside the frames. `read_state` is its object probe, which reads any backend's frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wow_gym.backends import BackendStep, Capabilities
from wow_gym.registry import CONTROL_FREQ
from wow_gym.world_models.video.imagination import Imagination, load_world_model, probe_object_state
from wow_gym.world_models.video.model import StepOutput, WorldModel


class DiTBackend:
    """The task's DiT (`checkpoint`, else the shipped one) at `sampling_steps` (None: the checkpoint's
    default), seeded with `seed`; `model` to wrap one already loaded."""

    def __init__(self, task: str = "Lift", checkpoint: str | Path | None = None, sampling_steps: int | None = None,
                 device: str = "cpu", autocast: bool | str = False, seed: int = 0,
                 model: WorldModel | None = None) -> None:
        self.wm = load_world_model(task, checkpoint, model=model, device=device, autocast=autocast)
        steps = int(sampling_steps or self.wm.config.sampling_steps)
        if steps < 1:
            raise ValueError(f"sampling_steps must be >= 1, got {sampling_steps}")
        self.sampling_steps = steps
        self.name = f"dit-{steps}step"
        size = self.wm.config.image_size
        config = self.wm.config
        self.capabilities = Capabilities(steps_under_actions=True, plans_from_instruction=True,
                                         resolution=(size, size), fps=float(CONTROL_FREQ), predicts_state=True,
                                         state_dims=(config.agent_pos_dim, config.env_state_dim),
                                         context_frames=config.context_frames, starts_from_state=True)
        self.imagination = Imagination(self.wm, torch.Generator(device=self.wm.device).manual_seed(seed), steps)

    def seed(self, seed: int) -> None:
        self.imagination.generator.manual_seed(int(seed))

    def start(self, pixels: np.ndarray, agent_pos: np.ndarray, actions: np.ndarray | None,
              instructions: list[str], rows: np.ndarray | None = None,
              environment_state: np.ndarray | None = None) -> None:
        """Start every row, or restart only `rows`; the object state is read off the frames (the probe), or
        taken from `environment_state` [n, E] (the reset's known state) where the model's known_state
        option is on."""
        if not self.wm.config.known_state:
            environment_state = None
        self.imagination.start(pixels, agent_pos, actions, list(instructions), rows, environment_state)

    def observe(self, rows: np.ndarray | None = None) -> BackendStep:
        return _step(self.imagination.observe(rows))

    def step(self, actions: np.ndarray) -> BackendStep:
        return _step(self.imagination.step(np.asarray(actions, np.float32)))

    def plan(self, pixels: np.ndarray, agent_pos: np.ndarray, instructions: list[str], horizon: int
             ) -> np.ndarray:
        return self.imagination.plan(pixels, agent_pos, list(instructions), horizon)

    def read_state(self, pixels: np.ndarray) -> np.ndarray:
        """The object probe's environment_state [..., E] of frames [..., H, W, 3] uint8 (any backend's)."""
        return probe_object_state(self.wm, pixels)


def _step(out: StepOutput) -> BackendStep:
    return BackendStep(out.pixels, out.agent_pos, out.environment_state, out.success, out.reward)

"""The simulator as library code below envs/ sees it: a factory the layer above passes in.

world_models/ never imports envs/. A trainer or evaluation that needs simulator labels (arm masks,
corrupted clips, replays, the task camera) takes a `SimFactory` from its caller; the entry scripts in
experiments/ pass `wow_gym.envs.robosuite_env.RobosuiteEnv`, which fits.
"""

from __future__ import annotations

from typing import Any, Protocol


class SimFactory(Protocol):
    """Makes the sim twin of a task: a Gymnasium env with reset(options={"sim_state": ...}), step,
    get_sim_state, arm_masks, render_states and camera_matrix (what RobosuiteEnv offers)."""

    def __call__(self, task: str, *, image_size: int = 64, use_camera: bool = True) -> Any: ...

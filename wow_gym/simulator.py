"""The simulator as library code below envs/ sees it: a factory the layer above passes in.

world_models/ never imports envs/. A trainer or evaluation that needs simulator labels (arm masks,
corrupted clips, replays, the task camera) takes a `SimFactory` from its caller; the entry scripts in
experiments/ pass `wow_gym.envs.robosuite_env.RobosuiteEnv`, which fits. `make_robosuite` builds the robosuite
scene every sim twin wraps (and whose robot the imagined arm, world_models/video/arm.py, steps).
"""

from __future__ import annotations

from typing import Any, Protocol

from wow_gym.console import quiet_robosuite


class SimFactory(Protocol):
    """Makes the sim twin of a task: a Gymnasium env with reset(options={"sim_state": ...}), step,
    get_sim_state, arm_masks, render_states and camera_matrix (what RobosuiteEnv offers)."""

    def __call__(self, task: str, *, image_size: int = 64, use_camera: bool = True) -> Any: ...


def make_robosuite(env_name: str, control_freq: int) -> Any:
    """robosuite's `env_name` with the Panda under the BASIC (OSC_POSE) controller, as every wow_gym sim
    twin builds it: no renderer, object observations, shaped reward, no horizon (RobosuiteEnv wraps it;
    the imagined arm, world_models/video/arm.py, steps its robot)."""
    quiet_robosuite()  # whoever builds the scene first: robosuite prints at import
    import robosuite
    from robosuite.controllers import load_composite_controller_config

    controller = load_composite_controller_config(controller="BASIC", robot="Panda")
    return robosuite.make(
        env_name,
        robots="Panda",
        controller_configs=controller,
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        use_object_obs=True,
        reward_shaping=True,
        control_freq=control_freq,
        ignore_done=True,
        hard_reset=False,
        horizon=10**9,
        # Object sizes are sampled once when the scene is built: a fixed seed makes every instance build
        # the same scene; per-episode randomness is reseeded on reset().
        seed=0,
    )

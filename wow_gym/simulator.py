"""The simulator as library code below envs/ sees it: a factory the layer above passes in.

world_models/ never imports envs/. A trainer or evaluation that needs simulator labels (arm masks,
corrupted clips, replays, the task camera) takes a `SimFactory` from its caller; the entry scripts in
experiments/ pass `wow_gym.envs.robosuite_env.RobosuiteEnv`, which fits. `make_robosuite` builds the robosuite
scene every sim twin wraps (and whose robot the imagined arm, world_models/video/arm.py, steps).
"""

from __future__ import annotations

import atexit
import weakref
from typing import Any, Protocol

import mujoco
import numpy as np

from wow_gym.console import quiet_robosuite

_LIVE_RENDERERS: weakref.WeakSet[mujoco.Renderer] = weakref.WeakSet()


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


def _close_renderers() -> None:
    """Free GL contexts before EGL shuts down; left to the garbage collector they raise at exit.

    Registered with atexit when the first renderer exists, after mujoco's EGL module has registered its
    own shutdown, so that this runs first (atexit runs last-registered first).
    """
    for renderer in list(_LIVE_RENDERERS):
        renderer.close()


def track_renderer(renderer: mujoco.Renderer) -> mujoco.Renderer:
    """`renderer`, closed at exit before mujoco's EGL teardown."""
    if not _LIVE_RENDERERS and not getattr(track_renderer, "registered", False):
        atexit.register(_close_renderers)
        track_renderer.registered = True
    _LIVE_RENDERERS.add(renderer)
    return renderer


def scene_renderer(model: mujoco.MjModel, size: int, *, shadows: bool = False, reflections: bool = False,
                   skybox: bool = False, segmentation: bool = False) -> mujoco.Renderer:
    """A square `size`-pixel renderer of `model` (closed at exit) with the scene's look switches; every
    renderer of a task scene (the sim twin's camera, its arm masks, the imagined arm) is made here, so the
    defaults (each off: about 3x faster on a CPU than robosuite's look) are the sim twin's."""
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
    model.vis.global_.offheight = max(model.vis.global_.offheight, size)
    renderer = mujoco.Renderer(model, size, size)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = reflections
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = skybox
    if segmentation:
        renderer.enable_segmentation_rendering()
    return track_renderer(renderer)


def arm_geoms(model: mujoco.MjModel) -> np.ndarray:
    """bool [ngeom + 1]: the geoms of robosuite's robot arm and its gripper; the trailing False is what a
    segmentation pixel that shows no geom reads (see `arm_pixels`)."""
    bodies = [model.body(model.geom_bodyid[g]).name for g in range(model.ngeom)]
    return np.array([b.startswith(("robot0_", "gripper0_")) for b in bodies] + [False])


def arm_pixels(segmentation: np.ndarray, geoms: np.ndarray) -> np.ndarray:
    """bool [H, W]: which pixels of a segmentation render [H, W, 2] show the arm (`geoms`: arm_geoms)."""
    geom = np.where(segmentation[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, segmentation[..., 0], -1)
    return geoms[geom]  # index -1 (not a geom) reads the trailing False

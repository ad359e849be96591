"""wow_gym: train robot policies in a learned video world model, checked against its MuJoCo twin."""

import os

# Headless rendering must be chosen before mujoco or robosuite is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from wow_gym.registry import TASKS, register_envs, sim_env_ids, task_info  # noqa: E402
from wow_gym.rollout import Rollout  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Rollout", "TASKS", "register_envs", "sim_env_ids", "task_info", "__version__"]

register_envs()

"""Gymnasium environments: robosuite ground-truth tasks, wrappers, scripted experts."""

from wow_gym.console import quiet_robosuite

quiet_robosuite()  # before any module here imports robosuite, which warns at import (shown with -v)

from wow_gym.envs.robosuite_env import RenderConfig, RobosuiteEnv  # noqa: E402

__all__ = ["RenderConfig", "RobosuiteEnv"]

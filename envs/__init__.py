"""Gymnasium environments: robosuite ground-truth tasks, wrappers, scripted experts."""

from wow_gym.envs.robosuite_env import RenderConfig, RobosuiteEnv

__all__ = ["RenderConfig", "RobosuiteEnv"]

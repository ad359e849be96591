"""Scripted experts with privileged simulator state, one per wow_gym task, and their evaluation."""

from wow_gym.envs.experts.catalog import EXPERTS, make_expert
from wow_gym.envs.experts.evaluation import ExpertEvaluation, evaluate_expert
from wow_gym.envs.experts.scripted import FAILURE_KINDS, ExpertNoiseConfig, Phase, ScriptedExpert

__all__ = [
    "EXPERTS", "ExpertEvaluation", "ExpertNoiseConfig", "FAILURE_KINDS", "Phase", "ScriptedExpert",
    "evaluate_expert", "make_expert",
]

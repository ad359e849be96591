"""Scripted experts with privileged simulator state, one per wow_gym task, and their evaluation."""

from wow_gym.envs.experts.catalog import EXPERTS, make_expert
from wow_gym.envs.experts.evaluation import ExpertEvaluation, evaluate_expert
from wow_gym.envs.experts.scripted import (
    ALL_FAILURE_KINDS,
    FAILURE_KINDS,
    NEAR_MISS,
    ExpertNoiseConfig,
    Phase,
    ScriptedExpert,
)

__all__ = [
    "ALL_FAILURE_KINDS", "EXPERTS", "ExpertEvaluation", "ExpertNoiseConfig", "FAILURE_KINDS", "NEAR_MISS",
    "Phase", "ScriptedExpert", "evaluate_expert", "make_expert",
]

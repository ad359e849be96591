"""The refine loop of `wow-gym eval-critic` plans through any backend (plan_backend=), here copy-last named
as a user's module:Class: its still plans are critiqued, refined and replayed in the real simulator."""

from dataclasses import replace

import numpy as np
import pytest

from wow_gym.backends import BackendError
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.world_models.critic.evaluation import EvalCriticConfig, refine_cases


def test_refinement_plans_through_a_backend_given_by_name(lift_data, lift_critic):
    config = EvalCriticConfig(refine_dataset=str(lift_data), refine_starts=1, refine_rounds=2, plan_horizon=4,
                              plan_backend="wow_gym.backends:CopyLast", progress=False)
    env = RobosuiteEnv("Lift", image_size=64)
    try:
        (case,) = refine_cases(config, lift_critic, None, env)
        steps_only = replace(config, plan_backend="tests.world_models.critic.test_refine_backend:NoPlans")
        with pytest.raises(BackendError, match="cannot plan from an instruction"):
            refine_cases(steps_only, lift_critic, None, env)
    finally:
        env.close()
    assert 1 <= len(case.rounds) <= 2
    # a still video lifts nothing: neither the critic nor the replay of FM-IDM's actions calls it a success
    assert not case.baseline_critic and not case.baseline_success
    assert all(np.isfinite(r.critique.reward) for r in case.rounds)


class NoPlans:
    """A backend that only steps: the refine loop has nothing to plan with."""

    name = "no-plans"

    def __init__(self, task="Lift"):
        from wow_gym.backends import Capabilities

        self.capabilities = Capabilities(True, False, (64, 64), 20.0)

    def start(self, *args):
        pass

    def step(self, actions):
        raise NotImplementedError

    def plan(self, *args):
        raise NotImplementedError

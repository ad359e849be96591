"""Scripted experts: they solve their tasks, speak the action contract, and their noise and failures work."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import wow_gym
from wow_gym.envs.experts import (
    EXPERTS,
    FAILURE_KINDS,
    NEAR_MISS,
    ExpertEvaluation,
    ExpertNoiseConfig,
    evaluate_expert,
    make_expert,
)

NOISY = ExpertNoiseConfig(action_std=0.1, pause_prob=0.02, target_jitter=0.01)


def _rollout(task: str, seed: int, steps: int, noise: ExpertNoiseConfig | None = None
             ) -> tuple[np.ndarray, list[str]]:
    """Actions and subtasks of the first steps of one seeded episode."""
    env = gym.make(wow_gym.task_info(task).env_id, use_camera=False)
    try:
        observation, _ = env.reset(seed=seed)
        expert = make_expert(task, noise, np.random.default_rng(seed))
        expert.reset(env)
        actions, subtasks = [], []
        for _ in range(steps):
            action, subtask = expert.act(observation)
            observation, *_ = env.step(action)
            actions.append(action)
            subtasks.append(subtask)
    finally:
        env.close()
    return np.stack(actions), subtasks


def test_every_task_has_an_expert() -> None:
    assert sorted(EXPERTS) == sorted(wow_gym.TASKS)


def test_lift_expert_solves_fixed_seeds() -> None:
    evaluation = evaluate_expert("Lift", seeds=[0, 1, 2], progress=False)
    assert isinstance(evaluation, ExpertEvaluation)
    assert evaluation.successes == (True, True, True)
    assert evaluation.success_rate == 1.0
    assert evaluation.mean_episode_length == wow_gym.task_info("Lift").max_episode_steps
    assert all(step is not None and step < 80 for step in evaluation.success_steps)
    assert evaluation.failures == (None, None, None)


@pytest.mark.parametrize("task", sorted(wow_gym.TASKS))
def test_expert_returns_valid_actions_and_subtasks(task: str) -> None:
    actions, subtasks = _rollout(task, seed=0, steps=40)
    assert actions.shape == (40, 7) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 1.0) and np.all(np.isfinite(actions))
    assert all(isinstance(s, str) and s for s in subtasks)
    assert len(set(subtasks)) >= 2, f"{task} expert stayed in one phase for 40 steps: {subtasks[0]!r}"


def test_expert_is_deterministic_given_rng_and_seed() -> None:
    first, first_subtasks = _rollout("Lift", seed=3, steps=25, noise=NOISY)
    second, second_subtasks = _rollout("Lift", seed=3, steps=25, noise=NOISY)
    np.testing.assert_array_equal(first, second)
    assert first_subtasks == second_subtasks


def test_noise_changes_actions() -> None:
    clean, _ = _rollout("Lift", seed=0, steps=20)
    noisy, _ = _rollout("Lift", seed=0, steps=20, noise=ExpertNoiseConfig(action_std=0.1))
    assert not np.allclose(clean, noisy)
    assert np.all(np.abs(noisy) <= 1.0)


def test_pause_holds_still_with_the_gripper_held() -> None:
    actions, _ = _rollout("Lift", seed=0, steps=10, noise=ExpertNoiseConfig(pause_prob=1.0, pause_steps=4))
    # Every step starts a pause: one moving step, then four still ones, and so on.
    assert np.abs(actions[0, :6]).max() > 0
    np.testing.assert_array_equal(actions[1:5, :6], 0.0)
    assert np.all(actions[1:5, 6] == actions[0, 6])


def test_failure_prob_one_makes_lift_fail() -> None:
    evaluation = evaluate_expert("Lift", seeds=range(4), noise=ExpertNoiseConfig(failure_prob=1.0),
                                 progress=False)
    assert all(kind in FAILURE_KINDS for kind in evaluation.failures)
    assert evaluation.success_rate == 0.0


def test_near_misses_close_by_the_cube_and_fail() -> None:
    """noise.failure_kinds=[near_miss]: every episode closes the gripper just above or beside the cube, within
    a few centimetres of it (not 5-8 cm away as miss_grasp); most lift nothing (a finger may catch an edge)."""
    noise = ExpertNoiseConfig(failure_prob=1.0, failure_kinds=[NEAR_MISS])
    assert noise.failure_kinds == (NEAR_MISS,)
    evaluation = evaluate_expert("Lift", seeds=range(4), noise=noise, progress=False)
    assert evaluation.failures == (NEAR_MISS,) * 4
    assert evaluation.success_rate <= 0.25, evaluation.successes_by_seed
    env = gym.make("WoW/Lift-v0", use_camera=False)
    try:
        for seed in range(4):
            env.reset(seed=seed)
            expert = make_expert("Lift", noise, np.random.default_rng(seed))
            expert.reset(env)
            miss = np.linalg.norm(expert.near_miss_offset())
            assert 0.02 <= miss <= 0.045
    finally:
        env.close()


def test_expert_reports_failing() -> None:
    env = gym.make("WoW/Lift-v0", use_camera=False)
    try:
        env.reset(seed=0)
        failing = make_expert("Lift", ExpertNoiseConfig(failure_prob=1.0))
        failing.reset(env)
        clean = make_expert("lift")
        clean.reset(env)
    finally:
        env.close()
    assert failing.failing and failing.failure in FAILURE_KINDS
    assert not clean.failing and clean.failure is None


def test_unknown_task_lists_supported_tasks() -> None:
    with pytest.raises(ValueError, match="supported tasks") as error:
        make_expert("Juggle")
    for task in wow_gym.TASKS:
        assert task in str(error.value)


def test_expert_refuses_an_env_of_another_task() -> None:
    env = gym.make("WoW/Lift-v0", use_camera=False)
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="make_expert"):
            make_expert("Stack").reset(env)
    finally:
        env.close()


def test_act_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        make_expert("Lift").act(None)


@pytest.mark.parametrize("field, value", [("action_std", -0.1), ("pause_prob", 1.5), ("failure_prob", -1.0),
                                          ("pause_steps", 0), ("target_jitter", -0.01),
                                          ("failure_kinds", ["fall_over"]), ("failure_kinds", [])])
def test_noise_config_rejects_bad_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ExpertNoiseConfig(**{field: value})


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(wow_gym.TASKS))
def test_expert_success_rate(task: str) -> None:
    evaluation = evaluate_expert(task, seeds=range(20), progress=False)
    assert evaluation.success_rate >= 0.9, evaluation.successes_by_seed


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(wow_gym.TASKS))
def test_deliberate_failures_fail(task: str) -> None:
    evaluation = evaluate_expert(task, seeds=range(10), noise=ExpertNoiseConfig(failure_prob=1.0),
                                 progress=False)
    assert evaluation.success_rate <= 0.2, list(zip(evaluation.failures, evaluation.successes))

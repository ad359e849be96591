"""The Rollout record: validation names the bad field; slices are Rollouts."""

import numpy as np
import pytest

from wow_gym import Rollout


def make_rollout(steps=5, size=8):
    rng = np.random.default_rng(0)
    return Rollout(
        pixels=rng.integers(0, 255, (steps + 1, size, size, 3), dtype=np.uint8),
        agent_pos=rng.normal(size=(steps + 1, 9)).astype(np.float32),
        action=rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
        reward=np.arange(steps, dtype=np.float32),
        terminated=np.zeros(steps, bool),
        truncated=np.eye(1, steps, steps - 1, dtype=bool)[0],
        is_success=np.array([False] * (steps - 1) + [True]),
        sim_state=rng.normal(size=(steps + 1, 4)),
        subtask=[f"step {i}" for i in range(steps)],
        reward_terms={"reach": np.ones(steps, np.float32)},
        task="Lift",
    )


def test_valid_rollout_and_its_slice():
    rollout = make_rollout()
    assert rollout.num_steps == 5 and rollout.success
    part = rollout.slice(1, 3)
    assert part.num_steps == 2 and part.pixels.shape[0] == 3
    assert np.array_equal(part.pixels, rollout.pixels[1:4])
    assert np.array_equal(part.action, rollout.action[1:3])
    assert part.subtask == ["step 1", "step 2"] and part.reward_terms["reach"].shape == (2,)
    assert not part.success
    with pytest.raises(ValueError, match="outside the rollout's 5 steps"):
        rollout.slice(3, 9)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("action", np.zeros((5, 6), np.float32), r"action must be \[T, 7\]"),
        ("pixels", np.zeros((5, 8, 8, 3), np.uint8), r"pixels must start with shape \(6,\)"),
        ("pixels", np.zeros((6, 8, 8, 3), np.float32), "pixels must be uint8"),
        ("agent_pos", np.zeros((6, 9), np.float64), "agent_pos must be float32"),
        ("sim_state", np.zeros((5, 4)), r"sim_state must start with shape \(6,\)"),
        ("subtask", ["a"], "subtask must hold 5 strings"),
        ("source", "dream", "source must be one of"),
    ],
)
def test_inconsistent_fields_are_named(field, value, message):
    rollout = make_rollout()
    setattr(rollout, field, value)
    with pytest.raises(ValueError, match=message):
        rollout.validate()

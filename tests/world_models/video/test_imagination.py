"""The one imagination path reproduces the model's own start/step/generate calls exactly, batch by batch."""

import numpy as np
import pytest
import torch

from wow_gym.data import DatasetReader
from wow_gym.world_models import CheckpointError, WorldModel
from wow_gym.world_models.video.imagination import (
    Imagination,
    Start,
    imagine,
    load_world_model,
    plan,
    plan_rollout,
    probe_object_state,
    rollouts,
)


@pytest.fixture(scope="module")
def tiny_model():
    return WorldModel.random("dit-test", env_state_dim=10)


@pytest.fixture(scope="module")
def episodes(lift_data):
    reader = DatasetReader(lift_data)
    return [reader[0], reader[1], reader[0].slice(3, 12)]  # a third start: a window of the first episode


def test_actions_match_a_hand_written_loop_with_batch_splitting_and_zero_padding(tiny_model, episodes):
    wm, k = tiny_model, tiny_model.config.context_frames
    start = Start.from_episodes(episodes, [k - 1] * 3, k, wm.config.instruction)
    steps = np.array([5, 2, 4])
    actions = np.zeros((3, 5, 7), np.float32)  # zero past each episode's end
    for i, e in enumerate(episodes):
        actions[i, :steps[i]] = e.action[k - 1:k - 1 + steps[i]]
    imagined = imagine(wm, start, actions, steps, torch.Generator().manual_seed(3), 2, batch_size=2)

    g, reference = torch.Generator().manual_seed(3), []  # the loop every caller used to carry
    for rows in ([0, 1], [2]):
        state = wm.start(np.stack([e.pixels[:k] for e in (episodes[i] for i in rows)]),
                         np.stack([episodes[i].agent_pos[:k] for i in rows]),
                         np.stack([episodes[i].action[:k - 1] for i in rows]),
                         [episodes[i].instruction for i in rows])
        outs = [wm.step(state, actions[rows, t], generator=g, sampling_steps=2) for t in range(steps[rows].max())]
        reference += [(i, [o.pixels[j] for o in outs], [o.success[j] for o in outs]) for j, i in enumerate(rows)]

    for i, frames, success in reference:
        n = steps[i]
        assert np.array_equal(imagined.pixels[i, :n], np.stack(frames[:n]))
        assert np.array_equal(imagined.success[i, :n], np.array(success[:n]))
        assert not imagined.pixels[i, n:].any(), "steps past an episode's end are padding"
    made = rollouts(start, imagined, actions)
    assert [r.num_steps for r in made] == steps.tolist()
    assert np.array_equal(made[2].pixels[0], episodes[2].pixels[k - 1])
    assert np.array_equal(made[1].environment_state[0], episodes[1].environment_state[k - 1])
    assert np.array_equal(made[0].is_success, imagined.success[0])
    assert all(r.source == "imagined" and np.isfinite(r.environment_state).all() for r in made)


def test_plans_match_generate_and_carry_the_probed_object_state(tiny_model, episodes):
    wm = tiny_model
    start = Start.from_episodes(episodes, [0, 0, 0], 1, wm.config.instruction)
    planned = plan(wm, start, 3, torch.Generator().manual_seed(5), 2, batch_size=2)
    g = torch.Generator().manual_seed(5)
    reference = np.concatenate([wm.generate(np.stack([e.pixels[:1] for e in part]),
                                            np.stack([e.agent_pos[:1] for e in part]),
                                            [e.instruction for e in part], 3, g, 2)
                                for part in (episodes[:2], episodes[2:])])
    assert np.array_equal(planned.pixels, reference)
    assert planned.success is None and np.isnan(planned.agent_pos).all()

    made = rollouts(start, planned)
    probed = probe_object_state(wm, reference[:2])[0]  # read batch by batch, as planned
    state = np.concatenate([episodes[0].environment_state[:1], probed])
    assert np.array_equal(made[0].environment_state, state.astype(np.float32))
    assert made[0].is_success is None and not made[0].action.any()

    one = plan_rollout(wm, episodes[1], "lift the cube", 3, torch.Generator().manual_seed(7), 2)
    frames = wm.generate(episodes[1].pixels[None, :1], episodes[1].agent_pos[None, :1], "lift the cube", 3,
                         torch.Generator().manual_seed(7), 2)[0]
    assert np.array_equal(one.pixels, np.concatenate([episodes[1].pixels[:1], frames]))
    assert one.instruction == "lift the cube" and np.isfinite(one.environment_state).all()


def test_plan_rollout_takes_any_backend_that_plans(episodes):
    from wow_gym.backends import BackendError, CopyLast, ShuffledActions

    still = plan_rollout(CopyLast(), episodes[1], "lift the cube", 4)
    assert still.num_steps == 4 and (still.pixels == episodes[1].pixels[:1]).all()
    assert np.isnan(still.environment_state[1:]).all(), "a backend without a probe imagines no object state"
    np.testing.assert_array_equal(still.environment_state[0], episodes[1].environment_state[0])

    class Wrong(CopyLast):
        def plan(self, pixels, agent_pos, instructions, horizon):
            return np.zeros((1, horizon, 32, 32, 3), np.uint8)

    with pytest.raises(BackendError, match="expected uint8"):
        plan_rollout(Wrong(), episodes[1], "lift the cube", 2)
    with pytest.raises(BackendError, match="cannot plan from an instruction"):
        plan_rollout(ShuffledActions(CopyLast()), episodes[1], "lift the cube", 2)


def test_restarting_some_rows_leaves_the_others_in_flight(tiny_model, episodes):
    pixels = np.stack([e.pixels[:1] for e in episodes[:2]])
    poses = np.stack([e.agent_pos[:1] for e in episodes[:2]])
    imagination = Imagination(tiny_model, torch.Generator().manual_seed(0), 1)
    with pytest.raises(RuntimeError, match="start every row"):
        imagination.start(pixels[:1], poses[:1], None, ["lift"], rows=np.array([1]))
    imagination.start(pixels, poses, None, ["lift", "lift"])
    first = imagination.step(np.zeros((2, 7), np.float32))
    imagination.start(pixels[1:], poses[1:], None, ["lift"], rows=np.array([1]))
    assert np.array_equal(imagination.observe(np.array([1])).pixels[0], pixels[1, 0])
    assert np.array_equal(imagination.observe().pixels[0], first.pixels[0])


def test_load_world_model_refuses_a_model_of_another_task(tiny_model):
    assert load_world_model(tiny_model.config.task, model=tiny_model) is tiny_model
    with pytest.raises(CheckpointError, match="trained on task"):
        load_world_model("Door", model=tiny_model)
    with pytest.raises(CheckpointError, match="agent_pos"):
        load_world_model(tiny_model.config.task, model=tiny_model, agent_pos_dim=3)

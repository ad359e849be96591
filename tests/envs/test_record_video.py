"""Gymnasium's RecordVideo on every registered id, simulated and imagined: a few steps give a playable mp4."""

import av
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import RecordVideo

from wow_gym import TASKS
from wow_gym.world_models import WorldModel
from wow_gym.world_models.checkpoint import shipped_tasks

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

STEPS = 3


def _record(env: gym.Env, folder) -> list[np.ndarray]:
    """Record one short episode of random actions; the frames decoded back from the mp4 it wrote."""
    env = RecordVideo(env, str(folder), episode_trigger=lambda _: True, disable_logger=True)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(STEPS):
        env.step(env.action_space.sample())
    env.close()
    (video,) = folder.glob("*.mp4")
    with av.open(str(video)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _imagined_kwargs(task: str, env_state_dim: int) -> dict:
    """No arguments where a world model is shipped (the id out of the box), else a small random model."""
    if task in shipped_tasks("world-model"):
        return {}
    return {"model": WorldModel.random("dit-test", task=task, instruction=TASKS[task].instruction,
                                       env_state_dim=env_state_dim)}


@pytest.mark.parametrize("task", list(TASKS))
def test_record_video_writes_a_playable_mp4(task, tmp_path):
    info = TASKS[task]
    sim = gym.make(info.env_id, render_mode="rgb_array")
    size = sim.observation_space["pixels"].shape[0]
    dim = sim.observation_space["environment_state"].shape[0]
    imagined = gym.make(info.imagined_env_id, render_mode="rgb_array", **_imagined_kwargs(task, dim))
    for name, env in (("sim", sim), ("imagined", imagined)):
        frames = _record(env, tmp_path / name)
        assert len(frames) == STEPS + 1, f"{name}: reset frame plus one per step"
        assert frames[0].shape == (size, size, 3), name
        assert frames[-1].std() > 0, f"{name}: the video shows a scene, not a blank frame"

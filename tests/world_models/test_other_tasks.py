"""Stack, Door and PickPlaceCan ship their own critic and FM-IDM (make critic-tasks, make idm-tasks): each loads
by task name and reads a fresh scripted-expert episode of its task from the real simulator."""

import numpy as np
import pytest

from wow_gym.envs.collection import CollectConfig, make_env, make_policy, record_episode
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.physics_check import replay
from wow_gym.world_models import shipped_checkpoint
from wow_gym.world_models.critic.model import LearnedCritic
from wow_gym.world_models.idm.model import InverseDynamics

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

TASKS = ["stack", "door", "pickplacecan"]


@pytest.fixture(scope="module", params=TASKS)
def expert_episode(request):
    """A whole scripted-expert episode of the task on a seed no dataset was collected with, to its success."""
    config = CollectConfig(task=request.param, policy="expert")
    env = make_env(config)
    try:
        episode = record_episode(env, make_policy(config, np.random.default_rng(0)), seed=987001)
    finally:
        env.close()
    assert episode.success, f"the scripted {request.param} expert should succeed"
    return request.param, episode


def test_each_task_s_shipped_critic_sees_its_expert_succeed_and_not_its_start(expert_episode):
    task, episode = expert_episode
    critic = LearnedCritic.load(task=task)
    assert critic.config.task.lower() == task
    critique = critic.critique(episode.pixels, episode.instruction)
    assert critique.success, critique.text
    start = critic.critique(episode.pixels[:6], episode.instruction)
    assert not start.success and start.progress < critique.progress, start.text
    judged = critique.per_frame["success"] > 0.5
    first = int(np.argmax(episode.is_success))
    assert not judged[:max(first - 5, 1)].any(), "no success claimed long before the simulator's"


def test_each_task_s_shipped_idm_decodes_its_expert_video(expert_episode):
    task, episode = expert_episode
    idm = InverseDynamics.load(shipped_checkpoint(task, "idm"))
    decoded = idm.predict(episode.pixels)
    assert decoded.shape == episode.action.shape
    moving = np.abs(episode.action[:, :3]) > 0.2  # position commands the expert gives clearly
    agree = np.sign(decoded[:, :3][moving]) == np.sign(episode.action[:, :3][moving])
    assert moving.sum() >= 10 and agree.mean() >= 0.8, f"signs agree on {agree.mean():.0%} of {moving.sum()}"


def test_each_task_s_shipped_idm_tracks_its_expert_video_in_the_simulator(expert_episode):
    """The pose head reads where the video shows the end effector, and tracking it keeps the replayed arm on
    the video's path, which open-loop replay of the same decoded actions drifts off."""
    task, episode = expert_episode
    idm = InverseDynamics.load(shipped_checkpoint(task, "idm"))
    read = idm.eef_positions(episode.pixels)
    true = episode.agent_pos[:, :3]
    error_mm = 1000 * np.linalg.norm(read - true, axis=1)
    assert np.median(error_mm) < 20, f"median pose-head error {np.median(error_mm):.1f} mm"
    decoded = idm.predict(episode.pixels)
    env = RobosuiteEnv(task, image_size=64, use_camera=False)
    try:
        open_loop = replay(env, episode.sim_state[0], decoded, render=False)
        # step by step against the video's path: without the grasp wait, which lags the video by its wait
        tracked = replay(env, episode.sim_state[0], decoded, render=False, track=read, wait_for_grasp=False)
    finally:
        env.close()
    drift = {name: 1000 * np.linalg.norm(r.agent_pos[:, :3] - true, axis=1).mean()
             for name, r in (("open loop", open_loop), ("tracked", tracked))}
    assert drift["tracked"] < 25 and drift["tracked"] < drift["open loop"], drift

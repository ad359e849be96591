"""Collection: Ctrl-C loses only the episode in flight, rerunning resumes, episodes are reproducible; the
expert-then-walk exploration policy hands over at its step."""

import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest

from wow_gym.data import DatasetReader
from wow_gym.envs.collection import CollectConfig, collect, make_policy, record_episode
from wow_gym.envs.exploration import RandomWalkPolicy


def _episodes_on_disk(root):
    try:
        return len(DatasetReader(root))
    except Exception:  # noqa: BLE001 - before the first episode lands there is no dataset yet
        return 0


def test_ctrl_c_keeps_finished_episodes_and_rerun_resumes(tmp_path):
    root = tmp_path / "ds"
    args = [sys.executable, "-m", "wow_gym.cli", "collect", "task=lift", "policy=walk", "max_steps=10",
            "workers=1", "progress=false", f"root={root}"]
    proc = subprocess.Popen([*args, "episodes=200"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while _episodes_on_disk(root) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "run the same command to resume" in out
    kept = _episodes_on_disk(root)
    assert 2 <= kept < 200
    done = subprocess.run([*args, f"episodes={kept + 1}"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 episodes written" in done.stdout and f"{kept} already there" in done.stdout
    reader = DatasetReader(root)
    assert [reader[i].seed for i in range(len(reader))] == list(range(kept + 1))


def test_collected_episode_matches_a_direct_rollout(tmp_path):
    collect(CollectConfig(task="lift", episodes=1, policy="walk", root=str(tmp_path / "ds"), seed=5,
                          workers=1, max_steps=6, progress=False))
    stored = DatasetReader(tmp_path / "ds")[0]
    env = gym.make("WoW/Lift-v0", max_episode_steps=6)
    direct = record_episode(env, RandomWalkPolicy(np.random.default_rng(5)), seed=5)
    env.close()
    assert np.array_equal(stored.action, direct.action)
    assert np.array_equal(stored.sim_state, direct.sim_state)
    assert np.array_equal(stored.agent_pos, direct.agent_pos)
    assert stored.subtask == direct.subtask and stored.instruction == "lift the red cube"


def test_expert_then_walk_hands_over_at_its_switch_step():
    from wow_gym.envs.experts import ExpertNoiseConfig, make_expert
    from wow_gym.envs.exploration import ExpertThenWalk

    env = gym.make("WoW/Lift-v0", max_episode_steps=8)
    rng = np.random.default_rng(3)
    policy = ExpertThenWalk(make_expert("lift", ExpertNoiseConfig(), rng), rng, switch_steps=(3, 3))
    try:
        episode = record_episode(env, policy, seed=3)
    finally:
        env.close()
    # three expert steps (its sub-instructions), then the walk, which starts with the expert's gripper command
    assert all(s != "move randomly" for s in episode.subtask[:3]) and set(episode.subtask[3:]) == {"move randomly"}
    assert episode.action[3, 6] == np.sign(episode.action[2, 6])
    assert not np.allclose(episode.action[3:, :6], 0.0)
    with pytest.raises(ValueError, match="switch_steps"):
        ExpertThenWalk(make_expert("lift", ExpertNoiseConfig(), rng), rng, switch_steps=(5, 2))
    # collect's policy=expert-walk builds it
    config = CollectConfig(task="lift", policy="expert-walk", episodes=1, root="unused", workers=1)
    assert isinstance(make_policy(config, np.random.default_rng(0)), ExpertThenWalk)

"""Simulator work on a local 2-CPU Ray cluster gives the serial run's results: paired evaluation (the sim side
bit for bit, every episode's figures equal), collection (every array of every episode equal, resumed
through Ray), the physics check's replays, and a worker killed mid-run is restarted and its episode
retried. Real simulators, critic and world model; no timers: the killed worker marks its death in a file
before it exits."""

import dataclasses
import os
import sys
from functools import partial

import numpy as np
import pytest

from wow_gym.envs.collection import CollectConfig, CollectWorker, collect
from wow_gym.policies.evaluation import EvaluateConfig, evaluate
from wow_gym.registry import CONTROL_FREQ, task_info
from wow_gym.scale import RayConfig, import_ray, map_ordered

ray = pytest.importorskip("ray", reason="the Ray tests need the extra: pip install 'wow_gym[ray]'")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ON_RAY = RayConfig(address="auto")  # joins the cluster the fixture started
COLLECT = {"task": "lift", "policy": "walk", "max_steps": 3, "workers": 1, "progress": False}


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for this module; its workers import this module like the driver."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _DiesOnce travels by value
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def serial_walk(tmp_path_factory):
    """(config, the 3 episodes a serial in-process collection records) of a 3-step random walk."""
    config = CollectConfig(episodes=3, root=str(tmp_path_factory.mktemp("unused")), **COLLECT)
    return config, [rollout for _, rollout in map_ordered(partial(CollectWorker, config), range(3))]


def _episodes(results):
    return {p.name: p.episodes for p in results.policies}


def test_paired_evaluation_on_ray_matches_the_serial_run(cluster):
    def config(**ray_config):
        # 2 starts in waves of 1 (4 sim jobs for 2 workers), a random and a noisy policy: seeds matter
        return EvaluateConfig(policies=[{"name": "random", "kind": "random"},
                                        {"name": "noisy-zero", "kind": "zero", "noise_std": 0.3}],
                              n_episodes=2, max_steps=3, parallel=1, progress=False, ray=RayConfig(**ray_config))

    on_ray, serial = evaluate(config(address="auto")), evaluate(config())
    assert _episodes(on_ray) == _episodes(serial)  # every figure of every episode, sim and imagined, exactly
    assert [len(e) for e in _episodes(on_ray).values()] == [2, 2]
    returns = [e.sim_return for p in on_ray.policies for e in p.episodes]
    assert len(set(returns)) == len(returns)  # the episodes really differ (seeds and policies)
    for ray_policy, serial_policy in zip(on_ray.policies, serial.policies):
        for world in ("sim", "imagined"):
            np.testing.assert_array_equal(ray_policy.frames[world], serial_policy.frames[world])


def _assert_same_episodes(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert (a.seed, a.pair_id, a.instruction, a.num_steps) == (b.seed, b.pair_id, b.instruction, b.num_steps)
        for key in ("pixels", "agent_pos", "action", "reward", "sim_state", "environment_state", "is_success"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)


def test_collection_on_ray_matches_the_serial_one_and_resumes(cluster, serial_walk, tmp_path):
    from wow_gym.data import DatasetReader, DatasetWriter

    config, serial = serial_walk
    first = collect(dataclasses.replace(config, episodes=2, root=str(tmp_path / "ray"), ray=ON_RAY))
    resumed = collect(dataclasses.replace(config, episodes=3, root=str(tmp_path / "ray"), ray=ON_RAY))
    assert (first.written, resumed.written, resumed.skipped) == (2, 1, 2)
    writer = DatasetWriter(tmp_path / "serial", fps=CONTROL_FREQ, camera=task_info("lift").camera)  # as collect does
    for index, rollout in enumerate(serial):
        writer.write(rollout, episode_index=index)
    on_disk, serial_on_disk = DatasetReader(tmp_path / "ray"), DatasetReader(tmp_path / "serial")
    _assert_same_episodes([on_disk[i] for i in range(3)], [serial_on_disk[i] for i in range(3)])
    assert [on_disk[i].seed for i in range(3)] == [0, 1, 2]


class _DiesOnce(CollectWorker):
    """A collection worker whose process exits the first time it meets episode 1, leaving a marker file."""

    def __init__(self, config, marker):
        super().__init__(config)
        self.marker = marker

    def __call__(self, episode_index):
        if episode_index == 1 and not self.marker.exists():
            self.marker.touch()
            os._exit(1)  # the process dies: no exception, no cleanup
        return super().__call__(episode_index)


def test_a_killed_worker_is_restarted_and_the_run_gives_the_serial_results(cluster, serial_walk, tmp_path):
    config, serial = serial_walk
    marker = tmp_path / "died"
    on_ray = list(map_ordered(partial(_DiesOnce, config, marker), range(3), ON_RAY))  # 2 workers, 1 dies
    assert marker.exists()  # the worker really died mid-run
    assert [index for index, _ in on_ray] == [0, 1, 2]
    _assert_same_episodes([r for _, r in on_ray], serial)


def test_a_ray_map_closed_before_its_first_result_kills_its_actors(cluster, serial_walk):
    config, _ = serial_walk
    results = map_ordered(partial(CollectWorker, config), range(3), ON_RAY)  # every job is queued now
    actors = list(results.actors)
    assert len(actors) == 2
    results.close()  # e.g. the caller failed before taking a result
    for actor in actors:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.run.remote(0))
    with pytest.raises(StopIteration):
        next(results)


def test_physics_check_replays_on_ray_match_the_serial_ones(cluster, serial_walk):
    from wow_gym.envs.robosuite_env import RobosuiteEnv
    from wow_gym.physics_check import replay_all

    _, episodes = serial_walk
    jobs = [(e.sim_state[0], e.action[::-1].copy()) for e in episodes]  # other actions than the recorded ones
    make_env = partial(RobosuiteEnv, "Lift", image_size=32)
    on_ray = replay_all(make_env, jobs, ON_RAY)
    serial = replay_all(make_env, jobs)
    _assert_same_episodes(on_ray, serial)
    assert not np.array_equal(on_ray[0].sim_state, on_ray[1].sim_state)


def test_a_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where the extra is not installed
    with pytest.raises(ImportError, match=r"pip install 'wow_gym\[ray\]'"):
        import_ray()
    with pytest.raises(ValueError, match="ray.address must be"):
        RayConfig(address="cluster")

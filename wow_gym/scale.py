"""Spread simulator work over processes: a Ray cluster when `ray.address` is set, local processes otherwise.

Every caller (collection, paired evaluation, physics checks, IDM replays) has the same shape: a worker that
is expensive to build (a robosuite env holds ~0.5 GB and takes seconds) applied to many small, seeded jobs.
`map_ordered(make_worker, jobs, ray)` builds one worker per process and yields `worker(job)` in the order of
the jobs, so a result never depends on which process ran it. On Ray each worker is an actor kept for the
whole map, with its share of the jobs queued on it from the start; an actor whose process dies is restarted
and its jobs retried (`max_restarts`, `max_task_retries`), so a run survives lost workers. Ray is an optional
extra (`pip install 'wow_gym[ray]'`) and is imported only when an address is set.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")
Worker = Callable[[Any], Any]

# Environment variables a Ray worker needs to build a simulator like the driver's (headless rendering).
_FORWARDED_ENV = ("MUJOCO_GL", "PYOPENGL_PLATFORM")


@dataclass
class RayConfig:
    """Where simulator work runs; see the `ray:` section of experiments/conf/collect.yaml."""

    address: str | None = None  # None: local processes; local: start a Ray cluster here; auto | ray://host:port
    num_cpus: int | None = None  # address=local only: CPUs of the cluster it starts (None: all of this machine)
    workers: int | None = None  # actors, each keeping its own simulator; None: one per CPU of the cluster
    cpus_per_worker: float = 1.0
    max_retries: int = 3  # restarts of a worker whose process died, and retries of the job it was running

    def __post_init__(self) -> None:
        if self.address is not None and not (self.address in ("local", "auto") or self.address.startswith("ray://")
                                             or ":" in self.address):
            raise ValueError(f"ray.address must be null, local, auto, ray://<head>:<port> or <head>:<port>, "
                             f"got {self.address!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"ray.workers must be >= 1 or null (one per CPU), got {self.workers}")
        if self.max_retries < 0:
            raise ValueError(f"ray.max_retries must be >= 0, got {self.max_retries}")

    @property
    def enabled(self) -> bool:
        return self.address is not None


def map_ordered(make_worker: Callable[[], Worker], jobs: Iterable[J], ray: RayConfig | None = None,
                processes: int = 1) -> Iterator[R]:
    """Yield make_worker()(job) for each job, in order: on Ray when ray.address is set, else in `processes`
    local processes (spawned), or in this process for processes=1. `make_worker` must be picklable (a class or
    a functools.partial), and so must the jobs and results."""
    jobs = list(jobs)
    if not jobs:
        return (result for result in ())
    if ray is not None and ray.enabled:
        return _map_on_ray(make_worker, jobs, ray)
    if processes <= 1:
        return _map_here(make_worker, jobs)
    return _map_in_pool(make_worker, jobs, min(processes, len(jobs)))


def _map_here(make_worker: Callable[[], Worker], jobs: list) -> Iterator:
    worker = make_worker()
    try:
        for job in jobs:
            yield worker(job)
    finally:
        _close(worker)


# -- local processes -----------------------------------------------------------------------------------


_local_worker: list[Worker] = []


def _start_local_worker(make_worker: Callable[[], Worker]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    _local_worker.append(make_worker())


def _run_local(job: Any) -> Any:
    return _local_worker[0](job)


def _map_in_pool(make_worker: Callable[[], Worker], jobs: list, processes: int) -> Iterator:
    # spawn, not fork: EGL contexts and torch threads do not survive a fork cleanly.
    pool = mp.get_context("spawn").Pool(processes, initializer=_start_local_worker, initargs=(make_worker,))
    try:
        yield from pool.imap(_run_local, jobs)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


# -- Ray ---------------------------------------------------------------------------------------------------


def import_ray() -> Any:
    """The ray module, or an error that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise ImportError("ray.address is set but Ray is not installed; install the extra with "
                          "pip install 'wow_gym[ray]' (or set ray.address=null to run in local processes)") from None
    return ray


def connect(config: RayConfig) -> Any:
    """Join (or for address=local start) the Ray cluster once per process; the ray module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    env_vars = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    runtime_env = {"env_vars": env_vars} if env_vars else None
    if config.address == "local":
        ray.init(num_cpus=config.num_cpus, include_dashboard=False, runtime_env=runtime_env,
                 log_to_driver=False)
    else:
        ray.init(address=config.address, runtime_env=runtime_env, log_to_driver=False)
    return ray


class _ActorWorker:
    """A Ray actor holding one worker (and its simulator) for a whole map."""

    def __init__(self, make_worker: Callable[[], Worker]) -> None:
        self.worker = make_worker()

    def run(self, job: Any) -> Any:
        return self.worker(job)


def _map_on_ray(make_worker: Callable[[], Worker], jobs: list, config: RayConfig) -> Iterator:
    """Start the actors and queue every job now, round robin: an actor runs its queue back to back, so it
    never waits for the caller to collect a result before its next job (ray.util.ActorPool hands an actor its
    next job only when the caller takes that actor's result in order, and a caller that works on each result,
    as evaluate does with the imagined side, left the actors idle meanwhile). A restarted actor runs its
    queued jobs again (max_task_retries)."""
    ray = connect(config)
    count = config.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // config.cpus_per_worker))
    actor = ray.remote(_ActorWorker).options(num_cpus=config.cpus_per_worker, max_restarts=config.max_retries,
                                             max_task_retries=config.max_retries)
    actors = [actor.remote(make_worker) for _ in range(min(count, len(jobs)))]
    futures = [actors[i % len(actors)].run.remote(job) for i, job in enumerate(jobs)]
    return _RayResults(ray, futures, actors)


class _RayResults:
    """The map's results in job order; closing it (or running out) kills the actors, also before the first
    result was taken (a generator's finally would not run then)."""

    def __init__(self, ray: Any, futures: list, actors: list) -> None:
        self.ray, self.futures, self.actors, self.taken = ray, futures, actors, 0  # actors: [] once closed

    def __iter__(self) -> _RayResults:
        return self

    def __next__(self) -> Any:
        if self.taken == len(self.futures) or not self.actors:
            self.close()
            raise StopIteration
        try:
            result = self.ray.get(self.futures[self.taken])
        except BaseException:
            self.close()
            raise
        self.taken += 1
        return result

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []


def _close(worker: Any) -> None:
    close = getattr(worker, "close", None)
    if callable(close):
        close()

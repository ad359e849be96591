"""wow-gym collect: run a policy (expert, random, walk) in a sim task and write a LeRobot v3.0 dataset.

Progress bar, both cores, one atomic write per episode; rerunning the same command resumes, and Ctrl-C
loses nothing but the episodes in flight.
"""

from __future__ import annotations

from wow_gym.envs.collection import CollectConfig, collect
from wow_gym.experiments.config_loading import load_config, to_dataclass


def main(argv: list[str]) -> int:
    cfg = load_config("collect", argv, __doc__)
    if cfg is None:
        return 0
    result = collect(to_dataclass(CollectConfig, cfg))
    print(f"{result.written} episodes written ({result.successes} successful), {result.skipped} already there, "
          f"in {result.seconds:.0f} s -> {result.root}")
    return 130 if result.interrupted else 0

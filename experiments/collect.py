"""wow-gym collect: run a policy in a sim task and write a LeRobot v3.0 dataset: the scripted expert (with
noise), random, a random walk, or a trained policy (policy=shipped, or policy=sb3 policy_path=<zip>) with
noise.action_std, for data of what that policy does (DAgger-style) and imagined starts from its states.

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
    from wow_gym.policies.collection import policy_factory  # the policies layer loads trained policies

    try:
        config = to_dataclass(CollectConfig, cfg)
        factory = policy_factory(config)
    except ValueError as error:
        raise SystemExit(f"wow-gym collect: {error}") from None
    result = collect(config, policy_factory=factory)
    print(f"{result.written} episodes written ({result.successes} successful), {result.skipped} already there, "
          f"in {result.seconds:.0f} s -> {result.root}")
    return 130 if result.interrupted else 0

"""wow-gym train-policy: a stable-baselines3 policy (PPO or SAC) on pixels + agent_pos, in imagination
(WoW/<Task>-Imagined-v0, the default) or in the simulator (WoW/<Task>-v0).

A behaviour-cloning warm start from datasets (bc.datasets; expert, noisy-expert or imagined_verified
episodes), then RL, with the deterministic policy evaluated every eval.every_steps in the sim twin from fixed
held-out start states, so the imagined and the simulated success curves are drawn together (TensorBoard in
<out>/tensorboard, curves.png). Checkpoints in <out>/checkpoints; rerun the same command to resume.
`max_minutes` caps the RL phase's wall-clock time (for equal-time comparisons); `randomize=true` trains
the sim under domain randomization.

examples:
  wow-gym train-policy                                             # BC, then PPO in imagination
  wow-gym train-policy env=WoW/Lift-v0 out=outputs/policies/lift-sim max_minutes=10
  wow-gym train-policy total_timesteps=0 out=outputs/policies/lift-bc   # BC only
"""

from __future__ import annotations

import sys

from wow_gym.experiments.config_loading import run_trainer, to_dataclass


def _trainer(cfg):
    from wow_gym.policies.training import PolicyTrainer, TrainPolicyConfig

    try:
        return PolicyTrainer(to_dataclass(TrainPolicyConfig, cfg))
    except ValueError as error:
        raise SystemExit(f"wow-gym train-policy: {error}") from None


def main(argv: list[str]) -> int:
    done = run_trainer("train_policy", argv, __doc__, _trainer)
    if done is not None:
        summary = done[1]
        rate = summary["final_sim_success_rate"]
        print(f"{summary['algo']} on {summary['env']}: {summary['timesteps']} RL steps in "
              f"{summary['rl_seconds']:.0f} s; sim-twin success {rate:.0%}" if rate is not None else "")
        print(f"policy: {summary['final']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""wow-gym wowbench: a WoWBench-style benchmark that ranks world models against the simulator.

Every backend (copy-last; the shipped DiT at 1 / 2 / 4 sampling steps; the DiT under shuffled actions, a
deliberately degraded model; the released WoW models converted by `wow-gym convert-wow`; a user's own
`module:Class`) runs from the same held-out simulator start states. Scored against MuJoCo, with a 95 %
bootstrap interval over episodes on every figure:
  prediction    PSNR / SSIM / perceptual distance at h = 1/4/8/16, a Fréchet video distance (stand-in)
  trajectory    end-effector and object DTW and Fréchet distances, mm
  physical law  object permanence, no interpenetration, no motion before contact, gravity after release;
                the critic's plausibility
  planning      instruction-only plans decoded by FM-IDM and replayed in MuJoCo: success; the critic's
                instruction-following score
under the training scenes and under randomize=unseen. Writes leaderboard.md, results.json, report.html,
PSNR plots and TensorBoard scalars into `out`. See policies/wowbench.py for how each figure is computed.
"""

from __future__ import annotations

from wow_gym.experiments.config_loading import start_run, to_dataclass


def main(argv: list[str]) -> int:
    started = start_run("wowbench", argv, __doc__, "wowbench")
    if started is None:
        return 0
    from wow_gym.backends import BackendError
    from wow_gym.policies.wowbench import WowBenchConfig, markdown_lines, run_bench, write_report
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.checkpoint import shipped_checkpoint
    from wow_gym.world_models.critic.model import LearnedCritic
    from wow_gym.world_models.idm.model import InverseDynamics

    values, out = started
    try:
        config = to_dataclass(WowBenchConfig, values)
        idm = InverseDynamics.load(shipped_checkpoint(config.task, "idm"))
        critic = LearnedCritic.load(task=config.task)
        results = run_bench(config, idm, critic)
    except (BackendError, CheckpointError, ValueError) as error:
        raise SystemExit(f"wow-gym wowbench: {error}") from None
    path = write_report(results, out)
    print("\n" + "\n".join(markdown_lines(results)))
    print(f"\n{results.seconds:.0f} s; leaderboard: {path}")
    return 0

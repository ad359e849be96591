"""wow-gym eval-critic: SOPHIA's critic against the simulator, on held-out data.

Success detection on held-out sim rollouts (accuracy, F1, false-positive rate) and on imagined rollouts
(against the simulator's verdict on the paired replay); Spearman correlation of critic progress with the
shaped reward; plausibility AUC on corrupted clips, with the corruption kinds left out of training shown
apart; what the critique names on failed episodes against what the simulator says; and refinement:
physics-verified success (FM-IDM replay in MuJoCo) of plans with and without the refiner from the same
start states. Writes report.md, results.json, a plot, GIFs and TensorBoard scalars into `out`.
"""

from __future__ import annotations

from wow_gym.data import DatasetError
from wow_gym.experiments.config_loading import start_run, to_dataclass


def main(argv: list[str]) -> int:
    started = start_run("eval_critic", argv, __doc__, "eval-critic")
    if started is None:
        return 0
    from wow_gym.envs.robosuite_env import RobosuiteEnv
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.critic.evaluation import EvalCriticConfig, evaluate_critic
    from wow_gym.world_models.critic.report import (
        acceptance_lines,
        write_critic_report,
        write_critic_tensorboard,
    )
    from wow_gym.world_models.video.evaluation import EvaluationError

    values, out = started
    try:
        results = evaluate_critic(to_dataclass(EvalCriticConfig, values), RobosuiteEnv)
    except (CheckpointError, DatasetError, EvaluationError, ValueError) as error:
        raise SystemExit(f"wow-gym eval-critic: {error}") from None
    report = write_critic_report(results, values, out)
    write_critic_tensorboard(results, out / "tensorboard")
    print("\n" + "\n".join(acceptance_lines(results)))
    print(f"\n{results.seconds:.0f} s; report: {report}")
    return 0

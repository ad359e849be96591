"""wow-gym eval-idm: FM-IDM against the simulator.

Normalised action RMSE of every ablation variant on held-out frames; task success when replaying the
actions FM-IDM decodes from ground-truth video against replaying the recorded actions (the oracle); and
the physics check of imagined video: the world model imagines from held-out start states (under the
recorded actions, and as instruction-conditioned plans), FM-IDM decodes the video, MuJoCo replays it.
Writes report.md, results.json, plots, GIFs and TensorBoard scalars into `out`, and the imagined rollouts that agree with
physics as a LeRobot dataset (source=imagined_verified) in <out>/imagined_verified.
"""

from __future__ import annotations

from wow_gym.data import DatasetError
from wow_gym.experiments.config_loading import start_run, to_dataclass


def main(argv: list[str]) -> int:
    started = start_run("eval_idm", argv, __doc__, "eval-idm")
    if started is None:
        return 0
    from wow_gym.envs.robosuite_env import RobosuiteEnv
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.idm.evaluation import EvalIDMConfig, evaluate_idm
    from wow_gym.world_models.idm.report import acceptance_lines, write_idm_report, write_idm_tensorboard
    from wow_gym.world_models.video.evaluation import EvaluationError

    values, out = started
    try:
        results = evaluate_idm(to_dataclass(EvalIDMConfig, values), out, RobosuiteEnv)
    except (CheckpointError, DatasetError, EvaluationError, ValueError) as error:
        raise SystemExit(f"wow-gym eval-idm: {error}") from None
    report = write_idm_report(results, values, out)
    write_idm_tensorboard(results, out / "tensorboard")
    print("\n" + "\n".join(acceptance_lines(results)))
    print(f"\n{results.seconds:.0f} s; report: {report}")
    return 0

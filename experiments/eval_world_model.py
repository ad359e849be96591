"""wow-gym eval-world-model: open-loop fidelity of a world model against the simulator, with baselines.

From held-out episodes (seeds never used in training), imagine 1..16 steps from the recorded context under
the recorded actions and compare with the simulator: PSNR, SSIM, end-effector and object position error,
beside copy-last-frame and the same model fed time-shuffled actions, per policy source and overall. Also
instruction-conditioned plans vs the expert, and PSNR and time per sampling-step count. Writes report.md,
results.json, plots, GIFs, TensorBoard scalars, the resolved config and the git commit into `out`.
"""

from __future__ import annotations

from wow_gym.data import DatasetError
from wow_gym.experiments.config_loading import start_run, to_dataclass


def main(argv: list[str]) -> int:
    started = start_run("eval_world_model", argv, __doc__, "eval-world-model")
    if started is None:
        return 0
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.video.evaluation import (
        EvaluationError,
        EvalWorldModelConfig,
        evaluate_world_model,
    )
    from wow_gym.world_models.video.report import acceptance_lines, write_report, write_tensorboard

    values, out = started
    try:
        results = evaluate_world_model(to_dataclass(EvalWorldModelConfig, values))
    except (CheckpointError, DatasetError, EvaluationError) as error:
        raise SystemExit(f"wow-gym eval-world-model: {error}") from None
    report = write_report(results, out)
    write_tensorboard(results, out / "tensorboard")
    print("\n" + "\n".join(acceptance_lines(results.acceptance)))
    print(f"\n{results.open_loop.starts['all']} open-loop starts, {results.seconds:.0f} s; report: {report}")
    return 0

"""wow-gym eval-world-model: open-loop fidelity of a world model against the simulator, with baselines.

From held-out episodes (seeds never used in training), imagine 1..16 steps from the recorded context under
the recorded actions and compare with the simulator: PSNR, SSIM, end-effector and object position error,
beside copy-last-frame and the same model fed time-shuffled actions, per policy source and overall. Also
instruction-conditioned plans vs the expert, and PSNR and time per sampling-step count. Writes report.md,
results.json, plots, GIFs, TensorBoard scalars, the resolved config and the git commit into `out`.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from wow_gym.data import DatasetError
from wow_gym.experiments.config_loading import load_config, run_dir, to_dataclass
from wow_gym.provenance import write_run_metadata


def main(argv: list[str]) -> int:
    cfg = load_config("eval_world_model", argv, __doc__)
    if cfg is None:
        return 0
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.evaluation import EvalWorldModelConfig, EvaluationError, evaluate_world_model
    from wow_gym.world_models.report import acceptance_lines, write_report, write_tensorboard

    values = OmegaConf.to_container(cfg, resolve=True)
    out = Path(values.pop("out") or run_dir("eval-world-model"))
    config = to_dataclass(EvalWorldModelConfig, values)
    out.mkdir(parents=True, exist_ok=True)
    write_run_metadata(out, {**values, "out": str(out)})
    try:
        results = evaluate_world_model(config)
    except (CheckpointError, DatasetError, EvaluationError) as error:
        raise SystemExit(f"wow-gym eval-world-model: {error}") from None
    report = write_report(results, out)
    write_tensorboard(results, out / "tensorboard")
    print("\n" + "\n".join(acceptance_lines(results.acceptance)))
    print(f"\n{results.open_loop.starts['all']} open-loop starts, {results.seconds:.0f} s; report: {report}")
    return 0

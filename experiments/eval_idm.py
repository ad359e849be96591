"""wow-gym eval-idm: FM-IDM against the simulator.

Normalised action RMSE of every ablation variant on held-out frames; task success when replaying the
actions FM-IDM decodes from ground-truth video against replaying the recorded actions (the oracle); and
the physics check of imagined video: the world model imagines from held-out start states (under the
recorded actions, and as instruction-conditioned plans), FM-IDM decodes the video, MuJoCo replays it.
Writes report.md, results.json, plots, GIFs and TensorBoard scalars into `out`, and the imagined rollouts that agree with
physics as a LeRobot dataset (source=imagined_verified) in <out>/imagined_verified.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from wow_gym.data import DatasetError
from wow_gym.experiments.config_loading import load_config, run_dir, to_dataclass
from wow_gym.provenance import write_run_metadata


def main(argv: list[str]) -> int:
    cfg = load_config("eval_idm", argv, __doc__)
    if cfg is None:
        return 0
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.evaluation import EvaluationError
    from wow_gym.world_models.idm_evaluation import EvalIDMConfig, evaluate_idm
    from wow_gym.world_models.idm_report import acceptance_lines, write_idm_report, write_idm_tensorboard

    values = OmegaConf.to_container(cfg, resolve=True)
    out = Path(values.pop("out") or run_dir("eval-idm"))
    config = to_dataclass(EvalIDMConfig, values)
    out.mkdir(parents=True, exist_ok=True)
    write_run_metadata(out, {**values, "out": str(out)})
    try:
        results = evaluate_idm(config, out)
    except (CheckpointError, DatasetError, EvaluationError, ValueError) as error:
        raise SystemExit(f"wow-gym eval-idm: {error}") from None
    report = write_idm_report(results, values, out)
    write_idm_tensorboard(results, out / "tensorboard")
    print("\n" + "\n".join(acceptance_lines(results)))
    print(f"\n{results.seconds:.0f} s; report: {report}")
    return 0

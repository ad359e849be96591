"""wow-gym evaluate: policies in the imagined env and in its simulator twin, from the same start states.

Each policy (random, zero, an SB3 zip, every checkpoint of a training run; optionally with action noise)
runs n_episodes episodes in each world; episode i starts from the simulator layout of seed + i, and the
imagined env from exactly that simulator state. Per policy: imagined and sim success rates and returns,
the critic's return on the simulator's frames, exploitability and per-episode agreement; across policies:
Pearson, Spearman and MMRV of imagined vs sim. Writes report.md, results.json, agreement.png,
returns.png, a sim | imagined GIF per policy and TensorBoard scalars into `out`.
"""

from __future__ import annotations

from wow_gym.experiments.config_loading import start_run, to_dataclass


def main(argv: list[str]) -> int:
    started = start_run("evaluate", argv, __doc__, "evaluate")
    if started is None:
        return 0
    from wow_gym.policies.evaluation import EvaluateConfig, evaluate
    from wow_gym.policies.evaluation_report import (
        correlation_lines,
        summary_lines,
        write_report,
        write_tensorboard,
    )
    from wow_gym.world_models import CheckpointError

    values, out = started
    try:
        results = evaluate(to_dataclass(EvaluateConfig, values))
    except (CheckpointError, ValueError) as error:
        raise SystemExit(f"wow-gym evaluate: {error}") from None
    report = write_report(results, out)
    write_tensorboard(results, out / "tensorboard")
    print("\n" + "\n".join(summary_lines(results) + [""] + correlation_lines(results)))
    print(f"\n{results.seconds:.0f} s; report: {report}")
    return 0

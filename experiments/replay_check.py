"""wow-gym replay-check: a policy acts in the imagined env from simulator start states; the actions it chose are
replayed open loop in the simulator from the same states. Reports how often the imagination's successes are
physics' (imagined successes physics rejects: what RL in imagination exploits), and the imagined gripper,
finger gap and object against the replay's at each step. Writes report.md, results.json and errors.png into
`out`.
"""

from __future__ import annotations

import json
import sys

from wow_gym.experiments.config_loading import start_run, to_dataclass


def main(argv: list[str]) -> int:
    started = start_run("replay_check", argv, __doc__, "replay-check")
    if started is None:
        return 0
    from wow_gym.policies.replay_check import ReplayCheckConfig, error_plot, replay_check, report_lines
    from wow_gym.provenance import atomic_write_text
    from wow_gym.world_models import CheckpointError
    from wow_gym.world_models.plots import save_png

    values, out = started
    try:
        result = replay_check(to_dataclass(ReplayCheckConfig, values))
    except (CheckpointError, ValueError) as error:
        raise SystemExit(f"wow-gym replay-check: {error}") from None
    lines = report_lines(result)
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n\n![errors](errors.png)\n")
    atomic_write_text(out / "results.json", json.dumps(result.to_json(), indent=2) + "\n")
    save_png(error_plot(result), out / "errors.png")
    print("\n".join(lines[2:]))
    print(f"\n{result.seconds:.0f} s; report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

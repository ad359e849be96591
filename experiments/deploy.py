"""wow-gym deploy: run an exported policy on an arm at its control rate, through the safety shield.

Loads <policy>/policy.onnx + policy.json (wow-gym export-policy), checks the spec against the robot's
limits, and runs `episodes` episodes on `arm`: sim (the robosuite twin of the policy's task) or a real arm
(xarm, franka, ur; their SDKs are the extras wow_gym[xarm|franka|ur]). shadow=true computes and logs every
action and sends none: the first run on a new arm. Prints the success rate, stop reasons and deadline
misses; writes steps.jsonl (a line per step), results.json, the resolved config and the git commit into
`out`.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from typing import Any

from wow_gym.experiments.config_loading import start_run, to_dataclass


def main(argv: list[str]) -> int:
    started = start_run("deploy", argv, __doc__, "deploy")
    if started is None:
        return 0
    values, out = started
    if values["policy"] is None:
        raise SystemExit("wow-gym deploy: pass policy=<folder with policy.onnx and policy.json> "
                         "(wow-gym export-policy writes one)")
    from wow_gym.data.atomic import atomic_write_json
    from wow_gym.policies.arms import ArmError, make_arm
    from wow_gym.policies.runner import ExportedPolicy, Runner, RunnerConfig, summarize
    from wow_gym.policies.shield import ShieldConfig
    from wow_gym.policies.spec import RobotConfig

    runner_keys = [f.name for f in dataclasses.fields(RunnerConfig)]
    try:
        robot = to_dataclass(RobotConfig, values["robot"])
        policy = ExportedPolicy(values["policy"])
        camera = _load_camera(values["camera"]) if values["camera"] else None
        arm = make_arm(values["arm"], robot, env_id=policy.spec["env_id"], ip=values["ip"], camera=camera)
        runner = Runner(policy, arm, robot, RunnerConfig(**{k: values[k] for k in runner_keys}),
                        to_dataclass(ShieldConfig, values["shield"]), log_path=out / "steps.jsonl")
        results = runner.run()
    except (ArmError, ImportError, ValueError) as error:  # SpecError, ObservationError are ValueErrors
        raise SystemExit(f"wow-gym deploy: {error}") from None
    summary = summarize(results)
    atomic_write_json(out / "results.json", summary)
    mode = "shadow (nothing sent)" if values["shadow"] else "live"
    for r in results:
        print(f"episode {r.episode} (seed {r.seed}): {r.reason.value} after {r.steps} steps, {r.sent} sent, "
              f"{r.deadline_misses} deadline misses, success={r.success}")
    print(f"\n{values['arm']} arm, {mode}: success rate {summary['success_rate']:.0%} over {len(results)} "
          f"episodes")
    print("stop reasons: " + ", ".join(f"{k}={v}" for k, v in summary["stop_reasons"].items()))
    print(f"deadline misses: {summary['deadline_misses']} of {summary['steps']} steps "
          f"({robot.control_freq} Hz)")
    print(f"log: {out / 'steps.jsonl'}; results: {out / 'results.json'}")
    return 0


def _load_camera(path: str) -> Callable[[], Any]:
    """camera=module:function -> function(), the callable that returns the newest HxWx3 uint8 frame."""
    module, _, name = path.partition(":")
    if not name:
        raise ValueError(f"camera must be module:function (a factory returning the frame callable), got "
                         f"{path!r}")
    return getattr(importlib.import_module(module), name)()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""wow-gym deploy: run an exported policy on an arm at its control rate, through the safety shield.

Loads <policy>/policy.onnx + policy.json (wow-gym export-policy), checks the spec against the robot's
limits, and runs `episodes` episodes on `arm`: sim (the robosuite twin of the policy's task) or a real arm
(xarm, franka, ur; their SDKs are the extras wow_gym[xarm|franka|ur]). shadow=true computes and logs every
action and sends none: the first run on a new arm. Prints the success rate, stop reasons and deadline
misses; writes steps.jsonl (a line per step), results.json, the resolved config and the git commit into
`out`. On the sim arm, live, with `compare_in_process=true`, the SB3 policy the export came from also runs
in-process (SB3's predict, no ONNX, no shield, no control loop) from the same seeds, and the two success
rates and their per-episode agreement are printed and stored under results.json's "in_process".
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
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
    if values["arm"] == "sim" and not values["shadow"] and values["compare_in_process"]:
        summary["in_process"] = _in_process(policy.spec, values, results)
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
    if "in_process" in summary:
        check = summary["in_process"]
        print(f"in-process SB3 policy from the same seeds: success rate {check['success_rate']:.0%}; "
              f"runner and in-process agree on {check['agreement']:.0%} of episodes")
    print(f"log: {out / 'steps.jsonl'}; results: {out / 'results.json'}")
    return 0


def _in_process(spec: dict[str, Any], values: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """The exported policy's source checkpoint run in-process in the simulator, from the runner's seeds."""
    from wow_gym.policies.export import load_sb3
    from wow_gym.policies.sim_eval import SimEvalConfig, run_sim_episodes, sb3_actor

    checkpoint = spec.get("source_checkpoint")
    if not checkpoint or not Path(checkpoint).exists():
        raise SystemExit(f"wow-gym deploy: compare_in_process needs the SB3 zip the policy was exported from; "
                         f"policy.json names {checkpoint!r}, which is not a file (set compare_in_process=false)")
    config = SimEvalConfig(episodes=values["episodes"], seed=values["seed"], max_steps=values["max_steps"],
                           terminate_on_success=values["stop_on_success"])
    episodes = run_sim_episodes(sb3_actor(load_sb3(checkpoint)), spec["task"], config)
    agree = [e.success == r.success for e, r in zip(episodes, results)]
    return {"checkpoint": checkpoint, "success_rate": float(sum(e.success for e in episodes) / len(episodes)),
            "success": [e.success for e in episodes], "agreement": float(sum(agree) / len(agree))}


def _load_camera(path: str) -> Callable[[], Any]:
    """camera=module:function -> function(), the callable that returns the newest HxWx3 uint8 frame."""
    module, _, name = path.partition(":")
    if not name:
        raise ValueError(f"camera must be module:function (a factory returning the frame callable), got "
                         f"{path!r}")
    return getattr(importlib.import_module(module), name)()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

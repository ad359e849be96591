"""The `wow-gym` command: one subcommand per pipeline stage, each configured by a Hydra config."""

from __future__ import annotations

import importlib
import sys

from wow_gym.console import set_verbose

# name -> (module under wow_gym.experiments, one-line help). Modules are imported only when run, so
# `wow-gym --help` is instant and the core package never imports Hydra.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("collect", "collect episodes (expert, random, random walk) into a LeRobot v3.0 dataset"),
    "eval-experts": ("eval_experts", "success rate of the scripted experts over many seeds"),
    "bench": ("bench", ("benchmarks: `bench sim` (env steps/s), `bench data` (dataset I/O, loader), "
                        "`bench imagine` (imagined vs sim steps/s)")),
    "train-world-model": ("train_world_model", "train the video world model (autoencoder, pose dynamics, heads, DiT)"),
    "eval-world-model": ("eval_world_model", "a world model vs the simulator, open loop, with baselines"),
    "train-idm": ("train_idm", "train FM-IDM (video -> actions) and its ablation variants"),
    "eval-idm": ("eval_idm", "FM-IDM: action error per variant, replay success in MuJoCo, physics check"),
    "train-critic": ("train_critic", "train SOPHIA's critic (video + instruction -> scores, success, critique)"),
    "eval-critic": ("eval_critic", "the critic's calibration against the simulator on held-out data"),
    "train-policy": ("train_policy", "BC warm start + PPO/SAC in imagination or in the simulator, watched in the sim twin"),
    "compare-runs": ("compare_runs", "train-policy runs side by side: sim-twin success against minutes of RL, one plot"),
    "ship-policy": ("ship_policy", "an SB3 zip from train-policy as the task's shipped policy (safetensors + JSON)"),
    "export-policy": ("export_policy", "an SB3 policy to ONNX + policy.json, parity-checked in the simulator"),
    "evaluate": ("evaluate", "policies in the imagined env and its sim twin from the same starts: success, returns, ranking"),
    "agreement": ("agreement", "paired agreement pooled over tasks: evaluate runs, one scatter coloured by task"),
    "wowbench": ("wowbench", "rank world-model backends against MuJoCo: prediction, trajectory, physical law, planning"),
    "convert-wow": ("convert_wow", "the released WoW weights (DiT-2B .pt, Wan-14B + WoW_video_dit.pt) into diffusers folders"),
    "replay-check": ("replay_check", "a policy's imagined actions replayed in the simulator: false successes, drift"),
    "deploy": ("deploy", "run an exported policy on an arm (sim, xarm, franka, ur) through the safety shield"),
    "demo": ("demo", "the main job on the shipped defaults (what `make demo` runs)"),
}

VERBOSE_FLAGS = ("-v", "--verbose")

USAGE = """usage: wow-gym [-v] <command> [key=value ...] [--help]

Train robot policies in a learned video world model, checked against its MuJoCo twin.
Each command takes Hydra overrides (key=value); `wow-gym <command> --help` shows its config.
-v (or WOW_GYM_VERBOSE=1) also shows third-party warnings (robosuite) and model-loading bars.

commands:
{commands}

examples:
  wow-gym collect task=lift episodes=200 policy=expert noise.action_std=0.1
  wow-gym bench sim
  wow-gym demo
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch `wow-gym <command> ...` to its entry script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in VERBOSE_FLAGS for a in argv):
        set_verbose()
        argv = [a for a in argv if a not in VERBOSE_FLAGS]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"wow-gym: unknown command {name!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(f"wow_gym.experiments.{SUBCOMMANDS[name][0]}")
    return int(module.main(rest) or 0)


def _usage() -> str:
    width = max(len(n) for n in SUBCOMMANDS)
    lines = [f"  {n:<{width}}  {help_}" for n, (_, help_) in SUBCOMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

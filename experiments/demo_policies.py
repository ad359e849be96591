"""wow-gym demo, step 3: the shipped policy fine-tuned in imagination, judged in the sim twin before and
after; both policies' paired rollouts in the imagined env and the sim twin from the same start states;
imagined vs simulated steps/s; ONNX export of the fine-tuned policy with its parity check, and a shadow run
of the deployment runner on the simulated arm. `experiments/demo.py` runs the demo and calls
`policy_sections`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import OmegaConf

from wow_gym.html_report import Code, Picture, Report, Table, Text, Video, difference

if TYPE_CHECKING:  # demo.py imports this module; the types only annotate
    from wow_gym.experiments.demo import Clock, Shipped


def policy_sections(report: Report, shipped: Shipped, env: Any, cfg: Any, out: Path, clock: Clock,
                    headline: list[tuple[str, str]]) -> None:
    """Fine-tune the shipped policy in imagination, pair both policies' rollouts, export and shadow-deploy."""
    from gymnasium.wrappers import FilterObservation

    from wow_gym.policies.export import load_sb3
    from wow_gym.policies.shipped import load_policy
    from wow_gym.policies.spec import POLICY_KEYS

    model = load_policy(shipped.policy, shipped.task, env=FilterObservation(env, list(POLICY_KEYS)))
    start = out / "policy" / "shipped.zip"  # train-policy's init takes an SB3 zip
    start.parent.mkdir(parents=True, exist_ok=True)
    model.save(start)
    with clock("fine-tuning the policy in imagination (PPO), judged in the sim twin"):
        summary = _fine_tune_section(report, shipped, start, cfg, out, headline)
    tuned = load_sb3(summary["final"])
    with clock("paired rollouts in the imagined env and the sim twin; throughput"):
        policies = {"shipped": (model, shipped.policy), "fine-tuned": (tuned, summary["final"])}
        _paired_sections(report, shipped, policies, cfg, out, headline, summary)
    with clock("ONNX export and a shadow run of the deployment runner"):
        _deploy_section(report, shipped, tuned, summary["final"], env, cfg, out, headline)


def _fine_tune_section(report: Report, shipped: Shipped, start: Path, cfg: Any, out: Path,
                       headline: list[tuple[str, str]]) -> dict[str, Any]:
    """PPO from the shipped policy in WoW/<Task>-Imagined-v0, the sim twin before and after; the summary."""
    from wow_gym.policies.sim_eval import SimEvalConfig
    from wow_gym.policies.training import PolicyTrainer, PPOConfig, TrainPolicyConfig
    from wow_gym.registry import task_info
    from wow_gym.world_models.plots import fmt, line_plot

    f = cfg.fine_tune
    config = TrainPolicyConfig(
        env=task_info(shipped.task).imagined_env_id, out=str(out / "fine-tune"), n_envs=f.n_envs,
        total_timesteps=f.total_timesteps, max_minutes=f.max_minutes, init=str(start),
        eval=SimEvalConfig(every_steps=0, episodes=f.eval_episodes, seed=f.eval_seed,
                           max_steps=f.eval_max_steps),
        ppo=PPOConfig(**OmegaConf.to_container(f.ppo, resolve=True)), value_warmup_steps=f.value_warmup_steps,
        checkpoint_every=max(f.total_timesteps, 1), seed=cfg.seed, progress=cfg.progress)
    summary = PolicyTrainer(config).run(world_model=shipped.wm)
    curves = summary["curves"]
    rows = [[str(c["timesteps"]), _pct(c["sim_success_rate"]), fmt(c["sim_return"]),
             _pct(c.get("imagined_success_rate")), fmt(c.get("imagined_return")),
             str(c.get("imagined_episodes", "-"))]
            for c in curves]
    plots = []
    for key, what in (("success_rate", "success rate"), ("return", "return")):
        series = {"sim twin (the simulator)": ([c["timesteps"] for c in curves],
                                               [c[f"sim_{key}"] for c in curves])}
        imagined = [c for c in curves if f"imagined_{key}" in c]
        if imagined:
            series["imagined (the critic)"] = ([c["timesteps"] for c in imagined],
                                               [c[f"imagined_{key}"] for c in imagined])
        plots.append(Picture(line_plot(series, f"{what} while fine-tuning", "PPO steps in imagination", what),
                             f"{what}: the simulator's verdict beside the critic's", f"fine_tune_{key}.png"))
    headline.append((f"sim-twin success, {f.eval_episodes} episodes: shipped → fine-tuned",
                     f"{_pct(curves[0]['sim_success_rate'])} → {_pct(curves[-1]['sim_success_rate'])}"))
    report.add(f"Fine-tuning in imagination ({shipped.task})",
               Text(f"PPO from the shipped policy on {f.n_envs} imagined envs in one world-model batch "
                    f"(SOPHIA's critic is the reward; the first {f.value_warmup_steps} steps train only the "
                    f"value function), {summary['timesteps']} steps in "
                    f"{summary['rl_seconds']:.0f} s (budget {f.total_timesteps} steps or {f.max_minutes} "
                    f"min). Before and after, the deterministic policy runs {f.eval_episodes} held-out "
                    f"episodes (seeds {f.eval_seed}..) of {f.eval_max_steps} steps in the simulator. "
                    f"`{out.name}/fine-tune/` holds the run, as `wow-gym train-policy` writes it."),
               Table(["PPO steps", "sim success", "sim return", "imagined success (critic)",
                      "imagined return", "imagined episodes"], rows),
               *plots)
    return summary


def _paired_sections(report: Report, shipped: Shipped, policies: dict[str, tuple[Any, Any]], cfg: Any,
                     out: Path, headline: list[tuple[str, str]], fine_tune: dict[str, Any]) -> None:
    """Each policy in both worlds from the same start states (policies/evaluation.py), then steps/s."""
    from tqdm import tqdm

    from wow_gym.data.atomic import atomic_write_json
    from wow_gym.envs.imagined_env import imagined_spaces
    from wow_gym.policies.evaluation import (
        EvaluateConfig,
        PairedEnvs,
        PolicyEntry,
        SB3Policy,
        check_policy_spaces,
        evaluate_policy,
    )
    from wow_gym.world_models.plots import to_json
    from wow_gym.world_models.video.benchmark import time_vector_env

    p = cfg.paired
    entries = [PolicyEntry(name, "shipped" if name == "shipped" else "sb3", str(path))
               for name, (_, path) in policies.items()]
    config = EvaluateConfig(shipped.task, entries, n_episodes=p.episodes, max_steps=p.max_steps, seed=p.seed,
                            progress=cfg.progress)
    space, _ = imagined_spaces(shipped.wm)
    for name, (model, _) in policies.items():
        check_policy_spaces(name, model.observation_space, model.action_space, space)
    envs = PairedEnvs(config, shipped.wm, shipped.critic)
    try:
        total = 2 * len(entries) * len(envs.waves) * p.max_steps
        with tqdm(total=total, disable=not cfg.progress, unit="step") as bar:
            results = [evaluate_policy(entry, SB3Policy(model), envs, p.max_steps, bar)
                       for entry, (model, _) in zip(entries, policies.values())]
        sampling = shipped.wm.config.sampling_steps
        rates = {world: time_vector_env(env, sampling, p.throughput_steps, 1, cfg.seed).steps_per_second
                 for world, env in (("imagined", envs.imagined), ("sim", envs.sim))}
    finally:
        envs.close()
    atomic_write_json(out / "paired.json", to_json(results))
    _paired_blocks(report, shipped, results, p, headline)
    _throughput_section(report, shipped.task, rates, p.episodes, fine_tune, headline)


def _paired_blocks(report: Report, shipped: Shipped, results: list, p: Any,
                   headline: list[tuple[str, str]]) -> None:
    from wow_gym.policies.evaluation_report import scatter_plot
    from wow_gym.world_models.plots import fmt

    rows = [[r.name, _pct(r.imagined_success_rate), _pct(r.sim_success_rate), fmt(r.imagined_return),
             fmt(r.sim_critic_return), fmt(r.sim_return), fmt(r.exploitability), _pct(r.agreement)]
            for r in results]
    pictures = []
    for key, what, bounds in (("success_rate", "success rate", (0.0, 1.0)), ("return", "return", None)):
        points = {r.name: (getattr(r, f"sim_{key}"), getattr(r, f"imagined_{key}")) for r in results}
        plot = scatter_plot(points, f"{what}: imagined vs sim (grey: y = x)", f"sim {what}",
                            f"imagined {what}", bounds)
        pictures.append(Picture(plot, f"{what} per policy, imagined against simulated", f"paired_{key}.png"))
    videos = [Video([("sim", r.frames["sim"]), ("imagined", r.frames["imagined"]),
                     ("difference", difference(r.frames["sim"], r.frames["imagined"]))],
                    f"{r.name}, episode 0 (seed {p.seed}): sim | imagined | difference",
                    f"paired_{r.name}.gif", fps=10) for r in results]
    agreement = " / ".join(f"{r.name} {_pct(r.agreement)}" for r in results)
    headline.append(("imagined vs sim success agreement", agreement))
    report.add(f"Policies in imagination and in the sim twin ({shipped.task})",
               Text(f"Each policy runs {p.episodes} episodes of {p.max_steps} steps in each world; episode i "
                    f"starts from the simulator layout of seed {p.seed} + i and the imagined env from "
                    "exactly that simulator state. Imagined success and return are the critic's on imagined "
                    "frames; sim critic return is the same critic on the simulator's frames; exploitability "
                    "= imagined - sim critic return; agreement = the share of start states where both worlds "
                    "call the same outcome."),
               Table(["policy", "imagined success", "sim success", "imagined return", "sim critic return",
                      "sim return (shaped)", "exploitability", "agreement"], rows), *pictures, *videos)


def _throughput_section(report: Report, task: str, rates: dict[str, float], n: int, fine_tune: dict[str, Any],
                        headline: list[tuple[str, str]]) -> None:
    ratio = rates["imagined"] / rates["sim"]
    training = fine_tune["timesteps"] / max(fine_tune["rl_seconds"], 1e-9)
    headline.append(("imagined / simulated steps/s",
                     f"{ratio:.1f}× ({rates['imagined']:.0f} vs {rates['sim']:.0f})"))
    rows = [[f"imagined (world model, batch {n})", f"{rates['imagined']:.1f}"],
            [f"sim twin ({n} MuJoCo envs, one process)", f"{rates['sim']:.1f}"],
            ["imagined / sim", f"{ratio:.1f}×"],
            ["PPO fine-tune in imagination, updates included", f"{training:.1f}"]]
    report.add(f"Throughput, measured in this run ({task})",
               Text(f"Random actions through the two worlds the paired rollouts used, {n} envs each, both "
                    "with the critic's reward: the imagined env steps its envs as one world-model batch, the "
                    "sim twin steps its MuJoCo envs (64 px camera) in turn in this process."),
               Table(["world", "env steps/s"], rows))


def _deploy_section(report: Report, shipped: Shipped, model: Any, checkpoint: str, env: Any, cfg: Any,
                    out: Path, headline: list[tuple[str, str]]) -> None:
    """Export the fine-tuned policy to ONNX, check parity, run it in shadow mode on the simulated arm."""
    from collections import Counter

    from wow_gym.policies.arms import SimArm
    from wow_gym.policies.export import check_parity, export_policy
    from wow_gym.policies.runner import ExportedPolicy, Runner, RunnerConfig, read_log, summarize
    from wow_gym.policies.spec import RobotConfig
    from wow_gym.registry import task_info

    d, folder = cfg.deploy, out / "export"
    onnx_path = export_policy(model, folder, task=shipped.task, checkpoint=checkpoint)
    observations = [env.reset(seed=d.seed)[0]]
    rng = np.random.default_rng(d.seed)
    observations += [env.step(rng.uniform(-1, 1, 7).astype(np.float32))[0]
                     for _ in range(d.parity_observations - 1)]
    parity = check_parity(model, onnx_path, observations)
    arm = SimArm(task_info(shipped.task).env_id, env=env)
    run = RunnerConfig(episodes=d.episodes, max_steps=d.max_steps, seed=d.seed, shadow=True)
    runner = Runner(ExportedPolicy(folder), arm, RobotConfig(), run, log_path=folder / "steps.jsonl")
    summary = summarize(runner.run())
    steps = [r for r in read_log(folder / "steps.jsonl") if r["event"] == "step"]
    inference = np.array([r["inference_ms"] for r in steps if "inference_ms" in r] or [np.nan])
    interventions = Counter(k for r in steps for k in r.get("interventions", []))
    headline += [("ONNX parity, max |onnx - sb3|", f"{parity:.1e}"),
                 ("shadow run: deadline misses", f"{summary['deadline_misses']} / {summary['steps']} steps")]
    reasons = ", ".join(f"{k} {v}" for k, v in summary["stop_reasons"].items())
    rows = [["ONNX parity: max |onnx - SB3| over simulator observations",
             f"{parity:.2e} ({len(observations)} observations)"],
            ["ONNX file", f"{onnx_path.stat().st_size / 1e6:.2f} MB"],
            ["episodes: stop reasons", f"{summary['episodes']}: {reasons}"],
            ["control steps, actions sent", f"{summary['steps']}, {summary['sent']} (shadow: none sent)"],
            [f"deadline misses at {RobotConfig().control_freq} Hz", str(summary["deadline_misses"])],
            ["inference ms, mean / max", f"{np.nanmean(inference):.2f} / {np.nanmax(inference):.2f}"],
            ["shield interventions", ", ".join(f"{k} {v}" for k, v in interventions.items()) or "none"]]
    report.add(f"Export and a shadow run on the simulated arm ({shipped.task})",
               Text("`export_policy` writes the fine-tuned policy's deterministic actor as "
                    f"`{out.name}/export/policy.onnx` with its spec `policy.json` beside it; onnxruntime "
                    "must reproduce SB3's predict. The deployment runner then drives the simulated arm at "
                    "the control rate through the safety shield in shadow mode: every action is computed, "
                    "shielded and logged "
                    f"(`{out.name}/export/steps.jsonl`), none is sent."),
               Table(["check", "result"], rows),
               Code((folder / "policy.json").read_text(), summary="policy.json"))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"

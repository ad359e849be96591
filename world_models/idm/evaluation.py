"""FM-IDM evaluation: action error per ablation variant, replay success in MuJoCo, and the physics check of
imagined video.

1. Normalised per-dimension action RMSE (RMSE / std of the true held-out action) of every variant on
   held-out ground-truth frames.
2. Replay from ground truth: each held-out episode's actions decoded from its own video, replayed in the
   simulator from the episode's first state; task success against replaying the recorded actions (the
   oracle). With a pose head, FM-IDM also tracks the video (`fm-idm-tracked`): the same decoded actions,
   each corrected toward the end-effector position the pose head reads off the video's frame, the arm
   holding still while a grasp closes (wow_gym/physics_check.py, `track_gain`, `wait_for_grasp`).
3. Imagined video: the world model imagines from each held-out start, (a) under the recorded actions and
   (b) as an instruction-conditioned plan; FM-IDM decodes the video, MuJoCo replays it (the physics check),
   and the success of those replays is counted; with a pose head, also tracked (modes `actions-tracked`,
   `plan-tracked`). Rollouts whose open-loop replay agrees with physics are written to a dataset with
   source=imagined_verified.

The MuJoCo replays of (2) and (3) run on Ray actors when `ray.address` is set (FM-IDM and the world model
stay in this process); every replay starts from its own recorded state, so the figures are the serial run's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from wow_gym.data import DatasetWriter
from wow_gym.physics_check import PhysicsCheck, VerifyThresholds, physics_checks, replay_all, verified_rollout
from wow_gym.registry import CONTROL_FREQ, task_info
from wow_gym.rollout import Rollout
from wow_gym.scale import RayConfig
from wow_gym.simulator import SimFactory
from wow_gym.world_models.checkpoint import shipped_checkpoint
from wow_gym.world_models.idm.config import VARIANTS
from wow_gym.world_models.idm.model import InverseDynamics
from wow_gym.world_models.video.evaluation import load_heldout
from wow_gym.world_models.video.imagination import Start, imagine, load_world_model, plan, rollouts
from wow_gym.world_models.video.model import WorldModel, checkpoint_options


@dataclass
class EvalIDMConfig:
    """See experiments/conf/eval_idm.yaml for the meaning of each key."""

    task: str = "lift"
    checkpoint: str | None = None
    variants_dir: str | None = None
    world_model: str | None = None
    # its imagination switches (WorldModel.set_options; None keeps the checkpoint's); the arm layer on: FM-IDM
    # reads the robot's arm where the imagined pose state has it (chosen on a tuning split)
    world_model_options: dict[str, Any] = field(
        default_factory=lambda: checkpoint_options() | {"arm_layer": True})
    datasets: list[str] = field(default_factory=list)
    headline_sources: list[str] = field(default_factory=lambda: ["expert", "noisy"])
    replay_datasets: list[str] = field(default_factory=list)
    imagine_dataset: str | None = None
    imagine_episodes: int = 12
    imagine_horizon: int = 60
    plans: bool = True
    track_gain: float = 1.0  # fm-idm-tracked's proportional gain (0: open-loop replay only)
    wait_for_grasp: bool = True  # fm-idm-tracked holds the arm still while the fingers close
    sampling_steps: int | None = None
    thresholds: VerifyThresholds = field(default_factory=VerifyThresholds)
    write_verified: bool = True
    max_episodes: int | None = None
    image_size: int = 64
    seed: int = 0
    progress: bool = True
    ray: RayConfig = field(default_factory=RayConfig)  # address set: the MuJoCo replays run on Ray actors

    def __post_init__(self) -> None:
        if isinstance(self.thresholds, dict):
            self.thresholds = VerifyThresholds(**self.thresholds)
        if isinstance(self.ray, dict):
            self.ray = RayConfig(**self.ray)
        if self.track_gain < 0:
            raise ValueError(f"track_gain must be >= 0 (0: no tracked replay), got {self.track_gain}")


@dataclass
class ImaginedCase:
    """One imagined rollout from a held-out start and its physics check."""

    mode: str  # "actions" (the recorded actions) or "plan" (instruction only); "-tracked": replayed tracking
    episode: int
    rollout: Rollout = field(repr=False, metadata={"json": False})
    check: PhysicsCheck = field(repr=False, metadata={"json": False})
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class IDMResults:
    variants: dict[str, str]  # variant -> checkpoint directory
    action_nrmse: dict[str, list[float]]  # variant -> per-dimension normalised RMSE over the headline sources
    action_nrmse_mean: dict[str, float]
    action_nrmse_by_source: dict[str, dict[str, list[float]]]  # source -> variant -> per-dimension
    replay: dict[str, dict[str, float]]  # source -> {"oracle": rate, variant: rate, "episodes": n}
    imagined: dict[str, dict[str, float]]  # mode -> mean figures over cases
    cases: list[ImaginedCase] = field(default_factory=list, metadata={"json": False})
    verified_written: int = 0
    verified_root: str = ""
    seconds: float = 0.0
    task: str = ""  # the task's name, as the reports write it


def load_variants(config: EvalIDMConfig, device: str = "cpu") -> dict[str, tuple[InverseDynamics, Path]]:
    """FM-IDM (the checkpoint or the shipped default) and every other variant found under variants_dir."""
    main = Path(config.checkpoint) if config.checkpoint else shipped_checkpoint(config.task, "idm")
    models = {}
    if config.variants_dir:
        for variant in VARIANTS:
            path = Path(config.variants_dir) / variant
            if (path / "config.json").is_file() and variant != "fm-idm":
                models[variant] = (InverseDynamics.load(path, device), path)
    models["fm-idm"] = (InverseDynamics.load(main, device), main)
    return models


def action_nrmse(decoded: list[np.ndarray], episodes: list[Rollout]) -> np.ndarray:
    """Per-dimension RMSE of decoded vs recorded actions over all steps, over each dimension's std."""
    true = np.concatenate([e.action for e in episodes])
    pred = np.concatenate(decoded)
    return np.sqrt(((pred - true) ** 2).mean(0)) / np.maximum(true.std(0), 1e-3)


def replay_successes(make_env: Callable[[], Any], jobs: list[tuple[np.ndarray, ...]],
                     ray: RayConfig | None = None, desc: str = "replay", progress: bool = False,
                     gain: float = 1.0, wait_for_grasp: bool = True) -> list[bool]:
    """Whether replaying each (sim_state, actions) or (sim_state, actions, track) job solves the task (in envs
    made by `make_env`, on Ray when ray.address is set; tracked jobs with `gain` and `wait_for_grasp`)."""
    replays = replay_all(make_env, jobs, ray, render=False, gain=gain, wait_for_grasp=wait_for_grasp)
    return [r.success for r in tqdm(replays, total=len(jobs), desc=desc, disable=not progress)]


def imagine_cases(wm: WorldModel, episodes: list[Rollout], mode: str, horizon: int,
                  generator: torch.Generator, sampling_steps: int | None = None) -> list[Rollout]:
    """Imagined rollouts from each episode's first frame: under its recorded actions, or as a plan."""
    start = Start.from_episodes(episodes, [0] * len(episodes), 1, wm.config.instruction)
    horizon = min(horizon, min(e.num_steps for e in episodes))
    if mode == "plan":
        return rollouts(start, plan(wm, start, horizon, generator, sampling_steps))
    actions = np.stack([e.action[:horizon] for e in episodes])
    imagined = imagine(wm, start, actions, None, generator, sampling_steps, batch_size=max(len(episodes), 1))
    return rollouts(start, imagined, actions)


def _mean_figures(cases: list[ImaginedCase]) -> dict[str, float]:
    """Mean of each figure over the cases that have it (NaN where none has: e.g. the pose of a plan)."""
    keys = sorted({k for c in cases for k in c.figures})
    means = {}
    for key in keys:
        values = np.array([c.figures.get(key, np.nan) for c in cases], dtype=float)
        means[key] = float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else float("nan")
    return means | {"cases": len(cases)}


def evaluate_idm(config: EvalIDMConfig, out: Path, make_sim: SimFactory) -> IDMResults:
    """Everything in the module docstring, for one task; `make_sim` makes the sim twin that replays."""
    begin = time.perf_counter()
    models = load_variants(config)
    fm = models["fm-idm"][0]
    # Each dataset is read once and each episode decoded once per variant, for the error and the replay.
    loaded = {root: load_heldout([root], config.image_size, config.max_episodes)
              for root in dict.fromkeys([*config.datasets, *config.replay_datasets])}
    decoded = {id(e): {name: model.predict(e.pixels) for name, (model, _) in models.items()}
               for group in tqdm(list(loaded.values()), desc="decode held-out video", disable=not config.progress)
               for eps in group.values() for e in eps}

    def grouped(roots: list[str]) -> dict[str, list[Rollout]]:
        out: dict[str, list[Rollout]] = {}
        for root in roots:
            for source, eps in loaded[root].items():
                out.setdefault(source, []).extend(eps)
        return out

    def error(name: str, eps: list[Rollout]) -> list[float]:
        return action_nrmse([decoded[id(e)][name] for e in eps], eps).tolist()

    heldout = grouped(config.datasets)
    headline = [e for source in config.headline_sources for e in heldout.get(source, [])]
    if not headline:
        raise ValueError(f"no held-out dataset of the headline sources {config.headline_sources} among "
                         f"{sorted(heldout)}; add one to datasets or change headline_sources")
    nrmse = {name: error(name, headline) for name in models}
    by_source = {source: {name: error(name, eps) for name in models} for source, eps in heldout.items()}

    blind_sim = partial(make_sim, config.task, image_size=config.image_size, use_camera=False)
    replay_groups = grouped(config.replay_datasets)
    tracked = fm.pose_head is not None and config.track_gain > 0
    names = ["oracle", *models, *(["fm-idm-tracked"] if tracked else [])]

    def job(e: Rollout, name: str) -> tuple[np.ndarray, ...]:
        if name == "oracle":
            return e.sim_state[0], e.action
        if name == "fm-idm-tracked":
            return e.sim_state[0], decoded[id(e)]["fm-idm"], fm.eef_positions(e.pixels)
        return e.sim_state[0], decoded[id(e)][name]

    jobs = {(source, name): [job(e, name) for e in eps]
            for source, eps in replay_groups.items() for name in names}
    # one map over every (source, variant): each worker builds its simulator once
    solved = iter(replay_successes(blind_sim, [j for group in jobs.values() for j in group], config.ray,
                                   desc="replay held-out actions", progress=config.progress,
                                   gain=config.track_gain, wait_for_grasp=config.wait_for_grasp))
    replays = {source: {"episodes": float(len(eps))} for source, eps in replay_groups.items()}
    for (source, name), group in jobs.items():
        replays[source][name] = float(np.mean([next(solved) for _ in group]))
    cases: list[ImaginedCase] = []
    verified: list[Rollout] = []
    if config.imagine_dataset and config.imagine_episodes > 0:
        wm = load_world_model(config.task, config.world_model, device="auto",
                              options=config.world_model_options)
        fm.check_compatible(wm.config.image_size, source="the world model's frames")
        starts = load_heldout([config.imagine_dataset], wm.config.image_size, config.imagine_episodes)
        start_eps = [e for eps in starts.values() for e in eps]
        camera_sim = partial(make_sim, config.task, image_size=wm.config.image_size)
        generator = torch.Generator().manual_seed(config.seed)
        for mode in tqdm(("actions", "plan") if config.plans else ("actions",), desc="physics check",
                         disable=not config.progress):
            rollouts = imagine_cases(wm, start_eps, mode, config.imagine_horizon, generator, config.sampling_steps)
            states = [e.sim_state[0] for e in start_eps]
            checked = [(mode, rollouts, physics_checks(rollouts, states, fm, camera_sim, config.thresholds,
                                                         config.ray))]
            if tracked:  # the same videos and decoded actions, tracked; copies keep the two checks apart
                copies = [dataclasses.replace(r) for r in rollouts]
                checked.append((f"{mode}-tracked", copies, physics_checks(
                    copies, states, fm, camera_sim, config.thresholds, config.ray, gain=config.track_gain,
                    actions=[r.idm_action for r in rollouts], wait_for_grasp=config.wait_for_grasp)))
            for name, group, checks in checked:
                for i, (rollout, check) in enumerate(zip(group, checks)):
                    cases.append(ImaginedCase(name, i, rollout, check, check.summary()))
                    if check.verified and name == mode:  # the open-loop checks, as without a pose head
                        verified.append(verified_rollout(rollout, check))
    root = out / "imagined_verified"
    if verified and config.write_verified:
        writer = DatasetWriter(root, fps=CONTROL_FREQ, camera=task_info(config.task).camera)
        for rollout in verified:
            writer.write(rollout)
    imagined = {mode: _mean_figures([c for c in cases if c.mode == mode]) for mode in sorted({c.mode for c in cases})}
    return IDMResults({k: str(p) for k, (_, p) in models.items()}, nrmse,
                      {k: float(np.mean(v)) for k, v in nrmse.items()}, by_source, replays, imagined, cases,
                      len(verified) if config.write_verified else 0, str(root), time.perf_counter() - begin,
                      task_info(config.task).name)

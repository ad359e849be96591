"""Resumable training in named stages, shared by the world model and FM-IDM trainers.

Every stage saves its training state (weights, optimiser, LR schedule, EMA, step, RNG) atomically every
`checkpoint_every` steps into <out>/stages/<stage>.pt and marks itself done at the end, so a run started
again with the same `out` picks up at the last checkpoint. One loop for all: AdamW, linear warm-up then
cosine decay to a tenth, gradient clipping, a tqdm bar, TensorBoard scalars under <out>/tensorboard.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.devices import resolve_device


@dataclass
class StageConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3


@dataclass
class RunSettings:
    """The keys every staged trainer's config shares."""

    checkpoint_every: int = 250  # steps between resumable checkpoints
    log_every: int = 25  # steps between TensorBoard points
    device: str = "auto"  # auto: a GPU when one is present, else the CPU
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    seed: int = 0
    progress: bool = True


LossFn = Callable[[int, torch.Generator], tuple[torch.Tensor, dict[str, float]]]


class StagedTrainer:
    """Base of the trainers: `stages` names the stages in order (each seeds its own generator)."""

    stages: tuple[str, ...] = ()

    def __init__(self, out: str | Path, settings: RunSettings) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.out = Path(out)
        self.stage_dir = self.out / "stages"
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        self.seed, self.progress = settings.seed, settings.progress
        self.log_every, self.checkpoint_every = settings.log_every, settings.checkpoint_every
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.device = torch.device(resolve_device(settings.device))
        self.tb = SummaryWriter(str(self.out / "tensorboard"))

    def extra_state(self) -> dict[str, Any]:
        """What else every stage file records (e.g. data statistics)."""
        return {}

    def weight_decay(self, stage: str) -> float:
        return 0.0

    def _state_path(self, stage: str) -> Path:
        return self.stage_dir / f"{stage}.pt"

    def _save_stage(self, stage: str, step: int, modules: dict[str, Any], done: bool, g: torch.Generator) -> None:
        buffer = io.BytesIO()
        torch.save({"step": step, "done": done, "rng": g.get_state(), **self.extra_state(),
                    **{k: v.state_dict() for k, v in modules.items()}}, buffer)
        atomic_write_bytes(self._state_path(stage), buffer.getvalue())

    def _load_stage(self, stage: str) -> dict[str, Any] | None:
        path = self._state_path(stage)
        return torch.load(path, map_location=self.device, weights_only=False) if path.is_file() else None

    def _loop(self, stage: str, modules: dict[str, Any], params: list[torch.nn.Parameter], cfg: StageConfig,
              loss_fn: LossFn, ema: AveragedModel | None = None) -> None:
        """Optimise `params` for cfg.steps steps of loss_fn(batch_size, generator), resuming if saved."""
        g = torch.Generator().manual_seed(self.seed + self.stages.index(stage))
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=self.weight_decay(stage))
        warmup = min(200, cfg.steps // 10 + 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))))
        bundle = {**modules, "optimizer": optimizer, "schedule": schedule}
        if ema is not None:
            bundle["ema"] = ema
        saved = self._load_stage(stage)
        start = 0
        if saved is not None:
            for key, obj in bundle.items():
                obj.load_state_dict(saved[key])
            g.set_state(saved["rng"])
            start = saved["step"]
            if saved["done"]:
                return
        bar = tqdm(total=cfg.steps, initial=start, desc=f"train {stage}", disable=not self.progress)
        for module in modules.values():
            module.train()
        t0, running = time.time(), {}
        for step in range(start, cfg.steps):
            loss, logs = loss_fn(cfg.batch_size, g)
            if not math.isfinite(loss.item()):  # before the step: a NaN step would ruin the weights
                raise FloatingPointError(f"{stage} loss became {loss.item()} at step {step}; lower the "
                                         "learning rate or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update_parameters(modules["model"])
            for k, v in logs.items():
                running[k] = running.get(k, 0.0) + v
            if (step + 1) % self.log_every == 0:
                for k, v in running.items():
                    self.tb.add_scalar(f"{stage}/{k}", v / self.log_every, step + 1)
                self.tb.add_scalar(f"{stage}/lr", schedule.get_last_lr()[0], step + 1)
                self.tb.add_scalar(f"{stage}/steps_per_s", (step + 1 - start) / (time.time() - t0), step + 1)
                bar.set_postfix({k: f"{v / self.log_every:.4g}" for k, v in running.items()})
                running = {}
            bar.update()
            if (step + 1) % self.checkpoint_every == 0 and step + 1 < cfg.steps:
                self._save_stage(stage, step + 1, bundle, False, g)
        bar.close()
        for module in modules.values():
            module.eval()
        self._save_stage(stage, cfg.steps, bundle, True, g)

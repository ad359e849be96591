"""Resumable training in named stages, shared by the world model, FM-IDM and critic trainers.

Every stage saves its training state (weights, optimiser, LR schedule, EMA, step, RNG) atomically every
`checkpoint_every` steps into <out>/stages/<stage>.pt and marks itself done at the end, so a run started
again with the same `out` picks up at the last checkpoint. One loop for all: AdamW, linear warm-up then
cosine decay to a tenth, gradient clipping, a tqdm bar, TensorBoard scalars under <out>/tensorboard.

Under `torchrun --nproc_per_node=N` (wow_gym/distributed.py) every process draws the same global batch of
`batch_size` rows and a stage's loss_fn computes on `self.shard`'s rows of it; gradients are averaged before
each step. Rank 0 alone writes checkpoints, TensorBoard and the progress bar; every rank resumes from them.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from wow_gym import distributed
from wow_gym.data.atomic import atomic_write_bytes


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


# loss_fn(global batch size, generator): draws the whole global batch (so every process draws the same
# rows and the generator stays in step), computes on self.shard's rows; (loss, floats to log).
LossFn = Callable[[int, torch.Generator], tuple[torch.Tensor, dict[str, float]]]
_LOSS = "\0loss"  # the loss itself among the logs averaged over the processes


class _NoWriter:
    """TensorBoard's writer on the ranks that do not write."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


class StagedTrainer:
    """Base of the trainers: `stages` names the stages in order (each seeds its own generator)."""

    stages: tuple[str, ...] = ()

    def __init__(self, out: str | Path, settings: RunSettings) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.out = Path(out)
        self.stage_dir = self.out / "stages"
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        self.seed = settings.seed
        self.log_every, self.checkpoint_every = settings.log_every, settings.checkpoint_every
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.shard, self.device = distributed.start(settings.device)
        self.progress = settings.progress and self.shard.is_main
        self.tb = SummaryWriter(str(self.out / "tensorboard")) if self.shard.is_main else _NoWriter()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. to fill a cache), then the other ranks (which find it filled)."""
        if not self.shard.is_main:
            distributed.barrier()
        yield
        if self.shard.is_main:
            distributed.barrier()

    def close(self) -> None:
        """End of run: close TensorBoard, wait for every rank (rank 0 has written the outputs), leave the group."""
        self.tb.close()
        distributed.stop()

    def extra_state(self) -> dict[str, Any]:
        """What else every stage file records (e.g. data statistics)."""
        return {}

    def weight_decay(self, stage: str) -> float:
        return 0.0

    def _state_path(self, stage: str) -> Path:
        return self.stage_dir / f"{stage}.pt"

    def _save_stage(self, stage: str, step: int, modules: dict[str, Any], done: bool, g: torch.Generator) -> None:
        if not self.shard.is_main:
            return
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
        self.shard.check_batch(cfg.batch_size, f"stage {stage}")
        g = torch.Generator().manual_seed(self.seed + self.stages.index(stage))
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=self.weight_decay(stage))
        warmup = min(200, cfg.steps // 10 + 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))))
        bundle = {**modules, "optimizer": optimizer, "schedule": schedule}
        if ema is not None:
            bundle["ema"] = ema
        start = self._restore(stage, bundle, g)
        if start is None:
            return
        bar = tqdm(total=cfg.steps, initial=start, desc=f"train {stage}", disable=not self.progress)
        for module in modules.values():
            module.train()
        t0, running = time.time(), {}
        for step in range(start, cfg.steps):
            loss, logs = loss_fn(cfg.batch_size, g)
            logs = self._checked_logs(stage, step, loss, logs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(params)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update_parameters(modules["model"])
            for k, v in logs.items():
                running[k] = running.get(k, 0.0) + v
            if (step + 1) % self.log_every == 0:
                self._log(stage, step + 1, running, schedule.get_last_lr()[0], (step + 1 - start) / (time.time() - t0))
                bar.set_postfix({k: f"{v / self.log_every:.4g}" for k, v in running.items()})
                running = {}
            bar.update()
            if (step + 1) % self.checkpoint_every == 0 and step + 1 < cfg.steps:
                self._save_stage(stage, step + 1, bundle, False, g)
        bar.close()
        for module in modules.values():
            module.eval()
        self._save_stage(stage, cfg.steps, bundle, True, g)

    def _restore(self, stage: str, bundle: dict[str, Any], g: torch.Generator) -> int | None:
        """Load the stage's saved state into bundle and g on every rank: the step to start at, None when the
        stage is done. Every rank then holds rank 0's weights (the same seed built them; this makes sure)."""
        saved = self._load_stage(stage)
        if saved is not None:
            for key, obj in bundle.items():
                obj.load_state_dict(saved[key])
            g.set_state(saved["rng"])
            if saved["done"]:
                return None
        modules = [m for m in bundle.values() if isinstance(m, torch.nn.Module)]
        distributed.broadcast_parameters([t for m in modules for t in (*m.parameters(), *m.buffers())])
        return saved["step"] if saved is not None else 0

    def _checked_logs(self, stage: str, step: int, loss: torch.Tensor, logs: dict[str, float]) -> dict[str, float]:
        """The step's logs averaged over the ranks; raises (on every rank) if the loss is not finite."""
        logs = distributed.mean_over_processes({**logs, _LOSS: loss.item()}, self.device)
        value = logs.pop(_LOSS)
        if not math.isfinite(value):  # before the step: a NaN step would ruin the weights
            raise FloatingPointError(f"{stage} loss became {value} at step {step}; lower the "
                                     "learning rate or check the data")
        return logs

    def _log(self, stage: str, step: int, running: dict[str, float], lr: float, steps_per_s: float) -> None:
        """TensorBoard points of the last log_every steps (rank 0; the others' writer does nothing)."""
        for k, v in running.items():
            self.tb.add_scalar(f"{stage}/{k}", v / self.log_every, step)
        self.tb.add_scalar(f"{stage}/lr", lr, step)
        self.tb.add_scalar(f"{stage}/steps_per_s", steps_per_s, step)

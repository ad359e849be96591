"""Training SOPHIA's default critic: clips -> one resumable stage -> <out>/checkpoint.

Each batch mixes real clips of the training episodes (labels from the simulator), corrupted clips
(rendered once into <out>/clips/), and world-model clips of the same episodes imagined under their
recorded actions (cached in <out>/clips/ too). Instructions are sampled per clip: the episode's own, a
refined paraphrase, or one of another task (then the clip does not follow it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wow_gym.data.flat import read_episodes
from wow_gym.registry import TASKS, task_info
from wow_gym.rollout import Rollout
from wow_gym.simulator import SimFactory
from wow_gym.sophia import Critique, TemplateRefiner
from wow_gym.world_models.critic.config import CriticConfig
from wow_gym.world_models.critic.data import (
    CORRUPTIONS,
    Clip,
    cached_bank,
    clip_index,
    corrupted_bank,
    frame_labels,
    imagine_episodes,
    load_imagined,
    save_imagined,
    smoothness,
)
from wow_gym.world_models.critic.model import KINDS, CriticNet, LearnedCritic
from wow_gym.world_models.staged import RunSettings, StageConfig, StagedTrainer
from wow_gym.world_models.text import embed_instructions
from wow_gym.world_models.video.imagination import load_world_model


@dataclass
class CriticDataset:
    root: str = ""
    instruction: str | None = None  # overrides the episodes' own (exploration data does not do the task)


@dataclass
class TrainCriticConfig(RunSettings):
    """See experiments/conf/train_critic.yaml for the meaning of each key."""

    task: str = "lift"
    datasets: list[CriticDataset] = field(default_factory=list)
    out: str = "outputs/critic/lift"
    image_size: int = 64
    clip_frames: int = 8
    width: int = 128
    layers: int = 2
    train_kinds: list[str] = field(default_factory=lambda: ["teleport", "vanish", "levitate", "frozen_arm",
                                                            "reverse"])
    per_kind: int = 250  # corrupted training clips of each kind
    world_model: str | None = None  # for world-model clips; null: the shipped model; "none": no such clips
    sampling_steps: int | None = None
    agree_object_mm: float = 25.0  # an imagined window agrees with physics: object within this of the sim's
    agree_psnr_db: float = 18.0  # ... and its frames at least this close (mean PSNR)
    mix: list[float] = field(default_factory=lambda: [0.5, 0.3, 0.2])  # real, corrupted, imagined clips
    negative_instructions: float = 0.25  # share of real clips paired with another task's instruction
    train: StageConfig = field(default_factory=lambda: StageConfig(3000, 32, 1e-3))

    def __post_init__(self) -> None:
        task_info(self.task)
        self.datasets = [CriticDataset(**d) if isinstance(d, dict) else d for d in self.datasets]
        if not self.datasets:
            raise ValueError("datasets is empty; give at least one LeRobot dataset root to train on")
        unknown = [k for k in self.train_kinds if k not in CORRUPTIONS]
        if unknown:
            raise ValueError(f"train_kinds {unknown} are not corruptions; expected a subset of {CORRUPTIONS}")
        if len(self.mix) != 3 or min(self.mix) < 0 or sum(self.mix) <= 0:
            raise ValueError(f"mix must be three non-negative shares (real, corrupted, imagined), got {self.mix}")
        if isinstance(self.train, dict):
            self.train = StageConfig(**self.train)


def positive_instructions(task: str) -> list[str]:
    """The task's instruction and what the default refiner may turn it into (still the same task)."""
    info = task_info(task)
    refiner, base = TemplateRefiner(), info.instruction
    empty = {"task_completion": 0.0, "physical_plausibility": 1.0, "kinematic_smoothness": 1.0,
             "instruction_following": 1.0}
    variants = {refiner.refine(base, Critique(empty, False, 0.0, 0.0, "", failure), info.name)
                for failure in ["", *info.failure_hints]}
    return [base, *sorted(variants), *info.steps]


def negative_instructions(task: str) -> list[str]:
    """Instructions a clip of the task does not follow: the other tasks' and the task's distractors."""
    info = task_info(task)
    return [t.instruction for t in TASKS.values() if t.name != info.name] + list(info.distractors)


class CriticTrainer(StagedTrainer):
    stages = ("critic",)

    def __init__(self, config: TrainCriticConfig, make_sim: SimFactory) -> None:
        super().__init__(config.out, config)
        self.config, self.make_sim = config, make_sim
        info = task_info(config.task)
        self.critic_config = CriticConfig(task=info.name, image_size=config.image_size,
                                          clip_frames=config.clip_frames, width=config.width, layers=config.layers)
        torch.manual_seed(config.seed)
        self.net = CriticNet(self.critic_config).to(self.device)
        self.episodes, self.follows_task, self.own_text = self._read(config)
        self.labels = [frame_labels(e) for e in self.episodes]
        self.positives = positive_instructions(info.name)
        self.negatives = negative_instructions(info.name)
        texts = sorted({*self.positives, *self.negatives, *self.own_text})
        self.text_index = {t: i for i, t in enumerate(texts)}
        self.text_table = torch.from_numpy(embed_instructions(texts)).to(self.device)
        with self.main_first():  # rank 0 renders the corrupted clips and imagines the episodes into caches
            self.bank = self._corrupted()
            self.imagined = self._imagined()

    def _read(self, config: TrainCriticConfig) -> tuple[list[Rollout], np.ndarray, list[str]]:
        """The training episodes, whether each follows the task's instruction, and its own instruction."""
        read = [(spec, ep) for spec in config.datasets for _, _, ep in
                read_episodes([spec.root], "critic", config.image_size, progress=self.progress)]
        follows = np.array([spec.instruction is None for spec, _ in read])
        own = [spec.instruction or ep.instruction or task_info(config.task).instruction for spec, ep in read]
        return [ep for _, ep in read], follows, own

    def _corrupted(self) -> list[Clip]:
        cfg = self.config
        kinds = [k for k in CORRUPTIONS if k in cfg.train_kinds]  # the others stay held out for evaluation
        name = f"corrupted-{len(self.episodes)}-{cfg.per_kind}-{cfg.clip_frames}-{cfg.seed}-{'+'.join(kinds)}.npz"

        def make() -> list[Clip]:
            env = self.make_sim(task_info(cfg.task).name, image_size=cfg.image_size)
            try:
                return corrupted_bank(env, self.episodes, kinds, cfg.per_kind, cfg.clip_frames, cfg.seed,
                                      self.progress)
            finally:
                env.close()

        return cached_bank(self.out / "clips" / name, make)

    def _imagined(self):
        cfg = self.config
        if cfg.world_model == "none" or cfg.mix[2] == 0:
            return None
        path = self.out / "clips" / f"imagined-v2-{len(self.episodes)}-{cfg.seed}.npz"  # v2: with the probed object
        if path.is_file():
            return load_imagined(path)
        wm = load_world_model(cfg.task, cfg.world_model, image_size=cfg.image_size, device=self.device)
        imagined = imagine_episodes(wm, self.episodes, cfg.sampling_steps, cfg.seed, progress=self.progress)
        save_imagined(path, imagined)
        return imagined

    def extra_state(self) -> dict:
        return {"critic_config": self.critic_config.to_dict()}

    def run(self) -> dict[str, Path]:
        self._loop("critic", {"model": self.net}, list(self.net.parameters()), self.config.train, self._loss)
        path = self.out / "checkpoint"
        if self.shard.is_main:
            path = LearnedCritic(self.critic_config, self.net.cpu()).save(path, {
                "train_kinds": list(self.config.train_kinds), "held_out_kinds": [
                    k for k in CORRUPTIONS if k not in self.config.train_kinds],
                "datasets": [d.root for d in self.config.datasets]})
        self.close()
        return {"checkpoint": path}

    # -- batches -------------------------------------------------------------------------------------------

    def _counts(self, batch: int) -> list[int]:
        mix = np.array(self.config.mix, dtype=float)
        if self.imagined is None:
            mix[2] = 0
        if not self.bank:
            mix[1] = 0
        counts = np.floor(batch * mix / mix.sum()).astype(int)
        counts[0] += batch - counts.sum()
        return counts.tolist()

    def _rows(self, batch: int, g: torch.Generator) -> list[dict]:
        """The global batch's clips and labels: real, corrupted, then imagined (every process draws them all)."""
        rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=g)))
        n_real, n_bad, n_imag = self._counts(batch)
        return [self._real(rng) for _ in range(n_real)] + [self._bad(rng) for _ in range(n_bad)] + [
            self._imagined_clip(rng) for _ in range(n_imag)]

    def _loss(self, batch: int, g: torch.Generator):
        rows = self._rows(batch, g)
        mine = self.shard.take(rows)  # this process runs the network on its rows; masks count the global batch
        frames = torch.from_numpy(np.stack([r["frames"] for r in mine])).to(self.device)
        text = self.text_table[torch.tensor([self.text_index[r["text"]] for r in mine], device=self.device)]
        out = self.net(frames, text)

        def stack(name: str, dtype=torch.float32, among: list[dict] = mine) -> torch.Tensor:
            return torch.from_numpy(np.stack([r[name] for r in among])).to(self.device, dtype)

        fm = stack("frame_mask", among=rows).clamp_min(0)  # [B,K] per-frame labels valid
        mean = self.shard.masked_mean
        success = mean(F.binary_cross_entropy_with_logits(out["success"], stack("success"), reduction="none"), fm)
        progress = mean(F.smooth_l1_loss(out["progress"], stack("progress"), reduction="none", beta=0.1), fm)
        stage = mean(F.cross_entropy(out["stage"].flatten(0, 1), stack("stage", torch.long).flatten(),
                                     reduction="none").view(len(mine), -1), fm)
        offset = mean(F.smooth_l1_loss(out["offset"], stack("offset"), reduction="none", beta=0.1).mean(-1), fm)
        opening = mean(F.smooth_l1_loss(out["opening"], stack("opening"), reduction="none", beta=0.1), fm)
        plausible = F.binary_cross_entropy_with_logits(out["plausible"], stack("plausible"))
        kind = F.cross_entropy(out["kind"], stack("kind", torch.long))
        smooth = F.binary_cross_entropy_with_logits(out["smooth"], stack("smooth"))
        follows = mean(F.binary_cross_entropy_with_logits(out["follows"], stack("follows"), reduction="none"),
                       stack("follow_mask", among=rows))
        loss = (success + 2 * progress + 0.5 * stage + 0.5 * offset + 0.5 * opening + plausible + 0.5 * kind
                + 0.5 * smooth + 0.5 * follows)
        with torch.no_grad():
            acc = mean(((out["success"] > 0) == (stack("success") > 0.5)).float(), fm)
            pacc = ((out["plausible"] > 0) == (stack("plausible") > 0.5)).float().mean()
        return loss, {"loss": loss.item(), "success_acc": acc.item(), "plausible_acc": pacc.item(),
                      "progress": progress.item(), "follows": follows.item()}

    def _instruction(self, episode: int, rng: np.random.Generator) -> tuple[str, float]:
        """An instruction for a real clip and whether the clip follows it."""
        u = rng.random()
        if u < self.config.negative_instructions:
            return self.negatives[rng.integers(len(self.negatives))], 0.0
        if not self.follows_task[episode]:
            # exploration data does what its own instruction says, not the task
            return (self.own_text[episode], 1.0) if u < 0.8 else (self.positives[0], 0.0)
        if u < 0.85:
            return self.own_text[episode], 1.0
        return self.positives[rng.integers(len(self.positives))], 1.0

    def _labels(self, episode: int, index: np.ndarray) -> dict[str, np.ndarray]:
        labels = self.labels[episode]
        return {"success": labels["success"][index].astype(np.float32), "progress": labels["progress"][index],
                "stage": labels["stage"][index], "offset": labels["offset"][index],
                "opening": labels["opening"][index]}

    def _empty_labels(self) -> dict[str, np.ndarray]:
        k = self.config.clip_frames
        return {"success": np.zeros(k, np.float32), "progress": np.zeros(k, np.float32),
                "stage": np.zeros(k, np.int64), "offset": np.zeros((k, 3), np.float32),
                "opening": np.zeros(k, np.float32)}

    def _real(self, rng: np.random.Generator) -> dict:
        episode = int(rng.integers(len(self.episodes)))
        ep = self.episodes[episode]
        index = clip_index(int(rng.integers(ep.num_steps + 1)), self.config.clip_frames)
        text, follows = self._instruction(episode, rng)
        return {"frames": ep.pixels[index], **self._labels(episode, index),
                "frame_mask": np.ones(len(index), np.float32), "plausible": 1.0, "kind": 0,
                "smooth": smoothness(ep.agent_pos[index, :3]), "text": text, "follows": follows, "follow_mask": 1.0}

    def _bad(self, rng: np.random.Generator) -> dict:
        clip = self.bank[int(rng.integers(len(self.bank)))]
        return {"frames": clip.frames, **self._empty_labels(), "frame_mask": np.zeros(len(clip.index), np.float32),
                "plausible": 0.0, "kind": KINDS.index(clip.kind), "smooth": clip.smooth,
                "text": self.own_text[clip.episode], "follows": 0.0, "follow_mask": 0.0}

    def _imagined_clip(self, rng: np.random.Generator) -> dict:
        im, cfg = self.imagined, self.config
        episode = int(rng.integers(len(im.pixels)))
        end = int(rng.integers(im.context, im.pixels.shape[1]))
        index = clip_index(end, cfg.clip_frames)
        seen = index[index >= im.context]
        agrees = bool(im.object_error[episode, seen].max() * 1000 < cfg.agree_object_mm
                      and im.psnr[episode, seen].mean() >= cfg.agree_psnr_db)
        ep = self.episodes[episode]
        return {"frames": im.pixels[episode, index], **self._labels(episode, index),
                "frame_mask": np.full(len(index), float(agrees), np.float32), "plausible": float(agrees),
                "kind": 0 if agrees else KINDS.index("imagined"), "smooth": smoothness(ep.agent_pos[index, :3]),
                "text": self.own_text[episode], "follows": 0.0, "follow_mask": 0.0}

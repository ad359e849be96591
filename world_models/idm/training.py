"""Training FM-IDM and its ablation variants in resumable stages: arm masks -> mask head -> one IDM per variant.

1. Arm masks of every training frame, rendered by MuJoCo's segmentation from the episodes' stored
   `sim_state` (cached in <out>/masks/), and the DIS optical flow of every consecutive pair.
2. The mask head learns those masks from pixels; its masks (not the simulator's) then feed every IDM,
   so training sees what evaluation on imagined frames will see.
3. Optionally (`imagined_fraction` > 0) the world model imagines every training episode from its first
   frame under its recorded actions, as `eval-idm` imagines held-out starts (cached in <out>/imagined/);
   that share of each IDM batch then reads imagined frames with their recorded actions, so the IDM learns
   to read the world model's video as well as the simulator's. The mask head learns real frames only.
4. Each variant (plain, flow, mask, fm-idm) is trained with the same data, steps and seed; the
   finished models land in <out>/<variant>/ and fm-idm also in <out>/checkpoint.
5. The pose head (pose_head.steps > 0) learns the end effector's world position from single frames: real
   ones labelled with the episodes' agent_pos and, with `imagined_fraction` > 0, that share of each batch
   imagined ones labelled with the world model's own pose state (where it drew the arm). It is shared by
   every variant's checkpoint, as the mask head is. A run finished without one gains it when started again
   with the same `out`: the other stages are done. `init` (a finished FM-IDM checkpoint, e.g. a shipped one)
   does the same without the run that made it: its mask head, network and action statistics are kept, and
   only the pose head trains (no arm masks or flow are prepared; the imagined video is, when
   imagined_fraction > 0).
Stages checkpoint through world_models/staged.py, so rerunning with the same `out` resumes.
"""

from __future__ import annotations

import copy
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.data.flat import check_episode, flatten_episodes, read_episodes
from wow_gym.distributed import Shard
from wow_gym.registry import task_info
from wow_gym.rollout import Rollout
from wow_gym.simulator import SimFactory
from wow_gym.world_models.idm.config import VARIANTS, IDMConfig
from wow_gym.world_models.idm.model import InverseDynamics, optical_flow, to_images
from wow_gym.world_models.staged import RunSettings, StageConfig, StagedTrainer
from wow_gym.world_models.video.imagination import Start, imagine_batches, load_world_model, world_model_path
from wow_gym.world_models.video.model import WorldModel


@dataclass
class TrainIDMConfig(RunSettings):
    """See experiments/conf/train_idm.yaml for the meaning of each key."""

    task: str = "lift"
    datasets: list[str] = field(default_factory=list)
    out: str = "outputs/idm/lift"
    image_size: int = 64
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    width: int = 32
    future: int = 1  # frames after t+1 each IDM reads
    loss_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 1.0])
    mask_head: StageConfig = field(default_factory=lambda: StageConfig(800, 32, 2e-3))
    pose_head: StageConfig = field(default_factory=lambda: StageConfig(6000, 64, 2e-3))  # steps 0: none
    idm: StageConfig = field(default_factory=lambda: StageConfig(3000, 64, 1e-3))
    shift: int = 3  # random-shift augmentation of the IDM inputs, up to this many pixels (0: off)
    imagined_fraction: float = 0.25  # share of each IDM batch read from world-model video (0: none)
    world_model: str | None = None  # the world model that imagines it; None: the task's shipped model
    sampling_steps: int | None = None  # its flow steps; None: the checkpoint's default
    init: str | None = None  # a finished FM-IDM checkpoint to add a pose head to (only that stage trains)

    def __post_init__(self) -> None:
        task_info(self.task)
        if not self.datasets:
            raise ValueError("datasets is empty; give at least one LeRobot dataset root to train on")
        if self.shift < 0:
            raise ValueError(f"shift must be >= 0 pixels, got {self.shift}")
        if not 0.0 <= self.imagined_fraction < 1.0:
            raise ValueError(f"imagined_fraction must lie in [0, 1), got {self.imagined_fraction}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"variants must be a non-empty subset of {list(VARIANTS)}, got {self.variants}")
        for name in ("mask_head", "pose_head", "idm"):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, StageConfig(**getattr(self, name)))
        if self.init is not None and (self.variants != ["fm-idm"] or self.pose_head.steps <= 0):
            raise ValueError("init adds a pose head to a finished FM-IDM checkpoint: set variants=[fm-idm] "
                             f"and pose_head.steps > 0 (got variants={self.variants}, "
                             f"pose_head.steps={self.pose_head.steps})")


def episode_flow(pixels: np.ndarray) -> np.ndarray:
    """float16 [T+1, H, W, 2]: the flow from each frame of an episode to the next, zero at its last frame."""
    return np.concatenate([optical_flow(pixels), np.zeros((1, *pixels.shape[1:3], 2), np.float32)]).astype(np.float16)


def arm_masks(episodes: list[tuple[Path, int, Rollout]], task: str, image_size: int, cache: Path,
              make_sim: SimFactory) -> list[np.ndarray]:
    """The simulator's arm mask [T+1, H, W] of every (root, index, episode), rendered from its sim_state
    once and cached per dataset in `cache`."""
    env, out = None, []
    for root in dict.fromkeys(root for root, _, _ in episodes):
        mine = [(i, ep) for r, i, ep in episodes if r == root]
        cached = cache / f"{root.resolve().name}-{len(mine)}.npz"
        stored = dict(np.load(cached)) if cached.is_file() else {}
        fresh = {}
        for i, ep in tqdm(mine, desc=f"arm masks of {root.name}", disable=len(stored) == len(mine)):
            key = f"episode_{i}"
            if key not in stored:
                check_episode(ep, root, i, "FM-IDM (arm masks)", needs=("sim_state",))
                env = env or make_sim(task, image_size=image_size)
                fresh[key] = np.packbits(env.arm_masks(ep.sim_state), axis=-1)
            out.append(np.unpackbits(stored.get(key, fresh.get(key)), axis=-1)[..., :image_size].astype(bool))
        if fresh:
            cache.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **stored, **fresh)
            atomic_write_bytes(cached, buffer.getvalue())
    if env is not None:
        env.close()
    return out


class IDMData:
    """Frames, actions, flows and simulator arm masks of every episode, flattened with episode offsets."""

    def __init__(self, roots: list[str], task: str, image_size: int, cache: Path, make_sim: SimFactory,
                 progress: bool = True, frames_only: bool = False) -> None:
        """frames_only: no optical flow or arm masks (only the pose head trains: `init`)."""
        episodes = read_episodes(roots, "FM-IDM", image_size, progress=progress)
        flat = flatten_episodes([ep for _, _, ep in episodes])
        self.frames = torch.from_numpy(flat.pixels)
        self.actions = torch.from_numpy(flat.action)  # action taken at frame i
        self.flows: torch.Tensor | None = None  # flow from frame i to i+1 (zero at the last)
        self.sim_masks: torch.Tensor | None = None
        if not frames_only:
            flows = [episode_flow(ep.pixels)
                     for _, _, ep in tqdm(episodes, desc="optical flow", disable=not progress)]
            self.flows = torch.from_numpy(np.concatenate(flows))
            masks = arm_masks(episodes, task, image_size, cache, make_sim)
            self.sim_masks = torch.from_numpy(np.concatenate(masks))
        self.first_pose = flat.agent_pos[flat.starts]  # agent_pos at each episode's first frame
        self.eef = torch.from_numpy(flat.agent_pos[:, :3].astype(np.float32))  # end effector, per frame
        self.instructions = [ep.instruction or None for _, _, ep in episodes]
        self.masks: torch.Tensor | None = None  # the mask head's, filled after its stage
        self.lengths = torch.from_numpy(flat.lengths)
        self.starts = torch.from_numpy(flat.starts)
        self.episode_of = torch.from_numpy(flat.episode_of)
        self.steps = torch.from_numpy(flat.steps)  # frames t that have an action and a t+1

    def with_frames(self, frames: torch.Tensor, eef: torch.Tensor, progress: bool = True) -> IDMData:
        """The same episodes, steps and actions seen through other frames (imagined video of the same
        layout) showing the end effector at `eef` [N, 3]: their own optical flow (none where this data has
        none: frames_only), no simulator masks (the mask head's fill them in)."""
        other = copy.copy(self)
        other.frames, other.eef = frames, eef
        if self.flows is not None:
            spans = list(zip(self.starts.tolist(), self.lengths.tolist()))
            flows = [episode_flow(frames[s:s + n].numpy())
                     for s, n in tqdm(spans, desc="flow of imagined video", disable=not progress)]
            other.flows = torch.from_numpy(np.concatenate(flows))
        other.sim_masks, other.masks = None, None
        return other

    def action_stats(self) -> dict[str, list[float]]:
        a = self.actions[self.steps]
        return {"action_mean": a.mean(0).tolist(), "action_std": a.std(0).clamp_min(1e-3).tolist(),
                "eef_mean": self.eef.mean(0).tolist(), "eef_std": self.eef.std(0).clamp_min(1e-3).tolist()}

    def batch(self, idx: torch.Tensor, future: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames [B,n,H,W,3] (t-1, t, t+1 and `future` more), the flows between them [B,n-1,H,W,2] and
        their masks [B,n,H,W] for steps `idx`; past an episode's ends its first/last frame repeats with
        zero flow (the stored flow of an episode's last frame is zero)."""
        start = self.starts[self.episode_of[idx]]
        end = start + self.lengths[self.episode_of[idx]] - 1
        first = idx == start
        prev = torch.where(first, idx, idx - 1)
        later = [torch.minimum(idx + k, end) for k in range(1, 2 + future)]
        rows = torch.stack([prev, idx, *later], 1)
        flow_in = torch.where(first[:, None, None, None], torch.zeros_like(self.flows[idx]), self.flows[prev])
        flows = torch.stack([flow_in, *(self.flows[r] for r in rows[:, 1:-1].T)], 1).float()
        masks = self.masks[rows] if self.masks is not None else self.sim_masks[rows].float()
        return self.frames[rows], flows, masks.float()


class IDMTrainer(StagedTrainer):
    """Runs the stages; `run()` resumes from whatever <out>/stages holds."""

    def __init__(self, config: TrainIDMConfig, make_sim: SimFactory) -> None:
        super().__init__(config.out, config)
        self.config = config
        self.stages = ("mask_head", *(f"idm-{v}" for v in VARIANTS), "pose_head")  # new stages go last
        info = task_info(config.task)
        init = InverseDynamics.load(config.init, self.device) if config.init else None
        if init is not None:
            init.check_compatible(config.image_size, source=config.init)
            if init.config.task != info.name:
                raise ValueError(f"init {config.init} is {init.config.task}'s FM-IDM; this run trains "
                                 f"{info.name}")
        with self.main_first():  # rank 0 renders the arm masks and imagines the video into the caches
            self.data = IDMData(config.datasets, info.name, config.image_size, self.out / "masks", make_sim,
                                self.progress, frames_only=init is not None)
            imagined = self._imagine() if config.imagined_fraction else None
        self.stats = self.data.action_stats()
        if init is not None:  # its network was trained on its own action statistics
            self.stats |= {k: init.stats[k] for k in ("action_mean", "action_std")}
        self.imagined = self.data.with_frames(*imagined, self.progress) if imagined is not None else None
        self.models = {v: self._build(v, init) for v in config.variants}
        self.init = init
        # One mask head and one pose head, shared by every variant's checkpoint.
        first = self.models[config.variants[0]]
        self.mask_head, self.pose_head = first.mask_head, first.pose_head
        for model in self.models.values():
            model.mask_head, model.pose_head = self.mask_head, self.pose_head

    def _build(self, variant: str, init: InverseDynamics | None = None) -> InverseDynamics:
        torch.manual_seed(self.config.seed)
        pose_head = self.config.pose_head.steps > 0
        if init is not None:  # its shape, inputs and weights; a fresh pose head
            cfg = IDMConfig(**{**init.config.to_dict(), "pose_head": pose_head})
            model = InverseDynamics(cfg, self.stats)
            model.mask_head.load_state_dict(init.mask_head.state_dict())
            model.net.load_state_dict(init.net.state_dict())
            return model.to(self.device)
        cfg = IDMConfig(variant=variant, task=task_info(self.config.task).name, image_size=self.config.image_size,
                        width=self.config.width, future=self.config.future,
                        loss_weights=list(self.config.loss_weights), pose_head=pose_head)
        return InverseDynamics(cfg, self.stats).to(self.device)

    def extra_state(self) -> dict:
        return {"stats": self.stats}

    def run(self) -> dict[str, Path]:
        written = {}
        if self.init is None:  # init brings a trained mask head and network
            self._train_mask_head()
            self._predict_masks()
            for variant, model in self.models.items():
                self._train_variant(variant, model)
        if self.pose_head is not None:
            self._train_pose_head()
        for variant, model in self.models.items():
            written[variant] = self._save(model, variant)
        if "fm-idm" in self.models:
            written["checkpoint"] = self._save(self.models["fm-idm"], "checkpoint")
        self.close()
        return written

    def _save(self, model: InverseDynamics, name: str) -> Path:
        """Write a finished model into <out>/<name> (rank 0 does; every rank gets the folder)."""
        if not self.shard.is_main:
            return self.out / name
        path = model.cpu().save(self.out / name)
        model.to(self.device)
        return path

    def _imagine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """World-model video of every training episode and the end effector where the model drew it
        (imagine_training_video; cached in <out>/imagined/ per model weights, data, sampling steps and seed)."""
        cfg, data = self.config, self.data
        path = world_model_path(cfg.task, cfg.world_model)
        wm = load_world_model(cfg.task, path, device=str(self.device))
        if wm.config.image_size != cfg.image_size:
            raise ValueError(f"world model {path} imagines {wm.config.image_size} px frames, the IDM is configured "
                             f"for {cfg.image_size} px; set image_size or pass another world_model")
        digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()[:12]
        cached = self.out / "imagined" / (f"{digest}-{len(data.lengths)}-{len(data.frames)}-"
                                            f"{cfg.sampling_steps or 'default'}-{cfg.seed}.npz")
        if cached.is_file():
            stored = np.load(cached)
            if "eef" in stored:  # a cache from before the pose head read imagined frames is imagined again
                return torch.from_numpy(stored["frames"]), torch.from_numpy(stored["eef"])
        frames, eef = imagine_training_video(wm, data, cfg.sampling_steps, cfg.seed, progress=cfg.progress)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, frames=frames.numpy(), eef=eef.numpy())
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, buffer.getvalue())
        return frames, eef

    def _train_mask_head(self) -> None:
        data, head = self.data, self.mask_head

        def loss_fn(batch: int, g: torch.Generator):
            idx = self.shard.take(torch.randint(len(data.frames), (batch,), generator=g))
            logits = head(to_images(data.frames[idx].to(self.device)))[:, 0]
            target = data.sim_masks[idx].float().to(self.device)
            bce = F.binary_cross_entropy_with_logits(logits, target)
            prob = torch.sigmoid(logits)
            dice = 1 - (2 * (prob * target).sum((1, 2)) + 1) / (prob.sum((1, 2)) + target.sum((1, 2)) + 1)
            iou = ((prob > 0.5) & (target > 0.5)).sum() / ((prob > 0.5) | (target > 0.5)).sum().clamp_min(1)
            loss = bce + dice.mean()
            return loss, {"bce": bce.item(), "iou": iou.item()}

        self._loop("mask_head", {"model": head}, list(head.parameters()), self.config.mask_head, loss_fn)

    def _imagined_rows(self, batch: int) -> torch.Tensor:
        """Which of this process's rows of a global batch read imagined frames: the batch's last
        imagined_fraction (none without imagined video)."""
        n_imagined = 0 if self.imagined is None else round(batch * self.config.imagined_fraction)
        return self.shard.take(torch.arange(batch) >= batch - n_imagined)

    def _train_pose_head(self) -> None:
        data, head = self.data, self.pose_head
        mean, std = (torch.tensor(self.stats[k], device=self.device) for k in ("eef_mean", "eef_std"))

        def loss_fn(batch: int, g: torch.Generator):
            idx = self.shard.take(torch.randint(len(data.frames), (batch,), generator=g))
            imagined = self._imagined_rows(batch)
            sources = [(data, idx[~imagined])] + ([(self.imagined, idx[imagined])] if imagined.any() else [])
            frames = torch.cat([source.frames[i] for source, i in sources]).to(self.device)
            pred = head(to_images(frames))
            target = (torch.cat([source.eef[i] for source, i in sources]).to(self.device) - mean) / std
            loss = F.mse_loss(pred, target)
            error_mm = 1000 * ((pred - target) * std).norm(dim=-1).mean()
            return loss, {"mse": loss.item(), "error_mm": error_mm.item()}

        self._loop("pose_head", {"model": head}, list(head.parameters()), self.config.pose_head, loss_fn)

    def _predict_masks(self) -> None:
        """The mask head's probabilities for every frame: what the IDMs train on."""
        head = self.mask_head.eval()
        for data in filter(None, (self.data, self.imagined)):
            frames, out = data.frames, []
            with torch.no_grad():
                for i in tqdm(range(0, len(frames), 512), desc="mask head on every frame", disable=not self.progress):
                    out.append(torch.sigmoid(head(to_images(frames[i:i + 512].to(self.device))))[:, 0].half().cpu())
            data.masks = torch.cat(out)

    def _train_variant(self, variant: str, model: InverseDynamics) -> None:
        data, net = self.data, model.net
        weights = torch.tensor(model.config.loss_weights, device=self.device)
        coord_channels = slice(3 * model.config.frames, 3 * model.config.frames + 2)  # see stack_inputs

        def loss_fn(batch: int, g: torch.Generator):
            idx = self.shard.take(data.steps[torch.randint(len(data.steps), (batch,), generator=g)])
            imagined = self._imagined_rows(batch)
            parts = [data.batch(idx[~imagined], model.config.future)]
            if imagined.any():  # the same steps' actions, seen through the world model's frames
                parts.append(self.imagined.batch(idx[imagined], model.config.future))
            frames, flows, masks = (torch.cat(x).to(self.device) for x in zip(*parts))
            x = model.stack_inputs(frames, flows, masks)
            if self.config.shift:
                x = random_shift(x, self.config.shift, g, keep=coord_channels, shard=self.shard)
            pred = net(x)
            target = model.normalize(data.actions[idx].to(self.device))
            per_dim = F.smooth_l1_loss(pred, target, reduction="none").mean(0)
            loss = (weights * per_dim).sum() / weights.sum()
            rmse = ((pred - target) ** 2).mean(0).sqrt().mean()
            return loss, {"loss": loss.item(), "nrmse": rmse.item()}

        self._loop(f"idm-{variant}", {"model": net}, list(net.parameters()), self.config.idm, loss_fn)


@torch.no_grad()
def imagine_training_video(wm: WorldModel, data: IDMData, sampling_steps: int | None = None, seed: int = 0,
                           batch_size: int = 64, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames [N, H, W, 3] uint8 laid out as data.frames: each episode's first frame real, the rest imagined
    open loop from it under the episode's recorded actions (eval-idm's imagined rollouts start the same way);
    and the end effector [N, 3] where the model drew it (its pose state; the recorded one at first frames)."""
    g = torch.Generator(device=wm.device).manual_seed(seed)
    starts, lengths = data.starts.tolist(), data.lengths.tolist()
    out, eef = data.frames.clone(), data.eef.clone()
    first = np.stack([data.frames[s:s + 1].numpy() for s in starts])
    start = Start(first, np.asarray(data.first_pose)[:, None], list(data.instructions))
    actions = np.zeros((len(starts), max(lengths) - 1, data.actions.shape[1]), np.float32)  # zero past an end
    for i, (s, n) in enumerate(zip(starts, lengths)):
        actions[i, :n - 1] = data.actions[s:s + n - 1].numpy()
    batches = imagine_batches(wm, start, actions, np.array(lengths) - 1, g, sampling_steps, batch_size,
                              progress, "imagine training episodes")
    for lo, imagined in batches:
        for i, steps, frames, poses in zip(range(lo, lo + len(imagined.steps)), imagined.steps, imagined.pixels,
                                           imagined.agent_pos):
            out[starts[i] + 1:starts[i] + 1 + steps] = torch.from_numpy(frames[:steps])
            drawn = torch.from_numpy(poses[:steps, :3].astype(np.float32))
            where = slice(starts[i] + 1, starts[i] + 1 + steps)
            eef[where] = torch.where(torch.isfinite(drawn), drawn, eef[where])  # a model without pose state
    return out, eef


def random_shift(x: torch.Tensor, pad: int, g: torch.Generator, keep: slice | None = None,
                 shard: Shard | None = None) -> torch.Tensor:
    """DrQ's random-shift augmentation: each sample of x [B,C,H,W] moves by up to `pad` pixels in x and y,
    edges replicated; channels `keep` (the coordinate channels) stay put. Every other channel of a sample
    moves together, so frames, flows and masks stay registered (a translation leaves flow vectors as they are).
    Indexing rather than torchvision's RandomCrop: that draws one offset per call, not per sample.
    With a `shard`, x is that process's rows of a global batch: offsets are drawn for the global batch."""
    shard = shard or Shard()
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = (shard.take(torch.randint(0, 2 * pad + 1, (b * shard.world_size,), generator=g)).to(x.device)
              for _ in range(2))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = padded[torch.arange(b, device=x.device)[:, None, None, None],
                 torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
    if keep is not None:
        out[:, keep] = x[:, keep]
    return out

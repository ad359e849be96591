"""SOPHIA's default critic: a small video network that judges a clip against an instruction.

Input: frames and the instruction only (each frame with its difference to the previous one, so motion is
seen; the instruction through the same offline text encoder as the world model). A causal transformer
over the clip's frames gives, at every frame, readings that need only the past (so the imagined env can
score each new frame as it comes):
- per frame: success logit, task progress (the simulator's shaped reward in [0, 1]), the task stage
  (the task's critic_stages, for Lift approach / at the object / grasped / lifted), the gripper-to-object
  offset and the gripper opening;
- per clip (read at its last frame): physical plausibility, which corruption it looks like, kinematic
  smoothness and instruction following.
Simulator state is only ever a training label (world_models/critic/data.py) and the check, never an input.
`LearnedCritic` turns the readings into a `Critique` with a text that names what went wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wow_gym.checks import check_frames, check_instruction
from wow_gym.sophia import Critique
from wow_gym.tasks import Task, task_info
from wow_gym.world_models.checkpoint import (
    load_weights,
    read_meta,
    save_checkpoint,
    shipped_checkpoint,
)
from wow_gym.world_models.critic.config import FORMAT_VERSION, CriticConfig
from wow_gym.world_models.text import TEXT_DIM, embed_instructions

TRAIN_COMMAND = "wow-gym train-critic"
# Corruptions of real clips (critic/data.py) plus world-model clips that disagree with physics.
KINDS = ("none", "teleport", "vanish", "levitate", "frozen_arm", "sink", "pass_through", "reverse", "shuffle",
         "imagined")
KIND_TEXT = {  # {object}: the task's object_name
    "teleport": "the {object} jumps to a new place without being touched",
    "vanish": "the {object} disappears",
    "levitate": "the {object} moves before it is touched",
    "frozen_arm": "the {object} moves while the arm stands still",
    "sink": "the {object} sinks into the table",
    "pass_through": "the gripper passes through the {object}",
    "reverse": "the video runs backwards",
    "shuffle": "the frames are out of order",
    "imagined": "the frames drift away from what physics would do",
}
FRAME_READINGS = ("success", "progress", "stage", "offset", "opening")
OFFSET_SCALE = 0.1  # metres: the gripper-to-object offset is predicted in these units
OPENING_SCALE = 0.08  # metres: a fully open Panda gripper
CLOSED_OPENING = 0.03  # metres: a Panda gripper opened less than this is closed


class FrameEncoder(nn.Module):
    """(frame, frame - previous frame) 6 x H x W -> one feature vector per frame."""

    def __init__(self, image_size: int, width: int) -> None:
        super().__init__()
        chans, layers, size = [6, 32, 64, 128, 128], [], image_size
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]
            size //= 2
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Linear(chans[-1] * size * size, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.conv(x).flatten(1))


class CriticNet(nn.Module):
    """frames [B,T,H,W,3] uint8-valued and instruction embeddings [B,384] -> a dict of readings."""

    def __init__(self, config: CriticConfig) -> None:
        super().__init__()
        w, self.config = config.width, config
        self.encoder = FrameEncoder(config.image_size, w)
        self.text = nn.Sequential(nn.Linear(TEXT_DIM, w), nn.SiLU(), nn.Linear(w, w))
        self.position = nn.Parameter(torch.zeros(config.clip_frames + 1, w))
        layer = nn.TransformerEncoderLayer(w, config.heads, 2 * w, dropout=0.0, batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.stages = len(task_info(config.task).critic_stages)
        # per frame: success, progress, the task's stages, offset (3), opening
        self.frame_head = nn.Linear(w, 1 + 1 + self.stages + 3 + 1)
        # per clip: plausibility, kinds, smoothness, instruction following
        self.clip_head = nn.Sequential(nn.Linear(2 * w, w), nn.SiLU(), nn.Linear(w, 1 + len(KINDS) + 1 + 1))

    @staticmethod
    def frame_inputs(frames: torch.Tensor) -> torch.Tensor:
        """[B,T,H,W,3] 0..255 -> [B,T,6,H,W]: the frame in [-1, 1] and its change since the previous one."""
        x = frames.float().permute(0, 1, 4, 2, 3) / 127.5 - 1.0
        diff = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
        return torch.cat([x, diff * 2.0], dim=2)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        return self.encoder(self.frame_inputs(frames).flatten(0, 1)).view(b, t, -1)

    def encode_last(self, frames: torch.Tensor) -> torch.Tensor:
        """Features [B,w] of the last of frames [B,T,H,W,3] (its motion against the one before): one encoder
        pass per row, where encode() would run every frame."""
        return self.encoder(self.frame_inputs(frames[:, -2:])[:, -1])

    def readings(self, features: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """features [B,T,w] of T <= clip_frames frames (oldest first), text [B,384]."""
        t = features.shape[1]
        tokens = torch.cat([self.text(text)[:, None], features], dim=1) + self.position[: t + 1]
        causal = torch.triu(torch.full((t + 1, t + 1), float("-inf"), device=features.device), diagonal=1)
        h = self.norm(self.temporal(tokens, mask=causal))
        frame = self.frame_head(h[:, 1:])
        clip = self.clip_head(torch.cat([h[:, -1], h[:, 1:].mean(1)], dim=-1))
        n = self.stages
        return {
            "success": frame[..., 0], "progress": frame[..., 1], "stage": frame[..., 2:2 + n],
            "offset": frame[..., 2 + n:5 + n], "opening": frame[..., 5 + n],
            "plausible": clip[:, 0], "kind": clip[:, 1:1 + len(KINDS)], "smooth": clip[:, 1 + len(KINDS)],
            "follows": clip[:, 2 + len(KINDS)],
        }

    def forward(self, frames: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.readings(self.encode(frames), text)


class LearnedCritic:
    """The default SOPHIA critic (a trained CriticNet); `critique` follows the `Critic` protocol."""

    def __init__(self, config: CriticConfig, net: CriticNet | None = None, device: str | torch.device = "cpu",
                 meta: dict[str, Any] | None = None) -> None:
        self.config = config
        self.net = (net or CriticNet(config)).to(device).eval()
        self.device = torch.device(device)
        self.meta = meta or {}

    # -- checkpoints ---------------------------------------------------------------------------------------

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        return save_checkpoint(directory, self.net, {**self.config.to_dict(), **(extra or {})})

    @classmethod
    def load(cls, directory: str | Path | None = None, task: str = "lift",
             device: str | torch.device = "cpu") -> LearnedCritic:
        directory = Path(directory) if directory is not None else shipped_checkpoint(task, "critic")
        meta = read_meta(directory, "critic", TRAIN_COMMAND, FORMAT_VERSION)
        known = CriticConfig.__dataclass_fields__
        config = CriticConfig(**{k: v for k, v in meta.items() if k in known})
        net = CriticNet(config)
        load_weights(directory, net, TRAIN_COMMAND)
        return cls(config, net.float(), device, meta)

    def check_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [T, H, W, 3] at the size the critic was trained on, or a ValueError (wow_gym.checks' rules)."""
        return check_frames(np.asarray(frames), "the critic's clip", size=self.config.image_size, one_frame=True)

    # -- readings ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def readings(self, frames: np.ndarray, instruction: str, batch: int = 128) -> dict[str, np.ndarray]:
        """Per-frame readings [T] of a clip of any length: each frame is read with the clip_frames frames
        that end at it (sliding causal windows). Per-clip readings are given per window as well."""
        frames = self.check_frames(frames)
        text = torch.from_numpy(embed_instructions(check_instruction(instruction))).to(self.device)
        k = self.config.clip_frames
        padded = np.concatenate([np.repeat(frames[:1], k - 1, axis=0), frames])
        features = self.net.encode(torch.from_numpy(padded).to(self.device)[None])[0]
        windows = features.unfold(0, k, 1).permute(0, 2, 1)  # [T, k, w]
        out: dict[str, list[torch.Tensor]] = {}
        for i in range(0, len(windows), batch):
            part = windows[i:i + batch]
            r = self.net.readings(part, text.expand(len(part), -1))
            for name, value in r.items():
                out.setdefault(name, []).append(value[:, -1] if name in FRAME_READINGS else value)
        return {name: torch.cat(v).float().cpu().numpy() for name, v in out.items()}

    def critique(self, frames: np.ndarray, instruction: str) -> Critique:
        r = self.readings(frames, instruction)
        return compose_critique(r, self.config)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _next_run(run: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Consecutive frames judged successful, after one more frame (`hit`: its verdict)."""
    return np.where(hit, run + 1, 0)


def success_verdict(prob: np.ndarray, frames: int) -> np.ndarray:
    """Per frame: success held for `frames` consecutive frames ending here."""
    run, out = np.zeros((), dtype=int), []
    for hit in np.asarray(prob) > 0.5:
        run = _next_run(run, hit)
        out.append(run >= frames)
    return np.array(out, dtype=bool)


def compose_critique(r: dict[str, np.ndarray], config: CriticConfig) -> Critique:
    """A Critique from per-window readings (see LearnedCritic.readings) of one clip."""
    success_prob = _sigmoid(r["success"])
    progress = np.clip(r["progress"], 0.0, 1.0)
    done = success_verdict(success_prob, config.success_frames)
    success = bool(done.any())
    plausible = _sigmoid(r["plausible"])
    # A long clip is as implausible as its worst stretch; the 10th percentile ignores one odd window.
    plausibility = float(np.percentile(plausible, 10))
    smooth = float(np.percentile(_sigmoid(r["smooth"]), 10))
    follows = float(np.mean(_sigmoid(r["follows"])))
    scores = {"task_completion": float(success_prob.max()) if success else float(success_prob[-1]),
              "physical_plausibility": plausibility, "kinematic_smoothness": smooth,
              "instruction_following": follows}
    failure, text = _failure(r, task_info(config.task), success, plausibility, smooth, follows, plausible)
    last_progress = float(progress[-1])
    reward = last_progress + config.success_bonus * float(done[-1])
    return Critique(scores=scores, success=success, progress=last_progress, reward=reward, text=text,
                    failure=failure, per_frame={"success": success_prob.astype(np.float32),
                                                "progress": progress.astype(np.float32),
                                                "plausible": plausible.astype(np.float32)})


def _failure(r: dict[str, np.ndarray], task: Task, success: bool, plausibility: float, smooth: float,
             follows: float, plausible: np.ndarray) -> tuple[str, str]:
    if plausibility < 0.5:
        worst = int(np.argmin(plausible))
        kinds = r["kind"][worst].copy()
        kinds[KINDS.index("none")] = -np.inf
        kind = KINDS[int(np.argmax(kinds))]
        return "implausible", f"{KIND_TEXT[kind].format(object=task.object_name)} (around frame {worst})"
    notes = [note for bad, note in ((smooth < 0.5, "the arm jumps between frames instead of moving smoothly"),
                                    (follows < 0.5, "the motion does not do what the instruction asks")) if bad]
    key, text = ("", task.success_text) if success else _stage_failure(r, task)
    return key, "; ".join([text, *notes])


def stage_failure(task: Task, stage: int, opening: float) -> str:
    """The failure key of a failed clip from the furthest stage it reached and its last gripper opening
    (metres): short of the object with the gripper closed is "closed_early"."""
    if stage == 0 and opening < CLOSED_OPENING:
        return "closed_early"
    return task.stage_of_failure(stage).failure


def _stage_failure(r: dict[str, np.ndarray], task: Task) -> tuple[str, str]:
    """What stopped the task, from the furthest stage the clip reached (a claim the simulator can check)."""
    stage = int(np.max(np.argmax(r["stage"], axis=-1)))
    offset = r["offset"][-1] * OFFSET_SCALE  # object minus gripper, metres
    opening = float(r["opening"][-1]) * OPENING_SCALE
    key = stage_failure(task, stage, opening)
    if key == "closed_early":
        above = -offset[2] * 100
        name = task.object_name
        where = f"{above:.0f} cm above the {name}" if above > 1 else f"beside the {name}"
        return key, f"the gripper closes {where}"
    return key, task.stage_of_failure(stage).text.format(distance=np.linalg.norm(offset) * 100)


class CriticStream:
    """The critic read frame by frame over a batch of episodes: each row keeps the features of its last
    clip_frames frames, so one new frame costs one encoder pass (what the imagined env needs per step)."""

    def __init__(self, critic: LearnedCritic, instruction: str) -> None:
        self.critic, self.config = critic, critic.config
        self.text = torch.from_numpy(embed_instructions(check_instruction(instruction))).to(critic.device)
        self.features: torch.Tensor | None = None  # [B, K, w]
        self.previous: torch.Tensor | None = None  # [B, H, W, 3] each row's newest frame
        self.run: np.ndarray = np.zeros(0, dtype=int)  # consecutive frames judged successful

    @torch.no_grad()
    def reset(self, rows: np.ndarray, frames: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """(Re)start `rows` at their first frames [n,H,W,3]; their readings."""
        frames = torch.tensor(self.critic.check_frames(frames), device=self.critic.device)  # a copy: may be read-only
        if self.features is None or len(self.features) != batch_size:
            self.features = torch.zeros(batch_size, self.config.clip_frames, self.config.width,
                                        device=self.critic.device)
            self.previous = torch.zeros(batch_size, *frames.shape[1:], dtype=torch.uint8, device=self.critic.device)
            self.run = np.zeros(batch_size, dtype=int)
        index = torch.as_tensor(rows, dtype=torch.long, device=self.critic.device)
        first = self.critic.net.encode(frames[:, None])[:, 0]  # no previous frame: zero motion
        self.features[index] = first.float()[:, None].expand(-1, self.config.clip_frames, -1)
        self.previous[index] = frames
        self.run[rows] = 0
        return self._read(np.asarray(rows))

    @torch.no_grad()
    def push(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Every row's next frame [B,H,W,3]; every row's readings."""
        if self.features is None:
            raise RuntimeError("reset the stream before pushing frames")
        frames = torch.tensor(self.critic.check_frames(frames), device=self.critic.device)  # a copy: may be read-only
        if len(frames) != len(self.features):
            raise ValueError(f"expected {len(self.features)} frames (one per row), got {len(frames)}")
        newest = self.critic.net.encode_last(torch.stack([self.previous, frames], dim=1))
        self.features = torch.cat([self.features[:, 1:], newest.float()[:, None]], dim=1)
        self.previous = frames.clone()
        return self._read(np.arange(len(frames)))

    def _read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        index = torch.as_tensor(rows, dtype=torch.long, device=self.critic.device)
        r = self.critic.net.readings(self.features[index], self.text.expand(len(rows), -1))
        success = _sigmoid(r["success"][:, -1].float().cpu().numpy())
        self.run[rows] = _next_run(self.run[rows], success > 0.5)
        done = self.run[rows] >= self.config.success_frames
        progress = np.clip(r["progress"][:, -1].float().cpu().numpy(), 0.0, 1.0)
        return {"success": done, "success_prob": success.astype(np.float32),
                "progress": progress.astype(np.float32),
                "plausible": _sigmoid(r["plausible"].float().cpu().numpy()).astype(np.float32)}


class CriticRewardModel:
    """SOPHIA as the imagined env's reward and termination: reward = progress + success_bonus * success,
    returned with its named terms (critic_progress, critic_success, critic_plausible)."""

    def __init__(self, critic: LearnedCritic | None = None, task: str = "lift", device: str | torch.device = "cpu",
                 autocast: bool = False) -> None:
        self.critic = critic or LearnedCritic.load(task=task, device=device)
        self.autocast = autocast  # bf16 (wow_gym.devices.resolve_autocast decides where it pays)
        self.instruction: str | None = None
        self.stream: CriticStream | None = None

    def __call__(self, output: Any, instructions: list[str], rows: np.ndarray | None = None,
                 batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Score the newest frames: a (re)start of `rows` of a batch of `batch_size`, or a step of every row."""
        instruction = instructions[0]
        if self.stream is None or self.instruction != instruction:  # a new text embedding
            self.instruction, self.stream = instruction, CriticStream(self.critic, instruction)
        with torch.autocast(self.critic.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if rows is not None:
                r = self.stream.reset(np.asarray(rows), output.pixels, batch_size or len(rows))
            else:
                r = self.stream.push(output.pixels)
        return self._reward(r)

    def score_episodes(self, frames: np.ndarray, instruction: str) -> tuple[np.ndarray, np.ndarray]:
        """Whole episodes [n,T+1,H,W,3] read as the env would have read them step by step, all n in one
        batch on a stream of their own (this model's stream is left as it is): the reward [n,T] and success
        [n,T] after each of the T steps."""
        if frames.ndim != 5:
            raise ValueError(f"expected episodes of frames [n, T+1, H, W, 3], got shape {frames.shape}")
        n, steps = len(frames), frames.shape[1] - 1
        stream = CriticStream(self.critic, instruction)
        reward, success = np.zeros((n, steps), np.float32), np.zeros((n, steps), bool)
        with torch.autocast(self.critic.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            stream.reset(np.arange(n), frames[:, 0], n)
            for t in range(steps):
                reward[:, t], success[:, t], _ = self._reward(stream.push(frames[:, t + 1]))
        return reward, success

    def _reward(self, r: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        bonus = self.critic.config.success_bonus * r["success"].astype(np.float32)
        terms = {"critic_progress": r["progress"], "critic_success": bonus, "critic_plausible": r["plausible"]}
        return (r["progress"] + bonus).astype(np.float32), r["success"], terms

"""The video DiT: latent tokens of a few context frames and one noisy target frame.

Attention is spatial within a frame and causal across frames (a frame sees itself and earlier frames),
expressed as one block-causal mask over all tokens so a single fused attention call does both. Every
block is adaLN-Zero conditioned on one vector: diffusion time + context-noise level + action chunk +
instruction embedding + pose. The pose (agent_pos now and where the pose dynamics says it goes next) is
also added to every target token through a small per-token MLP over (token position, pose), so the model
is told *where in the picture* the arm should be, not just a global vector.

The embedding, norm and feed-forward pieces are diffusers' (Timesteps, TimestepEmbedding,
AdaLayerNormZero, FeedForward); the attention is torch's fused scaled_dot_product_attention, because the
diffusers attention processors take no block-causal frame mask over a flattened frame sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.normalization import AdaLayerNormZero
from torch import nn

from wow_gym.world_models.video.pose_map import FEATURES as POSE_MAP_FEATURES

# Named sizes; one code path. dit-test is for unit tests only.
PRESETS: dict[str, dict[str, int]] = {
    "dit-test": {"width": 32, "depth": 2, "heads": 2},
    "dit-mini": {"width": 128, "depth": 6, "heads": 4},  # per-task models within the checkpoint budget
    "dit-tiny": {"width": 192, "depth": 6, "heads": 6},
    "dit-small": {"width": 384, "depth": 10, "heads": 6},
    "dit-base": {"width": 768, "depth": 12, "heads": 12},
}


@dataclass
class DiTConfig:
    """Shape of the DiT; `preset` fills width/depth/heads."""

    preset: str = "dit-tiny"
    latent_channels: int = 8
    latent_size: int = 8
    context_frames: int = 2
    action_dim: int = 7
    action_history: int = 2  # the chunk: a_{t-history+1} .. a_t
    pose_dim: int = 9
    text_dim: int = 384
    patch: int = 2  # latent pixels per token side: 8x8 latents, patch 2 -> 16 tokens per frame
    mlp_ratio: int = 4
    pose_map: bool = False  # target tokens also get the projected gripper map (world_models/video/pose_map.py)
    object_map: bool = False  # ... and the same map of the task object's position
    width: int = 0
    depth: int = 0
    heads: int = 0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown DiT preset {self.preset!r}; expected one of {sorted(PRESETS)}")
        for key, value in PRESETS[self.preset].items():
            if not getattr(self, key):
                setattr(self, key, value)
        if self.latent_size % self.patch:
            raise ValueError(f"latent_size {self.latent_size} must be divisible by patch {self.patch}")
        if self.context_frames < 1:
            raise ValueError(f"context_frames must be >= 1, got {self.context_frames}")

    def to_dict(self) -> dict:
        return asdict(self)


class DiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero modulation from the conditioning vector."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = AdaLayerNormZero(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(width, mult=mlp_ratio, activation_fn="gelu-approximate")
        nn.init.zeros_(self.norm1.linear.weight)
        nn.init.zeros_(self.norm1.linear.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(x, emb=cond)
        b, n, d = h.shape
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + gate_msa[:, None] * self.proj(attn.transpose(1, 2).reshape(b, n, d))
        h = self.norm2(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp[:, None] * self.ff(h)


class VideoDiT(nn.Module):
    """Predicts the rectified-flow velocity of the next frame's latent change.

    Inputs (normalised): `noisy` [B,C,h,w] (the noised target), `context` [B,K,C,h,w] (clean or lightly
    noised latents of the K last frames, oldest first), `time` [B] in [0,1], `ctx_noise` [B],
    `actions` [B,history,A], `text` [B,T], `pose` [B,2,P] (now, next) and the keep masks
    `keep_action` / `keep_text` [B] (0 drops that condition, for classifier-free guidance), and with
    `config.pose_map` the gripper map [B, tokens, 6] of world_models/video/pose_map.py (dropped with the action),
    and with `config.object_map` the same map of the object's position (now, next).
    """

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        w, p = config.width, config.patch
        c = config.latent_channels * p * p  # values per token
        s = config.latent_size // p  # tokens per side
        self.tokens_per_frame = s * s
        self.context_in = nn.Linear(c, w)
        self.target_in = nn.Linear(2 * c, w)  # noisy change ++ last context latent
        self.spatial_pos = nn.Parameter(torch.randn(1, s * s, w) * 0.02)
        self.frame_pos = nn.Parameter(torch.randn(1, config.context_frames + 1, 1, w) * 0.02)
        self.time_proj = Timesteps(w, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(w, w)
        self.noise_embed = TimestepEmbedding(w, w)
        self.action_embed = _mlp(config.action_dim * config.action_history, w)
        self.text_embed = _mlp(config.text_dim, w)
        self.pose_embed = _mlp(2 * config.pose_dim, w)
        self.pose_tokens = nn.Sequential(nn.Linear(2 * w, w), nn.GELU(approximate="tanh"), nn.Linear(w, w))
        if config.pose_map:
            self.pose_map_in = nn.Sequential(nn.Linear(POSE_MAP_FEATURES, w), nn.GELU(approximate="tanh"),
                                             nn.Linear(w, w))
        if config.object_map:  # added to a trained DiT: starts at zero, so it first changes nothing
            self.object_map_in = nn.Sequential(nn.Linear(POSE_MAP_FEATURES, w), nn.GELU(approximate="tanh"),
                                               nn.Linear(w, w))
            nn.init.zeros_(self.object_map_in[2].weight)
            nn.init.zeros_(self.object_map_in[2].bias)
        self.null_action = nn.Parameter(torch.zeros(w))
        self.null_text = nn.Parameter(torch.zeros(w))
        self.null_pose = nn.Parameter(torch.zeros(w))
        self.blocks = nn.ModuleList(DiTBlock(w, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.final_mod = nn.Linear(w, 2 * w)
        self.out = nn.Linear(w, c)
        for layer in (self.final_mod, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        frames = config.context_frames + 1
        frame_of_token = torch.arange(frames).repeat_interleave(s * s)
        self.register_buffer("mask", frame_of_token[:, None] >= frame_of_token[None, :], persistent=False)

    def forward(
        self,
        noisy: torch.Tensor,
        context: torch.Tensor,
        time: torch.Tensor,
        ctx_noise: torch.Tensor,
        actions: torch.Tensor,
        text: torch.Tensor,
        pose: torch.Tensor,
        keep_action: torch.Tensor,
        keep_text: torch.Tensor,
        pose_map: torch.Tensor | None = None,
        object_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, k, c, s, _ = context.shape
        if k != self.config.context_frames:
            raise ValueError(f"expected {self.config.context_frames} context frames, got {k}")
        dtype = self.spatial_pos.dtype
        keep_a = keep_action.to(dtype)[:, None]
        keep_t = keep_text.to(dtype)[:, None]
        pose_vec = self.pose_embed(pose.flatten(1))
        act_vec = self.action_embed(actions.flatten(1))
        cond = (
            self.time_embed(self.time_proj(time * 1000).to(dtype))
            + self.noise_embed(self.time_proj(ctx_noise * 1000).to(dtype))
            + keep_a * act_vec + (1 - keep_a) * self.null_action
            + keep_a * pose_vec + (1 - keep_a) * self.null_pose
            + keep_t * self.text_embed(text) + (1 - keep_t) * self.null_text
        )
        ctx_tokens = self.context_in(self._patchify(context))  # [B,K,N,W]
        tgt = self.target_in(self._patchify(torch.cat([noisy, context[:, -1]], dim=1)))  # [B,N,W]
        pos = self.spatial_pos.expand(b, -1, -1)
        pose_tok = self.pose_tokens(torch.cat([pos, pose_vec[:, None].expand_as(pos)], dim=-1))
        if self.config.pose_map:
            if pose_map is None:
                raise ValueError("this DiT was built with pose_map=True; pass the pose map [B, tokens, 6]")
            pose_tok = pose_tok + self.pose_map_in(pose_map.to(dtype))
        if self.config.object_map:
            if object_map is None:
                raise ValueError("this DiT was built with object_map=True; pass the object map [B, tokens, 6]")
            pose_tok = pose_tok + self.object_map_in(object_map.to(dtype))
        tgt = tgt + keep_a[:, :, None] * pose_tok
        x = torch.cat([ctx_tokens, tgt[:, None]], dim=1) + self.spatial_pos[:, None] + self.frame_pos
        x = x.flatten(1, 2)
        for block in self.blocks:
            x = block(x, cond, self.mask)
        x = x[:, -self.tokens_per_frame:]
        shift, scale = self.final_mod(F.silu(cond)).chunk(2, dim=1)
        x = self.final_norm(x) * (1 + scale[:, None]) + shift[:, None]
        return self._unpatchify(self.out(x), c, s)

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[..., C, S, S] -> [..., (S/p)^2, C*p*p]"""
        p = self.config.patch
        *lead, c, s, _ = x.shape
        n = len(lead)
        x = x.reshape(*lead, c, s // p, p, s // p, p)
        x = x.permute(*range(n), n + 1, n + 3, n, n + 2, n + 4)  # [..., S/p, S/p, C, p, p]
        return x.reshape(*lead, (s // p) ** 2, c * p * p)

    def _unpatchify(self, tokens: torch.Tensor, c: int, s: int) -> torch.Tensor:
        """[B, (S/p)^2, C*p*p] -> [B, C, S, S]"""
        p = self.config.patch
        b = tokens.shape[0]
        x = tokens.reshape(b, s // p, s // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, c, s, s)


def _mlp(inp: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, width), nn.SiLU(), nn.Linear(width, width))

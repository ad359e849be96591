"""Frames to compact latents and back: diffusers' AutoencoderKL at a small width.

64×64×3 frames become 8×8×C latents (three halvings), so the DiT works on 64 tokens per frame. The
encoder's mean is used as the latent (no sampling at inference); a small KL term keeps the latent space
smooth for the diffusion model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from diffusers import AutoencoderKL


@dataclass
class AutoencoderConfig:
    """Shape of the autoencoder; `downsample` = 2 ** (len(block_out_channels) - 1)."""

    image_size: int = 64
    latent_channels: int = 8
    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    norm_num_groups: int = 16

    def __post_init__(self) -> None:
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        if self.image_size % self.downsample:
            raise ValueError(f"image_size {self.image_size} must be divisible by {self.downsample}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    def to_dict(self) -> dict:
        return asdict(self)


def build_autoencoder(config: AutoencoderConfig) -> AutoencoderKL:
    """A freshly initialised AutoencoderKL of this shape."""
    n = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        sample_size=config.image_size,
        mid_block_add_attention=False,
    )


def pixels_to_tensor(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1]."""
    return pixels.movedim(-1, -3).float().div(127.5).sub(1.0)


def tensor_to_pixels(images: torch.Tensor) -> torch.Tensor:
    """float [..., 3, H, W] in [-1, 1] -> uint8 [..., H, W, 3]."""
    return images.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1)


def autoencoder_loss(model: AutoencoderKL, images: torch.Tensor, kl_weight: float) -> tuple[torch.Tensor, dict]:
    """Reconstruction (MSE + L1) plus a small KL; images in [-1, 1]."""
    posterior = model.encode(images).latent_dist
    recon = model.decode(posterior.mode()).sample
    mse = torch.mean((recon.float() - images) ** 2)
    l1 = torch.mean(torch.abs(recon.float() - images))
    kl = posterior.kl().mean() / images[0].numel()
    loss = mse + l1 + kl_weight * kl
    psnr = 10 * torch.log10(4.0 / mse.detach().clamp_min(1e-10))
    return loss, {"mse": mse.item(), "l1": l1.item(), "kl": kl.item(), "psnr": psnr.item()}

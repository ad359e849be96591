"""Pictures of rollouts: a contact sheet (one row per rollout, frames across) and an animated GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from wow_gym.rollout import Rollout

_LABEL_HEIGHT = 14


def contact_sheet(rollouts: list[Rollout], columns: int = 8, scale: int = 2) -> Image.Image:
    """Evenly spaced frames of each rollout in a row, labelled with the step and its sub-instruction."""
    if not rollouts:
        raise ValueError("contact_sheet needs at least one rollout")
    height, width = rollouts[0].pixels.shape[1:3]
    tile_w, tile_h = width * scale, height * scale + _LABEL_HEIGHT
    title_h = _LABEL_HEIGHT + 2
    sheet = Image.new("RGB", (tile_w * columns, (tile_h + title_h) * len(rollouts)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, rollout in enumerate(rollouts):
        top = row * (tile_h + title_h)
        outcome = "success" if rollout.success else "no success"
        draw.text((4, top + 2), f"{rollout.task} seed {rollout.seed}: \"{rollout.instruction}\" ({outcome})",
                  fill="black")
        steps = np.linspace(0, rollout.num_steps, columns).round().astype(int)
        for col, step in enumerate(steps):
            frame = Image.fromarray(rollout.pixels[step]).resize((tile_w, tile_h - _LABEL_HEIGHT), Image.NEAREST)
            sheet.paste(frame, (col * tile_w, top + title_h))
            label = f"t={step}"
            if rollout.subtask and step < rollout.num_steps:
                label += f" {rollout.subtask[step]}"
            draw.text((col * tile_w + 2, top + title_h + tile_h - _LABEL_HEIGHT), label[:tile_w // 6], fill="black")
    return sheet


def save_gif(rollouts: list[Rollout], path: str | Path, scale: int = 3, fps: int = 20) -> Path:
    """An animated GIF with the rollouts side by side (shorter ones hold their last frame)."""
    path = Path(path)
    length = max(r.pixels.shape[0] for r in rollouts)
    frames = []
    for t in range(length):
        row = np.concatenate([r.pixels[min(t, r.pixels.shape[0] - 1)] for r in rollouts], axis=1)
        image = Image.fromarray(row)
        frames.append(image.resize((image.width * scale, image.height * scale), Image.NEAREST))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.gif")
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    tmp.replace(path)
    return path

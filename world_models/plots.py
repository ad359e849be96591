"""Figures shared by every report: line plots drawn with PIL (matplotlib is not a dependency), PNG writes,
frame panels for GIFs, number formatting, JSON conversion and the report.md + results.json pair."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.provenance import atomic_write_text
from wow_gym.rollout import Rollout

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def to_json(value: Any) -> Any:
    """A JSON-ready copy: dataclasses as dicts (fields marked json=False left out), NaN/inf as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.metadata.get("json", True)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (np.generic, float)):
        value = value.item() if isinstance(value, np.generic) else value
        return value if not isinstance(value, float) or math.isfinite(value) else None
    return value


def line_plot(series: dict[str, tuple[list[float], list[float]]], title: str, x_label: str, y_label: str,
              size: tuple[int, int] = (640, 420)) -> Image.Image:
    """A line chart of named (x, y) series with axes, ticks and a legend; non-finite points are skipped."""
    font = ImageFont.load_default(size=13)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 70, 36, size[0] - 20, size[1] - 50
    points = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if finite(y)]
    if not points:
        draw.text((left, top), f"{title}: no finite values", fill="black", font=font)
        return image
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    pad = 0.08 * (y1 - y0 or abs(y1) or 1.0)
    y0, y1, x1 = y0 - pad, y1 + pad, x1 if x1 > x0 else x0 + 1

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline="black")
    ticks = sorted({p[0] for p in points})  # the data's own x values (horizons, steps) where they fit ...
    if len(ticks) > 1 and min(np.diff([at(x, y0)[0] for x in ticks])) < 36:
        ticks = list(np.linspace(x0, x1, 7))  # ... else evenly spaced ones, whose labels do not overlap
    for x in ticks:
        px = at(x, y0)[0]
        draw.line([px, bottom, px, bottom + 4], fill="black")
        draw.text((px, bottom + 6), f"{x:.3g}", fill="black", font=font, anchor="mt")
    for y in np.linspace(y0, y1, 6):
        py = at(x0, y)[1]
        draw.line([left - 4, py, left, py], fill="black")
        draw.line([left + 1, py, right - 1, py], fill=(230, 230, 230))
        draw.text((left - 6, py), f"{y:.3g}", fill="black", font=font, anchor="rm")
    draw.text(((left + right) / 2, 10), title, fill="black", font=font, anchor="mt")
    draw.text(((left + right) / 2, size[1] - 8), x_label, fill="black", font=font, anchor="mb")
    draw.text((6, top - 20), y_label, fill="black", font=font)
    for i, (name, (xs, ys)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        line = [at(x, y) for x, y in zip(xs, ys) if finite(y)]
        if len(line) > 1:
            draw.line(line, fill=color, width=2)
        for px, py in line:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
        draw.line([right - 170, top + 12 + 18 * i, right - 150, top + 12 + 18 * i], fill=color, width=3)
        draw.text((right - 145, top + 12 + 18 * i), name, fill="black", font=font, anchor="lm")
    return image


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def save_png(image: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def panel(frames: np.ndarray, source: str) -> Rollout:
    """Frames as a Rollout (save_gif's record); only the pixels mean anything."""
    steps = frames.shape[0] - 1
    return Rollout(pixels=np.ascontiguousarray(frames), agent_pos=np.zeros((steps + 1, 9), np.float32),
                   action=np.zeros((steps, 7), np.float32), reward=np.zeros(steps, np.float32),
                   terminated=np.zeros(steps, bool), truncated=np.zeros(steps, bool), source=source)


def fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def save_report(out_dir: Path, lines: list[str], results: Any) -> Path:
    """Write report.md (the lines) and results.json (the results as JSON) into out_dir; report.md's path."""
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    atomic_write_text(out_dir / "results.json", json.dumps(to_json(results), indent=1))
    return path


def add_scalars(writer: Any, prefix: str, values: dict[str, float], step: int = 0) -> None:
    """Each finite number among the values as the TensorBoard scalar <prefix>/<name> at `step`."""
    for name, value in values.items():
        if isinstance(value, (int, float, np.number)) and finite(value):
            writer.add_scalar(f"{prefix}/{name}", value, step)

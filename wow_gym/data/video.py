"""Lossless mp4 video for episode frames: encode uint8 [N, H, W, 3] arrays with PyAV and decode them back.

The default codec is libx264rgb at qp 0, which stores RGB losslessly (frames decode bit-exact). Where the
local FFmpeg lacks it, libx264 in yuv444p at qp 0 is used: lossless in YUV, so only the RGB<->YUV
conversion rounds (max abs error of a few levels, PSNR above 45 dB).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from wow_gym.checks import check_frames


@dataclass(frozen=True)
class VideoCodec:
    """An H.264 encoder setting: the FFmpeg encoder, its pixel format and options."""

    name: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    lossless: bool = False


LOSSLESS_RGB = VideoCodec("libx264rgb", "rgb24", {"qp": "0", "preset": "medium"}, lossless=True)
LOSSLESS_YUV444 = VideoCodec("libx264", "yuv444p", {"qp": "0", "preset": "medium"}, lossless=False)


def default_codec() -> VideoCodec:
    """The best available codec: lossless RGB H.264, else lossless-in-YUV 4:4:4 H.264."""
    available = av.codecs_available
    if "libx264rgb" in available:
        return LOSSLESS_RGB
    if "libx264" in available:
        return LOSSLESS_YUV444
    raise RuntimeError(
        "PyAV's FFmpeg has neither libx264rgb nor libx264; install the PyPI wheel of `av`, which bundles both"
    )


def encode_video(frames: np.ndarray, fps: int, codec: VideoCodec | None = None) -> bytes:
    """Encode uint8 frames [N, H, W, 3] as an mp4 at fps and return the file's bytes."""
    frames = check_frames(frames, "frames to encode")
    codec = codec or default_codec()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(codec.name, rate=Fraction(fps))
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = codec.pix_fmt
        stream.options = dict(codec.options)
        stream.time_base = Fraction(1, fps)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def decode_video(source: str | os.PathLike | bytes) -> np.ndarray:
    """Decode every frame of an mp4 (a path or the file's bytes) into uint8 [N, H, W, 3] RGB."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
    with av.open(handle, "r") as container:
        stream = container.streams.video[0]
        frames = [_rgb(frame) for frame in container.decode(stream)]
    if not frames:
        raise ValueError(f"video {_name(source)} holds no frames")
    return np.stack(frames)


def frame_error(reference: np.ndarray, decoded: np.ndarray) -> tuple[float, int]:
    """PSNR in dB (inf when identical) and max absolute error between two uint8 frame stacks."""
    if reference.shape != decoded.shape:
        raise ValueError(f"frame stacks differ in shape: {reference.shape} vs {decoded.shape}")
    diff = reference.astype(np.int16) - decoded.astype(np.int16)
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
    return psnr, int(np.abs(diff).max(initial=0))


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as RGB [H, W, 3]; PyAV reorders planar GBR itself, much faster than swscale."""
    if frame.format.name == "gbrp":
        return frame.to_ndarray()
    return frame.to_ndarray(format="rgb24")


def _name(source: str | os.PathLike | bytes) -> str:
    return "<bytes>" if isinstance(source, bytes) else os.fspath(source)

"""The mp4 codec: lossless (or >= 45 dB) round trips and clear errors on bad input."""

import numpy as np
import pytest

from wow_gym.data import decode_video, default_codec, encode_video, frame_error
from wow_gym.data.video import LOSSLESS_YUV444


def _scene(frames: int = 20, size: int = 64) -> np.ndarray:
    """Smooth gradients with a moving square: closer to rendered frames than noise."""
    y, x = np.mgrid[0:size, 0:size]
    video = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        video[t, ..., 0] = (x * 4 + t) % 256
        video[t, ..., 1] = (y * 4) % 256
        video[t, ..., 2] = 128
        video[t, 10 + t : 20 + t, 10:20] = (255, 0, 0)
    return video


@pytest.mark.parametrize("kind", ["noise", "scene"])
def test_default_codec_round_trip_is_lossless_or_above_45_db(kind):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 32, 48, 3), dtype=np.uint8) if kind == "noise" else _scene()
    decoded = decode_video(encode_video(frames, fps=20))
    psnr, max_error = frame_error(frames, decoded)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert psnr >= 45.0
    if default_codec().lossless:
        assert max_error == 0


def test_yuv444_fallback_is_above_45_db():
    frames = _scene()
    psnr, max_error = frame_error(frames, decode_video(encode_video(frames, fps=20, codec=LOSSLESS_YUV444)))
    assert psnr >= 45.0 and max_error <= 4


def test_decode_reads_paths_and_odd_sizes(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (3, 15, 17, 3), dtype=np.uint8)
    path = tmp_path / "clip.mp4"
    path.write_bytes(encode_video(frames, fps=10))
    assert decode_video(path).shape == frames.shape


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 8, 3), np.float32), np.zeros((0, 8, 8, 3), np.uint8)],
)
def test_encode_rejects_what_is_not_uint8_rgb_frames(bad):
    with pytest.raises(ValueError, match=r"uint8 \(T, H, W, 3\)"):
        encode_video(bad, fps=20)


def test_frame_error_reports_psnr_and_max_error():
    a = np.zeros((1, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] = 10
    psnr, max_error = frame_error(a, b)
    assert max_error == 10 and np.isclose(psnr, 10 * np.log10(255**2 / (100 / 48)))
    assert frame_error(a, a) == (float("inf"), 0)

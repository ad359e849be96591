"""Metrics shared by every model and check: frame quality (PSNR, SSIM), trajectory distances (DTW,
Fréchet) and binary-classification figures (accuracy, F1, false-positive rate, ROC AUC)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

# Identical uint8 frames have infinite PSNR; capping keeps means finite. 100 dB is above the PSNR of any
# two different uint8 frames up to 256x256 (one level off in one value), so the cap only marks "identical".
PSNR_CAP_DB = 100.0

# -- frames ------------------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, cap_db: float = PSNR_CAP_DB) -> np.ndarray:
    """PSNR in dB of each pair of frames [..., H, W, C]; identical frames give cap_db instead of inf."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        return np.minimum(10.0 * np.log10(data_range**2 / mse), cap_db)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, chunk: int = 512) -> np.ndarray:
    """Mean SSIM of each pair of frames [..., H, W, C] (Wang et al. 2004), averaged over channels.

    Hand-written (11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, valid region only, as in the paper)
    so that one metric does not add scikit-image or torchmetrics to the dependencies.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or min(a.shape[-3:-1]) < 11:
        raise ValueError(f"ssim needs two stacks of the same shape with frames of at least 11x11, "
                         f"got {a.shape} and {b.shape}")
    lead, (h, w, c) = a.shape[:-3], a.shape[-3:]
    x_all, y_all = a.reshape(-1, h, w, c), b.reshape(-1, h, w, c)
    window = _gaussian_window().expand(c, 1, 11, 11)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = []
    for i in range(0, x_all.shape[0], chunk):
        x = torch.as_tensor(x_all[i:i + chunk], dtype=torch.float64).permute(0, 3, 1, 2)
        y = torch.as_tensor(y_all[i:i + chunk], dtype=torch.float64).permute(0, 3, 1, 2)
        mx, my = F.conv2d(x, window, groups=c), F.conv2d(y, window, groups=c)
        sxx = F.conv2d(x * x, window, groups=c) - mx**2
        syy = F.conv2d(y * y, window, groups=c) - my**2
        sxy = F.conv2d(x * y, window, groups=c) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
        out.append(s.mean(dim=(1, 2, 3)))
    return torch.cat(out).numpy().reshape(lead)


# -- trajectory distances ----------------------------------------------------------------------------------


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(a, np.float64)[:, None] - np.asarray(b, np.float64)[None], axis=-1)


def dtw_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Dynamic time warping of two point sequences [N, D], [M, D]: the least summed distance over a
    monotone alignment, divided by the alignment's length (so it reads as a mean distance)."""
    cost = _pairwise(a, b)
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    length = np.zeros((n + 1, m + 1))
    total[0, 0] = 0.0
    for i in range(1, n + 1):  # O(NM) in Python; the sequences are episode-long (~100 steps)
        for j in range(1, m + 1):
            moves = ((total[i - 1, j - 1], length[i - 1, j - 1]), (total[i - 1, j], length[i - 1, j]),
                     (total[i, j - 1], length[i, j - 1]))
            best, steps = min(moves, key=lambda x: x[0])
            total[i, j] = cost[i - 1, j - 1] + best
            length[i, j] = steps + 1
    return float(total[n, m] / length[n, m])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Discrete Fréchet distance of two point sequences: the shortest leash for a monotone walk of both."""
    cost = _pairwise(a, b)
    n, m = cost.shape
    ca = np.empty((n, m))
    for i in range(n):
        for j in range(m):
            prev = 0.0 if i == 0 and j == 0 else min(
                ca[i - 1, j] if i else np.inf, ca[i, j - 1] if j else np.inf,
                ca[i - 1, j - 1] if i and j else np.inf)
            ca[i, j] = max(prev, cost[i, j])
    return float(ca[-1, -1])


# -- binary verdicts ---------------------------------------------------------------------------------------


def binary_figures(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and false-positive rate of boolean predictions."""
    p, t = np.asarray(predicted, bool), np.asarray(truth, bool)
    tp, fp, fn, tn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum()
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"n": float(len(p)), "positives": float(t.sum()), "accuracy": float((p == t).mean()) if len(p) else float("nan"),
            "precision": float(precision), "recall": float(recall), "f1": float(f1),
            "false_positive_rate": float(fp / (fp + tn)) if fp + tn else float("nan")}


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (ties count half)."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if not len(positive) or not len(negative):
        return float("nan")
    ranks = rankdata(np.concatenate([positive, negative]))
    return float((ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2)
                 / (len(positive) * len(negative)))


def bootstrap_interval(values: np.ndarray, resamples: int, rng: np.random.Generator) -> list[float]:
    """[mean, low, high]: the 95 % percentile bootstrap interval of the mean over the values' first axis
    (episodes, starts); values that are not finite are left out."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return [float("nan")] * 3
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    return [float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]

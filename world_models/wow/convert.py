"""The released WoW weights as diffusers folders (what `wow-gym convert-wow` runs).

WoW-1-DiT-2B is a Cosmos-Predict2-2B Video2World DiT fine-tune released as one `.pt` in NVIDIA's imaginaire
layout (`net.` or `net_ema.` keys, possibly wrapped as {"model": ...}). WoW-1-Wan-14B is a Wan2.1-I2V-14B DiT
in the original Wan naming (DiffSynth), shipped as the Wan2.1 DiT shards plus `WoW_video_dit.pt`, the
fine-tune, whose tensors replace the shards'.

diffusers' own converters do the renaming (`convert_cosmos_transformer_checkpoint_to_diffusers`, which picks
its Cosmos 2.0 table by itself, and `convert_wan_transformer_to_diffusers`). This module adds only what they
leave to the caller: unwrapping and prefix stripping, merging files with the overlay last, a check of every
name and shape against the model before any weight is read, the dtype, and an atomic diffusers folder with
the base pipeline's other components beside the transformer and a conversion.json saying what was done.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import CosmosTransformer3DModel, ModelMixin, WanTransformer3DModel
from diffusers.loaders.single_file_utils import (
    convert_cosmos_transformer_checkpoint_to_diffusers,
    convert_wan_transformer_to_diffusers,
)
from safetensors import safe_open
from tqdm import tqdm

from wow_gym.provenance import write_run_metadata

__all__ = ["ARCHITECTURES", "Architecture", "CheckpointFiles", "ConversionError", "ConvertWoWConfig",
           "ConvertedFolder", "check_against_model", "check_base", "checkpoint_paths", "convert_names",
           "convert_wow", "copy_base_components", "empty_model", "load_weights", "model_config", "sha256_file"]

OVERLAY_NAME = "wow_video_dit.pt"  # WoW-1-Wan-14B's fine-tune: it must come after the base shards
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# Wrappers a training checkpoint keeps its state dict under; the EMA ones are tried first when ema=true.
WRAPPERS = ("state_dict", "model", "module", "net")
EMA_WRAPPERS = ("ema", "model_ema", "ema_model", "net_ema")
SHOWN = 20  # names listed in an error before "... and N more"


class ConversionError(ValueError):
    """A checkpoint, config or folder that cannot be converted as asked."""


@dataclass(frozen=True)
class Architecture:
    """One released model: its diffusers class, diffusers' converter and how its released keys are named."""

    name: str
    model_class: type[ModelMixin]
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    roots: tuple[str, ...]  # top-level module names of the released layout: whatever precedes one is a prefix
    canonical_prefix: str  # the prefix diffusers' converter reads the keys with
    fetch_hint: str  # where the base diffusers folder comes from


ARCHITECTURES = {
    "dit-2b": Architecture(
        "dit-2b", CosmosTransformer3DModel, convert_cosmos_transformer_checkpoint_to_diffusers,
        roots=("x_embedder", "pos_embedder", "extra_pos_embedder", "t_embedder", "t_embedding_norm", "blocks",
               "final_layer", "accum_video_sample_counter", "accum_image_sample_counter", "accum_iteration",
               "accum_train_in_hours"),
        # the converter strips "net." itself and tells Cosmos 1.0 from 2.0 by a "net."-prefixed key
        canonical_prefix="net.",
        fetch_hint="nvidia/Cosmos-Predict2-2B-Video2World"),
    "wan-14b": Architecture(
        "wan-14b", WanTransformer3DModel, convert_wan_transformer_to_diffusers,
        roots=("patch_embedding", "text_embedding", "time_embedding", "time_projection", "blocks", "head",
               "img_emb"),
        canonical_prefix="",
        fetch_hint="Wan-AI/Wan2.1-I2V-14B-720P-Diffusers"),
}


@dataclass
class ConvertWoWConfig:
    """What to convert, from where, into where (experiments/conf/convert_wow.yaml documents each key)."""

    model: str = "dit-2b"
    checkpoint: str | list[str] | None = None
    base: str | None = None
    config: str | None = None
    out: str | None = None  # None: outputs/convert-wow/<model>
    dtype: str = "bfloat16"
    overwrite: bool = False
    link: bool = False
    ema: bool = True
    max_shard_size: str = "5GB"
    sha256: bool = True
    progress: bool = True


@dataclass(frozen=True)
class ConvertedFolder:
    """A written diffusers folder and what conversion.json says about it."""

    path: Path
    record: dict[str, Any]


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return f"[{shown}{f', ... and {len(names) - SHOWN} more' if len(names) > SHOWN else ''}]"


def _unwrap(obj: Any, path: Path, ema: bool) -> dict[str, torch.Tensor]:
    """The tensors of a loaded .pt, looking inside the wrappers training code saves the state dict under."""
    order = (*EMA_WRAPPERS, *WRAPPERS) if ema else (*WRAPPERS, *EMA_WRAPPERS)
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in order if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise ConversionError(f"{path} holds no tensors at its top level nor under any of {list(order)}; "
                                  f"its keys are {_listed(sorted(map(str, obj)))}")
        obj = inner
    if not isinstance(obj, dict):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _load_pt(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        # files written before torch's zip format cannot be memory-mapped; they load whole
        return torch.load(path, map_location="cpu", weights_only=True)


class CheckpointFiles:
    """Released checkpoint files merged in order, a later file's tensors replacing an earlier's: the
    names (prefix stripped) and shapes are known at once; a tensor is read only when asked for."""

    def __init__(self, paths: list[Path], arch: Architecture, ema: bool, progress: bool = True):
        self.arch, self.ema = arch, ema
        self.where: dict[str, tuple[int, str]] = {}  # stripped name -> (file index, name in that file)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.sources: list[dict[str, Any]] = []
        self._readers: list[Callable[[str], torch.Tensor]] = []
        for index, path in enumerate(tqdm(paths, desc="read checkpoint files", disable=not progress)):
            self._add(index, path)

    def _add(self, index: int, path: Path) -> None:
        if path.suffix == ".safetensors":
            handle = safe_open(str(path), framework="pt")
            names = list(handle.keys())
            shape_of = {n: tuple(handle.get_slice(n).get_shape()) for n in names}
            self._readers.append(handle.get_tensor)
        else:
            try:
                tensors = _unwrap(_load_pt(path), path, self.ema)
            except pickle.UnpicklingError as error:
                raise ConversionError(
                    f"{path} holds objects besides tensors that torch.load(weights_only=True) refuses to "
                    f"unpickle ({str(error).splitlines()[0]}); save its state dict alone "
                    "(torch.save(ckpt['model'], ...)) and convert that") from None
            names, shape_of = list(tensors), {n: tuple(t.shape) for n, t in tensors.items()}
            self._readers.append(tensors.__getitem__)
        prefix = self._prefix(names, path)
        kept = [n for n in names if n.startswith(prefix)]
        replaced = 0
        for name in kept:
            stripped = name[len(prefix):]
            replaced += stripped in self.where
            self.where[stripped] = (index, name)
            self.shapes[stripped] = shape_of[name]
        ignored = sorted(set(names) - set(kept))  # e.g. net.* when the net_ema.* weights are converted
        self.sources.append({"file": path.name, "path": str(path.resolve()), "bytes": path.stat().st_size,
                             "prefix": prefix, "tensors": len(kept), "replaced": replaced,
                             "ignored": len(ignored), "ignored_names": ignored[:SHOWN]})

    def _prefix(self, names: list[str], path: Path) -> str:
        """The wrapper prefix of a file's keys ("net.", "net_ema.", "model.", "" ...): whatever stands before
        the first top-level module name of the released layout; with both EMA and plain weights, per `ema`."""
        found: Counter[str] = Counter()
        for name in names:
            parts = name.split(".")
            root = next((i for i, part in enumerate(parts) if part in self.arch.roots), None)
            if root is not None:
                found["".join(f"{p}." for p in parts[:root])] += 1
        if not found:
            raise ConversionError(f"no tensor of {path} is named like a {self.arch.name} weight (names under "
                                  f"{', '.join(self.arch.roots[:6])}, ...); its names start {_listed(names)}; "
                                  f"is model={self.arch.name} the right model?")
        candidates = sorted(found)
        if len(candidates) > 1:
            candidates = [p for p in candidates if ("ema" in p) == self.ema] or candidates
        if len(candidates) > 1:
            raise ConversionError(f"{path} holds weights under several prefixes {sorted(found)}; "
                                  "which one to convert is ambiguous")
        return candidates[0]

    def tensor(self, stripped: str) -> torch.Tensor:
        """The tensor under a stripped name, from the last file that holds it."""
        index, name = self.where[stripped]
        return self._readers[index](name)


def _folder_files(folder: Path) -> list[Path]:
    """A checkpoint folder's *.safetensors shards, then the WoW fine-tune if the folder holds it (the
    WoW-1-Wan-14B release), so that a folder passed whole never leaves the fine-tune out."""
    overlay = [p for p in sorted(folder.iterdir()) if p.name.lower() == OVERLAY_NAME]
    files = sorted(folder.glob("*.safetensors")) + overlay
    if not files:
        raise ConversionError(f"checkpoint folder {folder} holds no *.safetensors shards nor {OVERLAY_NAME}")
    return files


def checkpoint_paths(checkpoint: str | list[str] | None) -> list[Path]:
    """The files of `checkpoint`, in order; a folder stands for its shards (and the WoW fine-tune in it)."""
    entries = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint or [])
    if not entries:
        raise ConversionError("no checkpoint given: pass checkpoint=<file> or checkpoint=[<files>]")
    paths: list[Path] = []
    for entry in map(Path, entries):
        if not entry.exists():
            raise ConversionError(f"checkpoint {entry} not found")
        paths += _folder_files(entry) if entry.is_dir() else [entry]
    overlay = [i for i, p in enumerate(paths) if p.name.lower() == OVERLAY_NAME]
    if overlay and overlay[-1] != len(paths) - 1:
        raise ConversionError(f"{paths[overlay[-1]].name} overlays the base shards, so it must come last in "
                              f"checkpoint=[...]; got {[p.name for p in paths]}")
    return paths


def convert_names(shapes: dict[str, tuple[int, ...]], arch: Architecture) -> dict[str, str]:
    """diffusers name -> released (stripped) name, by running diffusers' converter on shape-only tensors.

    Meta tensors let the whole key mapping (and its check against the model) run before a byte of weights
    is read, and let the weights then be read one at a time, straight into the target dtype: the Wan-14B
    shards are ~65 GB in float32, more than a machine should need to hold at once."""
    checkpoint, released = {}, {}
    for name, shape in shapes.items():
        placeholder = torch.empty(shape, device="meta")
        checkpoint[arch.canonical_prefix + name] = placeholder
        released[id(placeholder)] = name
    mapping = {}
    for new_name, tensor in arch.convert(checkpoint).items():
        if id(tensor) not in released:
            raise ConversionError(f"diffusers' {arch.convert.__name__} computed {new_name} from other tensors; "
                                  "this converter handles renames only")
        mapping[new_name] = released[id(tensor)]
    return mapping


def check_against_model(mapping: dict[str, str], shapes: dict[str, tuple[int, ...]],
                        model: ModelMixin) -> dict[str, list[str]]:
    """Missing, unexpected and shape-mismatched names of the converted checkpoint against the model's own
    state dict (every parameter and persistent buffer)."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    got = {new: shapes[old] for new, old in mapping.items()}
    return {
        "missing": sorted(set(expected) - set(got)),
        "unexpected": [f"{n} (from {mapping[n]})" for n in sorted(set(got) - set(expected))],
        "shape_mismatches": [f"{n}: checkpoint {list(got[n])}, model {list(expected[n])}"
                             for n in sorted(set(got) & set(expected)) if got[n] != expected[n]],
    }


def _raise_if_unfit(problems: dict[str, list[str]], arch: Architecture, config_path: Path, files: int) -> None:
    if not any(problems.values()):
        return
    parts = [f"{len(v)} {k.replace('_', ' ')}: {_listed(v)}" for k, v in problems.items() if v]
    hint = (" (wan-14b: pass the Wan2.1-I2V-14B DiT shards first, then WoW_video_dit.pt)"
            if arch.name == "wan-14b" and files == 1 and problems["missing"] else "")
    raise ConversionError(f"the checkpoint does not fit {arch.model_class.__name__} as {config_path} "
                          f"describes it; " + "; ".join(parts) + f". Is model={arch.name} right, and is the "
                          f"config that of the released model{hint}?")


def model_config(arch: Architecture, base: str | None, config: str | None) -> tuple[dict[str, Any], Path]:
    """The transformer's diffusers config: `config`, else <base>/transformer/config.json."""
    if config is None and base is None:
        raise ConversionError(f"neither base nor config given: pass base=<the {arch.fetch_hint} folder> or "
                              "config=<a transformer config.json>")
    path = Path(config) if config is not None else Path(base) / "transformer" / "config.json"
    if not path.is_file():
        raise ConversionError(f"transformer config {path} not found")
    values = json.loads(path.read_text())
    declared = values.get("_class_name")
    if declared and declared != arch.model_class.__name__:
        raise ConversionError(f"{path} configures a {declared}; model={arch.name} needs a "
                              f"{arch.model_class.__name__} config ({arch.fetch_hint})")
    return values, path


def empty_model(arch: Architecture, values: dict[str, Any]) -> ModelMixin:
    """The diffusers model on the meta device: its names and shapes, no memory for weights."""
    with torch.device("meta"):
        return arch.model_class.from_config(values)


def _cast(tensor: torch.Tensor, dtype: torch.dtype, keep_fp32: bool) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor
    # diffusers upcasts these modules to float32 whenever it loads the model; storing them narrower would
    # lose their precision for good
    return tensor.to(torch.float32 if keep_fp32 else dtype).contiguous()


def load_weights(files: CheckpointFiles, mapping: dict[str, str], dtype: torch.dtype,
                 keep_fp32_modules: list[str], progress: bool = True) -> dict[str, torch.Tensor]:
    """The converted state dict, each tensor read from its file and cast on its own."""
    return {new: _cast(files.tensor(old), dtype, any(m in new.split(".") for m in keep_fp32_modules))
            for new, old in tqdm(mapping.items(), desc="convert tensors", disable=not progress)}


def sha256_file(path: Path, progress: bool = True) -> str:
    """The sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     desc=f"sha256 {path.name}", disable=not progress) as bar:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def check_base(base: Path, arch: Architecture) -> None:
    """Refuse a base folder that is not a diffusers pipeline around arch's transformer."""
    index = base / "model_index.json"
    if not index.is_file():
        raise ConversionError(f"base {base} has no model_index.json; pass the diffusers folder of "
                              f"{arch.fetch_hint}")
    declared = json.loads(index.read_text()).get("transformer")
    if declared and declared[-1] != arch.model_class.__name__:
        raise ConversionError(f"base {base} is a pipeline around a {declared[-1]}; model={arch.name} needs one "
                              f"around a {arch.model_class.__name__} ({arch.fetch_hint})")


def copy_base_components(base: Path, dest: Path, link: bool, progress: bool = True) -> list[str]:
    """Every entry of the base pipeline folder except its transformer, copied (or symlinked) into dest."""
    entries = [e for e in sorted(base.iterdir()) if e.name != "transformer" and not e.name.startswith(".")]
    for entry in tqdm(entries, desc="link base components" if link else "copy base components",
                      disable=not progress):
        target = dest / entry.name
        if link:
            target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        elif entry.is_dir():
            shutil.copytree(entry, target)  # follows symlinks: an HF cache snapshot's point into blobs/
        else:
            shutil.copy2(entry, target)
    return [e.name for e in entries]


def _publish(partial: Path, out: Path, overwrite: bool) -> None:
    """Move the finished partial folder to out, replacing out only when asked."""
    if not out.exists():
        partial.rename(out)
        return
    if not overwrite:
        raise ConversionError(f"{out} exists; pass overwrite=true to replace it")
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    partial.rename(out)
    shutil.rmtree(old)


def _architecture(model: str) -> Architecture:
    if model not in ARCHITECTURES:
        raise ConversionError(f"unknown model {model!r}; expected one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[model]


def convert_wow(config: ConvertWoWConfig, record: dict[str, Any] | None = None) -> ConvertedFolder:
    """Convert the released checkpoint into a diffusers folder at config.out (built in <out>.partial, renamed
    when complete); `record`, the run's resolved config, is saved inside it with the git commit."""
    arch = _architecture(config.model)
    if config.dtype not in DTYPES:
        raise ConversionError(f"dtype={config.dtype!r}; expected one of {', '.join(DTYPES)}")
    out = Path(config.out or Path("outputs") / "convert-wow" / arch.name)
    if out.exists() and not config.overwrite:
        raise ConversionError(f"{out} exists; pass overwrite=true to replace it")
    paths = checkpoint_paths(config.checkpoint)
    values, config_path = model_config(arch, config.base, config.config)
    if config.base is not None:
        check_base(Path(config.base), arch)
    model = empty_model(arch, values)

    files = CheckpointFiles(paths, arch, config.ema, config.progress)
    mapping = convert_names(files.shapes, arch)
    problems = check_against_model(mapping, files.shapes, model)
    _raise_if_unfit(problems, arch, config_path, len(paths))
    state = load_weights(files, mapping, DTYPES[config.dtype], list(model._keep_in_fp32_modules or []),
                         config.progress)
    model.load_state_dict(state, strict=True, assign=True)

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a conversion killed half-way
    partial.mkdir(parents=True)
    try:
        model.save_pretrained(partial / "transformer", safe_serialization=True,
                              max_shard_size=config.max_shard_size)
        components = (copy_base_components(Path(config.base), partial, config.link, config.progress)
                      if config.base is not None else [])
        for source, path in zip(files.sources, paths):
            source["sha256"] = sha256_file(path, config.progress) if config.sha256 else None
        result = _conversion_record(config, arch, config_path, components, files, mapping, problems, state)
        (partial / "conversion.json").write_text(json.dumps(result, indent=2) + "\n")
        if record is not None:
            write_run_metadata(partial, record)
        _publish(partial, out, config.overwrite)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ConvertedFolder(out, result)


def _conversion_record(config: ConvertWoWConfig, arch: Architecture, config_path: Path, components: list[str],
                       files: CheckpointFiles, mapping: dict[str, str], problems: dict[str, list[str]],
                       state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What conversion.json says: the inputs, the versions and the verification counts."""
    return {
        "model": arch.name, "class": arch.model_class.__name__, "dtype": config.dtype,
        "config": str(config_path.resolve()), "base": str(Path(config.base).resolve()) if config.base else None,
        "base_components": components, "linked": config.link and bool(components),
        "diffusers": diffusers.__version__, "torch": torch.__version__, "sources": files.sources,
        "verification": {
            "keys_converted": len(mapping), **{k: len(v) for k, v in problems.items()},
            "parameters": sum(t.numel() for t in state.values()),
            "tensors_by_dtype": dict(Counter(str(t.dtype).removeprefix("torch.") for t in state.values())),
            # buffers diffusers recomputes instead of loading (RoPE tables, training counters)
            "dropped_by_diffusers": sorted(set(files.shapes) - set(mapping.values())),
        },
    }

"""Checkpoint files shared by every shipped model: model.safetensors + config.json, written atomically,
read back with a clear CheckpointError for each way a checkpoint can be unusable; and the one finder of
shipped checkpoints (`shipped_checkpoint`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.provenance import atomic_write_text
from wow_gym.registry import TASKS, task_info

CHECKPOINT_ROOT = Path(__file__).resolve().parent / "checkpoints"  # the shipped models
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# one world model for several tasks (world_models/video/shared.py): the tasks without a world model of their
# own imagine with it
SHARED_WORLD_MODEL = "tasks"


@dataclass(frozen=True)
class ShippedKind:
    """How a kind of shipped model is named and made: <root>/<task><suffix>/, trained by `train`."""

    what: str
    suffix: str
    train: str


# The naming rule of every shipped checkpoint: world_models/checkpoints/lift, lift-idm, lift-critic and
# policies/checkpoints/lift-policy.
SHIPPED_KINDS = {
    "world-model": ShippedKind("world model", "", "wow-gym train-world-model task={task}"),
    "idm": ShippedKind("FM-IDM", "-idm", "wow-gym train-idm task={task}"),
    "critic": ShippedKind("critic", "-critic", "wow-gym train-critic task={task}"),
    "policy": ShippedKind("policy", "-policy", "wow-gym train-policy task={task}` and "
                                               "`wow-gym ship-policy checkpoint=<its zip> task={task}"),
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message says what to do."""


def shipped_tasks(kind: str, root: Path = CHECKPOINT_ROOT) -> list[str]:
    """The tasks for which a model of `kind` is shipped under `root`."""
    return [name for name in TASKS if (shipped_path(name, kind, root) / CONFIG_FILE).is_file()]


def shipped_path(task: str, kind: str, root: Path = CHECKPOINT_ROOT) -> Path:
    """Where the shipped checkpoint of `kind` for `task` lives under `root`, whether or not it is there: the
    task's own folder, or for a world model without one, the shared world model's if that holds the task."""
    own = root / f"{task_info(task).name.lower()}{_kind(kind).suffix}"
    shared = root / SHARED_WORLD_MODEL
    if kind == "world-model" and not (own / CONFIG_FILE).is_file():
        return shared if task_info(task).name in _tasks_in(shared) else own
    return own


def _tasks_in(directory: Path) -> list[str]:
    """The tasks a shared (multi-task) checkpoint holds; [] where there is none or it is unreadable."""
    try:
        return list(json.loads((directory / CONFIG_FILE).read_text()).get("tasks", {}))
    except (OSError, ValueError, AttributeError):
        return []


def shipped_checkpoint(task: str, kind: str, root: Path = CHECKPOINT_ROOT) -> Path:
    """The shipped checkpoint directory of `kind` for `task`; CheckpointError naming what is shipped of that
    kind when there is none."""
    spec, name, path = _kind(kind), task_info(task).name, shipped_path(task, kind, root)
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"no {spec.what} is shipped for {name} (shipped {spec.what}s: "
                              f"{shipped_tasks(kind, root) or 'none'}); train one with "
                              f"`{spec.train.format(task=name.lower())}` and pass its checkpoint directory")
    return path


def _kind(kind: str) -> ShippedKind:
    if kind not in SHIPPED_KINDS:
        raise ValueError(f"unknown kind of shipped model {kind!r}; expected one of {sorted(SHIPPED_KINDS)}")
    return SHIPPED_KINDS[kind]


def save_checkpoint(directory: str | Path, module: torch.nn.Module | dict[str, torch.Tensor],
                    meta: dict[str, Any], dtype: torch.dtype = torch.float16) -> Path:
    """Write the module's state_dict (or these named tensors; floats as `dtype`) and `meta` as JSON, each
    atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = module if isinstance(module, dict) else module.state_dict()
    tensors = {k: v.detach().cpu().to(dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in state.items()}
    tmp = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp))
    atomic_write_bytes(directory / WEIGHTS_FILE, tmp.read_bytes())
    tmp.unlink()
    atomic_write_text(directory / CONFIG_FILE, json.dumps(meta, indent=1))
    return directory


def read_meta(directory: str | Path, what: str, train_command: str, version: int) -> dict[str, Any]:
    """The checkpoint's config.json after checking both files exist and the format version matches."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    for path in (config_path, directory / WEIGHTS_FILE):
        if not path.is_file():
            raise CheckpointError(f"{what} checkpoint {directory} has no {path.name}; expected a directory "
                                  f"written by `{train_command}` ({WEIGHTS_FILE} + {CONFIG_FILE})")
    try:
        meta = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); the checkpoint is corrupt, "
                              "retrain or restore it") from None
    found = meta.get("format_version") if isinstance(meta, dict) else None
    if found != version:
        raise CheckpointError(f"{directory} has {what} checkpoint format version {found!r}, this wow_gym reads "
                              f"version {version}; retrain with `{train_command}` or install the wow_gym "
                              "version that wrote it")
    return meta


def read_weights(directory: str | Path, train_command: str) -> dict[str, torch.Tensor]:
    """Every tensor of model.safetensors; CheckpointError for a corrupt or truncated file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = Path(directory) / WEIGHTS_FILE
    try:
        return load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path} is corrupt or truncated ({exc}); restore it from git or "
                              f"retrain with `{train_command}`") from None


def load_weights(directory: str | Path, module: torch.nn.Module, train_command: str,
                 tensors: dict[str, torch.Tensor] | None = None) -> None:
    """Load model.safetensors (or `tensors` read from it) into `module` (cast to its dtypes), checking every
    tensor name and shape."""
    weights_path = Path(directory) / WEIGHTS_FILE
    if tensors is None:
        tensors = read_weights(directory, train_command)
    expected = module.state_dict()
    bad = [k for k, v in expected.items() if k not in tensors or tuple(tensors[k].shape) != tuple(v.shape)]
    extra = sorted(set(tensors) - set(expected))
    if bad or extra:
        raise CheckpointError(f"{weights_path} does not match its {CONFIG_FILE}: {len(bad)} missing or "
                              f"mis-shaped tensors (e.g. {bad[:3]}), {len(extra)} unexpected; the files "
                              "come from different runs, retrain or restore both")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})

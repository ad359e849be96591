"""Compose a Hydra config from key=value overrides and turn it into the library's typed config."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent / "conf"
T = TypeVar("T")


def load_config(name: str, overrides: list[str], doc: str) -> DictConfig | None:
    """Compose conf/<name>.yaml with overrides; print help and return None for --help/-h."""
    if any(a in ("-h", "--help") for a in overrides):
        print(doc.strip() + "\n")
        print(f"config ({CONF_DIR / (name + '.yaml')}); override any key with key=value:\n")
        print((CONF_DIR / f"{name}.yaml").read_text())
        return None
    bad = [a for a in overrides if "=" not in a]
    if bad:
        raise SystemExit(f"wow-gym: arguments must be key=value overrides, got {bad}; see --help")
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return compose(config_name=name, overrides=overrides)
    except HydraException as error:
        raise SystemExit(f"wow-gym: bad override for {name}: {error}") from None


def to_dataclass(cls: type[T], cfg: DictConfig | dict[str, Any]) -> T:
    """Build dataclass cls from a config mapping, recursing into dataclass fields; unknown keys are errors."""
    values = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise SystemExit(f"wow-gym: unknown config keys {unknown} for {cls.__name__}; expected {sorted(fields)}")
    kwargs = {}
    for key, value in values.items():
        field_type = fields[key].type
        target = _dataclass_type(cls, field_type)
        kwargs[key] = to_dataclass(target, value) if target and isinstance(value, dict) else value
    return cls(**kwargs)


def _dataclass_type(owner: type, annotation: Any) -> type | None:
    if isinstance(annotation, str):
        module = sys.modules[owner.__module__]
        annotation = eval(annotation.split("|")[0].strip(), vars(module))  # noqa: S307 - our own annotations
    return annotation if dataclasses.is_dataclass(annotation) else None


def run_dir(command: str, root: str = "outputs") -> Path:
    """A fresh outputs/<command>/<timestamp>/ folder for one run."""
    path = Path(root) / command / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_trainer(name: str, argv: list[str], doc: str, make_trainer: Callable[[DictConfig], Any]) -> tuple[Any, Any] | None:
    """Compose conf/<name>.yaml, build the trainer, record the resolved config and commit in its `out`, run
    it: (trainer, what run() returned), or None for --help. Ctrl-C says how to resume and exits 130."""
    from wow_gym.provenance import write_run_metadata

    cfg = load_config(name, argv, doc)
    if cfg is None:
        return None
    trainer = make_trainer(cfg)
    write_run_metadata(trainer.out, OmegaConf.to_container(cfg, resolve=True))
    try:
        return trainer, trainer.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume from {trainer.stage_dir}")
        raise SystemExit(130) from None


def start_run(name: str, argv: list[str], doc: str, command: str) -> tuple[dict[str, Any], Path] | None:
    """Compose conf/<name>.yaml for a run that writes into `out` (null: outputs/<command>/<timestamp>):
    (the resolved values without `out`, the folder, holding the config and commit), or None for --help."""
    from wow_gym.provenance import write_run_metadata

    cfg = load_config(name, argv, doc)
    if cfg is None:
        return None
    values = OmegaConf.to_container(cfg, resolve=True)
    out = Path(values.pop("out") or run_dir(command))
    out.mkdir(parents=True, exist_ok=True)
    write_run_metadata(out, {**values, "out": str(out)})
    return values, out

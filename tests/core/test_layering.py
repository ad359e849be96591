"""Imports flow one way: experiments -> policies -> envs -> world_models -> wow_gym (core).

Every import statement of every module is checked, including those inside functions. Strings that name a
module (the registry's entry points, the CLI's dispatch table) are not imports and are allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folder -> the package it is installed as (pyproject.toml [tool.setuptools] package-dir)
FOLDERS = {"wow_gym": "wow_gym", "envs": "wow_gym.envs", "world_models": "wow_gym.world_models",
           "policies": "wow_gym.policies", "experiments": "wow_gym.experiments"}
LAYERS = ("core", "world_models", "envs", "policies", "experiments")  # lowest first
CONFIG_PACKAGES = ("hydra", "omegaconf")  # read only by experiments/


def layer_of(module: str) -> str | None:
    """The layer a `wow_gym...` module belongs to; None for a module outside the project."""
    parts = module.split(".")
    if parts[0] != "wow_gym":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS[1:] else "core"


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `tree`, relative imports resolved against `module`."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def violations(source: str, module: str, path: str, is_package: bool = False) -> list[str]:
    """`path:line: what` for each import of `source` (the module `module`) that breaks the layering."""
    layer = layer_of(module)
    allowed = set(LAYERS[:LAYERS.index(layer) + 1]) if layer else set(LAYERS)
    # one report per statement and rule (`from a import b` names both a and a.b)
    found: dict[tuple[int, str], str] = {}
    for line, name in sorted(set(imported_modules(ast.parse(source), module, is_package))):
        target = layer_of(name)
        if target is not None and target not in allowed:
            found.setdefault((line, target),
                             f"{path}:{line}: {layer} imports {name} (layer {target}, above it)")
        if name.split(".")[0] in CONFIG_PACKAGES and layer != "experiments":
            found.setdefault((line, "config"),
                             f"{path}:{line}: {layer} imports {name}; only experiments/ reads Hydra configs")
    return list(found.values())


def project_violations(root: Path) -> list[str]:
    """Every layering violation of the project's modules under `root`."""
    found = []
    for folder, package in FOLDERS.items():
        for file in sorted((root / folder).rglob("*.py")):
            rel = file.relative_to(root / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            module = ".".join([package, *parts])
            found += violations(file.read_text(), module, str(file.relative_to(root)), rel.name == "__init__")
    return found


def test_imports_flow_one_way():
    found = project_violations(ROOT)
    assert not found, "layering violations:\n" + "\n".join(found)


def test_every_module_is_checked():
    checked = {layer_of(".".join([p, "x"])) for p in FOLDERS.values()}
    assert checked == set(LAYERS)
    assert len(list((ROOT / "world_models").rglob("*.py"))) > 10  # the folders are where the test looks


def test_checker_catches_a_forbidden_import(tmp_path):
    for folder in FOLDERS:
        (tmp_path / folder / "sub").mkdir(parents=True)
    hidden = "import numpy\n\n\ndef f():\n    from wow_gym.envs.robosuite_env import RobosuiteEnv\n"
    (tmp_path / "world_models" / "sub" / "training.py").write_text(hidden)
    (tmp_path / "world_models" / "sub" / "relative.py").write_text("from ...policies import shipped\n")
    (tmp_path / "wow_gym" / "cli.py").write_text("import importlib\nimport wow_gym.experiments.demo\n")
    (tmp_path / "envs" / "sub" / "config.py").write_text("from omegaconf import DictConfig\n")
    (tmp_path / "policies" / "ok.py").write_text("from wow_gym.envs import sim\nx = 'wow_gym.experiments'\n")
    (tmp_path / "experiments" / "ok.py").write_text("import hydra\nfrom wow_gym.policies import shipped\n")

    found = project_violations(tmp_path)

    assert [line.split(": ")[0] for line in found] == [
        "wow_gym/cli.py:2", "envs/sub/config.py:1", "world_models/sub/relative.py:1",
        "world_models/sub/training.py:5"]
    assert "wow_gym.envs.robosuite_env" in found[3] and "Hydra" in found[1]

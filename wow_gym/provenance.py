"""What every run writes beside its outputs: the resolved config and the git commit it ran from."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from wow_gym.data.atomic import atomic_write_bytes


def git_commit(cwd: str | Path | None = None) -> dict[str, Any]:
    """The current git commit and whether the work tree has uncommitted changes (commit 'unknown' outside git)."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to path through a temporary file and a rename, so readers never see half a file."""
    atomic_write_bytes(Path(path), text.encode())


def write_run_metadata(out_dir: str | Path, config: dict[str, Any]) -> Path:
    """Write config.yaml (the resolved config) and run.json (commit, command, time) into out_dir."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    run = {
        **git_commit(),
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
    }
    atomic_write_text(out_dir / "run.json", json.dumps(run, indent=2) + "\n")
    return out_dir

"""Crash-safe file writes: a temporary file in the same folder, fsynced, then renamed over the target."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace path with data so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, value: Any) -> None:
    """Atomically write value as indented JSON."""
    atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    """Atomically write a pyarrow table as parquet."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def remove_temp_files(root: Path) -> list[Path]:
    """Delete temporary files left by an interrupted writer under root; return what was removed."""
    removed = sorted(root.rglob(f".*{TMP_SUFFIX}"))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Every experiment config composes and runs a tiny budget end to end, as a user would run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wow_gym.data import DatasetReader
from wow_gym.experiments.config_loading import CONF_DIR, load_config

CONFIGS = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_composes(name):
    cfg = load_config(name, [], "")
    assert cfg is not None and len(cfg) > 0


def _wow_gym(args, cwd):
    done = subprocess.run([sys.executable, "-m", "wow_gym.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_collect_tiny_budget_then_resume(tmp_path):
    args = ["collect", "task=lift", "policy=walk", "max_steps=8", "workers=2", "progress=false",
            f"root={tmp_path / 'ds'}"]
    _wow_gym([*args, "episodes=2"], tmp_path)
    out = _wow_gym([*args, "episodes=3"], tmp_path)
    assert "1 episodes written" in out and "2 already there" in out
    reader = DatasetReader(tmp_path / "ds")
    assert len(reader) == 3
    assert [reader[i].seed for i in range(3)] == [0, 1, 2]
    assert reader[2].num_steps == 8 and reader[2].truncated[-1]
    run = next((tmp_path / "ds" / "runs").iterdir())
    assert (run / "config.yaml").exists() and "commit" in json.loads((run / "run.json").read_text())


def test_bench_sim_tiny_budget(tmp_path):
    out = _wow_gym(["bench", "sim", "tasks=[Lift]", "settings=[none,64px-fast]", "vector_settings=[none]",
                    "steps=5", "warmup_steps=1", "progress=false"], tmp_path)
    assert "| Lift | none | 1 |" in out and "| Lift | none | 2 |" in out
    assert list(Path(tmp_path, "outputs", "bench-sim").glob("*/bench_sim.json"))


def test_eval_experts_tiny_budget(tmp_path):
    out = _wow_gym(["eval-experts", "tasks=[lift]", "seeds=1"], tmp_path)
    assert "| lift | 1 |" in out


def test_demo_tiny_budget(tmp_path):
    out = _wow_gym(["demo", "tasks=[lift,door]", "episodes_per_task=1", "max_steps=6", "progress=false",
                    f"out={tmp_path / 'demo'}"], tmp_path)
    assert "report:" in out
    for name in ("report.md", "contact_sheet.png", "lift.gif", "door.gif", "config.yaml", "run.json"):
        assert (tmp_path / "demo" / name).exists(), name


def test_bench_data_tiny_budget(tmp_path):
    out = _wow_gym(["bench", "data", "episodes=2", "steps=6", "seconds=0.5", "batch_size=4"], tmp_path)
    assert "action exact" in out and "sim_state exact" in out and "DIFFERS" not in out
    assert "samples/s" in out

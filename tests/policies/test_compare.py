"""compare-runs: train-policy run folders side by side, sim-twin success against RL minutes."""

import json
import subprocess
import sys

import pytest

from wow_gym.policies.compare import compare_runs, read_run


def _run(folder, env, points, rl_seconds, timesteps):
    folder.mkdir(parents=True)
    (folder / "curves.json").write_text(json.dumps(points))
    (folder / "state.json").write_text(json.dumps({"rl_seconds": rl_seconds, "timesteps": timesteps}))
    (folder / "config.yaml").write_text(f"env: {env}\neval:\n  episodes: 50\n")
    return folder


def test_runs_are_placed_on_rl_minutes_and_summarised(tmp_path):
    imagined = _run(tmp_path / "imagined", "WoW/Lift-Imagined-v0",
                    [{"timesteps": 0, "sim_success_rate": 0.5, "rl_seconds": 0.0},
                     {"timesteps": 4000, "sim_success_rate": 0.7, "rl_seconds": 600.0},
                     {"timesteps": 9000, "sim_success_rate": 0.66, "rl_seconds": 1800.0}], 1800.0, 9000)
    # a run written before points carried rl_seconds: placed by steps at its mean rate (1000 steps/min)
    sim = _run(tmp_path / "sim", "WoW/Lift-v0", [{"timesteps": 0, "sim_success_rate": 0.5},
                                                  {"timesteps": 15000, "sim_success_rate": 0.4},
                                                  {"timesteps": 30000, "sim_success_rate": 0.45}], 1800.0, 30000)
    assert read_run(sim).minutes == [0.0, 15.0, 30.0]
    runs = compare_runs([imagined, sim], tmp_path / "out", names=["imagination", "simulator"])
    assert runs[0].minutes == [0.0, 10.0, 30.0] and runs[0].episodes == 50
    assert runs[0].summary["gain_points"] == pytest.approx(16.0) and runs[0].summary["best"] == 0.7
    assert runs[1].summary["gain_points"] == pytest.approx(-5.0)
    table = (tmp_path / "out" / "compare.md").read_text()
    assert "| imagination | WoW/Lift-Imagined-v0 | 50 | 50% | 70% | 66% | +16 |" in table
    figures = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [f["name"] for f in figures] == ["imagination", "simulator"]
    assert (tmp_path / "out" / "compare.png").stat().st_size > 1000

    with pytest.raises(FileNotFoundError, match="not a train-policy run"):
        read_run(tmp_path / "nothing")
    with pytest.raises(ValueError, match="must name each"):
        compare_runs([imagined, sim], tmp_path / "out", names=["one"])
    done = subprocess.run([sys.executable, "-m", "wow_gym.cli", "compare-runs", f"runs=[{tmp_path / 'nothing'}]",
                           f"out={tmp_path / 'x'}"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "not a train-policy run" in done.stderr

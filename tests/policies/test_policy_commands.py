"""export-policy and deploy end to end, as a user runs them, on a tiny budget."""

import json
import subprocess
import sys

import numpy as np
import pytest
from stable_baselines3 import PPO

from wow_gym.policies.features import policy_kwargs
from wow_gym.policies.runner import read_log
from wow_gym.policies.shipped import load_policy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _command(module, args, cwd, ok=True):
    done = subprocess.run([sys.executable, "-m", f"wow_gym.experiments.{module}", *args], cwd=cwd,
                          check=False, capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def test_export_policy_then_deploy_on_the_sim(ppo, tmp_path):
    ppo.save(tmp_path / "ppo.zip")
    out = _command("export_policy", [f"checkpoint={tmp_path / 'ppo.zip'}", f"out={tmp_path / 'policy'}",
                                     "parity_observations=3"], tmp_path).stdout
    assert "parity: max |onnx - sb3| = " in out and "over 3 simulator observations" in out
    parity = json.loads((tmp_path / "policy" / "parity.json").read_text())
    assert parity["max_abs_difference"] < 1e-5
    for name in ("policy.onnx", "policy.json", "config.yaml", "run.json"):
        assert (tmp_path / "policy" / name).exists(), name
    assert json.loads((tmp_path / "policy" / "policy.json").read_text())["algorithm"] == "PPO"

    out = _command("deploy", [f"policy={tmp_path / 'policy'}", "arm=sim", "shadow=false", "episodes=2",
                              "max_steps=3", f"out={tmp_path / 'run'}"], tmp_path).stdout
    assert "sim arm, live: success rate 0% over 2 episodes" in out
    assert "stop reasons: max_steps=2" in out and "deadline misses:" in out
    assert "in-process SB3 policy from the same seeds: success rate 0%; runner and in-process agree on 100%" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["episodes"] == 2 and results["sent"] == 6
    assert results["in_process"]["success"] == [False, False]
    log = read_log(tmp_path / "run" / "steps.jsonl")
    assert [r["event"] for r in log].count("step") == 6 and log[-1]["event"] == "episode_end"
    assert (tmp_path / "run" / "config.yaml").exists()
    assert "commit" in json.loads((tmp_path / "run" / "run.json").read_text())


def test_ship_policy_writes_a_policy_that_acts_the_same(tmp_path, robot_env, sim_observations):
    model = PPO("MultiInputPolicy", robot_env, policy_kwargs=policy_kwargs(features_dim=32, net_arch=(32,)), seed=1,
                device="cpu")
    model.save(tmp_path / "bc.zip")
    folder = tmp_path / "lift-policy"
    out = _command("ship_policy", [f"checkpoint={tmp_path / 'bc.zip'}", f"out={folder}"], tmp_path).stdout
    assert f"as {folder}" in out
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["notes"] == {"source": str(tmp_path / "bc.zip")}
    shipped = load_policy(folder, env=robot_env)
    for observation in sim_observations:
        np.testing.assert_array_equal(shipped.predict(observation, deterministic=True)[0],
                                      model.predict(observation, deterministic=True)[0])


def test_commands_fail_with_a_message_not_a_traceback(tmp_path):
    for module, args, message in [
        ("deploy", [f"out={tmp_path / 'a'}"], "pass policy="),
        ("deploy", [f"policy={tmp_path}", f"out={tmp_path / 'b'}"], "policy.json not found"),
        ("export_policy", [f"checkpoint={tmp_path / 'none.zip'}", f"out={tmp_path / 'c'}"], "not found"),
        ("ship_policy", [f"checkpoint={tmp_path / 'none.zip'}", f"out={tmp_path / 'd'}"], "not found"),
    ]:
        done = _command(module, args, tmp_path, ok=False)
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr

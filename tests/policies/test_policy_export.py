"""ONNX export of SB3 policies: parity with predict(deterministic=True) on real Lift frames, the spec."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from wow_gym.policies.export import check_parity, export_policy, load_sb3
from wow_gym.policies.spec import ACTION_NAMES, AGENT_POS_NAMES, SPEC_VERSION

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _onnx_actions(onnx_path, observations):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = {"pixels": np.stack([o["pixels"] for o in observations]),
             "agent_pos": np.stack([o["agent_pos"] for o in observations])}
    return session.run(["action"], batch)[0]


@pytest.mark.parametrize("batch", [1, 5])
def test_ppo_parity_on_lift_observations_any_batch(ppo, exported_ppo, sim_observations, batch):
    observations = sim_observations[:batch]
    assert check_parity(ppo, exported_ppo / "policy.onnx", observations) < 1e-5
    actions = _onnx_actions(exported_ppo / "policy.onnx", observations)
    assert actions.shape == (batch, 7) and actions.dtype == np.float32
    # the graph reads the raw HWC uint8 frame: a different frame changes the action
    if batch == 5:
        assert np.abs(actions[0] - actions[4]).max() > 0


def test_ppo_clipping_is_inside_the_graph(robot_env, sim_observations, tmp_path, torch_thread, small_policy):
    """Large action weights push the Gaussian mean past [-1, 1]: ONNX must clip exactly like predict()."""
    from stable_baselines3 import PPO

    model = PPO("MultiInputPolicy", robot_env, policy_kwargs=small_policy(), n_steps=16, batch_size=16,
                seed=1, device="cpu")
    with torch.no_grad():
        model.policy.action_net.weight.mul_(1000.0)
    path = export_policy(model, tmp_path)
    actions = _onnx_actions(path, sim_observations)
    assert np.any(np.abs(actions) == 1.0) and np.all(np.abs(actions) <= 1.0)
    assert check_parity(model, path, sim_observations) < 1e-5


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_off_policy_actor_parity(algo, robot_env, sim_observations, tmp_path, torch_thread, small_policy):
    from stable_baselines3 import SAC, TD3

    cls = {"sac": SAC, "td3": TD3}[algo]
    model = cls("MultiInputPolicy", robot_env, policy_kwargs=small_policy(), buffer_size=10, seed=0,
                device="cpu")
    path = export_policy(model, tmp_path)
    assert check_parity(model, path, sim_observations) < 1e-5
    assert check_parity(model, path, sim_observations[:1]) < 1e-5
    actions = _onnx_actions(path, sim_observations)
    assert np.all(np.abs(actions) <= 1.0) and np.abs(actions).max() > 1e-3  # squashed, not all zero
    model.save(tmp_path / "model.zip")
    assert type(load_sb3(tmp_path / "model.zip")) is cls


def test_spec_describes_inputs_actions_and_provenance(exported_ppo):
    spec = json.loads((exported_ppo / "policy.json").read_text())
    assert spec["format_version"] == SPEC_VERSION
    assert (spec["task"], spec["env_id"], spec["instruction"]) == ("Lift", "WoW/Lift-v0", "lift the red cube")
    assert spec["algorithm"] == "PPO" and spec["source_checkpoint"] == "in-memory"
    assert len(spec["git"]["commit"]) in (40, len("unknown"))
    assert spec["control_freq"] == 20 and spec["image_size"] == [64, 64]
    assert spec["observation"] == {
        "pixels": {"shape": [64, 64, 3], "dtype": "uint8", "layout": "HWC", "range": [0, 255],
                   "normalisation": "x / 255 inside the graph"},
        "agent_pos": {"shape": [9], "dtype": "float32", "names": list(AGENT_POS_NAMES)},
    }
    action = spec["action"]
    assert action["names"] == list(ACTION_NAMES)
    assert action["low"] == [-1.0] * 7 and action["high"] == [1.0] * 7
    assert action["controller"] == "OSC_POSE" and "OSC_POSE deltas" in action["semantics"]
    assert spec["onnx"]["inputs"] == ["pixels", "agent_pos"] and spec["onnx"]["outputs"] == ["action"]
    session = ort.InferenceSession(str(exported_ppo / "policy.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert inputs["pixels"].type == "tensor(uint8)" and inputs["pixels"].shape[1:] == [64, 64, 3]
    assert isinstance(inputs["pixels"].shape[0], str)  # a named, dynamic batch axis
    assert not list(exported_ppo.glob(".*.tmp"))


def test_a_policy_reading_environment_state_is_refused(robot_env, tmp_path, torch_thread, small_policy):
    from stable_baselines3 import PPO

    full_env = robot_env.env  # the same Lift env with its privileged environment_state
    model = PPO("MultiInputPolicy", full_env, policy_kwargs=small_policy(), n_steps=16, batch_size=16,
                device="cpu")
    with pytest.raises(ValueError, match="environment_state.*real robot does not have"):
        export_policy(model, tmp_path)
    assert not (tmp_path / "policy.onnx").exists()


def test_load_sb3_tells_ppo_from_its_zip_and_rejects_others(ppo, tmp_path):
    ppo.save(tmp_path / "ppo.zip")
    assert type(load_sb3(tmp_path / "ppo.zip")).__name__ == "PPO"
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a stable-baselines3 zip"):
        load_sb3(tmp_path / "junk.zip")
    with pytest.raises(FileNotFoundError, match="expected a stable-baselines3 zip"):
        load_sb3(tmp_path / "missing.zip")

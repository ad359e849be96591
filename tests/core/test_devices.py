"""Device and bf16-autocast selection: "auto" picks the GPU when there is one, and bf16 where it pays."""

import pytest
import torch

from wow_gym.devices import cpu_has_bf16, resolve_autocast, resolve_device


def test_auto_device_is_the_gpu_when_present_else_the_cpu():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_auto_autocast_is_bf16_on_gpus_and_on_cpus_with_bf16_units():
    assert resolve_autocast("auto", "cuda") is True
    assert resolve_autocast("auto", "cpu") is cpu_has_bf16()
    assert resolve_autocast(False, "cuda") is False and resolve_autocast(True, "cpu") is True
    with pytest.raises(ValueError, match="autocast must be true, false or 'auto'"):
        resolve_autocast("bf16", "cpu")


def test_the_imagined_env_takes_the_auto_device_and_autocast():
    from wow_gym.envs.imagined_env import ImaginedVectorEnv

    env = ImaginedVectorEnv(num_envs=1, checkpoint=None, reward_model="heads", autocast="auto")
    try:
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        assert env.model.device.type == expected
        assert env.model.autocast is resolve_autocast("auto", expected)
    finally:
        env.close()

"""Device and bf16-autocast selection: "auto" picks the GPU when there is one, and bf16 where it pays; the
compile option's C++-compiler check and its wiring (compiling itself is lazy: the slow tier runs it)."""

import sys

import numpy as np
import pytest
import torch

from wow_gym.devices import check_compilable, cpu_has_bf16, resolve_autocast, resolve_device


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


def test_compile_names_the_missing_cpp_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(RuntimeError, match=r"needs a C\+\+ compiler .*/nonexistent/c\+\+.*compile=false"):
        check_compilable("cpu")
    check_compilable("cuda")  # GPU kernels come from Triton, not a host compiler
    monkeypatch.setenv("CXX", sys.executable)  # any executable on disk passes the check
    check_compilable("cpu")


def test_compile_marks_the_samplers_and_leaves_the_weights(monkeypatch):
    from wow_gym.world_models import WorldModel
    from wow_gym.world_models.video.imagination import load_world_model

    monkeypatch.setenv("CXX", sys.executable)
    model = WorldModel.random("dit-test", env_state_dim=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not model.compiled
    assert load_world_model(model.config.task, model=model, compile=True) is model
    assert model.compiled and model.dit._compiled_call_impl is not None
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(RuntimeError, match="compile=false"):
        load_world_model(model.config.task, model=WorldModel.random("dit-test", env_state_dim=10), compile=True)


@pytest.mark.slow
def test_a_compiled_world_model_imagines_what_the_eager_one_does():
    from wow_gym.world_models import WorldModel

    torch.manual_seed(0)
    eager = WorldModel.random("dit-test", env_state_dim=10)
    for p in eager.dit.parameters():  # adaLN-Zero starts as the identity; make the blocks do something
        p.data.add_(0.05 * torch.randn_like(p))
    compiled = WorldModel.random("dit-test", env_state_dim=10)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_samplers()
    rng = np.random.default_rng(0)
    k, size = eager.config.context_frames, eager.config.image_size
    pixels = rng.integers(0, 256, (4, k, size, size, 3), dtype=np.uint8)
    pose = np.broadcast_to(np.asarray(eager.stats["pose_mean"], np.float32), (4, k, eager.config.agent_pos_dim))
    actions = rng.uniform(-1, 1, (3, 4, 7)).astype(np.float32)
    outputs = []
    for model in (eager, compiled):
        state = model.start(pixels, pose, np.zeros((4, k - 1, 7), np.float32))
        generator = torch.Generator().manual_seed(0)
        outputs.append([model.step(state, a, generator, 2).latents for a in actions])
    for a, b in zip(*outputs):
        assert torch.allclose(a, b, atol=1e-4)

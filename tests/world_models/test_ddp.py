"""torchrun data parallelism: two CPU processes train the world model as one process does at the same global
batch, write one TensorBoard stream, and resume from the checkpoint rank 0 wrote when the run is killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.experiments.config_loading import load_config, to_dataclass
from wow_gym.world_models import WorldModel
from wow_gym.world_models.video.training import Trainer, TrainWorldModelConfig

STAGES = ("autoencoder", "pose", "objects", "heads", "probe", "dit")
DIT_STEPS, CHECKPOINT_EVERY = 120, 10
# Float reduction order (a mean over 4 rows against two means over 2) is the only difference: measured weight
# differences after these steps are ~5e-6, while a missing gradient average or a wrong shard moves most weights
# by ~1e-3. Adam's step lr * m / sqrt(v) does not shrink with the gradient, so a weight whose gradient is ~0 in
# both runs can step +-lr on float noise alone: one in a thousand may differ by more than TOLERANCE.
TOLERANCE, ALLOWED_FAR = 1e-4, 1e-3


def _overrides(data: Path, init: Path, out: Path) -> list[str]:
    """Every stage, a few steps at global batch 4, the DiT long enough to be killed in the middle."""
    few = "{steps: 3, batch_size: 4}"
    return [f"datasets=[{{root: {data}}}]", f"init={init}", f"out={out}", f"stages=[{','.join(STAGES)}]",
            *(f"{stage}={few}" for stage in STAGES if stage != "dit"), f"dit={{steps: {DIT_STEPS}, batch_size: 4}}",
            "latent_noise=0.0",  # the one draw made per process (see _train_autoencoder); 0: exact parity
            f"checkpoint_every={CHECKPOINT_EVERY}", "log_every=5", "threads=1", "device=cpu", "progress=false"]


def _torchrun(overrides: list[str], cwd: Path, command: str = "train-world-model") -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2",
               "-m", "wow_gym.cli", command, *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_mid_dit(process: subprocess.Popen, out: Path, timeout: float = 300) -> None:
    """SIGTERM torchrun once rank 0 has checkpointed the DiT stage part-way (torchrun stops both ranks)."""
    state, deadline = out / "stages" / "dit.pt", time.time() + timeout
    while not state.is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)  # torchrun stopping both ranks; the timeout is a safety net
    assert state.is_file(), f"no DiT checkpoint appeared; torchrun said:\n{output[-3000:]}"


def _stage_tensors(out: Path, stages: tuple[str, ...] = STAGES) -> dict[str, torch.Tensor]:
    """Every float weight (and the DiT's EMA) of every stage's saved state."""
    tensors = {}
    for stage in stages:
        saved = torch.load(out / "stages" / f"{stage}.pt", weights_only=False)
        assert saved["done"], stage
        for part in ("model", "probe", "reward", "ema"):
            for name, value in saved.get(part, {}).items():
                if value.is_floating_point():
                    tensors[f"{stage}/{part}/{name}"] = value
    return tensors


def _assert_same_weights(parallel: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert reference.keys() == parallel.keys()
    diffs = {name: (parallel[name] - value).abs() for name, value in reference.items()}
    far = sum(int((d > TOLERANCE).sum()) for d in diffs.values())
    worst = sorted(((d.max().item(), name) for name, d in diffs.items()), reverse=True)[:3]
    assert far <= ALLOWED_FAR * sum(d.numel() for d in diffs.values()), f"{far} weights differ; worst {worst}"


def _tensorboard_steps(events: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return {tag: [s.step for s in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


@pytest.mark.usefixtures("one_torch_thread")
def test_two_processes_train_like_one_at_the_same_global_batch_and_resume_when_killed(tmp_path, lift_data):
    init = WorldModel.random("dit-test", env_state_dim=10).save(tmp_path / "init")
    two, one = tmp_path / "two", tmp_path / "one"

    _kill_mid_dit(_torchrun(_overrides(lift_data, init, two), tmp_path), two)
    killed_at = torch.load(two / "stages" / "dit.pt", weights_only=False)
    assert not killed_at["done"] and killed_at["step"] % CHECKPOINT_EVERY == 0 and killed_at["step"] < DIT_STEPS
    finished = {s: (two / "stages" / f"{s}.pt").stat().st_mtime_ns for s in STAGES if s != "dit"}
    first_events = set((two / "tensorboard").glob("events.out.tfevents.*"))
    assert len(first_events) == 1  # rank 0 alone writes TensorBoard

    resumed = _torchrun(_overrides(lift_data, init, two), tmp_path)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output[-3000:]
    assert output.count("world model written to") == 1  # rank 0 alone reports
    assert (two / "checkpoint" / "model.safetensors").is_file()
    assert finished == {s: (two / "stages" / f"{s}.pt").stat().st_mtime_ns for s in finished}  # not retrained
    (events,) = set((two / "tensorboard").glob("events.out.tfevents.*")) - first_events
    logged = _tensorboard_steps(events)
    assert sorted({tag.split("/")[0] for tag in logged}) == ["dit"]  # the finished stages were skipped ...
    assert min(logged["dit/loss"]) == killed_at["step"] + 5 and max(logged["dit/loss"]) == DIT_STEPS  # ... dit resumed

    config = to_dataclass(TrainWorldModelConfig, load_config("train_world_model", _overrides(lift_data, init, one), ""))
    Trainer(config, RobosuiteEnv).run()  # one process, uninterrupted, the same global batch
    reference, parallel = _stage_tensors(one), _stage_tensors(two)
    assert any(k.startswith("heads/reward/") for k in reference)
    _assert_same_weights(parallel, reference)
    init_dit = WorldModel.load(init).dit.state_dict()
    assert any((parallel[f"dit/model/{k}"] - v.float()).abs().max() > 10 * TOLERANCE for k, v in init_dit.items())


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_idm_and_critic_train_on_two_processes_like_one(tmp_path, lift_data):
    """train-idm (with imagined rows and random shifts) and train-critic (masked means over clip labels) under
    torchrun against one process at the same global batch."""
    init = WorldModel.random("dit-test", env_state_dim=10).save(tmp_path / "wm")
    runs = {
        "train-idm": ([f"datasets=[{lift_data}]", f"world_model={init}", "width=8", "variants=[plain,fm-idm]",
                       "mask_head={steps: 4, batch_size: 4}", "idm={steps: 6, batch_size: 8}",
                       "pose_head={steps: 4, batch_size: 8}"],
                      ("mask_head", "idm-plain", "idm-fm-idm", "pose_head")),
        "train-critic": ([f"datasets=[{{root: {lift_data}}}]", f"world_model={init}", "width=32", "layers=1",
                          "per_kind=2", "train={steps: 10, batch_size: 8}"], ("critic",)),
    }
    for command, (overrides, stages) in runs.items():
        common = [*overrides, "threads=1", "device=cpu", "progress=false"]
        two, one = tmp_path / command / "two", tmp_path / command / "one"
        process = _torchrun([*common, f"out={two}"], tmp_path, command)
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output[-3000:]
        assert len(list((two / "tensorboard").glob("events.out.tfevents.*"))) == 1
        single = subprocess.run([str(Path(sys.executable).with_name("wow-gym")), command, *common, f"out={one}"],
                                check=False, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert single.returncode == 0, single.stderr[-3000:]
        assert (two / "checkpoint").is_dir() and (one / "checkpoint").is_dir()
        _assert_same_weights(_stage_tensors(two, stages), _stage_tensors(one, stages))

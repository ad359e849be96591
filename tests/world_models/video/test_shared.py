"""One world model shared by several tasks: trained on each task's real episodes, one checkpoint, loaded as
each task's own model (its camera, statistics and heads), found for a task without a model of its own, and
imagining that task's env with its twin's spaces."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from wow_gym.envs.collection import CollectConfig, collect
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.world_models import WorldModel
from wow_gym.world_models.checkpoint import CheckpointError, shipped_checkpoint, shipped_tasks
from wow_gym.world_models.video.shared import save_shared
from wow_gym.world_models.video.training import SharedTrainer, TrainWorldModelConfig

TINY = {"autoencoder": {"steps": 3, "batch_size": 4}, "pose": {"steps": 3, "batch_size": 4},
        "heads": {"steps": 2, "batch_size": 4}, "probe": {"steps": 2, "batch_size": 4},
        "dit": {"steps": 3, "batch_size": 4}}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, lift_data):
    """A shared Lift + Door model trained a few steps on real episodes of each."""
    root = tmp_path_factory.mktemp("shared")
    door = root / "door-expert"
    collect(CollectConfig(task="door", episodes=1, policy="expert", root=str(door), seed=5, workers=1,
                          max_steps=10, progress=False))
    datasets = [{"root": str(lift_data)}, {"root": str(door)}]
    config = TrainWorldModelConfig(task="lift", tasks=["lift", "door"], preset="dit-test", latent_channels=4,
                                   object_dynamics=False, datasets=datasets, out=str(root / "wm"),
                                   progress=False, checkpoint_every=2, **TINY)
    trainer = SharedTrainer(config, RobosuiteEnv)
    return trainer, trainer.run()


def test_one_checkpoint_holds_the_shared_parts_once_and_each_task_s_heads(shared):
    trainer, path = shared
    meta = json.loads((path / "config.json").read_text())
    assert list(meta["tasks"]) == ["Lift", "Door"] and meta["shared"] == ["autoencoder", "dit", "pose"]
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as handle:
        names = list(handle.keys())
    assert any(n.startswith("dit.") for n in names)
    assert not any(n.startswith("tasks.Lift.dit.") for n in names)  # held once
    assert any(n.startswith("tasks.Door.reward.") for n in names) and any(n.startswith("tasks.Lift.probe.")
                                                                        for n in names)
    lift, door = WorldModel.load(path, task="lift"), WorldModel.load(path, task="Door")
    assert (lift.config.task, door.config.task) == ("Lift", "Door")
    for name, model in (("Lift", lift), ("Door", door)):  # each its own task's state, as its episodes hold it
        assert model.config.env_state_dim == trainer.trainers[name].data.env_states.shape[1]
    assert lift.config.env_state_dim != door.config.env_state_dim
    assert lift.config.camera != door.config.camera  # each task's camera draws its gripper map
    for name, weight in lift.dit.state_dict().items():  # one DiT
        torch.testing.assert_close(weight, door.dit.state_dict()[name])
    assert not torch.equal(lift.reward.mlp[-1].weight, door.reward.mlp[-1].weight)  # its own heads
    # the trained task models, written in float16, are what loads
    own = trainer.trainers["Door"].model.reward.mlp[-1].weight.half().float()
    torch.testing.assert_close(door.reward.mlp[-1].weight, own)


def test_a_dataset_of_a_task_not_named_is_refused_from_the_command_line(shared, tmp_path):
    import subprocess
    import sys

    trainer, _ = shared
    door = trainer.trainers["Door"].config.datasets[0].root
    done = subprocess.run([sys.executable, "-m", "wow_gym.cli", "train-world-model", "tasks=[lift]",
                           "object_dynamics=false", f"datasets=[{{root: {door}}}]", f"out={tmp_path / 'wm'}"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "holds Door episodes, but tasks=['Lift']" in done.stderr


def test_a_shared_checkpoint_says_which_tasks_it_holds(shared, tmp_path):
    _, path = shared
    with pytest.raises(CheckpointError, match=r"shared by \['Door', 'Lift'\]: say which task"):
        WorldModel.load(path)
    with pytest.raises(CheckpointError, match=r"holds \['Door', 'Lift'\], not Stack"):
        WorldModel.load(path, task="stack")
    lift, door = WorldModel.random("dit-test", task="Lift"), WorldModel.random("dit-test", task="Door")
    with pytest.raises(ValueError, match="Door model's autoencoder is not the shared one"):
        save_shared({"Lift": lift, "Door": door}, tmp_path / "mixed", 1)


def test_a_task_without_its_own_model_imagines_with_the_shared_one(shared, tmp_path):
    import shutil

    _, path = shared
    root = tmp_path / "checkpoints"
    shutil.copytree(path, root / "tasks")
    (root / "lift").mkdir()  # Lift's own model (a stand-in folder with a config) comes first
    (root / "lift" / "config.json").write_text("{}")
    assert shipped_checkpoint("door", "world-model", root) == root / "tasks"
    assert shipped_checkpoint("lift", "world-model", root) == root / "lift"
    assert shipped_tasks("world-model", root) == ["Lift", "Door"]
    with pytest.raises(CheckpointError, match="no world model is shipped for Stack"):
        shipped_checkpoint("stack", "world-model", root)

    env = gym.make("WoW/Door-Imagined-v0", checkpoint=str(path), reward_model="heads", device="cpu")
    twin = gym.make("WoW/Door-v0")
    try:
        assert env.observation_space == twin.observation_space and env.action_space == twin.action_space
        observation, _ = env.reset(seed=0)
        moved, reward, *_ = env.step(np.ones(7, np.float32) * 0.5)
        assert moved["pixels"].shape == observation["pixels"].shape and np.isfinite(reward)
    finally:
        env.close()
        twin.close()


def test_a_shared_model_trains_on_from_a_shared_checkpoint(shared, tmp_path):
    trainer, path = shared
    datasets = [{"root": trainer.trainers[name].config.datasets[0].root} for name in ("Lift", "Door")]
    base = {"task": "lift", "preset": "dit-test", "latent_channels": 4, "object_dynamics": False,
            "datasets": datasets, "progress": False, **TINY}
    config = TrainWorldModelConfig(**base, tasks=["lift", "door"], init=str(path), motion_weight=2.0,
                                   out=str(tmp_path / "on"))
    assert config.train_stages == ["dit"]
    tuned = SharedTrainer(config, RobosuiteEnv).run()
    before, after = WorldModel.load(path, task="door"), WorldModel.load(tuned, task="door")
    for name, weight in before.reward.state_dict().items():  # the heads are the init's
        torch.testing.assert_close(after.reward.state_dict()[name], weight)
    assert before.stats == after.stats and before.config.camera == after.config.camera
    changed = [n for n, w in before.dit.state_dict().items() if not torch.equal(w, after.dit.state_dict()[n])]
    assert changed  # the DiT trained on
    lift = WorldModel.load(tuned, task="lift")
    for name, weight in lift.dit.state_dict().items():  # still one DiT
        torch.testing.assert_close(weight, after.dit.state_dict()[name])

    one_task = tmp_path / "lift-only"
    save_shared({"Lift": WorldModel.load(path, task="lift")}, one_task, 1)
    with pytest.raises(ValueError, match=r"holds \['Lift'\], not \['Door'\]"):
        TrainWorldModelConfig(**base, tasks=["lift", "door"], init=str(one_task), out=str(tmp_path / "x"))
    single = tmp_path / "single"
    WorldModel.load(path, task="lift").save(single)
    with pytest.raises(ValueError, match="is one task's world model"):
        TrainWorldModelConfig(**base, tasks=["lift", "door"], init=str(single), out=str(tmp_path / "y"))


def test_a_shared_model_carries_the_object_of_each_task_that_has_one(shared, tmp_path):
    """object_dynamics on a shared init: each task gets object dynamics of its own, trained on its data (Lift
    its cube's pose; Door its handle's and door's positions and the hinge's and handle's angles, no
    quaternion); the shared parts and the heads stay as they were."""
    trainer, path = shared
    datasets = [{"root": trainer.trainers[name].config.datasets[0].root} for name in ("Lift", "Door")]
    base = {"task": "lift", "tasks": ["lift", "door"], "preset": "dit-test", "latent_channels": 4,
            "datasets": datasets, "progress": False, "pixel_probe": False, **TINY}
    with pytest.raises(ValueError, match="object_map=false and pose_objects=false"):
        TrainWorldModelConfig(**base, object_map=True, out=str(tmp_path / "x"))
    with pytest.raises(ValueError, match=r"stages=\['objects'\]"):
        SharedTrainer(TrainWorldModelConfig(**base, init=str(path), out=str(tmp_path / "y")), RobosuiteEnv)
    config = TrainWorldModelConfig(**base, init=str(path), stages=["objects"],
                                   objects={"steps": 3, "batch_size": 4}, out=str(tmp_path / "objects"))
    carried = SharedTrainer(config, RobosuiteEnv).run()
    lift, door = WorldModel.load(carried, task="lift"), WorldModel.load(carried, task="door")
    assert lift.config.object_dims == list(range(7)) and lift.config.object_quaternion
    assert door.config.object_dims == [3, 4, 5, 0, 1, 2, 6, 13] and not door.config.object_quaternion
    assert "object_mean" in lift.stats and len(door.stats["object_mean"]) == 8
    before = WorldModel.load(path, task="door")
    for part in ("dit", "reward", "pose"):  # nothing else trained
        for name, weight in getattr(before, part).state_dict().items():
            torch.testing.assert_close(getattr(door, part).state_dict()[name], weight)
    episode = trainer.trainers["Lift"].data
    state = lift.start(episode.pixels[None, :1].numpy(), episode.poses[None, :1].numpy(),
                       environment_state=episode.env_states[:1].numpy())
    out = lift.step(state, np.zeros((1, 7), np.float32))
    # the carried cube (the gripper stands still, so it stays), with its offset from the gripper
    np.testing.assert_allclose(out.environment_state[0, :3], episode.env_states[0, :3].numpy(), atol=0.02)
    np.testing.assert_allclose(out.environment_state[0, 7:10],
                               out.environment_state[0, :3] - out.agent_pos[0, :3], atol=1e-5)
    data = trainer.trainers["Door"].data  # the door's state carried, its offsets from the gripper derived
    start = data.env_states[:1].repeat(2, 1).numpy()
    start[1, 6] = 0.5  # the second door starts open
    state = door.start(data.pixels[:1].repeat(2, 1, 1, 1, 1).numpy(), data.poses[:1].repeat(2, 1, 1).numpy(),
                       environment_state=start)
    out = door.step(state, np.zeros((2, 7), np.float32))
    carried = out.environment_state
    np.testing.assert_allclose(carried[:, [6, 13]], start[:, [6, 13]], atol=0.05)
    np.testing.assert_allclose(carried[:, 7:10], carried[:, 0:3] - out.agent_pos[:, :3], atol=1e-5)
    np.testing.assert_allclose(carried[:, 10:13], carried[:, 3:6] - out.agent_pos[:, :3], atol=1e-5)
    assert out.success.tolist() == [False, True]  # the hinge's angle decides, not the success head

    from wow_gym.data.dataset_reader import DatasetReader
    from wow_gym.tasks.door import shaped_reward

    episode = DatasetReader(trainer.trainers["Door"].config.datasets[0].root)[0]
    env = gym.make("WoW/Door-Imagined-v0", model=door, reward_model="state")  # robosuite's reward on state
    try:
        env.reset(seed=0, options={"episode": episode, "start": 1})
        observation, reward, _, _, info = env.step(episode.action[1])
    finally:
        env.close()
    terms = {k: info[f"reward_state_{k}"] for k in ("reach", "turn", "open")}
    expected = shaped_reward(observation["environment_state"][None], observation["agent_pos"][None],
                             np.array([info["is_success"]]))
    assert terms == pytest.approx({k: float(v[0]) for k, v in expected.items()})
    assert reward == pytest.approx(sum(terms.values())) and 0 < reward <= 1

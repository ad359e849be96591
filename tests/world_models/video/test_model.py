"""The world model's pieces on real data: checkpoints, clear errors, batched imagination, plans, training."""

import json

import numpy as np
import pytest
import torch

from wow_gym.data import DatasetReader
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.world_models import CheckpointError, WorldModel
from wow_gym.world_models.text import embed_instructions
from wow_gym.world_models.video.dit import DiTConfig, VideoDiT
from wow_gym.world_models.video.training import StageConfig, Trainer, TrainWorldModelConfig


@pytest.fixture(scope="module")
def tiny_model():
    return WorldModel.random("dit-test", env_state_dim=10)


def test_instruction_embeddings_are_unit_vectors_and_meaningful():
    e = embed_instructions(["lift the red cube", "pick up the red block", "open the door"])
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]  # paraphrases are closer than different tasks
    with pytest.raises(ValueError, match="non-empty"):
        embed_instructions([""])


def test_dit_attention_is_causal_over_frames():
    torch.manual_seed(0)
    dit = VideoDiT(DiTConfig(preset="dit-test", latent_channels=4, latent_size=8))
    # adaLN-Zero starts as the identity; perturb so that the blocks do something
    for p in dit.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    b = 2
    args = dict(noisy=torch.randn(b, 4, 8, 8), context=torch.randn(b, 2, 4, 8, 8), time=torch.rand(b),
                ctx_noise=torch.zeros(b), actions=torch.randn(b, 2, 7), text=torch.randn(b, 384),
                pose=torch.randn(b, 2, 9), keep_action=torch.ones(b, dtype=torch.bool),
                keep_text=torch.ones(b, dtype=torch.bool))
    out = dit(**args)
    assert out.shape == (b, 4, 8, 8)
    # the output depends on the oldest context frame (target attends to all earlier frames) ...
    changed = dict(args, context=args["context"].clone())
    changed["context"][:, 0] += 1.0
    assert not torch.allclose(dit(**changed), out)
    # ... and on the actions, unless the action condition is dropped
    other = dict(args, actions=-args["actions"])
    assert not torch.allclose(dit(**other), out)
    drop = torch.zeros(b, dtype=torch.bool)
    torch.testing.assert_close(dit(**dict(args, keep_action=drop)), dit(**dict(other, keep_action=drop)))
    # the mask: no token of an earlier frame attends to a later one
    assert not dit.mask[0, -1] and dit.mask[-1, 0]


def test_checkpoint_round_trip(tmp_path, tiny_model):
    tiny_model.save(tmp_path / "exact", dtype=torch.float32)
    loaded = WorldModel.load(tmp_path / "exact")
    for (k, a), (_, b) in zip(tiny_model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    half = WorldModel.load(tiny_model.save(tmp_path / "half"))  # the shipped default: float16 on disk
    for (k, a), (_, b) in zip(tiny_model.state_dict().items(), half.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=k)
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * (
        tmp_path / "exact" / "model.safetensors").stat().st_size
    assert loaded.config == tiny_model.config and loaded.stats == tiny_model.stats


def test_bad_checkpoints_fail_with_clear_messages(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="has no config.json"):
        WorldModel.load(tmp_path / "nowhere")
    ckpt = tiny_model.save(tmp_path / "ckpt")
    weights = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        WorldModel.load(ckpt)
    (ckpt / "model.safetensors").write_bytes(weights)
    meta = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(dict(meta, format_version=99)))
    with pytest.raises(CheckpointError, match="format version 99"):
        WorldModel.load(ckpt)
    meta["config"]["agent_pos_dim"] = 12  # weights no longer match the config
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match"):
        WorldModel.load(ckpt)
    with pytest.raises(CheckpointError, match=r"64x64.*96x96"):
        tiny_model.check_compatible(image_size=96)
    with pytest.raises(CheckpointError, match="7-D actions but the env has 4-D"):
        tiny_model.check_compatible(action_dim=4)


def test_batched_imagination_is_seeded_and_shaped(tiny_model, lift_data):
    ep = DatasetReader(lift_data)[0]
    pixels = np.stack([ep.pixels[:2], ep.pixels[3:5], ep.pixels[6:8]])
    poses = np.stack([ep.agent_pos[:2], ep.agent_pos[3:5], ep.agent_pos[6:8]])
    actions = np.stack([ep.action[:1], ep.action[3:4], ep.action[6:7]])

    def roll(seed):
        state = tiny_model.start(pixels, poses, actions)
        g = torch.Generator().manual_seed(seed)
        return [tiny_model.step(state, ep.action[5:8], g) for _ in range(3)], state

    (outs, state), (again, _) = roll(0), roll(0)
    assert state.batch_size == 3 and state.latents.shape[1] == 2
    out = outs[-1]
    assert out.pixels.shape == (3, 64, 64, 3) and out.pixels.dtype == np.uint8
    assert out.agent_pos.shape == (3, 9) and out.environment_state.shape == (3, 10)
    assert out.reward.shape == (3,) and out.success.dtype == bool
    np.testing.assert_array_equal(out.pixels, again[-1].pixels)
    assert not np.array_equal(roll(1)[0][-1].pixels, out.pixels)
    np.testing.assert_allclose(np.linalg.norm(out.agent_pos[:, 3:7], axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(3, 7\).*got shape \(3, 6\)"):
        tiny_model.step(state, np.zeros((3, 6), np.float32))
    with pytest.raises(ValueError, match=r"uint8 \(B, T, 64, 64, 3\).*32, 64, 3\)"):
        tiny_model.start(pixels[:, :, :32], poses)


def test_residual_decoding_keeps_the_real_context_frame_and_adds_only_the_imagined_change(tiny_model, lift_data):
    ep = DatasetReader(lift_data)[0]
    state = tiny_model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1])
    np.testing.assert_array_equal(tiny_model.observe_context(state).pixels[0], ep.pixels[1])
    out = tiny_model.step(state, ep.action[None, 1], torch.Generator().manual_seed(0))
    change = tiny_model.decode(out.latents).numpy().astype(np.int16) - tiny_model.decode(
        tiny_model.encode(ep.pixels[None, 1])).numpy().astype(np.int16)
    expected = np.clip(ep.pixels[None, 1].astype(np.int16) + change, 0, 255)
    np.testing.assert_array_equal(out.pixels, expected)


def test_residual_deadband_keeps_the_real_frame_where_the_imagined_change_is_small(tiny_model, lift_data):
    ep = DatasetReader(lift_data)[0]

    def imagine(band: float) -> tuple[np.ndarray, torch.Tensor]:
        tiny_model.config.residual_deadband = band
        state = tiny_model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1])
        outs = [tiny_model.step(state, ep.action[None, t], torch.Generator().manual_seed(t)) for t in range(1, 4)]
        return np.concatenate([o.pixels for o in outs]), torch.cat([o.latents for o in outs])

    try:
        banded, latents = imagine(6.0)
    finally:
        tiny_model.config.residual_deadband = 0.0
    plain, same_latents = imagine(0.0)
    torch.testing.assert_close(latents, same_latents)  # an output filter: the imagined dynamics are untouched
    real = ep.pixels[1].astype(np.int16)
    change = (tiny_model.decode(latents).numpy().astype(np.int16)
              - tiny_model.decode(tiny_model.encode(ep.pixels[None, 1])).numpy().astype(np.int16))
    moved = torch.from_numpy((np.abs(change).max(-1) > 6).astype(np.float32))[:, None]
    near_moved = torch.nn.functional.max_pool2d(moved, 3, 1, 1)[:, 0, ..., None].numpy() > 0
    assert 0.01 < near_moved.mean() < 0.99, "the untrained model should change some pixels a little, some a lot"
    expected = np.where(near_moved, np.clip(real + change, 0, 255), real)
    np.testing.assert_array_equal(banded, expected)
    np.testing.assert_array_equal(plain, np.clip(real + change, 0, 255))
    assert not np.array_equal(banded, plain), "some small changes should have been dropped"
    with pytest.raises(ValueError, match="residual_deadband must be >= 0"):
        WorldModel.random("dit-test", env_state_dim=10, residual_deadband=-1.0)


def test_state_rows_can_be_replaced_for_per_env_resets(tiny_model, lift_data):
    ep = DatasetReader(lift_data)[0]
    state = tiny_model.start(np.stack([ep.pixels[:1]] * 3), np.stack([ep.agent_pos[:1]] * 3))
    fresh = tiny_model.start(ep.pixels[None, 9:11], ep.agent_pos[None, 9:11], ep.action[None, 9:10])
    state.replace(np.array([False, True, False]), fresh)
    torch.testing.assert_close(state.latents[1], fresh.latents[0])
    assert not torch.allclose(state.latents[0], fresh.latents[0])


def test_plan_generation_from_an_instruction(tiny_model, lift_data):
    ep = DatasetReader(lift_data)[0]
    frames = tiny_model.generate(ep.pixels[None, :1], ep.agent_pos[None, :1], "lift the red cube", horizon=4,
                                 generator=torch.Generator().manual_seed(0))
    assert frames.shape == (1, 4, 64, 64, 3) and frames.dtype == np.uint8
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        tiny_model.generate(ep.pixels[None, :1], ep.agent_pos[None, :1], None, horizon=0)


def test_training_runs_every_stage_and_resumes_after_interruption(tmp_path, lift_data, monkeypatch, caplog):
    config = TrainWorldModelConfig(
        datasets=[{"root": str(lift_data)}], out=str(tmp_path / "run"), preset="dit-test", latent_channels=4,
        autoencoder=StageConfig(6, 4), pose=StageConfig(4, 8), heads=StageConfig(4, 8), dit=StageConfig(6, 4),
        objects=StageConfig(4, 8), probe=StageConfig(4, 8), object_map=True, object_weight=2.0,
        checkpoint_every=2, log_every=2, progress=False,
    )
    trainer = Trainer(config, RobosuiteEnv)
    calls = {"n": 0}
    real = Trainer.dit_batch

    def interrupted(self, batch, g):  # the job is killed in the middle of the DiT stage
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, batch, g)

    monkeypatch.setattr(Trainer, "dit_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    saved = torch.load(tmp_path / "run" / "stages" / "dit.pt", weights_only=False)
    assert saved["step"] == 2 and not saved["done"]
    assert torch.load(tmp_path / "run" / "stages" / "autoencoder.pt", weights_only=False)["done"]
    monkeypatch.setattr(Trainer, "dit_batch", real)
    final = Trainer(config, RobosuiteEnv).run()
    assert torch.load(tmp_path / "run" / "stages" / "dit.pt", weights_only=False)["step"] == 6
    model = WorldModel.load(final)
    assert model.config.env_state_dim == 10 and model.stats["latent_std"] != [1.0] * 4
    assert model.config.object_dims == list(range(7)) and model.config.pixel_probe and model.config.dit.object_map
    assert all(torch.load(tmp_path / "run" / "stages" / f"{s}.pt", weights_only=False)["done"]
               for s in ("objects", "probe"))
    assert (tmp_path / "run" / "tensorboard").is_dir()
    with pytest.raises(FileNotFoundError, match="missing"):
        Trainer(TrainWorldModelConfig(datasets=[{"root": str(tmp_path / "missing")}], out=str(tmp_path / "x")),
                RobosuiteEnv)

    # A further DiT run from the finished checkpoint, re-weighted to moving cells: only the DiT trains
    tuned = TrainWorldModelConfig(**{**vars(config), "out": str(tmp_path / "tuned"), "init": str(final),
                                     "motion_weight": 2.0, "residual_deadband": 8.0})
    start = WorldModel.load(final)
    again = WorldModel.load(Trainer(tuned, RobosuiteEnv).run())
    assert "from scratch" not in caplog.text  # motion weighting that fine-tunes a trained DiT is the recipe
    assert not (tmp_path / "tuned" / "stages" / "autoencoder.pt").exists()
    assert torch.load(tmp_path / "tuned" / "stages" / "dit.pt", weights_only=False)["done"]
    assert again.stats == start.stats and again.config.residual_deadband == 8.0
    for name in ("autoencoder", "pose", "probe", "reward", "objects"):
        for a, b in zip(getattr(start, name).parameters(), getattr(again, name).parameters()):
            torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(start.dit.parameters(), again.dit.parameters()))
    with pytest.raises(FileNotFoundError, match="is not a world-model checkpoint"):
        TrainWorldModelConfig(datasets=[{"root": str(lift_data)}], init=str(tmp_path / "nothing"))
    # ... from scratch it can stall the DiT (Stack): the run says so before its DiT steps
    scratch = Trainer(TrainWorldModelConfig(**{**vars(config), "out": str(tmp_path / "scratch"),
                                               "motion_weight": 2.0}), RobosuiteEnv)
    monkeypatch.setattr(scratch, "_loop", lambda *args, **kwargs: None)
    scratch._train_dit()
    assert "motion_weight=2.0 on a DiT trained from scratch" in caplog.text
    with pytest.raises(ValueError, match="motion_weight must be >= 0"):
        TrainWorldModelConfig(datasets=[{"root": str(lift_data)}], motion_weight=-1.0)


def test_pose_map_marks_the_token_under_the_projected_gripper():
    from wow_gym.world_models.video.pose_map import pose_map

    camera = torch.tensor([[64.0, 0, 0, 0], [0, 64.0, 0, 0], [0, 0, 0, 1.0]])  # u = 64 x, v = 64 y
    eef = torch.tensor([[[0.3, 0.6, 1.0], [0.9, 0.1, 1.0]]])  # now at pixel (19.2, 38.4), next at (57.6, 6.4)
    features = pose_map(camera, eef, image_size=64, grid=4)
    assert features.shape == (1, 16, 6)
    assert features[0, :, 0].argmax() == 2 * 4 + 1 and features[0, :, 3].argmax() == 0 * 4 + 3
    np.testing.assert_allclose(features[0, 9, 1:3], [(19.2 - 24) / 16, (38.4 - 40) / 16], atol=1e-5)
    assert features[0, :, 1:3].abs().max() <= 2.0  # offsets of far tokens are clipped


def test_a_model_with_a_camera_draws_the_gripper_into_its_condition(lift_data):
    env = RobosuiteEnv("Lift", use_camera=False)
    camera = env.camera_matrix().tolist()
    env.close()
    model = WorldModel.random("dit-test", env_state_dim=10, camera=camera)
    assert model.config.dit.pose_map and WorldModel.random("dit-test", env_state_dim=10).config.dit.pose_map is False
    ep = DatasetReader(lift_data)[0]
    poses = torch.as_tensor(np.stack([ep.agent_pos[:2]]))
    moved = poses.clone()
    moved[:, 1, 0] += 0.2  # the next pose 20 cm further along x
    assert not torch.allclose(model.pose_map(poses), model.pose_map(moved))

    def step():
        state = model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1])
        return model.step(state, ep.action[None, 1], torch.Generator().manual_seed(0)).latents

    with torch.no_grad():  # an untrained DiT's zero-initialised output layer would hide every input
        torch.nn.init.normal_(model.dit.out.weight, std=0.05)
    with_map = step()
    with torch.no_grad():  # silence the map's input layer: the imagined step must change
        model.dit.pose_map_in[-1].weight.zero_()
        model.dit.pose_map_in[-1].bias.zero_()
    assert not torch.allclose(step(), with_map)
    with pytest.raises(ValueError, match="3x4 projection"):
        WorldModel.random("dit-test", env_state_dim=10, camera=[[1.0, 0.0]])


def test_the_distilled_one_step_dit_lands_where_two_steps_of_the_dit_land(tmp_path, lift_data):
    teacher = WorldModel.random("dit-test", env_state_dim=10)
    torch.manual_seed(1)
    for layer in (teacher.dit.final_mod, teacher.dit.out):  # zero-initialised: give the teacher a flow to follow
        torch.nn.init.normal_(layer.weight, std=0.2)
    teacher.save(tmp_path / "teacher")
    config = TrainWorldModelConfig(
        datasets=[{"root": str(lift_data)}], out=str(tmp_path / "run"), init=str(tmp_path / "teacher"),
        stages=["distill"], distill=StageConfig(60, 16, 2e-3), object_dynamics=False, pixel_probe=False,
        pose_map=False, ema_decay=0.5, progress=False, checkpoint_every=1000, log_every=10)
    trainer = Trainer(config, RobosuiteEnv)
    model = WorldModel.load(trainer.run())
    start = WorldModel.load(tmp_path / "teacher")
    assert model.config.one_step and model.config.distill_steps == 2
    assert model.sampler(1) is model.one_step_dit and model.sampler(2) is model.dit
    assert start.sampler(1) is start.dit, "a model without a one-step DiT takes one step of its DiT"
    for a, b in zip(start.dit.parameters(), model.dit.parameters()):
        torch.testing.assert_close(a, b)  # the teacher is kept as it was

    # on fresh batches, one step of the student is much nearer the teacher's two than one step of the teacher
    from wow_gym.world_models.video.flow import euler_sample
    b = trainer.dit_batch(32, torch.Generator().manual_seed(123))
    args = (b["context"], b["ctx_noise"], b["actions"], b["text"], b["pose"], b["keep_action"], b["keep_text"])
    noise = torch.randn(b["delta"].shape, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        def landing(dit, steps):
            return euler_sample(lambda x, t: dit(x, args[0], t, *args[1:]), noise.shape, steps, noise=noise)
        two = landing(model.dit, 2)
        student, plain = landing(model.one_step_dit, 1), landing(model.dit, 1)
    assert (student - two).pow(2).mean() < 0.5 * (plain - two).pow(2).mean()

    # imagining at 1 step goes through the student, at 2 through the DiT
    ep = DatasetReader(lift_data)[0]
    pixels, poses = ep.pixels[:2], ep.agent_pos[:2]
    outputs = {}
    for name, wm in (("start", start), ("distilled", model)):
        for steps in (1, 2):
            state = wm.start(pixels[None], poses[None])
            outputs[name, steps] = wm.step(state, np.zeros((1, 7), np.float32), torch.Generator().manual_seed(0),
                                           sampling_steps=steps).latents
    torch.testing.assert_close(outputs["start", 2], outputs["distilled", 2])
    assert not torch.allclose(outputs["start", 1], outputs["distilled", 1])
    with pytest.raises(ValueError, match="distill_steps must be >= 2"):
        WorldModel.random("dit-test", distill_steps=1)

    # a further distill run goes on from the student; one that retrains the DiT drops it
    further = TrainWorldModelConfig(**{**vars(config), "out": str(tmp_path / "further"),
                                       "init": str(tmp_path / "run" / "checkpoint"), "distill": StageConfig(1, 4, 1e-12)})
    continued = WorldModel.load(Trainer(further, RobosuiteEnv).run())
    for a, b in zip(model.one_step_dit.parameters(), continued.one_step_dit.parameters()):
        torch.testing.assert_close(a, b)
    again = TrainWorldModelConfig(**{**vars(config), "out": str(tmp_path / "again"), "stages": ["dit"],
                                     "init": str(tmp_path / "run" / "checkpoint"), "dit": StageConfig(2, 4)})
    retrained = WorldModel.load(Trainer(again, RobosuiteEnv).run())
    assert not retrained.config.one_step and retrained.one_step_dit is None


def test_imagination_switches_are_set_on_a_loaded_model_and_bad_ones_change_nothing(tmp_path):
    from wow_gym.world_models.video.imagination import load_world_model
    from wow_gym.world_models.video.model import OPTIONS, checkpoint_options

    carrying = WorldModel.random("dit-test", env_state_dim=10, object_dims=list(range(7)),
                                 object_offset_dims=[7, 8, 9])
    carrying.set_options({"arm_physics": True, "finger_rule": True, "residual_deadband": 3,
                          "arm_contact": None})
    assert (carrying.config.arm_physics, carrying.config.finger_rule) == (True, True)
    assert carrying.config.residual_deadband == 3.0 and carrying.config.arm_contact is False  # None: kept
    before = carrying.config.to_dict()
    for options, match in [({"arm_physic": True}, r"unknown world-model option\(s\) \['arm_physic'\]"),
                           ({"finger_rule": "yes"}, "finger_rule must be true or false, got 'yes'"),
                           ({"arm_contact": False, "residual_deadband": -1},
                            "residual_deadband must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            carrying.set_options(options)
        assert carrying.config.to_dict() == before, f"{options} changed the model though it was refused"
    plain = WorldModel.random("dit-test", env_state_dim=10)  # carries no object state
    with pytest.raises(ValueError, match="finger_rule=true needs a model that carries the object state"):
        plain.set_options({"finger_rule": True})
    with pytest.raises(ValueError, match="carry_rule=true needs a model that carries the object state"):
        plain.set_options({"carry_rule": True})
    plain.set_options(checkpoint_options())  # every switch None: nothing changes
    assert set(checkpoint_options()) == set(OPTIONS) and plain.config.finger_rule is False
    carrying.save(tmp_path / "wm")
    loaded = load_world_model("Lift", tmp_path / "wm", options={"arm_physics": True, "finger_rule": False})
    assert loaded.config.arm_physics and not loaded.config.finger_rule
    with pytest.raises(CheckpointError, match=r"world model \(.*wm\): unknown world-model option"):
        load_world_model("Lift", tmp_path / "wm", options={"physics": True})


def test_a_model_carrying_stack_s_red_cube_keeps_the_green_one_and_reads_success_off_the_state():
    """A Stack model carries the red cube only: the rest of its environment_state (the green cube) stays the
    start's, the offsets that follow from the red cube are derived, and success is the task's test on that
    state (the red cube resting on the green one, set in MuJoCo, where robosuite says success too). The
    green cube starts at its rest height (WorldModel.settle_scene)."""
    from wow_gym.tasks.stack import TASK

    env = RobosuiteEnv("Stack", use_camera=False)
    try:
        env.reset(seed=4)
        sim_state, cube = env.get_sim_state(), env.object_qpos_index()
        green = env.robosuite.sim.data.body_xpos[env.robosuite.cubeB_body_id]
        sim_state[cube[:3]] = green + np.array([0.0, 0.0, 0.0449])
        raw = env._restore(sim_state)
        assert env.robosuite._check_success()
        observation = env._observation(raw)
    finally:
        env.close()
    start = observation["environment_state"][None]
    wm = WorldModel.random("dit-test", task="Stack", env_state_dim=start.shape[1], object_dims=list(range(7)),
                           object_offset_dims=[17, 18, 19])
    with torch.no_grad():  # object dynamics that never moves the cube: the gate's logit far below zero
        wm.objects.net[-1].weight.zero_()
        wm.objects.net[-1].bias.fill_(-10.0)
    frames = np.zeros((1, 1, 64, 64, 3), np.uint8)
    state = wm.start(frames, observation["agent_pos"][None, None], environment_state=start)
    out = wm.step(state, np.zeros((1, 7), np.float32))
    imagined = out.environment_state[0]
    # both cubes where they were, but that the start sets the green one at its rest on the table (a reset's
    # state has it 1 cm up, where robosuite drops it from) and the support rule the red one at its rest
    # height on the green one (0.045 m above its centre)
    assert start[0, 9] == pytest.approx(TASK.scene_rest_height + 0.01, abs=1e-3)
    assert imagined[9] == pytest.approx(TASK.scene_rest_height, abs=1e-6)
    assert imagined[2] == pytest.approx(TASK.scene_rest_height + 0.045, abs=1e-6)
    start[0, 2], start[0, 9] = imagined[2], imagined[9]
    np.testing.assert_allclose(imagined[:14], start[0, :14], atol=1e-6)
    np.testing.assert_allclose(imagined[14:17], start[0, 7:10] - start[0, :3], atol=1e-6)
    np.testing.assert_allclose(imagined[17:20], start[0, :3] - out.agent_pos[0, :3], atol=1e-6)
    np.testing.assert_allclose(imagined[20:23], start[0, 7:10] - out.agent_pos[0, :3], atol=1e-6)
    assert bool(out.success[0]) == bool(TASK.state_success(imagined[None], out.agent_pos)[0]) is True

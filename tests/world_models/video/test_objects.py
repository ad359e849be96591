"""The world model's object state: carried with learned dynamics, read off frames at a start, drawn for the DiT,
and added to a trained checkpoint by a further run."""

import numpy as np
import pytest
import torch

from wow_gym.data import DatasetReader
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.registry import task_info
from wow_gym.world_models import WorldModel
from wow_gym.world_models.video.config import WorldModelConfig
from wow_gym.world_models.video.training import StageConfig, Trainer, TrainWorldModelConfig

OBJECTS = {"object_dims": list(range(7)), "object_offset_dims": [7, 8, 9]}


@pytest.fixture(scope="module")
def camera():
    env = RobosuiteEnv("Lift", use_camera=False)
    yield env.camera_matrix().tolist()
    env.close()


def test_carried_object_state_follows_its_dynamics_and_sets_success(lift_data):
    model = WorldModel.random("dit-test", env_state_dim=10, **OBJECTS)
    ep = DatasetReader(lift_data)[0]
    state0 = ep.environment_state[1].copy()
    state = model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1],
                        environment_state=state0[None])
    torch.testing.assert_close(state.objects[0], torch.as_tensor(state0[:7]))
    observed = model.observe_context(state)
    np.testing.assert_allclose(observed.environment_state[0, :7], state0[:7], atol=1e-6)
    np.testing.assert_allclose(observed.environment_state[0, 7:], state0[:3] - ep.agent_pos[1, :3], atol=1e-6)
    assert not observed.success[0]  # the cube rests on the table, below Lift's 0.84 m

    support = model.support
    model.support = None  # the learned step alone first (support and gravity below)
    rise = 0.6 * (0.84 - state0[2])  # two steps of this take the cube above Lift's success height, one does not
    with torch.no_grad():  # object dynamics that lift the object `rise` metres a step (in normalised units)
        model.objects.net[-1].weight.zero_()
        model.objects.net[-1].bias.copy_(torch.cat([torch.tensor([0, 0, rise, 0, 0, 0, 0]) / model._dobject_std,
                                                    torch.ones(1)]))  # and the gate open
    out = [model.step(state, ep.action[None, 1 + k], torch.Generator().manual_seed(k)) for k in range(2)]
    np.testing.assert_allclose(out[0].environment_state[0, 2], state0[2] + rise, atol=1e-5)
    np.testing.assert_allclose(out[1].environment_state[0, :2], state0[:2], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out[1].environment_state[0, 3:7]), 1.0, atol=1e-5)
    assert [bool(o.success[0]) for o in out] == [False, True]
    np.testing.assert_allclose(out[1].environment_state[0, 7:],
                               out[1].environment_state[0, :3] - out[1].agent_pos[0, :3], atol=1e-5)

    with torch.no_grad():  # the moving gate shut: the same change predicted, but the object keeps its pose exactly
        model.objects.net[-1].bias[-1] = -1.0
    held = model.step(state, ep.action[None, 3], torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(held.environment_state[0, :7], out[1].environment_state[0, :7])

    # support and gravity: an unheld object cannot rise above its rest height + lean, and falls from higher up;
    # a held one (fingers closed on it, within reach) goes where the dynamics takes it
    model.support = support
    with torch.no_grad():
        model.objects.net[-1].bias[-1] = 1.0
    cube = torch.tensor([[0.0, 0.0, 0.95, 0, 0, 0, 1.0]])
    far = torch.tensor([[0.0, 0.0, 1.2, 0, 0, 0, 1.0, 0.04, -0.04]])  # fingers open, 25 cm above
    fell = model._object_step(torch.stack([far, far], 1), cube, torch.zeros(1, 7))
    assert fell[0, 2].item() == pytest.approx(0.95 - 0.04, abs=1e-5)  # from where it was, whatever the step says
    resting = cube.clone()
    resting[0, 2] = 0.828  # nudged up past rest + lean (0.83): no higher, and it rests at its rest height
    assert model._object_step(torch.stack([far, far], 1), resting, torch.zeros(1, 7))[0, 2].item() == \
        pytest.approx(0.82, abs=1e-5)
    holding = torch.tensor([[0.0, 0.0, 0.95, 0, 0, 0, 1.0, 0.021, -0.021]])  # gap 0.042 around the cube
    carried = model._object_step(torch.stack([holding, holding], 1), cube, torch.zeros(1, 7))
    assert carried[0, 2].item() == pytest.approx(0.95 + rise, abs=1e-5)
    # the carry rule: a held object moves by the gripper's translation, not by the learned step; an unheld
    # one falls as before
    model.set_options({"carry_rule": True})
    hand = torch.tensor([0.01, -0.02, 0.03])
    moved_hand = holding.clone()
    moved_hand[0, :3] += hand
    rigid = model._object_step(torch.stack([holding, moved_hand], 1), cube, torch.zeros(1, 7))
    torch.testing.assert_close(rigid[0, :3], cube[0, :3] + hand)
    at_cube = torch.tensor([[0.0, 0.0, 0.83, 0, 0, 0, 1.0, 0.021, -0.021]])  # holding it 1 cm above its rest
    lower = at_cube.clone()
    lower[0, 2] -= 0.03  # ... and going 3 cm down
    low = cube.clone()
    low[0, 2] = 0.83
    pushed = model._object_step(torch.stack([at_cube, lower], 1), low, torch.zeros(1, 7))
    assert pushed[0, 2].item() == pytest.approx(0.82, abs=1e-5)  # set on the table, not pushed through it
    assert model._object_step(torch.stack([far, far], 1), cube, torch.zeros(1, 7))[0, 2].item() == \
        pytest.approx(0.95 - 0.04, abs=1e-5)
    model.set_options({"carry_rule": False})
    # a step that takes a resting object up to a closed gripper 3 cm to the side and 5 cm above it: in reach
    # after the step but not before, so it is not held and stays down
    with torch.no_grad():
        model.objects.net[-1].bias[2] = 0.05 / model._dobject_std[2]
    beside = torch.tensor([[0.03, 0.0, 0.87, 0, 0, 0, 1.0, 0.021, -0.021]])
    on_table = cube.clone()
    on_table[0, 2] = 0.82
    assert model._held(on_table + torch.tensor([[0, 0, 0.05, 0, 0, 0, 0]]), beside).item()
    jumped = model._object_step(torch.stack([beside, beside], 1), on_table, torch.zeros(1, 7))
    assert jumped[0, 2].item() == pytest.approx(0.82, abs=1e-5)
    sunk = on_table.clone()  # within lean below its rest height (a probe's reading of a start): set on it
    sunk[0, 2] = 0.812
    with torch.no_grad():
        model.objects.net[-1].bias[-1] = -1.0  # the gate shut: the learned step leaves it be
    assert model._object_step(torch.stack([far, far], 1), sunk, torch.zeros(1, 7))[0, 2].item() == \
        pytest.approx(0.82, abs=1e-5)
    sunk[0, 2] = 0.80  # lower than that (a can lying down, a tipped cube): left where it is
    assert model._object_step(torch.stack([far, far], 1), sunk, torch.zeros(1, 7))[0, 2].item() == \
        pytest.approx(0.80, abs=1e-5)

    # without a given state, the probe reads it off the newest frame
    started = model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1])
    np.testing.assert_allclose(started.objects[0].numpy(), model.read_state(ep.pixels[1])[:7], atol=1e-5)
    with pytest.raises(ValueError, match="environment_state"):
        model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1],
                    environment_state=np.zeros((1, 4), np.float32))


def test_the_red_cube_rests_on_the_green_cube_or_the_table():
    """Stack's support rule: the unheld red cube over the green cube's top rests on that top (the learned
    step here lifts it 5 cm a step), and falls onto it from higher up, not through it to the table; beside
    it, onto the table. The rule reads the green cube off the scene's state (the start's, kept by the
    imagination), which it needs."""
    stack = task_info("stack")
    model = WorldModel.random("dit-test", task="Stack", instruction=stack.instruction, env_state_dim=23,
                              object_dims=list(range(7)), object_offset_dims=[17, 18, 19])
    with torch.no_grad():  # object dynamics that lift the red cube 5 cm a step, the moving gate open
        model.objects.net[-1].weight.zero_()
        rise = torch.tensor([0, 0, 0.05, 0, 0, 0, 0]) / model._dobject_std
        model.objects.net[-1].bias.copy_(torch.cat([rise, torch.ones(1)]))
    scene = torch.zeros(1, 23)
    scene[0, 7:10] = torch.tensor([0.05, -0.02, 0.823])  # the green cube
    scene[0, 10:14] = torch.tensor([0, 0, 0, 1.0])
    top = 0.823 + 0.045  # the red cube's centre on the green cube
    far = torch.tensor([[0.0, 0.3, 1.2, 0, 0, 0, 1.0, 0.04, -0.04]])  # fingers open, far away
    arm = torch.stack([far, far], 1)

    def cube(x: float, y: float, z: float) -> torch.Tensor:
        return torch.tensor([[x, y, z, 0, 0, 0, 1.0]])

    on = model._object_step(arm, cube(0.06, -0.01, top), torch.zeros(1, 7), base=scene)
    assert on[0, 2].item() == pytest.approx(top, abs=1e-5)
    dropped = cube(0.06, -0.01, top + 0.06)  # released 6 cm above the green cube's top
    heights = []
    for _ in range(3):
        dropped = model._object_step(arm, dropped, torch.zeros(1, 7), base=scene)
        heights.append(dropped[0, 2].item())
    assert heights == pytest.approx([top + 0.02, top, top], abs=1e-5)
    beside = model._object_step(arm, cube(0.12, -0.02, top), torch.zeros(1, 7), base=scene)
    assert beside[0, 2].item() == pytest.approx(stack.rest_height, abs=1e-5)
    with torch.no_grad():  # a learned step that drops the red cube 5 cm: onto its support, not through it
        model.objects.net[-1].bias[2] = -0.05 / model._dobject_std[2]
    released = model._object_step(arm, cube(0.06, -0.01, top + 0.01), torch.zeros(1, 7), base=scene)
    assert released[0, 2].item() == pytest.approx(top, abs=1e-5)
    on_table = model._object_step(arm, cube(0.12, -0.02, stack.rest_height), torch.zeros(1, 7), base=scene)
    assert on_table[0, 2].item() == pytest.approx(stack.rest_height, abs=1e-5)
    with torch.no_grad():
        model.objects.net[-1].bias[2] = rise[2]
    with pytest.raises(ValueError, match="environment_state"):
        model._object_step(arm, cube(0.06, -0.01, top), torch.zeros(1, 7))

    # imagination keeps the start's scene: a step falls onto the green cube where the start put it
    scene[0, :7] = cube(0.06, -0.01, top + 0.06)[0]
    state = model.start(np.zeros((1, 2, 64, 64, 3), np.uint8), far[None].repeat(1, 2, 1).numpy(),
                        np.zeros((1, 1, 7), np.float32), environment_state=scene.numpy())
    out = model.step(state, np.zeros((1, 7), np.float32), torch.Generator().manual_seed(0))
    assert out.environment_state[0, 2] == pytest.approx(top + 0.02, abs=1e-5)
    assert not out.success[0]  # 2 cm above the green cube's top: not yet resting on it


def test_a_start_sets_the_green_cube_down_where_a_reset_drops_it_from():
    """A Stack reset's state has the green cube 1 cm above the table (robosuite drops it; it settles in the
    first physics step). Imagination never moves it, so its start sets it at rest: a red cube set on it then
    stacks as in the simulator, and the state's offsets to it follow. One held clear of the table stays."""
    stack = task_info("stack")
    env = RobosuiteEnv("Stack", use_camera=False)
    try:
        reset, _ = env.reset(seed=970002)
        settled = reset
        for _ in range(5):
            settled, *_ = env.step(np.zeros(7, np.float32))
    finally:
        env.close()
    green_z = stack.scene_pose.start + 2
    assert reset["environment_state"][green_z] > stack.scene_rest_height + 0.008  # dropped from above
    assert settled["environment_state"][green_z] == pytest.approx(stack.scene_rest_height, abs=5e-4)
    model = WorldModel.random("dit-test", task="Stack", instruction=stack.instruction, env_state_dim=23,
                              object_dims=list(range(7)), object_offset_dims=[17, 18, 19])
    with torch.no_grad():  # the learned step leaves the red cube be (moving gate shut)
        model.objects.net[-1].weight.zero_()
        model.objects.net[-1].bias.zero_()
        model.objects.net[-1].bias[-1] = -1.0
    far = np.array([[0.0, 0.3, 1.2, 0, 0, 0, 1.0, 0.04, -0.04]], np.float32)  # fingers open, far away
    scene = reset["environment_state"][None].copy()
    scene[0, :3] = scene[0, 7:10] + [0.01, -0.005, 0.0]  # the red cube over the green one ...
    scene[0, 2] = stack.scene_rest_height + 0.045  # ... resting on its top as the simulator has it

    def started(state: np.ndarray):
        start = model.start(np.zeros((1, 2, 64, 64, 3), np.uint8), far[None].repeat(2, 1),
                            np.zeros((1, 1, 7), np.float32), environment_state=state)
        return start, model.step(start, np.zeros((1, 7), np.float32), torch.Generator().manual_seed(0))

    start, out = started(scene)
    assert start.base[0, green_z].item() == pytest.approx(stack.scene_rest_height, abs=1e-6)
    assert out.environment_state[0, green_z] == pytest.approx(stack.scene_rest_height, abs=1e-6)
    assert out.environment_state[0, 16] == pytest.approx(-0.045, abs=1e-5)  # cubeA_to_cubeB's height
    assert out.success[0]  # stacked
    lifted = scene.copy()
    lifted[0, green_z] = stack.scene_rest_height + 0.05  # 5 cm up: not a reset's drop; left where it is
    start, out = started(lifted)
    assert start.base[0, green_z].item() == pytest.approx(stack.scene_rest_height + 0.05, abs=1e-6)
    assert not out.success[0]


def test_object_config_is_checked(camera):
    with pytest.raises(ValueError, match="pose_objects needs object_dims"):
        WorldModelConfig(env_state_dim=10, pose_objects=True)
    with pytest.raises(ValueError, match="distinct entries of environment_state's 8"):
        WorldModelConfig(env_state_dim=8, **OBJECTS)
    with pytest.raises(ValueError, match="distinct entries"):
        WorldModelConfig(env_state_dim=10, object_dims=list(range(7)), object_offset_dims=[6, 7, 8])
    WorldModelConfig(env_state_dim=12, **OBJECTS)  # a state with more than the object (Stack's green cube)
    with pytest.raises(ValueError, match="7 environment_state entries"):
        WorldModelConfig(env_state_dim=10, object_dims=[0, 1, 2], object_offset_dims=[7, 8, 9])
    # an object that is not one free body (Door): its position, then the rest of its state, no quaternion
    door = {"env_state_dim": 14, "object_offset_dims": [10, 11, 12], "object_quaternion": False}
    WorldModelConfig(object_dims=[3, 4, 5, 0, 1, 2, 6, 13], **door)
    with pytest.raises(ValueError, match="at least 4 environment_state entries"):
        WorldModelConfig(object_dims=[3, 4, 5], **door)
    with pytest.raises(ValueError, match="object_map needs"):
        WorldModelConfig(env_state_dim=10, object_map=True, camera=camera)


def test_the_object_map_reaches_the_dit(camera, lift_data):
    model = WorldModel.random("dit-test", env_state_dim=10, camera=camera, object_map=True, **OBJECTS)
    ep = DatasetReader(lift_data)[0]
    with torch.no_grad():  # the object map starts silent (zero output layer); make it and the DiT speak
        torch.nn.init.normal_(model.dit.out.weight, std=0.05)
        torch.nn.init.normal_(model.dit.object_map_in[2].weight, std=0.5)

    def step(shift: float):
        given = ep.environment_state[1:2].copy()
        given[0, 0] += shift
        state = model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1],
                            environment_state=given)
        return model.step(state, ep.action[None, 1], torch.Generator().manual_seed(0)).latents

    assert not torch.allclose(step(0.0), step(0.15))  # the object 15 cm away: another picture


def test_a_trained_checkpoint_gains_object_state_in_a_further_run(tmp_path, lift_data):
    base = TrainWorldModelConfig(
        datasets=[{"root": str(lift_data)}], out=str(tmp_path / "plain"), preset="dit-test", latent_channels=4,
        autoencoder=StageConfig(2, 4), pose=StageConfig(2, 8), heads=StageConfig(2, 8), dit=StageConfig(2, 4),
        object_dynamics=False, pixel_probe=False, object_map=False, progress=False)
    plain = Trainer(base, RobosuiteEnv).run()
    extend = TrainWorldModelConfig(**{**vars(base), "out": str(tmp_path / "objects"), "init": str(plain),
                                      "object_dynamics": True, "pixel_probe": True, "object_map": True,
                                      "pose_objects": False,
                                      "objects": StageConfig(3, 8), "probe": StageConfig(3, 8)})
    with pytest.raises(ValueError, match="lacks parts this run adds"):
        Trainer(extend, RobosuiteEnv)  # stages default to [dit] with init: objects and probe would stay untrained
    extend.stages = ["objects", "probe", "dit"]
    before, after = WorldModel.load(plain), WorldModel.load(Trainer(extend, RobosuiteEnv).run())
    assert after.config.object_dims == list(range(7)) and after.config.pixel_probe and after.config.object_map
    for name in ("autoencoder", "pose", "reward"):
        for a, b in zip(getattr(before, name).parameters(), getattr(after, name).parameters()):
            torch.testing.assert_close(a, b)
    assert set(after.stats) - set(before.stats) == {"object_mean", "object_std", "dobject_std", "offset_std"}
    for s in ("objects", "probe", "dit"):
        assert torch.load(tmp_path / "objects" / "stages" / f"{s}.pt", weights_only=False)["done"]
    # pose dynamics that reads the object is a new pose model: only a run that trains the pose stage adds it
    contact = TrainWorldModelConfig(**{**vars(extend), "out": str(tmp_path / "contact"), "init": str(tmp_path / "objects"
                                                                                                      / "checkpoint"),
                                       "pose_objects": True, "stages": ["dit"]})
    with pytest.raises(ValueError, match="pose_objects=false, pose_width=256"):
        Trainer(contact, RobosuiteEnv)
    contact.stages = ["pose"]
    touched = WorldModel.load(Trainer(contact, RobosuiteEnv).run())
    assert touched.config.pose_objects and touched.pose.object_features == 8
    for a, b in zip(after.objects.parameters(), touched.objects.parameters()):
        torch.testing.assert_close(a, b)
    # so is a pose dynamics of another width; the rest of the model is kept
    wider = TrainWorldModelConfig(**{**vars(extend), "out": str(tmp_path / "wider"), "init": str(tmp_path / "objects"
                                                                                                  / "checkpoint"),
                                     "pose_width": 48, "stages": ["dit"]})
    with pytest.raises(ValueError, match="pose_width=256"):
        Trainer(wider, RobosuiteEnv)
    wider.stages = ["pose"]
    widened = WorldModel.load(Trainer(wider, RobosuiteEnv).run())
    assert widened.config.pose_width == 48 and widened.pose.net[0].out_features == 48
    for a, b in zip(after.objects.parameters(), widened.objects.parameters()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="stages \\['nope'\\] do not exist"):
        TrainWorldModelConfig(datasets=[{"root": str(lift_data)}], stages=["nope"])


def test_the_imagined_env_can_reward_the_imagined_object_state(lift_data):
    import gymnasium as gym

    from wow_gym.tasks.lift import shaped_reward

    model = WorldModel.random("dit-test", env_state_dim=10, **OBJECTS)
    episode = DatasetReader(lift_data)[0]
    env = gym.make("WoW/Lift-Imagined-v0", model=model, reward_model="state")
    env.reset(seed=0, options={"episode": episode, "start": 1})
    observation, reward, _, _, info = env.step(episode.action[1])
    terms = {k: info[f"reward_state_{k}"] for k in ("reach", "grasp", "lift")}
    expected = shaped_reward(observation["environment_state"][None], observation["agent_pos"][None],
                             np.array([info["is_success"]]))
    assert terms == pytest.approx({k: float(v[0]) for k, v in expected.items()})
    assert reward == pytest.approx(sum(terms.values())) and 0 < reward <= 1
    env.close()
    with pytest.raises(ValueError, match="carries the object state"):
        gym.make("WoW/Lift-Imagined-v0", model=WorldModel.random("dit-test", env_state_dim=10), reward_model="state")


def test_interaction_evaluation_scores_lifts_and_object_error(lift_data, lift_expert_episode):
    from wow_gym.world_models.video.evaluation import evaluate_interaction

    model = WorldModel.random("dit-test", env_state_dim=10, **OBJECTS)
    with torch.no_grad():  # the moving gate shut for good: the imagined cube never leaves its start
        model.objects.net[-1].bias[-1] = -50.0
    episodes = {"expert": [lift_expert_episode], "short": [DatasetReader(lift_data)[0]]}
    result = evaluate_interaction(model, episodes, known_state=True, horizon_error=4)
    every, lifted, still = result.figures["all"], result.figures["expert"], result.figures["short"]
    assert every["episodes"] == 2 and every["sim_lifts"] == 1  # the 70-step expert lifts; 12 steps do not
    assert lifted["seen_state"] == 0.0 and still["false_state"] == 0.0
    assert every["success_agreement"] == 50.0  # the imagined env never succeeds; the expert episode does
    for at in ("h16", "end"):  # a cube that stays where it started is the copy-last baseline, but that
        # support sets the freshly spawned cube (robosuite drops it from 1 cm up) on the table as the sim does
        state, copy_last = (still[f"object_error_{kind}_{at}_mm"] for kind in ("state", "copy_last"))
        assert state < 1.0 and copy_last > 9.0
        state, copy_last = (lifted[f"object_error_{kind}_{at}_mm"] for kind in ("state", "copy_last"))
        assert state == pytest.approx(copy_last, abs=10.5)
    assert lifted["object_error_copy_last_end_mm"] > 30  # the expert carried the cube away


def test_pose_dynamics_can_read_the_object_state(lift_data):
    model = WorldModel.random("dit-test", env_state_dim=10, pose_objects=True, **OBJECTS)
    ep = DatasetReader(lift_data)[0]

    def next_pose(shift: float) -> np.ndarray:
        given = ep.environment_state[1:2].copy()
        given[0, 0] += shift  # the cube 15 cm to the side: between the fingers or not
        state = model.start(ep.pixels[None, :2], ep.agent_pos[None, :2], ep.action[None, :1],
                            environment_state=given)
        return model.step(state, ep.action[None, 1], torch.Generator().manual_seed(0)).agent_pos[0]

    assert not np.allclose(next_pose(0.0), next_pose(0.15))
    poses = torch.tensor(ep.agent_pos[None, :2])
    with pytest.raises(ValueError, match="reads the object state"):
        model._pose_step(poses, torch.zeros(1, 7), torch.zeros(1, 7))
    plain = WorldModel.random("dit-test", env_state_dim=10, **OBJECTS)
    with pytest.raises(ValueError, match="reads 0 object features"):
        plain.pose(torch.zeros(1, 9), torch.zeros(1, 9), torch.zeros(1, 7), torch.zeros(1, 7), torch.zeros(1, 8))


def test_fingers_stopped_on_a_turned_cube_hold_it_with_grip_turn():
    """A cube turned 40 degrees under the gripper stops the fingers across its diagonal (59 mm, wider than
    Lift's grasp range): with grip_turn the support rule's grasp test holds it there and the carry rule takes
    it up with the hand; without, the same fingers do not hold it and it falls."""
    from wow_gym.world_models.video.fingers import box_across
    from wow_gym.world_models.video.object_layer import quat_product

    model = WorldModel.random("dit-test", env_state_dim=10, **OBJECTS)
    turn = np.radians(40.0)
    cube = torch.tensor([[0.0, 0.0, 0.95, 0.0, 0.0, np.sin(turn / 2), np.cos(turn / 2)]], dtype=torch.float32)
    hand = torch.tensor([[0.0, 0.0, 0.95, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])  # pointing down at its centre
    width = box_across(hand, cube, model._extents, turned=True)[2].item()
    assert width > 0.055
    hand[0, 7], hand[0, 8] = width / 2, -width / 2
    up = hand.clone()
    up[0, 2] += 0.03
    with pytest.raises(ValueError, match="turn finger_rule on too"):
        model.set_options({"grip_turn": True})
    model.set_options({"finger_rule": True, "carry_rule": True})
    assert not model._held(cube, hand).item()
    fell = model._object_step(torch.stack([hand, up], 1), cube, torch.zeros(1, 7))
    assert fell[0, 2].item() < 0.95
    model.set_options({"grip_turn": True})
    assert model._held(cube, hand).item()
    carried = model._object_step(torch.stack([hand, up], 1), cube, torch.zeros(1, 7))
    assert carried[0, 2].item() == pytest.approx(0.98, abs=1e-5)
    # held fast: a hand turning 20 degrees about the vertical turns the cube with it, its width in the grip
    # (the fingers' gap) unchanged, whatever the learned step does to its orientation
    yaw = np.radians(20.0)
    turning = up.clone()
    turning[0, 3:7] = quat_product(torch.tensor([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)]), hand[0, 3:7])
    rigid = model._object_step(torch.stack([hand, turning], 1), cube, torch.zeros(1, 7))
    torch.testing.assert_close(rigid[0, :3], turning[0, :3])
    both = (turn + yaw) / 2  # the cube's turn about the vertical, 40 + 20 degrees
    torch.testing.assert_close(rigid[0, 3:], torch.tensor([0.0, 0.0, np.sin(both), np.cos(both)]).float(),
                               atol=1e-5, rtol=0)
    assert box_across(turning, rigid, model._extents, turned=True)[2].item() == pytest.approx(width, abs=1e-5)
    assert model._held(rigid, turning).item()
    hand[0, 7], hand[0, 8] = 0.035, -0.035  # open wider than the cube across: not held
    assert not model._held(cube, hand).item()
    # a round object (PickPlaceCan's can) has no turn to take
    can = WorldModel.random("dit-test", task="PickPlaceCan",
                            instruction=task_info("pickplacecan").instruction, env_state_dim=14,
                            object_dims=list(range(7, 14)), object_offset_dims=[0, 1, 2])
    with pytest.raises(ValueError, match="grip_turn=true needs"):
        can.set_options({"finger_rule": True, "grip_turn": True})

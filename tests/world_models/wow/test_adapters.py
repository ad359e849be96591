"""The WoW backends on tiny random diffusers pipelines (tiny_pipelines.py; nothing downloaded): a plan from
the real simulator's frame, decoded by FM-IDM and replayed in MuJoCo; the errors; resample_video's frame
choice."""

import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it: these tests never download

import numpy as np
import pytest

from tests.world_models.wow.tiny_pipelines import save_tiny_cosmos2, save_tiny_wan_i2v
from wow_gym.backends import BackendError, make_backend, require, resample_video
from wow_gym.envs.robosuite_env import RobosuiteEnv
from wow_gym.physics_check import VerifyThresholds, physics_check
from wow_gym.world_models import shipped_checkpoint
from wow_gym.world_models.idm.model import InverseDynamics
from wow_gym.world_models.video.imagination import Imagined, Start, rollouts
from wow_gym.world_models.wow.adapters import PassThroughSafetyChecker, frames_for_horizon

HORIZON = 8  # control steps; step 8 (0.4 s) is 16 fps frame 6, so 9 frames (4k+1) are generated
TINY = {"height": 32, "width": 32, "num_inference_steps": 2, "device": "cpu", "seed": 3}
OFF = {"wow-dit-2b": {"safety_checker": "off"}, "wow-wan-14b": {}}


# -- tiny pipelines ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_torch_thread):
    """Backend name -> the folder of its tiny pipeline."""
    root = tmp_path_factory.mktemp("wow")
    return {"wow-dit-2b": save_tiny_cosmos2(root / "cosmos"), "wow-wan-14b": save_tiny_wan_i2v(root / "wan")}


@pytest.fixture(scope="module")
def lift_sim():
    env = RobosuiteEnv("Lift", image_size=64)
    yield env
    env.close()


@pytest.fixture(scope="module")
def fm_idm():
    return InverseDynamics.load(shipped_checkpoint("lift", "idm"))


# -- end to end --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wow-dit-2b", "wow-wan-14b"])
def test_a_plan_from_the_sim_frame_decodes_to_actions_that_replay_in_mujoco(name, tiny, lift_sim, fm_idm):
    observation, info = lift_sim.reset(seed=11)
    sim_state = lift_sim.get_sim_state()
    backend = make_backend(name, path=tiny[name], **TINY, **OFF[name])
    assert backend.name == name and backend.capabilities.fps == 16.0
    assert backend.capabilities.resolution == (32, 32) and backend.capabilities.plans_from_instruction
    pixels, agent_pos = observation["pixels"][None, None], observation["agent_pos"][None, None]

    plan = backend.plan(pixels, agent_pos, [info["instruction"]], HORIZON)
    assert plan.shape == (1, HORIZON, 64, 64, 3) and plan.dtype == np.uint8
    assert np.array_equal(plan, backend.plan(pixels, agent_pos, [info["instruction"]], HORIZON)), \
        "the same seed should give the same plan"

    start = Start(pixels, agent_pos, [info["instruction"]], environment_state=observation["environment_state"][None],
                  tasks=["Lift"], seeds=[11])
    unknown = np.full((1, HORIZON, observation["environment_state"].shape[0]), np.nan, np.float32)
    imagined = rollouts(start, Imagined(plan, np.full((1, HORIZON, 9), np.nan, np.float32), unknown, None,
                                        np.array([HORIZON])))[0]
    assert imagined.num_steps == HORIZON and np.array_equal(imagined.pixels[0], observation["pixels"])
    check = physics_check(imagined, sim_state, fm_idm, lift_sim, VerifyThresholds(require_success=False))
    actions = imagined.idm_action
    assert actions.shape == (HORIZON, 7) and np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1)
    assert check.replayed.num_steps == HORIZON and check.replayed.pixels.shape == (HORIZON + 1, 64, 64, 3)
    assert np.array_equal(check.replayed.pixels[0], observation["pixels"]), "the replay starts from the sim state"
    assert check.psnr.shape == (HORIZON,)


def test_defaults_are_the_released_models_resolution_and_rate(tiny):
    cosmos = make_backend("wow-dit-2b", path=tiny["wow-dit-2b"], device="cpu", safety_checker="off")
    wan = make_backend("wow-wan-14b", path=tiny["wow-wan-14b"], device="cpu")
    assert (cosmos.capabilities.resolution, cosmos.capabilities.fps) == ((704, 1280), 16.0)
    assert (wan.capabilities.resolution, wan.capabilities.fps) == ((480, 832), 16.0)
    assert not cosmos.capabilities.steps_under_actions and not wan.capabilities.steps_under_actions


def test_a_batch_plans_each_row_as_it_would_alone(tiny):
    backend = make_backend("wow-wan-14b", path=tiny["wow-wan-14b"], **TINY)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 2, 64, 64, 3), dtype=np.uint8)
    both = backend.plan(pixels, None, ["lift the red cube", "open the door"], 4)
    assert both.shape == (2, 4, 64, 64, 3)
    assert np.array_equal(both[1:], backend.plan(pixels[1:], None, ["open the door"], 4))


# -- errors ------------------------------------------------------------------------------------------------


def test_missing_or_wrong_folders_say_what_was_expected(tiny, tmp_path):
    with pytest.raises(BackendError, match=r"needs the model's weights: pass path=.*Cosmos2VideoToWorldPipeline"
                                           r".*wow-gym convert-wow"):
        make_backend("wow-dit-2b", safety_checker="off")
    with pytest.raises(BackendError, match="does not exist or is not a folder.*wow-gym convert-wow"):
        make_backend("wow-wan-14b", path=tmp_path / "nowhere")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(BackendError, match=r"not a diffusers folder \(no model_index.json\).*wow-gym convert-wow"):
        make_backend("wow-wan-14b", path=tmp_path)
    with pytest.raises(BackendError, match="holds a WanImageToVideoPipeline, expected a Cosmos2VideoToWorldPipeline"):
        make_backend("wow-dit-2b", path=tiny["wow-wan-14b"], safety_checker="off")


def test_cosmos_needs_an_explicit_safety_checker_choice(tiny, caplog):
    with pytest.raises(BackendError, match='safety_checker must be chosen: "guardrail".*"off".*check_text_safety'):
        make_backend("wow-dit-2b", path=tiny["wow-dit-2b"])
    with pytest.raises(BackendError, match="got safety_checker='maybe'; safety_checker must be chosen"):
        make_backend("wow-dit-2b", path=tiny["wow-dit-2b"], safety_checker="maybe")
    with caplog.at_level("WARNING", logger="wow_gym.world_models.wow.adapters"):
        make_backend("wow-dit-2b", path=tiny["wow-dit-2b"], safety_checker="off", device="cpu")
    assert "NVIDIA Open Model License" in caplog.text and "turned it off" in caplog.text

    class Counting(PassThroughSafetyChecker):  # any object with the checker's interface
        def __init__(self) -> None:
            self.prompts: list[str] = []

        def check_text_safety(self, prompt: str) -> bool:
            self.prompts.append(prompt)
            return True

    checker = Counting()
    backend = make_backend("wow-dit-2b", path=tiny["wow-dit-2b"], safety_checker=checker, **TINY)
    backend.plan(np.zeros((1, 1, 64, 64, 3), np.uint8), None, ["lift the red cube"], 2)
    assert checker.prompts == ["lift the red cube"], "the pipeline should consult the given checker"


def test_the_guardrail_needs_its_package():
    try:
        import cosmos_guardrail  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match="needs the cosmos_guardrail package.*pip install cosmos_guardrail"):
            make_backend("wow-dit-2b", path="unused", safety_checker="guardrail")
    else:
        pytest.skip("cosmos_guardrail is installed here")


def test_the_released_cosmos_transformer_needs_torchvision(tiny, tmp_path):
    try:
        import torchvision  # noqa: F401
    except ImportError:
        folder = shutil.copytree(tiny["wow-dit-2b"], tmp_path / "cosmos")
        config = folder / "transformer" / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "concat_padding_mask": True}))
        with pytest.raises(BackendError, match="needs torchvision.*padding mask.*pip install torchvision"):
            make_backend("wow-dit-2b", path=folder, safety_checker="off", device="cpu")
    else:
        pytest.skip("torchvision is installed here")


def test_plan_only_backends_refuse_to_step_and_bad_settings(tiny):
    backend = make_backend("wow-wan-14b", path=tiny["wow-wan-14b"], **TINY)
    context = np.zeros((1, 1, 64, 64, 3), np.uint8)
    with pytest.raises(BackendError, match="only plans from an instruction.*call plan"):
        backend.start(context, np.zeros((1, 1, 9), np.float32), None, ["lift the red cube"])
    with pytest.raises(BackendError, match="only plans from an instruction.*call plan"):
        backend.step(np.zeros((1, 7), np.float32))
    with pytest.raises(BackendError, match="cannot step under actions; it declares only"):
        require(backend, "steps_under_actions")
    with pytest.raises(BackendError, match=r"needs 161 frames at 16 fps, this backend generates 81 \(horizon <= 100\)"):
        backend.plan(context, None, ["lift"], 200)
    with pytest.raises(BackendError, match="expected one instruction per row"):
        backend.plan(context, None, ["lift", "open"], 2)
    with pytest.raises(BackendError, match=r"expected context pixels \[B,k,H,W,3\] uint8"):
        backend.plan(context[0], None, ["lift"], 2)
    with pytest.raises(BackendError, match=r"num_frames must be k\*4\+1 frames"):
        make_backend("wow-wan-14b", path=tiny["wow-wan-14b"], num_frames=10, device="cpu")
    with pytest.raises(BackendError, match="height and width must be multiples of 16, got 40x32"):
        make_backend("wow-wan-14b", path=tiny["wow-wan-14b"], height=40, width=32, device="cpu")
    with pytest.raises(BackendError, match="dtype must be one of"):
        make_backend("wow-wan-14b", path=tiny["wow-wan-14b"], dtype="float16", device="cpu")
    with pytest.raises(BackendError, match="enable_model_cpu_offload saves GPU memory and needs a GPU"):
        make_backend("wow-wan-14b", path=tiny["wow-wan-14b"], device="cpu", enable_model_cpu_offload=True)


# -- resampling to the task's frames -----------------------------------------------------------------------


def numbered_video(frames: int, size: int = 8) -> np.ndarray:
    """[1, frames, size, size, 3] uint8 whose frame i is filled with the value i."""
    return np.broadcast_to(np.arange(frames, dtype=np.uint8)[None, :, None, None, None],
                           (1, frames, size, size, 3)).copy()


def test_resample_video_picks_the_16fps_frame_nearest_each_20hz_step():
    # step t is at t/20 s; the 16 fps frame nearest it is rint(0.8 t): frame 0, the context, is never picked
    out = resample_video(numbered_video(9), 16, 20, 8, 8)
    assert out[0, :, 0, 0, 0].tolist() == [1, 2, 2, 3, 4, 5, 6, 6]
    assert out.shape == (1, 8, 8, 8, 3) and out.dtype == np.uint8
    faster = resample_video(numbered_video(30), 30, 10, 8, 4)  # 30 fps -> 10 Hz: every third frame
    assert faster[0, :, 0, 0, 0].tolist() == [3, 6, 9, 12]


def test_resample_video_holds_the_last_frame_past_the_end_and_rejects_a_lone_frame():
    out = resample_video(numbered_video(3), 16, 20, 8, 5)
    assert out[0, :, 0, 0, 0].tolist() == [1, 2, 2, 2, 2]
    with pytest.raises(BackendError, match="at least one generated frame, got 1"):
        resample_video(numbered_video(1), 16, 20, 8, 2)
    with pytest.raises(BackendError, match=r"expected frames \[B,T,H,W,3\]"):
        resample_video(numbered_video(3)[0], 16, 20, 8, 2)


def test_resample_video_resizes_with_area_averaging_and_reads_floats():
    checker = (np.indices((128, 128)).sum(0) % 2 * 255).astype(np.uint8)  # 1-pixel 0/255 checkerboard
    video = np.repeat(np.stack([checker] * 3, -1)[None, None], 2, axis=1)
    small = resample_video(video, 16, 20, 64, 1)
    assert small.shape == (1, 1, 64, 64, 3) and np.all(np.abs(small.astype(int) - 128) <= 1), \
        "area averaging should turn each 2x2 block of 0/255 into grey"
    wide = resample_video(np.zeros((2, 3, 704, 1280, 3), np.float32) + 0.5, 16, 20, (64, 48), 2)
    assert wide.shape == (2, 2, 64, 48, 3) and np.all(wide == 128)
    grown = resample_video(numbered_video(2, size=32), 16, 20, 64, 1)
    assert grown.shape == (1, 1, 64, 64, 3) and np.all(grown == 1)


@pytest.mark.parametrize("fps", [16.0, 10.0, 24.0])
def test_frames_for_horizon_is_the_fewest_4k_plus_1_that_cover_it(fps):
    for horizon in range(1, 120):
        count = frames_for_horizon(horizon, fps, 20.0)
        last = int(np.rint(horizon * fps / 20.0))
        assert (count - 1) % 4 == 0 and count >= 5 and last <= count - 1 and (count == 5 or last > count - 5)

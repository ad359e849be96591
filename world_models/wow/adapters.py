"""The released WoW world models as plan backends (`wow_gym.backends.WorldModelBackend`) through diffusers.

WoW-1-DiT-2B is a Cosmos-Predict2 Video2World model (`Cosmos2VideoToWorldPipeline`); WoW-1-Wan-14B is a
Wan2.1 image-to-video model (`WanImageToVideoPipeline`). Neither takes robot actions, so both only plan:
from the newest context frame and an instruction they generate a video at their own resolution and frame
rate, which `resample_video` brings to the task's frames and control rate for FM-IDM, the critic and the
physics check. Both load from a local diffusers folder only (`wow-gym convert-wow` writes one); nothing is
downloaded.

What a plan's frame 0 is: both pipelines return `num_frames` frames whose frame 0 is the conditioning
instant, not a new step. Cosmos pins the first latent frame to the encoded conditioning frame (up to the
sampler's last noise level), so frame 0 is the Wan VAE's reconstruction of it; Wan2.1 I2V generates the first latent frame under a mask that asks
it to reproduce the conditioning frame. So frame 0 is time 0 (the context frame) and resampling takes the
plan's steps from frames 1 on.

Cosmos and its safety checker: diffusers' Cosmos pipeline will not run without a safety checker, and when
given none it builds cosmos_guardrail's `CosmosSafetyChecker`, which downloads its models. `WoWDiT2B`
therefore asks for an explicit `safety_checker`:
  - "guardrail": cosmos_guardrail's checker (pip install cosmos_guardrail), loaded with HF_HUB_OFFLINE=1
    from models already in the local Hugging Face cache, so it never downloads;
  - "off": a pass-through that checks nothing (prompts pass, videos come back unchanged), with one warning,
    as the NVIDIA Open Model License asks for the guardrail;
  - any object with the checker's interface: check_text_safety(prompt) -> bool,
    check_video_safety(frames [T,H,W,3] uint8) -> frames, to(device).

Beyond diffusers they need accelerate (diffusers loads these transformers only through it), ftfy for Wan
(its prompt cleaning) and torchvision for the released Cosmos transformer (its padding mask); a missing one
is named with its pip command before anything loads.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from diffusers import Cosmos2VideoToWorldPipeline, DiffusionPipeline, WanImageToVideoPipeline
from huggingface_hub.constants import is_offline_mode
from PIL import Image

from wow_gym.backends import BackendError, BackendStep, Capabilities, resample_video
from wow_gym.devices import resolve_device
from wow_gym.registry import CONTROL_FREQ

__all__ = ["DiffusersPlanBackend", "PassThroughSafetyChecker", "PipelineDefaults", "WoWDiT2B", "WoWWan14B",
           "frames_for_horizon"]

logger = logging.getLogger(__name__)

CONVERT_COMMAND = "wow-gym convert-wow"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
LICENSE_URL = "https://www.nvidia.com/en-us/agreements/enterprise-software/nvidia-open-model-license"


@dataclass(frozen=True)
class PipelineDefaults:
    """How a released model generates by default: resolution, frame rate, the frames it was trained to
    generate at once, and its sampler settings."""

    height: int
    width: int
    fps: float
    max_frames: int
    num_inference_steps: int
    guidance_scale: float


def frames_for_horizon(horizon: int, model_fps: float, task_fps: float, stride: int = 4) -> int:
    """The fewest frames (k * stride + 1, what a VAE that compresses time by `stride` decodes) whose video
    reaches the frame resample_video picks for control step `horizon`."""
    last = max(int(np.rint(horizon * model_fps / task_fps)), 1)
    return -(-last // stride) * stride + 1


class DiffusersPlanBackend:
    """A diffusers image-to-video pipeline as a plan-only backend. Subclasses name the pipeline class, its
    defaults and any extra call arguments.

    path: the diffusers folder (model_index.json); device "cpu", "cuda" or "auto"; dtype "float32",
    "bfloat16" or "auto" (bf16 on a GPU, fp32 on the CPU); num_inference_steps, guidance_scale, height, width,
    model_fps: None for the released model's defaults; num_frames: None for the fewest that cover the plan's
    horizon (at most the model's trained length), or a fixed count; seed: every plan call samples from it,
    so equal inputs give equal plans; enable_model_cpu_offload: keep each component on the CPU until it
    runs (GPU memory: one component at a time, needs accelerate); image_size and task_fps: the task's frames;
    components: pipeline components to use instead of the folder's (WoWDiT2B passes its safety checker).
    """

    name: ClassVar[str]
    pipeline_class: ClassVar[type[DiffusionPipeline]]
    defaults: ClassVar[PipelineDefaults]
    float32_components: ClassVar[tuple[str, ...]] = ()  # kept in fp32 when dtype is bfloat16

    def __init__(self, task: str = "Lift", path: str | Path | None = None, *, device: str = "auto",
                 dtype: str = "auto", num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 seed: int = 0, enable_model_cpu_offload: bool = False, height: int | None = None,
                 width: int | None = None, model_fps: float | None = None, num_frames: int | None = None,
                 negative_prompt: str | None = None, image_size: int = 64, task_fps: float = CONTROL_FREQ,
                 components: dict[str, Any] | None = None) -> None:
        d = self.defaults
        self.task, self.seed, self.negative_prompt = task, int(seed), negative_prompt
        self.height, self.width = int(height or d.height), int(width or d.width)
        self.model_fps, self.task_fps, self.image_size = float(model_fps or d.fps), float(task_fps), int(image_size)
        self.num_inference_steps = int(num_inference_steps or d.num_inference_steps)
        self.guidance_scale = float(d.guidance_scale if guidance_scale is None else guidance_scale)
        self.num_frames = num_frames
        self.pipeline = self.load(path, device, dtype, enable_model_cpu_offload, components or {})
        self.check_settings()
        self.capabilities = Capabilities(steps_under_actions=False, plans_from_instruction=True,
                                         resolution=(self.height, self.width), fps=self.model_fps)

    # -- loading ---------------------------------------------------------------------------------------

    def load(self, path: str | Path | None, device: str, dtype: str, offload: bool,
             components: dict[str, Any]) -> DiffusionPipeline:
        """The pipeline from the local diffusers folder `path`, on `device` (or offloaded)."""
        folder = self.check_folder(path)
        missing = {name: why for name, why in self.required_packages(folder).items()
                   if importlib.util.find_spec(name) is None}
        if missing:
            reasons = "; ".join(f"{name}: {why}" for name, why in missing.items())
            extra = " (accelerate and ftfy come with pip install 'wow_gym[wow]')" if set(missing) - {"torchvision"} else ""
            raise BackendError(f"{self.name} needs {', '.join(missing)} ({reasons}); "
                               f"pip install {' '.join(missing)}{extra}")
        where = str(resolve_device(device))
        torch_dtype = self.resolve_dtype(dtype, where)
        try:
            pipeline = self.pipeline_class.from_pretrained(folder, local_files_only=True, dtype=torch_dtype,
                                                           **components)
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise BackendError(f"{self.name}: cannot load the diffusers pipeline in {folder} ({error}); "
                               f"rewrite it with `{CONVERT_COMMAND}`") from None
        pipeline.set_progress_bar_config(disable=True)
        if offload:
            if torch.device(where).type == "cpu":
                raise BackendError(f"{self.name}: enable_model_cpu_offload saves GPU memory and needs a GPU; "
                                   "on the CPU leave it off")
            try:
                pipeline.enable_model_cpu_offload(device=where)
            except ImportError as error:
                raise BackendError(f"{self.name}: enable_model_cpu_offload needs accelerate ({error}); "
                                   "pip install accelerate") from None
        else:
            pipeline.to(where)
        return pipeline

    def check_folder(self, path: str | Path | None) -> Path:
        """`path` as a diffusers folder of this model's pipeline class; BackendError saying what was expected."""
        expected = self.pipeline_class.__name__
        hint = (f"pass path=<a local diffusers folder holding a {expected}>; write one from the released "
                f"weights with `{CONVERT_COMMAND}`")
        if path is None:
            raise BackendError(f"{self.name} needs the model's weights: {hint}")
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise BackendError(f"{self.name}: {folder} does not exist or is not a folder; {hint}")
        index = folder / "model_index.json"
        if not index.is_file():
            raise BackendError(f"{self.name}: {folder} is not a diffusers folder (no model_index.json); {hint}")
        try:
            found = json.loads(index.read_text()).get("_class_name")
        except (OSError, ValueError) as error:
            raise BackendError(f"{self.name}: {index} is not readable JSON ({error}); {hint}") from None
        if found != expected:
            raise BackendError(f"{self.name}: {folder} holds a {found}, expected a {expected}; {hint}")
        return folder

    def required_packages(self, folder: Path) -> dict[str, str]:
        """The packages this pipeline needs beyond diffusers, and why."""
        return {"accelerate": "diffusers loads the Cosmos and Wan transformers only through it"}

    def resolve_dtype(self, dtype: str, device: str) -> torch.dtype | dict[str, torch.dtype]:
        """The torch dtype(s) to load with: "auto" is bfloat16 on a GPU, float32 on the CPU."""
        if dtype == "auto":
            dtype = "float32" if torch.device(device).type == "cpu" else "bfloat16"
        if dtype not in DTYPES:
            raise BackendError(f"{self.name}: dtype must be one of {sorted(DTYPES)} or 'auto', got {dtype!r}")
        if dtype == "float32" or not self.float32_components:
            return DTYPES[dtype]
        return {"default": DTYPES[dtype], **{name: torch.float32 for name in self.float32_components}}

    def check_settings(self) -> None:
        """BackendError for a resolution or frame count the pipeline would silently change."""
        pipe = self.pipeline
        multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[-1]
        if self.height % multiple or self.width % multiple:
            raise BackendError(f"{self.name}: height and width must be multiples of {multiple}, "
                               f"got {self.height}x{self.width}")
        stride = pipe.vae_scale_factor_temporal
        if self.num_frames is not None and (self.num_frames < stride + 1 or (self.num_frames - 1) % stride):
            raise BackendError(f"{self.name}: num_frames must be k*{stride}+1 frames (k >= 1), got {self.num_frames}")
        if min(self.model_fps, self.task_fps, self.image_size, self.num_inference_steps) <= 0:
            raise BackendError(f"{self.name}: model_fps, task_fps, image_size and num_inference_steps must be "
                               "positive")

    # -- the backend protocol --------------------------------------------------------------------------

    def start(self, pixels: np.ndarray, agent_pos: np.ndarray, actions: np.ndarray | None,
              instructions: list[str]) -> None:
        raise BackendError(f"{self.name} only plans from an instruction (it takes no actions): call "
                           "plan(pixels, agent_pos, instructions, horizon), not start/step")

    def step(self, actions: np.ndarray) -> BackendStep:
        raise BackendError(f"{self.name} only plans from an instruction (it takes no actions): call "
                           "plan(pixels, agent_pos, instructions, horizon), not start/step")

    def plan(self, pixels: np.ndarray, agent_pos: np.ndarray, instructions: list[str] | str, horizon: int
             ) -> np.ndarray:
        """Frames [B,horizon,S,S,3] uint8 at the task's size S and control rate: for each row, the video the
        pipeline generates from its newest context frame under its instruction."""
        pixels = np.asarray(pixels)
        if pixels.ndim != 5 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8:
            raise BackendError(f"{self.name}: expected context pixels [B,k,H,W,3] uint8, got "
                               f"{pixels.dtype} {pixels.shape}")
        prompts = [instructions] * len(pixels) if isinstance(instructions, str) else list(instructions)
        if len(prompts) != len(pixels):
            raise BackendError(f"{self.name}: expected one instruction per row ({len(pixels)}), got {len(prompts)}")
        count = self.frames_for(int(horizon))
        videos = [self.generate(frame, prompt, count) for frame, prompt in zip(pixels[:, -1], prompts)]
        return resample_video(np.stack(videos), self.model_fps, self.task_fps, self.image_size, int(horizon))

    def frames_for(self, horizon: int) -> int:
        """How many frames to generate for `horizon` control steps; BackendError past the model's length."""
        if horizon < 1:
            raise BackendError(f"{self.name}: horizon must be >= 1, got {horizon}")
        stride = self.pipeline.vae_scale_factor_temporal
        needed = frames_for_horizon(horizon, self.model_fps, self.task_fps, stride)
        if self.num_frames is not None:
            count = self.num_frames
        elif needed <= self.defaults.max_frames:
            return needed
        else:
            count = self.defaults.max_frames
        if count < needed:
            reach = int((count - 1) * self.task_fps / self.model_fps)
            raise BackendError(f"{self.name}: a {horizon}-step plan at {self.task_fps:g} Hz needs {needed} frames "
                               f"at {self.model_fps:g} fps, this backend generates {count} (horizon <= {reach}); "
                               "plan a shorter horizon or pass num_frames")
        return count

    def generate(self, frame: np.ndarray, prompt: str, num_frames: int) -> np.ndarray:
        """The pipeline's video [T,h,w,3] (float in [0,1]) from one context frame [H,W,3] uint8; frame 0 is
        the context instant. The square task frame is stretched to the model's resolution, which
        resample_video undoes."""
        image = Image.fromarray(frame).resize((self.width, self.height), Image.Resampling.BICUBIC)
        generator = torch.Generator("cpu").manual_seed(self.seed)  # CPU noise: the same plan on any device
        out = self.pipeline(image=image, prompt=prompt, negative_prompt=self.negative_prompt, height=self.height,
                            width=self.width, num_frames=num_frames, num_inference_steps=self.num_inference_steps,
                            guidance_scale=self.guidance_scale, generator=generator, output_type="np",
                            **self.extra_call_arguments())
        return np.asarray(out.frames)[0]

    def extra_call_arguments(self) -> dict[str, Any]:
        """Pipeline arguments only this model takes."""
        return {}


# -- Cosmos' safety checker --------------------------------------------------------------------------------


class PassThroughSafetyChecker:
    """What the Cosmos pipeline calls on its safety checker, checking nothing (safety_checker="off")."""

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, frames: np.ndarray) -> np.ndarray:
        return frames

    def to(self, *args: Any, **kwargs: Any) -> PassThroughSafetyChecker:
        return self


SAFETY_METHODS = ("check_text_safety", "check_video_safety", "to")
SAFETY_CHOICES = ('safety_checker must be chosen: "guardrail" (cosmos_guardrail\'s CosmosSafetyChecker, '
                  'pip install cosmos_guardrail, its models already in the local Hugging Face cache and '
                  'HF_HUB_OFFLINE=1), "off" (no checks; the NVIDIA Open Model License asks for the guardrail), '
                  f"or an object with {', '.join(SAFETY_METHODS)}")


def cosmos_safety_checker(choice: Any) -> Any:
    """The safety checker the Cosmos pipeline runs, from the user's explicit choice."""
    if choice is None:
        raise BackendError(f"wow-dit-2b: {SAFETY_CHOICES}")
    if choice == "off":
        logger.warning("wow-dit-2b runs without the Cosmos guardrail (safety_checker='off'): the NVIDIA Open "
                       "Model License (%s) asks for it; you turned it off", LICENSE_URL)
        return PassThroughSafetyChecker()
    if choice == "guardrail":
        return load_guardrail()
    if isinstance(choice, str) or not all(callable(getattr(choice, m, None)) for m in SAFETY_METHODS):
        raise BackendError(f"wow-dit-2b: got safety_checker={choice!r}; {SAFETY_CHOICES}")
    return choice


def load_guardrail() -> Any:
    """cosmos_guardrail's CosmosSafetyChecker from models already on disk (offline mode, no download)."""
    try:
        from cosmos_guardrail import CosmosSafetyChecker
    except ImportError as error:
        raise BackendError(f"wow-dit-2b: safety_checker='guardrail' needs the cosmos_guardrail package "
                           f"({error}); pip install cosmos_guardrail, or choose 'off'") from None
    if not is_offline_mode():
        raise BackendError("wow-dit-2b: the guardrail would download its models; fetch them once into the "
                           "Hugging Face cache, then run with HF_HUB_OFFLINE=1 so they load from disk")
    try:
        return CosmosSafetyChecker()
    except (OSError, ValueError, RuntimeError, ImportError) as error:  # hub cache misses are OSErrors
        raise BackendError(f"wow-dit-2b: cannot load the Cosmos guardrail's models from the local cache "
                           f"({type(error).__name__}: {error}); fetch them once with network access") from None


# -- the released models -----------------------------------------------------------------------------------


class WoWDiT2B(DiffusersPlanBackend):
    """WoW-1-DiT-2B (Cosmos-Predict2 2B Video2World): 704x1280 at 16 fps, 93 frames. `safety_checker` is
    required: "guardrail", "off" or a checker object (see the module docstring)."""

    name = "wow-dit-2b"
    pipeline_class = Cosmos2VideoToWorldPipeline
    defaults = PipelineDefaults(height=704, width=1280, fps=16.0, max_frames=93, num_inference_steps=35,
                                guidance_scale=7.0)

    def __init__(self, task: str = "Lift", path: str | Path | None = None, safety_checker: Any = None,
                 **options: Any) -> None:
        checker = cosmos_safety_checker(safety_checker)
        super().__init__(task, path, components={"safety_checker": checker}, **options)

    def required_packages(self, folder: Path) -> dict[str, str]:
        needs = super().required_packages(folder)
        try:
            config = json.loads((folder / "transformer" / "config.json").read_text())
        except (OSError, ValueError):
            config = {}  # from_pretrained says what is wrong with the folder
        if config.get("concat_padding_mask"):  # the released Cosmos-Predict2 transformers have it
            needs["torchvision"] = "the Cosmos transformer resizes its padding mask with it"
        return needs

    def extra_call_arguments(self) -> dict[str, Any]:
        return {"fps": round(self.model_fps)}  # Cosmos conditions on the frame rate


class WoWWan14B(DiffusersPlanBackend):
    """WoW-1-Wan-14B (Wan2.1 I2V 14B 480P): 480x832 at 16 fps, 81 frames. The CLIP image encoder is used
    when the folder has one, as in the pipeline."""

    name = "wow-wan-14b"
    pipeline_class = WanImageToVideoPipeline
    defaults = PipelineDefaults(height=480, width=832, fps=16.0, max_frames=81, num_inference_steps=50,
                                guidance_scale=5.0)
    float32_components = ("vae", "image_encoder")  # as Wan's own bf16 recipe keeps them

    def required_packages(self, folder: Path) -> dict[str, str]:
        return {**super().required_packages(folder), "ftfy": "the Wan pipeline cleans every prompt with it"}

"""The world model as one object: autoencoder + DiT + pose dynamics + object probe + reward head.

`WorldModel.start(...)` turns context frames into an `ImaginationState`; `step(state, actions)` advances a
whole batch by one control step (pose dynamics, then the DiT conditioned on the new pose, then the heads);
`generate(...)` rolls out an instruction-conditioned plan with no actions. Everything runs on torch
tensors in one batch, which is what makes batched imagination fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wow_gym.checks import check_actions, check_frames, check_poses
from wow_gym.devices import check_compilable
from wow_gym.registry import task_info
from wow_gym.tasks.base import finger_gap, grasped, rest_level, success_on_state
from wow_gym.world_models.checkpoint import (
    CONFIG_FILE,
    CheckpointError,
    load_weights,
    read_meta,
    read_weights,
    save_checkpoint,
)
from wow_gym.world_models.text import embed_instructions
from wow_gym.world_models.video.arm import ARM_JOINTS, PhysicsArm, shared_arm
from wow_gym.world_models.video.arm import STATE_DIM as ARM_STATE_DIM
from wow_gym.world_models.video.arm_layer import shared_arm_layer
from wow_gym.world_models.video.autoencoder import (
    AutoencoderConfig,
    build_autoencoder,
    pixels_to_tensor,
    tensor_to_pixels,
)
from wow_gym.world_models.video.config import FORMAT_VERSION, WorldModelConfig, default_stats
from wow_gym.world_models.video.contact import contact_stop
from wow_gym.world_models.video.dit import DiTConfig, VideoDiT
from wow_gym.world_models.video.dynamics import (
    LatentHead,
    ObjectDynamics,
    PixelProbe,
    PoseDynamics,
    object_features,
)
from wow_gym.world_models.video.fingers import (GRIPPING, box_across, carried_rigidly, finger_step,
                                                gripping_box, infer_gripper, push_between)
from wow_gym.world_models.video.flow import euler_sample, guided
from wow_gym.world_models.video.object_layer import ObjectLayer
from wow_gym.world_models.video.pose_map import FEATURES as POSE_MAP_FEATURES
from wow_gym.world_models.video.pose_map import pose_map

TRAIN_COMMAND = "wow-gym train-world-model"
QUAT = slice(3, 7)  # agent_pos[3:7] is the end-effector quaternion; object state [3:7] the object's
LAYER_BAND = 24.0  # levels: a change this large in the old object's place is the DiT's drawing (no deadband)
FALL = 0.04  # metres an unheld object falls per control step (20 Hz: about free fall over a short drop)
PUSH = 0.05  # metres across: a resting object moved less than this from its start is drawn there (a push)
# The config switches that change how a trained model imagines and nothing it learned: an evaluation, the
# imagined env or an RL run may set them on a loaded checkpoint (WorldModel.set_options).
OPTIONS = ("residual_deadband", "object_layer", "object_layer_pushes", "arm_contact", "finger_rule",
           "arm_physics", "arm_layer", "arm_erase", "scene_layer", "known_state", "carry_rule", "grip_turn",
           "joint_rule")


def checkpoint_options() -> dict[str, Any]:
    """Every imagination switch at None, the checkpoint's own setting: the configs' world_model_options."""
    return dict.fromkeys(OPTIONS)


@dataclass
class ImaginationState:
    """A batch of imagined episodes in flight (torch tensors on the model's device).

    latents [B,K,C,h,w] normalised latents of the last K frames, oldest first; poses [B,2,P] raw agent_pos of
    the last two steps; actions [B,H-1,A] the previous actions of the chunk; text [B,384]; keep_text [B];
    frame [B,H,W,3] the newest real context frame and reference [B,H,W,3] its own decoding (float): a
    residually decoded imagined frame is frame + (decoding - reference), and the residual deadband falls back
    to frame (both zeros when the model does not decode residually); objects [B,O] the raw object state
    (position, then quaternion or the rest of its state) carried by the object dynamics ([B,0] for a model
    without it), and anchor [B,O] the object's state in `frame` (where the object layer finds it); gripper
    [B,3] the gripper's command and its fingers' opening velocities where the finger rule moves the fingers
    ([B,0] elsewhere); arm [B,arm.STATE_DIM] float64 the arm's joints, their velocities and the controller's
    posture target where the robot's own arm moves it (arm_physics; [B,0] elsewhere); frame_pose [B,P] the raw
    agent_pos in `frame` (where the arm layer's arm_erase finds the arm the frame shows); base [B,E] the
    start's raw environment_state, whose entries the carried object does not move stay as they were (the green
    cube of Stack; [B,0] for a model without carried object state).
    """

    latents: torch.Tensor
    poses: torch.Tensor
    actions: torch.Tensor
    text: torch.Tensor
    keep_text: torch.Tensor
    frame: torch.Tensor
    reference: torch.Tensor
    objects: torch.Tensor
    anchor: torch.Tensor
    gripper: torch.Tensor
    arm: torch.Tensor
    frame_pose: torch.Tensor
    base: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.latents.shape[0]

    def replace(self, rows: np.ndarray | torch.Tensor | list[int], other: ImaginationState) -> None:
        """Overwrite rows (indices or a boolean mask) with `other`'s rows, in order."""
        index = torch.as_tensor(np.flatnonzero(rows) if np.asarray(rows).dtype == bool else rows,
                                dtype=torch.long, device=self.latents.device)
        if index.numel() != other.batch_size:
            raise ValueError(f"replacing {index.numel()} rows needs a state of that batch size, "
                             f"got {other.batch_size}")
        with torch.no_grad():
            for f in fields(self):
                getattr(self, f.name)[index] = getattr(other, f.name).to(getattr(self, f.name).dtype)

    def bytes_per_episode(self) -> float:
        """Memory the state holds per imagined episode (its tensors' bytes over the batch)."""
        total = sum(getattr(self, f.name).numel() * getattr(self, f.name).element_size() for f in fields(self))
        return total / max(self.batch_size, 1)

    def select(self, rows: np.ndarray | list[int]) -> ImaginationState:
        index = torch.as_tensor(rows, dtype=torch.long, device=self.latents.device)
        return ImaginationState(*(getattr(self, f.name)[index].clone() for f in fields(self)))


@dataclass
class StepOutput:
    """What one imagined step returns, as numpy arrays."""

    pixels: np.ndarray  # [B,H,W,3] uint8
    agent_pos: np.ndarray  # [B,P] float32
    environment_state: np.ndarray  # [B,E] float32
    reward: np.ndarray  # [B] float32
    success: np.ndarray  # [B] bool
    latents: torch.Tensor = field(repr=False, default=None)  # [B,C,h,w] normalised


class WorldModel(nn.Module):
    """Autoencoder, DiT, pose dynamics, object probe and reward head, with their data statistics."""

    def __init__(self, config: WorldModelConfig, stats: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        self.config = config
        ae, p = config.autoencoder, config.agent_pos_dim
        self.autoencoder = build_autoencoder(ae)
        self.dit = VideoDiT(config.dit)
        # the distilled one-step sampler (train stage "distill"), used when imagining at 1 sampling step
        self.one_step_dit = VideoDiT(config.dit) if config.one_step else None
        self.pose = PoseDynamics(p, config.action_dim, width=config.pose_width,
                                 object_features=object_features(len(config.object_dims))
                                 if config.pose_objects else 0)
        self.probe = (PixelProbe(config.env_state_dim) if config.pixel_probe
                      else LatentHead(ae.latent_channels, ae.latent_size, config.env_state_dim,
                                      width=config.head_width))
        if config.object_dims is not None:
            self.objects = ObjectDynamics(p, len(config.object_dims), config.action_dim)
            self.register_buffer("_object_index", torch.tensor(config.object_dims), persistent=False)
            self.register_buffer("_offset_index", torch.tensor(config.object_offset_dims), persistent=False)
        # success read off the carried object state: its centre above the task's height (None: the head)
        info = task_info(config.task)
        self.success_height = info.success_height if config.object_dims is not None else None
        # ... or the task's success test on the carried state (functions, not the Task: the model deep-copies)
        self.state_success = info.state_success if config.object_dims is not None else None
        self.derive_state = info.derive_state
        # (rest height, lean, grasp reach, grasp gap low, high): numbers, not the Task, so the model deep-copies
        self.support = ((info.rest_height, info.lean, info.grasp_reach, *info.grasp_gap)
                        if info.rest_height is not None and info.grasp_gap is not None else None)
        self.rest_on = info.rest_on  # where more than the table holds the object up (Stack: the green cube)
        self.reward = LatentHead(ae.latent_channels, ae.latent_size, 2, pose_dim=p, width=config.head_width)
        self.stats: dict[str, list[float]] = {}
        self.set_stats(stats or default_stats(config))
        self.autocast = False  # bf16 autocast on CPU: faster on CPUs with bf16 units
        if config.camera is not None:
            self.register_buffer("_camera", torch.tensor(config.camera, dtype=torch.float32), persistent=False)
        # built wherever it can be, used where config.object_layer says (an evaluation may switch it)
        self.layer = None
        if config.object_dims is not None and config.camera is not None and info.object_extents is not None:
            self.layer = ObjectLayer(torch.tensor(config.camera), info.object_extents, config.image_size)
        # the still object (Stack's green cube), drawn where the start's scene has it where config.scene_layer
        # says: built wherever the task names one and the camera is known
        self.scene_layer, self.scene_pose = None, info.scene_pose
        # (index of its height in environment_state, its rest height, the task's lean): settle_scene
        self.scene_rest = (None if info.scene_rest_height is None or config.object_dims is None else
                           (info.scene_pose.start + 2, info.scene_rest_height, info.lean))
        if config.camera is not None and info.scene_pose is not None:
            self.scene_layer = ObjectLayer(torch.tensor(config.camera), info.scene_extents, config.image_size)
        # arm contact: possible wherever the task allows, used where config.arm_contact says (an evaluation
        # may switch it)
        self.table_height = info.table_height
        self.can_contact = (config.object_dims is not None and info.object_extents is not None
                            and info.table_height is not None)
        # the finger rule: possible wherever the model carries a box-shaped object, or the state of one the
        # fingers grip (Door's lever: Task.grip_box) (an evaluation may switch it)
        # functions, not the Task
        self.grip_box, self.grip_caged, self.joint_step = info.grip_box, info.grip_caged, info.joint_step
        extents = info.object_extents if info.grip_box is None else info.grip_extents
        self.can_grip = config.object_dims is not None and extents is not None
        self.square_object = info.square_object
        if self.can_grip:
            self.register_buffer("_extents", torch.tensor(extents), persistent=False)
        self._check_possible({name: getattr(config, name) for name in ("object_layer", "arm_contact",
                                                                        "finger_rule", "scene_layer",
                                                                        "grip_turn", "joint_rule")})

    def set_options(self, options: dict[str, Any]) -> None:
        """Set imagination switches (OPTIONS, in WorldModelConfig) on this model, in place; a None value keeps
        the checkpoint's. ValueError, naming what is expected, for an unknown name, a wrong type or a switch
        this model or its task cannot honour; nothing is set then."""
        given = {name: value for name, value in (options or {}).items() if value is not None}
        unknown = sorted(set(given) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown world-model option(s) {unknown}; a trained model takes "
                             f"{list(OPTIONS)}")
        for name, value in given.items():
            if name == "residual_deadband":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"residual_deadband must be a number of pixel levels, got {value!r}")
                given[name] = float(value)
            elif not isinstance(value, bool):
                raise ValueError(f"world-model option {name} must be true or false, got {value!r}")
        self._check_possible(given)
        checked = replace(self.config, **given)  # WorldModelConfig's own checks (the deadband's range ...)
        for name in given:
            setattr(self.config, name, getattr(checked, name))

    def _check_possible(self, switches: dict[str, Any]) -> None:
        """ValueError for a switch turned on that this model or its task cannot honour."""
        needs = {"object_layer": (self.layer is not None, "a model that carries the object state and a task "
                                  "with object_extents"),
                 "arm_contact": (self.can_contact, "a model that carries the object state and a task with "
                                 "object_extents and table_height"),
                 "finger_rule": (self.can_grip, "a model that carries the object state and a task with "
                                 "object_extents (or grip_extents)"),
                 "scene_layer": (self.scene_layer is not None, "a task with a still object (scene_pose, "
                                 "scene_extents) and a model that knows its camera"),
                 "carry_rule": (self.support is not None and self.config.object_dims is not None,
                                "a model that carries the object state and a task with a grasp test "
                                "(rest_height, grasp_reach, grasp_gap)"),
                 "grip_turn": (self.can_grip and self.square_object, "the finger rule's box with a square "
                               "footprint (a model that carries the object state and a task with "
                               "object_extents and square_object)"),
                 "joint_rule": (self.can_grip and self.joint_step is not None, "an articulated object whose "
                                "state the model carries (a task with joint_step and grip_box: Door)")}
        for name, (possible, what) in needs.items():
            if switches.get(name) and not possible:
                raise ValueError(f"{name}=true needs {what}; this {self.config.task} model cannot")

    @property
    def physics_arm(self) -> PhysicsArm:
        """The robot's arm in MuJoCo (arm_physics), built at first use, once per task and process."""
        return shared_arm(self.config.task)

    # -- construction ------------------------------------------------------------------------------------

    @classmethod
    def random(cls, preset: str = "dit-test", seed: int = 0, **overrides: Any) -> WorldModel:
        """An untrained model (for tests and as the start of training)."""
        if preset == "dit-test":
            overrides.setdefault("autoencoder", AutoencoderConfig(latent_channels=4, mid_channels=8,
                                                                  wide_channels=16, blocks=1))
        overrides.setdefault("dit", DiTConfig(preset=preset))
        torch.manual_seed(seed)
        return cls(WorldModelConfig(**overrides)).eval()

    def set_stats(self, stats: dict[str, list[float]]) -> None:
        missing = set(default_stats(self.config)) - set(stats)
        if missing:
            raise CheckpointError(f"world-model statistics lack {sorted(missing)}; retrain the model")
        self.stats = {k: [float(x) for x in v] for k, v in stats.items()}
        for key, value in self.stats.items():
            self.register_buffer(f"_{key}", torch.tensor(value, dtype=torch.float32), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.dit.spatial_pos.device

    # -- persistence -------------------------------------------------------------------------------------

    def save(self, directory: str | Path, dtype: torch.dtype = torch.float16) -> Path:
        """Write model.safetensors + config.json (config, statistics, version) atomically.

        Weights are stored in float16 by default (half the size in git; loading casts back to float32).
        """
        meta = {"format_version": FORMAT_VERSION, "config": self.config.to_dict(), "stats": self.stats}
        return save_checkpoint(directory, self, meta, dtype)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu",
             task: str | None = None) -> WorldModel:
        """Load a checkpoint directory; every problem raises CheckpointError saying what to do. A world model
        shared by several tasks (world_models/video/shared.py) loads as `task`'s model."""
        meta = read_meta(directory, "world-model", TRAIN_COMMAND, FORMAT_VERSION)
        tensors = None
        if "tasks" in meta:
            from wow_gym.world_models.video.shared import select_task

            meta, tensors = select_task(directory, meta, task, read_weights(directory, TRAIN_COMMAND))
        try:
            config = WorldModelConfig(**meta["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{Path(directory) / CONFIG_FILE} does not describe a world model ({exc}); "
                                  "retrain it") from None
        model = cls(config, meta.get("stats"))
        load_weights(directory, model, TRAIN_COMMAND, tensors)
        return model.to(device).eval()

    def check_compatible(self, *, image_size: int | None = None, action_dim: int | None = None,
                         source: str = "") -> None:
        """Raise CheckpointError when this model cannot serve an env of this image or action size."""
        where = f" ({source})" if source else ""
        if image_size is not None and image_size != self.config.image_size:
            raise CheckpointError(f"world model{where} was trained on {self.config.image_size}x"
                                  f"{self.config.image_size} frames but the env asks for {image_size}x"
                                  f"{image_size}; make the env with image_size={self.config.image_size} or "
                                  f"train a model at {image_size} px")
        if action_dim is not None and action_dim != self.config.action_dim:
            raise CheckpointError(f"world model{where} takes {self.config.action_dim}-D actions but the env "
                                  f"has {action_dim}-D actions; train a model on data from this env")

    # -- normalisation -----------------------------------------------------------------------------------

    def _norm(self, x: torch.Tensor, key: str, std_key: str | None = None) -> torch.Tensor:
        std = getattr(self, f"_{std_key or key + '_std'}")
        return (x - getattr(self, f"_{key}_mean")) / std

    def normalize_latents(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self._latent_mean.view(-1, 1, 1)) / self._latent_std.view(-1, 1, 1)

    def denormalize_latents(self, zn: torch.Tensor) -> torch.Tensor:
        return zn * self._latent_std.view(-1, 1, 1) + self._latent_mean.view(-1, 1, 1)

    # -- pixels <-> latents ------------------------------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    @torch.no_grad()
    def encode(self, pixels: np.ndarray | torch.Tensor, batch: int = 256) -> torch.Tensor:
        """uint8 [..., H, W, 3] -> normalised latents [..., C, h, w] ."""
        pixels = torch.as_tensor(pixels)
        check_frames(pixels, "pixels to encode", size=self.config.image_size, leading=None)
        lead = pixels.shape[:-3]
        flat = pixels.reshape(-1, *pixels.shape[-3:]).to(self.device)
        out = []
        with self._autocast():
            for i in range(0, flat.shape[0], batch):
                images = pixels_to_tensor(flat[i:i + batch])
                out.append(self.autoencoder.encode(images).float())
        z = self.normalize_latents(torch.cat(out))
        return z.reshape(*lead, *z.shape[1:])

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Normalised latents [..., C, h, w] -> uint8 pixels [..., H, W, 3]."""
        lead = latents.shape[:-3]
        flat = self.denormalize_latents(latents.reshape(-1, *latents.shape[-3:]).float())
        out = []
        with self._autocast():
            for i in range(0, flat.shape[0], batch):
                out.append(tensor_to_pixels(self.autoencoder.decode(flat[i:i + batch])))
        pixels = torch.cat(out)
        return pixels.reshape(*lead, *pixels.shape[1:])

    def pose_map(self, poses: torch.Tensor) -> torch.Tensor | None:
        """The DiT's gripper map of raw agent_pos [B, 2, P] (now, next); None for a model without a camera."""
        if self.config.camera is None:
            return None
        grid = self.config.dit.latent_size // self.config.dit.patch
        return pose_map(self._camera, poses[..., :3].float(), self.config.image_size, grid)

    def object_map(self, objects: torch.Tensor) -> torch.Tensor | None:
        """The DiT's object map of raw object states [B, 2, 7] (now, next); None without one."""
        if not self.config.object_map:
            return None
        grid = self.config.dit.latent_size // self.config.dit.patch
        return pose_map(self._camera, objects[..., :3].float(), self.config.image_size, grid)

    @torch.no_grad()
    def read_state(self, pixels: np.ndarray | torch.Tensor, batch: int = 256) -> np.ndarray:
        """The object probe's reading of uint8 frames [..., H, W, 3] -> raw environment_state [..., E]."""
        pixels = torch.as_tensor(np.asarray(pixels))
        check_frames(pixels, "frames to probe", size=self.config.image_size, leading=None)
        flat = pixels.reshape(-1, *pixels.shape[-3:])
        out = []
        for i in range(0, flat.shape[0], batch):
            chunk = flat[i:i + batch].to(self.device)
            with self._autocast():
                if self.config.pixel_probe:
                    state = self.probe(pixels_to_tensor(chunk)).float()
                else:
                    state = self.probe(self.encode(chunk)).float()
            out.append(state * self._env_state_std + self._env_state_mean)
        return torch.cat(out).cpu().numpy().reshape(*pixels.shape[:-3], -1).astype(np.float32)

    # -- imagination -------------------------------------------------------------------------------------

    def instruction_embedding(self, instructions: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,384] embeddings and keep mask (None -> no instruction: the unconditional embedding)."""
        texts = [t if t else self.config.instruction for t in instructions]
        emb = torch.as_tensor(embed_instructions(texts), device=self.device)
        keep = torch.tensor([bool(t) for t in instructions], device=self.device)
        return emb, keep

    @torch.no_grad()
    def start(self, pixels: np.ndarray, agent_pos: np.ndarray, actions: np.ndarray | None = None,
              instruction: str | list[str | None] | None = None,
              environment_state: np.ndarray | None = None) -> ImaginationState:
        """A batch of episodes from context: pixels [B,k,H,W,3], agent_pos [B,k,P], actions [B,k-1,A].

        k may be 1..K; missing older frames repeat the oldest (as at an episode start in training).
        `instruction` defaults to the task's; pass a list for one per episode. A model that carries the
        object state reads it off the newest frame with the probe, or takes `environment_state` [B,E] (the
        simulator's, where known).
        """
        pixels = check_frames(np.asarray(pixels), "context pixels", size=self.config.image_size, leading=2)
        b, k = pixels.shape[:2]
        K, A, H = self.config.context_frames, self.config.action_dim, self.config.dit.action_history
        # writable copies for torch
        agent_pos = np.array(check_poses(agent_pos, (b, k, self.config.agent_pos_dim), "context agent_pos"))
        if actions is None:
            actions = np.zeros((b, max(k - 1, 0), A), np.float32)
        actions = np.array(check_actions(actions, (b, max(k - 1, 0), A), f"actions between {k} context frames"))
        latents = self.encode(pixels)
        if k < K:
            latents = torch.cat([latents[:, :1].expand(-1, K - k, -1, -1, -1), latents], dim=1)
        latents = latents[:, -K:]
        poses = torch.as_tensor(agent_pos, device=self.device)
        poses = torch.cat([poses[:, :1], poses], dim=1)[:, -2:]
        acts = torch.zeros(b, H - 1, A, device=self.device)
        if k > 1 and H > 1:
            tail = torch.as_tensor(actions[:, -(H - 1):], device=self.device)
            acts[:, -tail.shape[1]:] = tail
        if instruction is None or isinstance(instruction, str):
            instruction = [instruction or self.config.instruction] * b
        if len(instruction) != b:
            raise ValueError(f"got {len(instruction)} instructions for a batch of {b}")
        text, keep = self.instruction_embedding(list(instruction))
        newest = torch.as_tensor(pixels[:, -1], device=self.device).float()
        if self.config.residual_decoding:
            reference = self.decode(latents[:, -1]).float()
        else:
            newest = reference = torch.zeros_like(newest)
        if self.config.object_dims is None:
            base = torch.zeros(b, 0, device=self.device)
            objects = base
        else:
            if environment_state is None:
                environment_state = self.read_state(pixels[:, -1])
            environment_state = check_poses(environment_state, (b, self.config.env_state_dim),
                                            "start environment_state")
            base = torch.as_tensor(np.asarray(environment_state), device=self.device).float()
            base = self.settle_scene(base)
            objects = base[:, self._object_index]
        objects = objects.float().contiguous()
        gripper = torch.zeros(b, 0, device=self.device)
        if self.config.finger_rule:
            last_grip = acts[:, -1, -1] if k > 1 and H > 1 else None
            gripper = infer_gripper(poses, last_grip)
        arm = torch.zeros(b, 0, dtype=torch.float64, device=self.device)
        if self.config.arm_physics:
            arm = self.physics_arm.solve(poses, torch.as_tensor(actions[:, -1]) if k > 1 else None)
        return ImaginationState(latents.contiguous(), poses.contiguous(), acts, text, keep, newest, reference,
                                objects, objects.clone(), gripper.contiguous(), arm.contiguous(),
                                poses[:, -1].clone(), base.contiguous())

    def _object_features(self, objects: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """[B,O+1] (dynamics.object_features): the object's normalised state but its x, y (height and
        orientation, or joint angles) and its offset from the gripper."""
        return torch.cat([self._norm(objects, "object")[:, 2:], (objects[:, :3] - pose[:, :3]) / self._offset_std], 1)

    def _pose_step(self, poses: torch.Tensor, action: torch.Tensor, prev: torch.Tensor,
                   objects: torch.Tensor | None = None) -> torch.Tensor:
        """Raw agent_pos [B,P] one step on from [B,2,P] (before, now); `objects` [B,7] are read where the
        pose dynamics reads the object (pose_objects)."""
        now = poses[:, -1]
        velocity = (now - poses[:, -2]) / self._dpose_std
        features = None
        if self.config.pose_objects:
            if objects is None:
                raise ValueError("this world model's pose dynamics reads the object state; pass objects")
            features = self._object_features(objects, now)
        delta = self.pose(self._norm(now, "pose"), velocity, action, prev, features)
        nxt = now + delta * self._dpose_std
        quat = nxt[:, QUAT]
        return torch.cat([nxt[:, :3], quat / quat.norm(dim=-1, keepdim=True).clamp_min(1e-6), nxt[:, 7:]], dim=1)

    def _object_step(self, poses: torch.Tensor, objects: torch.Tensor, action: torch.Tensor,
                     with_logit: bool = False, base: torch.Tensor | None = None
                     ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Raw object states [B,O] one step on, given raw agent_pos [B,2,P] (now, next) and actions [B,A]: the
        predicted change where the dynamics says the object moves, none elsewhere (with_logit: and the
        moving logit [B]; the gate passes gradients straight through). `base` [B,E]: the scene's
        environment_state, which a task whose object rests on more than the table needs (Task.rest_on)."""
        now, nxt = poses[:, 0], poses[:, 1]
        features = self._object_features(objects, now)
        out = self.objects(self._norm(now, "pose"), (nxt - now) / self._dpose_std, features, action).float()
        logit = out[:, -1]
        soft = torch.sigmoid(logit)
        gate = ((logit > 0).float() - soft).detach() + soft
        moved = objects + gate[:, None] * out[:, :-1] * self._dobject_std
        if self.config.object_quaternion:
            quat = moved[:, QUAT]
            moved = torch.cat([moved[:, :3], quat / quat.norm(dim=-1, keepdim=True).clamp_min(1e-6)], dim=1)
        if self.support is not None:
            moved = self._supported(moved, objects, poses, base)
        return (moved, logit) if with_logit else moved

    def _held(self, objects: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """[B] bool: the task's grasp test, objects [B,7] within reach of the gripper pose [B,P] and the
        fingers' gap inside the task's grasp range; with grip_turn also fingers stopped at the turned box's
        width (a cube gripped across its diagonal, wider than the range)."""
        _, _, reach, low, high = self.support
        distance = (objects[:, :3] - pose[:, :3]).norm(dim=-1)
        gap = finger_gap(pose)
        held = grasped(distance, gap, reach, (low, high))
        if self.config.grip_turn:
            width = box_across(pose.float(), objects.float(), self._extents.float(), turned=True)[2]
            held = held | ((distance < reach) & ((gap - width).abs() < GRIPPING))
        return held

    def _supported(self, moved: torch.Tensor, before: torch.Tensor, poses: torch.Tensor,
                   base: torch.Tensor | None = None) -> torch.Tensor:
        """Support and gravity (the task's rest height, lean and grasp test) on the learned step from `before`
        to `moved` (objects [B,7]) while the gripper goes from poses[:, 0] to poses[:, 1], in the scene `base`
        [B,E]. An object is held where the gripper holds it both before and after the step. One that is not
        held goes no higher than its rest height where it ends (the table, or what stands under it there) +
        lean or, if it was higher, than where it was less a fall (FALL metres a step), keeping x, y and
        orientation, and no lower than its rest height (or where it was, if lower); one that ends within lean
        of its rest height rests at it. A learned regression alone lets an untouched object drift up to a
        false lift, or jump to a closed gripper centimetres away and ride it up; and it places an object set
        down in the simulator's heights, not on the support as this scene has it (Stack: the success test
        asks for the red cube within 5 mm of resting on the green one). With the carry rule, a held object's
        position moves by the gripper's translation, not the learned step's, and goes no lower than its rest
        height where it ends: a hand lowering it onto the green cube does not push it into that cube
        (WorldModelConfig.carry_rule); with grip_turn too it is held fast, turned with the hand as well."""
        lean = self.support[1]
        held_before = self._held(before, poses[:, 0])
        if self.config.carry_rule:
            if self.config.grip_turn:
                # its turn in the grip sets the fingers' width (fingers.box_across): held fast, it turns with
                # the hand; the learned step's turn drifted in the grip and the width with it, and the rule
                # dropped it
                with_hand = carried_rigidly(before.float(), poses[:, 0].float(),
                                            poses[:, 1].float()).to(moved.dtype)
            else:
                carried = before[:, :3] + poses[:, 1, :3] - poses[:, 0, :3]
                with_hand = torch.cat([carried, moved[:, 3:]], dim=1)
            holds = held_before & self._held(with_hand, poses[:, 1])
            moved = torch.where(holds[:, None], with_hand, moved)
        held = held_before & self._held(moved, poses[:, 1])
        rest = self._rest(moved, base)
        ceiling = rest + lean
        fallen = torch.maximum(before[:, 2] - FALL, ceiling).minimum(moved[:, 2])
        # onto its support, not through it: a learned step that takes a falling or released object lower
        # than its rest height stops there (one already lower, a can lying down, stays as low as it was)
        fallen = fallen.maximum(torch.minimum(rest, before[:, 2]))
        fallen = torch.where((fallen <= ceiling) & (fallen >= rest - lean), rest, fallen)
        carried_z = moved[:, 2].maximum(rest) if self.config.carry_rule else moved[:, 2]
        z = torch.where(held, carried_z, fallen)
        return torch.cat([moved[:, :2], z[:, None], moved[:, 3:]], dim=1)

    def _rest(self, objects: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """[B]: the height objects [B,7] rest at where they are, in the scene `base` [B,E] (Task.rest_on; a
        model with support numbers only)."""
        if self.rest_on is not None and base is None:
            raise ValueError(f"{self.config.task}'s object rests on more than the table; pass the scene's "
                             "environment_state (base) to find what stands under it")
        return rest_level(self.support[0], self.rest_on, objects[:, :3],
                          None if base is None else base.to(objects.dtype))

    def _grip_box(self, objects: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """The finger rule's box [B, 7] of carried object states [B, O]: the object settled on its support,
        or the task's grip box (Door: the lever) where it names one."""
        return self._settled(objects, base) if self.grip_box is None else self.grip_box(objects.float())

    def _caged(self, objects: torch.Tensor, pose: torch.Tensor) -> torch.Tensor | None:
        """[B]: the grip box held in the hand without the pads (Task.grip_caged); None for a task without."""
        return None if self.grip_caged is None else self.grip_caged(objects.float(), pose.float())

    def _settled(self, objects: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """Objects [B,7] with those resting on their support (no higher than rest height + lean) at their
        rest height: the learned step lets an untouched object drift up to the lean, and the finger rule asks
        how far the object's top stands above the fingertips."""
        if self.support is None:
            return objects
        rest = self._rest(objects, base)
        z = torch.where(objects[:, 2] <= rest + self.support[1], rest, objects[:, 2])
        return torch.cat([objects[:, :2], z[:, None], objects[:, 3:]], dim=1)

    def settle_scene(self, base: torch.Tensor) -> torch.Tensor:
        """The scene `base` [B,E] with the task's still object (Stack's green cube, Task.scene_pose) at its
        rest height where it stands within two leans above or one below it. A reset's state has the object
        where robosuite drops it from (1 cm up); the imagined scene never moves, so a start from there kept
        it up there, and with it where the carried object rests on it and the task's success test."""
        if self.scene_rest is None:
            return base
        index, rest, lean = self.scene_rest
        z = base[:, index]
        base = base.clone()
        base[:, index] = torch.where((z <= rest + 2 * lean) & (z >= rest - lean), torch.full_like(z, rest), z)
        return base

    def _resting(self, objects: torch.Tensor, base: torch.Tensor | None = None, lean: float = 1.0
                 ) -> torch.Tensor:
        """[B]: objects [B,7] no higher than their rest height in the scene `base` + `lean` times the task's
        lean (a model with support numbers only)."""
        return objects[:, 2] <= self._rest(objects, base) + lean * self.support[1]

    def environment_state(self, objects: torch.Tensor, pose: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Raw environment_state [B,E] of carried object states [B,O] and agent_pos [B,P]: the start's state
        `base` [B,E] (where the task's state holds more than the object's pose and offset) with the object,
        its offset from the gripper and what the task derives from them (Task.derive_state) set."""
        state = base.clone()
        state[:, self._object_index] = objects
        state[:, self._offset_index] = objects[:, :3] - pose[:, :3]
        return state if self.derive_state is None else self.derive_state(state, pose)

    def compile_samplers(self) -> None:
        """torch.compile the DiTs that imagination samples with, in place, for inference: the weights are
        frozen into the kernels (inductor's `freezing`: casts and layouts done once), so a DiT changed after
        its first compiled call must be compiled again (reload the model). State dict and checkpoint are
        unchanged. Kernels are built at the first step of each batch size and autocast setting (30-40 s per
        DiT on 2 CPU cores); after that a batch-32 step is 1.3-1.5x faster on this project's CPU machines
        (`wow-gym bench imagine compile=true`). Outputs match eager mode to float rounding."""
        check_compilable(self.device)
        for dit in (self.dit, self.one_step_dit):
            if dit is not None and dit._compiled_call_impl is None:
                # the imagined batch keeps its size: no dynamic-shape kernels
                dit.compile(dynamic=False, options={"freezing": True})

    @property
    def compiled(self) -> bool:
        """Whether compile_samplers() has compiled the DiTs."""
        return self.dit._compiled_call_impl is not None

    def sampler(self, steps: int) -> VideoDiT:
        """The DiT that imagines at `steps` Euler steps: the distilled one-step DiT at 1 where there is one."""
        return self.one_step_dit if steps == 1 and self.one_step_dit is not None else self.dit

    def _velocity_fn(self, state: ImaginationState, chunk: torch.Tensor, pose_cond: torch.Tensor,
                     keep_action: bool, guidance_action: float, guidance_text: float,
                     gripper_map: torch.Tensor | None = None, object_map: torch.Tensor | None = None,
                     dit: VideoDiT | None = None):
        dit = self.dit if dit is None else dit
        b = state.batch_size
        ctx = state.latents
        noise_level = torch.full((b,), self.config.ctx_noise, device=self.device)
        ones = torch.ones(b, dtype=torch.bool, device=self.device)
        zeros = torch.zeros_like(ones)
        keep_a = ones if keep_action else zeros
        gmap = gripper_map
        if gmap is None and self.config.camera is not None:  # no pose to draw (plans): dropped with the action
            tokens = (self.config.dit.latent_size // self.config.dit.patch) ** 2
            gmap = torch.zeros(b, tokens, POSE_MAP_FEATURES, device=self.device)
        omap = object_map
        if omap is None and self.config.object_map:
            omap = torch.zeros_like(gmap)

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            v = dit(x, ctx, t, noise_level, chunk, state.text, pose_cond, keep_a, state.keep_text, gmap, omap)
            if keep_action and guidance_action != 1.0:
                v_u = dit(x, ctx, t, noise_level, chunk, state.text, pose_cond, zeros, state.keep_text, gmap,
                               omap)
                v = guided(v, v_u, guidance_action)
            if guidance_text != 1.0:
                v_u = dit(x, ctx, t, noise_level, chunk, state.text, pose_cond, keep_a, zeros, gmap, omap)
                v = guided(v, v_u, guidance_text)
            return v

        return velocity

    def _advance(self, state: ImaginationState, velocity, steps: int, generator: torch.Generator | None
                 ) -> torch.Tensor:
        shape = state.latents[:, -1].shape
        delta = euler_sample(velocity, tuple(shape), steps, generator=generator, device=self.device)
        return state.latents[:, -1] + delta.float() * self._delta_std.view(-1, 1, 1)

    @torch.no_grad()
    def step(self, state: ImaginationState, action: np.ndarray | torch.Tensor,
             generator: torch.Generator | None = None, sampling_steps: int | None = None,
             guidance: float = 1.0) -> StepOutput:
        """Advance every episode of the batch by one control step; `state` is updated in place."""
        action = torch.tensor(check_actions(action, (state.batch_size, self.config.action_dim)), device=self.device)
        action = action.clamp(-1, 1)
        steps = sampling_steps or self.config.sampling_steps
        prev = state.actions[:, -1] if state.actions.shape[1] else torch.zeros_like(action)
        arm = state.arm
        with self._autocast():
            gripper = state.gripper
            box = caged = None  # the box the fingers close on and whether the hand cages it: both rules ask
            if self.config.finger_rule or self.config.joint_rule:
                box = self._grip_box(state.objects, state.base)
                caged = self._caged(state.objects, state.poses[:, -1])
            if self.config.arm_physics:
                if arm.shape[1] != ARM_STATE_DIM:
                    raise ValueError("this state was started without the robot arm's state; start it again "
                                     "with arm_physics on")
                arm, hand = self.physics_arm.step(arm, state.poses[:, -1, 7:9], action)
                fingers = (state.poses[:, -1, 7:] if self.config.finger_rule  # the rule moves them below
                           else self._pose_step(state.poses, action, prev, state.objects).float()[:, 7:])
                next_pose = torch.cat([hand.to(fingers.device), fingers], dim=1)
            else:
                next_pose = self._pose_step(state.poses, action, prev, state.objects).float()
            if self.config.finger_rule:
                if gripper.shape[1] != 3:
                    raise ValueError("this state was started without the finger rule's gripper state; "
                                     "start it again with finger_rule on")
                next_pose, gripper = finger_step(state.poses[:, -1], next_pose, state.gripper, action[:, -1],
                                                 box, self._extents, self.config.grip_turn,
                                                 None if caged is None else ~caged)
            if self.config.arm_contact:
                stepped = next_pose
                next_pose = contact_stop(state.poses[:, -1], next_pose, state.objects, self._extents,
                                         self.table_height)
                stopped = (next_pose[:, :3] != stepped[:, :3]).any(-1)
                if self.config.arm_physics and stopped.any():  # the joints to where the stop left the hand
                    arm = arm.clone()
                    held = next_pose[stopped]
                    arm[stopped] = self.physics_arm.follow(arm[stopped], held, held[:, 7:9])
            ruled = None
            if self.config.joint_rule:  # the door's joints under a hand gripping the lever; it holds the hand
                held = gripping_box(state.poses[:, -1], box, self._extents)
                held = (held if caged is None else held | caged) & (
                    finger_gap(next_pose) < box_across(next_pose, box, self._extents)[2] + GRIPPING)
                with torch.autocast(self.device.type, enabled=False):  # angles and millimetres: float32
                    ruled, hand = self.joint_step(state.objects.float(), state.poses[:, -1, :3].float(),
                                                  next_pose[:, :3].float(), held, action[:, :3].float())
                moved = (hand != next_pose[:, :3]).any(-1)
                next_pose = torch.cat([hand.to(next_pose.dtype), next_pose[:, 3:]], dim=1)
                if self.config.arm_physics and moved.any():  # the joints to where the door holds the hand
                    arm = arm.clone()
                    arm[moved] = self.physics_arm.follow(arm[moved], next_pose[moved], next_pose[moved, 7:9])
            chunk = torch.cat([state.actions, action[:, None]], dim=1)
            pose_cond = self._norm(torch.stack([state.poses[:, -1], next_pose], dim=1), "pose")
            both = torch.stack([state.poses[:, -1], next_pose], dim=1)
            gripper_map = self.pose_map(both)
            objects = state.objects
            if ruled is not None:
                objects = ruled
            elif self.config.object_dims is not None:
                objects = self._object_step(both, state.objects, action, base=state.base).float()
            # the push as the rule sees the object (settled), applied to it; a lever (grip_box) is not pushed
            if self.config.finger_rule and self.grip_box is None:
                settled = self._settled(objects, state.base)
                pushed = push_between(state.poses[:, -1], next_pose, settled, self._extents,
                                      self.config.grip_turn)
                objects = objects + (pushed - settled)
            object_map = self.object_map(torch.stack([state.objects, objects], dim=1))
            velocity = self._velocity_fn(state, chunk, pose_cond, True, guidance, 1.0, gripper_map, object_map,
                                         self.sampler(steps))
            latent = self._advance(state, velocity, steps, generator)
        state.latents = torch.cat([state.latents[:, 1:], latent[:, None]], dim=1)
        state.poses = both
        state.objects = objects
        state.gripper = gripper
        state.arm = arm
        state.actions = torch.cat([state.actions, action[:, None]], dim=1)[:, 1:]
        return self._observe(latent, next_pose, state)

    def _pixels(self, latents: torch.Tensor, state: ImaginationState, objects: torch.Tensor | None = None,
                pose: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 frames of latents [B,...,C,h,w]: decoded on each row's residual anchor, the deadband applied;
        with `objects` [B,7] (frames [B,C,h,w] only) and the object layer on, the object drawn there; with
        `pose` [B,P] (the same frames) and the arm layer on, the robot's arm drawn there."""
        decoded = self.decode(latents).float()
        shape = (state.frame.shape[0], *[1] * (decoded.dim() - 4), *state.frame.shape[1:])
        real, change = state.frame.view(shape), decoded - state.reference.view(shape)
        band = self.config.residual_deadband
        if self.config.residual_decoding and band > 0:
            moved = (change.abs().amax(-1) > band).float()  # [B,...,H,W]
            flat = moved.reshape(-1, 1, *moved.shape[-2:])
            change = change * F.max_pool2d(flat, 3, stride=1, padding=1).reshape(moved.shape)[..., None]
        frames = real + change
        if objects is not None and self.config.scene_layer:
            frames = self.draw_scene(frames, real, state.base, band or LAYER_BAND)
        if objects is not None and self.config.object_layer:
            drawn = self._drawn_pose(objects, state.anchor, state.base)
            frames = self.layer(frames, real, state.anchor, drawn, band or LAYER_BAND)
        frames = frames.round().clamp(0, 255).to(torch.uint8)
        if pose is not None and self.config.arm_layer:
            joints = state.arm[:, :ARM_JOINTS] if state.arm.shape[1] == ARM_STATE_DIM else None
            shown = state.frame_pose if self.config.arm_erase and self.config.residual_decoding else None
            frames = shared_arm_layer(self.config.task, self.config.image_size)(frames, pose, joints, shown)
        return frames

    def draw_scene(self, frames: torch.Tensor, real: torch.Tensor, base: torch.Tensor | None,
                   band: float = LAYER_BAND) -> torch.Tensor:
        """Imagined frames [B, H, W, 3] (float, 0-255) with the task's still object drawn again from the real
        anchor frames `real` where the start's scene `base` [B, E] (raw environment_state) has it: the DiT
        fades a still object the arm passes near (Stack's green cube), and a policy aiming at it then sees
        less of it. ValueError without the scene."""
        if self.scene_layer is None:
            raise ValueError(f"the {self.config.task} task has no still object to draw (Task.scene_pose)")
        if base is None or base.shape[1] < self.scene_pose.stop:
            raise ValueError("the scene layer draws the still object where the start's scene has it; this "
                             "imagination has no scene (ImaginationState.base: a model that carries the "
                             "environment_state)")
        still = base[:, self.scene_pose].to(frames.device)
        return self.scene_layer(frames, real, still, still, band)

    def _drawn_pose(self, objects: torch.Tensor, anchor: torch.Tensor, base: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Where the object layer draws the object: its carried pose [B,7], except where it rests on its
        support in the scene `base` [B,E] (no higher than rest height + lean), its anchor did too (within
        another lean: a start's height is read off one view) and it is still where the anchor was (less than
        PUSH across, within two leans up or down: pushed, not carried to another place or onto another
        surface), where it stays at the anchor's place. Chosen on the tuning episodes (seeds 800000+;
        `make tune-object-layer`): drawing pushes on the table as well (`object_layer_pushes`) cost open-loop
        PSNR."""
        if self.support is None or self.config.object_layer_pushes:
            return objects
        lean = self.support[1]
        pushed = (((objects[:, :2] - anchor[:, :2]).norm(dim=-1) < PUSH)
                  & ((objects[:, 2] - anchor[:, 2]).abs() <= 2 * lean))
        resting = self._resting(objects, base) & self._resting(anchor, base, lean=2.0) & pushed
        return torch.where(resting[:, None], anchor, objects)

    @torch.no_grad()
    def _observe(self, latent: torch.Tensor, pose: torch.Tensor, state: ImaginationState,
                 imagined: bool = True) -> StepOutput:
        """The step's frame, pose, object state (carried, or the latent probe's reading) and reward heads;
        success is the carried object's height where the model carries it and the task has one. The layers
        draw imagined frames only, not the context's."""
        with self._autocast():
            carried = state.objects if self.config.object_dims is not None else None
            pixels = self._pixels(latent, state, carried, pose if imagined else None)
            if self.config.object_dims is not None:
                env_state = self.environment_state(state.objects, pose, state.base)
            elif self.config.pixel_probe:
                env_state = self.probe(pixels_to_tensor(pixels)).float() * self._env_state_std + self._env_state_mean
            else:
                env_state = self.probe(latent).float() * self._env_state_std + self._env_state_mean
            out = self.reward(latent, self._norm(pose, "pose")).float()
        reward = out[:, 0] * self._reward_std + self._reward_mean
        success = out[:, 1] > 0
        if self.config.object_dims is not None:  # the task's test on the carried state, where it has one
            tested = success_on_state(env_state, pose.float(), self.success_height,
                                      self.config.object_dims[2], self.state_success)
            success = success if tested is None else tested
        return StepOutput(pixels.cpu().numpy(), pose.cpu().numpy().astype(np.float32),
                          env_state.cpu().numpy().astype(np.float32), reward.cpu().numpy().astype(np.float32),
                          success.cpu().numpy(), latent)

    @torch.no_grad()
    def observe_context(self, state: ImaginationState) -> StepOutput:
        """The heads' reading of the newest context frame (what reset returns)."""
        return self._observe(state.latents[:, -1], state.poses[:, -1], state, imagined=False)

    @torch.no_grad()
    def generate(self, pixels: np.ndarray, agent_pos: np.ndarray, instruction: str | list[str] | None,
                 horizon: int, generator: torch.Generator | None = None, sampling_steps: int | None = None,
                 guidance: float = 1.0) -> np.ndarray:
        """An instruction-conditioned plan (no actions): uint8 frames [B, horizon, H, W, 3]."""
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        state = self.start(pixels, agent_pos, None, instruction)
        steps = sampling_steps or self.config.sampling_steps
        b, A = state.batch_size, self.config.action_dim
        chunk = torch.zeros(b, self.config.dit.action_history, A, device=self.device)
        pose_cond = torch.zeros(b, 2, self.config.agent_pos_dim, device=self.device)
        frames = []
        with self._autocast():
            for _ in range(horizon):
                velocity = self._velocity_fn(state, chunk, pose_cond, False, 1.0, guidance, dit=self.sampler(steps))
                latent = self._advance(state, velocity, steps, generator)
                state.latents = torch.cat([state.latents[:, 1:], latent[:, None]], dim=1)
                frames.append(latent)
        return self._pixels(torch.stack(frames, dim=1), state).cpu().numpy()

    def num_parameters(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in module.parameters())
                for name, module in self.named_children()}

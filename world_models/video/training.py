"""Training the world model in stages, each resumable: autoencoder -> latents -> pose dynamics -> object
dynamics -> heads -> object probe -> DiT.

Every stage checkpoints into <out>/stages/<stage>.pt (world_models/staged.py), so an interrupted run
started again with the same `out` picks up at the last checkpoint. The finished model (EMA weights of
the DiT) is written to <out>/checkpoint as safetensors + config.json with the data statistics.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field, replace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from wow_gym.data.atomic import atomic_write_bytes
from wow_gym.data.flat import flatten_episodes, read_episodes
from wow_gym.registry import task_info
from wow_gym.simulator import SimFactory
from wow_gym.world_models.checkpoint import CheckpointError, read_meta
from wow_gym.world_models.staged import LossFn, RunSettings, StageConfig, StagedTrainer
from wow_gym.world_models.text import embed_instructions
from wow_gym.world_models.video.autoencoder import AutoencoderConfig, autoencoder_loss, pixels_to_tensor
from wow_gym.world_models.video.config import FORMAT_VERSION, WorldModelConfig, default_stats
from wow_gym.world_models.video.dit import DiTConfig
from wow_gym.world_models.video.flow import euler_sample, flow_pair, sample_time
from wow_gym.world_models.video.model import TRAIN_COMMAND, WorldModel
from wow_gym.world_models.video.pose_map import project
from wow_gym.world_models.video.shared import SHARED_MODULES, save_shared

logger = logging.getLogger(__name__)

# Each stage seeds its generator from its index here (new stages go last, so older runs keep their seeds);
# they run in RUN_ORDER.
STAGES = ("autoencoder", "pose", "heads", "dit", "objects", "probe", "distill")
RUN_ORDER = ("autoencoder", "pose", "objects", "heads", "probe", "dit", "distill")


@dataclass
class DatasetSpec:
    """A LeRobot dataset to train on; `instruction` overrides the episodes' own (e.g. for exploration data)."""

    root: str
    instruction: str | None = None


@dataclass
class TrainWorldModelConfig(RunSettings):
    """See experiments/conf/train_world_model.yaml for the meaning of each key."""

    task: str = "lift"
    # One world model for these tasks (shared autoencoder, DiT and pose dynamics; per-task camera, statistics
    # and heads: world_models/video/shared.py). Each dataset's episodes name their task. None: `task` alone.
    tasks: list[str] | None = None
    datasets: list[DatasetSpec] = field(default_factory=list)
    out: str = "outputs/world-models/lift"
    preset: str = "dit-tiny"
    image_size: int = 64
    latent_channels: int = 16
    context_frames: int = 2
    patch: int = 2
    sampling_steps: int = 2
    autoencoder: StageConfig = field(default_factory=lambda: StageConfig(6000, 32, 1e-3))
    pose: StageConfig = field(default_factory=lambda: StageConfig(3000, 256, 1e-3))
    heads: StageConfig = field(default_factory=lambda: StageConfig(1500, 128, 1e-3))
    dit: StageConfig = field(default_factory=lambda: StageConfig(3500, 64, 4e-4))
    objects: StageConfig = field(default_factory=lambda: StageConfig(3000, 256, 1e-3))
    probe: StageConfig = field(default_factory=lambda: StageConfig(3000, 64, 1e-3))
    # The one-step sampler: a copy of the DiT taught to go in one Euler step where the DiT goes in
    # `distill_steps` (progressive distillation, Salimans & Ho 2022, one halving); imagining at
    # sampling_steps=1 then uses it. Not in a run unless named in `stages`.
    distill: StageConfig = field(default_factory=lambda: StageConfig(1500, 64, 2e-4))
    distill_steps: int = 2
    latent_noise: float = 0.2  # autoencoder decodes noised latents (relative std): a smooth latent space
    uniform_time: float = 0.25  # share of DiT training times drawn uniformly (the rest logit-normal)
    pose_unroll: int = 8  # pose dynamics is trained on rollouts of this many steps
    ema_decay: float = 0.999
    drop_action: float = 0.15  # chance to drop the action (and pose) condition
    drop_text: float = 0.15
    ctx_noise_max: float = 0.3  # context latents are noised at a random level up to this
    pose_noise: float = 0.05  # noise on the (normalised) pose condition, as the pose dynamics errs
    pose_map: bool = True  # tell the DiT where the gripper is in the picture (the task camera's projection)
    residual_deadband: float = 24.0  # imagined pixels that change less stay the real frame's (WorldModelConfig)
    # DiT loss weight per latent cell: 1 + motion_weight * (the cell's normalised latent change); 0: plain MSE.
    # The arm fills a few cells of a mostly still frame, so plain MSE is dominated by cells that do not move.
    motion_weight: float = 0.0
    # The task object's pose carried as state with learned dynamics (needs the task's object_pose), read off
    # the frames at a reset by a pixel probe, and drawn onto the DiT's tokens as an object map.
    object_dynamics: bool = True
    pixel_probe: bool = True
    object_map: bool = False
    # With object dynamics, a camera and the task's object_extents: every imagined frame draws the object at
    # its carried pose (WorldModelConfig.object_layer; nothing to train, so set on an init checkpoint too)
    object_layer: bool = True
    # With object dynamics and the task's object_extents and table_height: the imagined gripper stops where its
    # fingertips meet the table or the object's top (WorldModelConfig.arm_contact; nothing to train either)
    arm_contact: bool = True
    # With object dynamics and the task's object_extents: the imagined fingers follow the gripper command and
    # close on the object only between the pads (WorldModelConfig.finger_rule; nothing to train, so set on an
    # init checkpoint too). Off: on held-out episodes it saw more lifts but called more false ones (README)
    finger_rule: bool = False
    # With object dynamics: pose dynamics also reads the object state (fingers stop on the object between them
    # and close fully on nothing), trained on the data's object states along its rollouts. Added to an init
    # checkpoint, the pose dynamics starts fresh (a copy widened with zero-weight object inputs kept the old
    # solution: its fingers still stopped at the cube's width on a miss).
    pose_objects: bool = False
    # Hidden width of the pose dynamics (WorldModelConfig.pose_width). null: 256, or the init checkpoint's;
    # a width other than the init's starts the pose dynamics fresh (train stage pose).
    pose_width: int | None = None
    head_width: int = 128  # conv width of the latent heads (WorldModelConfig.head_width); a new model only
    object_unroll: int = 8  # object dynamics is trained on open-loop rollouts of this many steps ...
    object_drift: float = 0.01  # ... with the arm displaced by up to this many metres (std) over the rollout
    object_still: float = 0.001  # metres: an object that moves less in a step is still (the moving gate's label)
    # DiT loss weight per latent cell: + object_weight x a bump (one cell wide) at the object's projection;
    # Lift's cube covers under 1 % of the picture, so a plain pixel loss reads it as noise.
    object_weight: float = 0.0
    # A finished world-model checkpoint to start from: its architecture, autoencoder, statistics and every
    # stage not in `stages` are kept as they are, e.g. a longer or re-weighted DiT run. Parts this run adds
    # (object dynamics, pixel probe, object map) start fresh and must be in `stages`.
    init: str | None = None
    stages: list[str] | None = None  # stages to train (None: all of them, or only dit with init)

    @property
    def train_stages(self) -> list[str]:
        """The stages this run trains: `stages`, or every stage (only the DiT with init)."""
        if self.stages is not None:
            return list(self.stages)
        return ["dit"] if self.init is not None else [s for s in RUN_ORDER if s != "distill"]

    def __post_init__(self) -> None:
        task_info(self.task)
        if not self.datasets:
            raise ValueError("datasets is empty; give at least one LeRobot dataset root to train on")
        self.datasets = [d if isinstance(d, DatasetSpec) else DatasetSpec(**d) for d in self.datasets]
        for name in STAGES:
            stage = getattr(self, name)
            if isinstance(stage, dict):
                setattr(self, name, StageConfig(**stage))
        unknown = sorted(set(self.stages or []) - set(STAGES))
        if unknown:
            raise ValueError(f"stages {unknown} do not exist; choose from {list(RUN_ORDER)}")
        if self.object_dynamics and self.tasks is None and task_info(self.task).object_pose is None:
            raise ValueError(f"task {self.task!r} has no object_pose in wow_gym/tasks, so its object cannot be "
                             "carried as state; set object_dynamics=false (and object_map=false)")
        if self.object_map and not (self.object_dynamics and self.pose_map):
            raise ValueError("object_map needs object_dynamics=true and pose_map=true")
        for name in ("object_drift", "object_weight", "object_still"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.motion_weight >= 0:
            raise ValueError(f"motion_weight must be >= 0, got {self.motion_weight}")
        if self.init is not None and not (Path(self.init) / "config.json").is_file():
            raise FileNotFoundError(f"init={self.init} is not a world-model checkpoint (no config.json there); "
                                    "give a folder written by train-world-model, e.g. world_models/checkpoints/lift")
        if self.tasks is not None:
            self._check_shared()

    def _check_shared(self) -> None:
        """What a world model shared by several tasks takes (and what it does not do yet)."""
        if not self.tasks:
            raise ValueError("tasks is empty; name the tasks the shared world model imagines, e.g. "
                             "tasks=[stack,door,pickplacecan], or leave it null for one task")
        self.tasks = [task_info(t).name for t in self.tasks]
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks names a task twice: {self.tasks}")
        # each task with an object_pose carries its object with its own object dynamics (a per-task part); the
        # parts that read the object state are shared, and not every task has one to give them
        if self.object_map or self.pose_objects:
            raise ValueError("a shared world model's DiT and pose dynamics read no object state: set "
                             "object_map=false and pose_objects=false")
        if self.init is not None:  # each task's model starts from its section of a shared checkpoint
            held = read_meta(self.init, "world-model", TRAIN_COMMAND, FORMAT_VERSION).get("tasks")
            if not isinstance(held, dict):
                raise ValueError(f"init={self.init} is one task's world model; a shared world model "
                                 "starts from scratch or from a shared one (world_models/checkpoints/tasks)")
            missing = sorted(set(self.tasks) - set(held))
            if missing:
                raise ValueError(f"init={self.init} holds {sorted(held)}, not {missing}; a shared init "
                                 "must hold every task in tasks")
        if "distill" in (self.stages or []):
            raise ValueError("a shared world model trains the stages autoencoder, pose, heads, objects, "
                             "probe and dit")


def datasets_by_task(specs: list[DatasetSpec], tasks: list[str]) -> dict[str, list[DatasetSpec]]:
    """The datasets of each task (read off their episodes' metadata), in the order of `tasks`; ValueError for
    a dataset of another task, of mixed tasks, or a task without data."""
    from wow_gym.data.dataset_reader import DatasetReader

    grouped: dict[str, list[DatasetSpec]] = {name: [] for name in tasks}
    for spec in specs:
        names = {task_info(e.task_name).name for e in DatasetReader(spec.root).episodes if e.task_name}
        if len(names) != 1:
            raise ValueError(f"dataset {spec.root} holds episodes of {sorted(names) or 'no named task'}; a "
                             "shared world model needs each dataset's episodes to name one task")
        (name,) = names
        if name not in grouped:
            raise ValueError(f"dataset {spec.root} holds {name} episodes, but tasks={tasks}")
        grouped[name].append(spec)
    empty = [name for name, group in grouped.items() if not group]
    if empty:
        raise ValueError(f"no dataset for {empty}; give each task in tasks at least one dataset")
    return grouped


def task_camera(make_sim: SimFactory, task: str, image_size: int) -> list[list[float]]:
    """The 3x4 projection of the task camera at this image size, read off the simulator's scene."""
    env = make_sim(task, image_size=image_size, use_camera=False)
    try:
        return env.camera_matrix().tolist()
    finally:
        env.close()


class TrainingData:
    """All episodes in memory, flattened frame-major with per-episode offsets."""

    def __init__(self, specs: list[DatasetSpec], image_size: int, progress: bool = True) -> None:
        episodes = [(spec, ep) for spec in specs for _, _, ep in
                    read_episodes([spec.root], "world model", image_size, needs=("environment_state",),
                                  progress=progress)]
        flat = flatten_episodes([ep for _, ep in episodes])
        texts = [spec.instruction or ep.instruction for spec, ep in episodes]
        self.pixels = torch.from_numpy(flat.pixels)
        self.poses = torch.from_numpy(flat.agent_pos)
        self.actions = torch.from_numpy(flat.action)  # action taken at frame i
        self.env_states = torch.from_numpy(flat.environment_state)
        self.rewards = torch.from_numpy(flat.reward)  # reward received on arriving at frame i
        self.success = torch.from_numpy(flat.success)
        self.lengths = torch.from_numpy(flat.lengths)
        self.starts = torch.from_numpy(flat.starts)
        self.episode_of = torch.from_numpy(flat.episode_of)
        unique = sorted(set(texts))
        self.instructions = unique
        self.text_table = torch.from_numpy(embed_instructions(unique))
        self.text_index = torch.tensor([unique.index(t) for t in texts])
        self.latents: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.pixels.shape[0]

    def frame_offset(self, index: torch.Tensor) -> torch.Tensor:
        """Step of each global frame index within its episode."""
        return index - self.starts[self.episode_of[index]]

    def transitions(self, n: int, g: torch.Generator, horizon: int = 1) -> torch.Tensor:
        """n random global frame indices t with successors up to t+horizon in the same episode."""
        ep = torch.randint(len(self.lengths), (n,), generator=g)
        span = (self.lengths[ep] - horizon).clamp_min(1)
        step = (torch.rand(n, generator=g) * span).long()
        return self.starts[ep] + step

    def back(self, index: torch.Tensor, k: int) -> torch.Tensor:
        """index - k, clamped to the episode's first frame."""
        return torch.maximum(index - k, self.starts[self.episode_of[index]])


def object_dims(task: str, env_state_dim: int) -> tuple[list[int], list[int]]:
    """The environment_state entries of the task object's carried state (Task.object_pose) and of its offset
    from the gripper."""
    info = task_info(task)
    entries = range(env_state_dim)
    pose = entries[info.object_pose] if isinstance(info.object_pose, slice) else info.object_pose
    return list(pose), list(entries[info.gripper_offset])


def object_stats(data: TrainingData, dims: list[int], offset: list[int]) -> dict[str, list[float]]:
    """Normalisation statistics of the object dynamics: object pose, its change per step, its offset."""
    objects = data.env_states[:, dims]
    nxt = torch.arange(data.num_frames)
    idx = nxt[data.frame_offset(nxt) < data.lengths[data.episode_of] - 1]
    stats = {"object_mean": objects.mean(0), "object_std": objects.std(0).clamp_min(1e-3),
             "dobject_std": (objects[idx + 1] - objects[idx]).std(0).clamp_min(1e-4),
             "offset_std": data.env_states[:, offset].std(0).clamp_min(1e-3)}
    return {k: [float(x) for x in v] for k, v in stats.items()}


def compute_stats(data: TrainingData, latents: torch.Tensor | None = None) -> dict[str, list[float]]:
    """Normalisation statistics of the data (poses, pose changes, object state, reward, latents)."""
    nxt = torch.arange(data.num_frames)
    has_next = data.frame_offset(nxt) < data.lengths[data.episode_of] - 1
    idx = nxt[has_next]
    dpose = data.poses[idx + 1] - data.poses[idx]
    stats = {
        "pose_mean": data.poses.mean(0), "pose_std": data.poses.std(0).clamp_min(1e-3),
        "dpose_std": dpose.std(0).clamp_min(1e-4),
        "env_state_mean": data.env_states.mean(0), "env_state_std": data.env_states.std(0).clamp_min(1e-3),
        "reward_mean": data.rewards.mean().reshape(1), "reward_std": data.rewards.std().clamp_min(1e-3).reshape(1),
    }
    if latents is not None:
        z = latents.float()
        stats["latent_mean"] = z.mean((0, 2, 3))
        stats["latent_std"] = z.std((0, 2, 3)).clamp_min(1e-3)
        zn = (z - stats["latent_mean"].view(1, -1, 1, 1)) / stats["latent_std"].view(1, -1, 1, 1)
        stats["delta_std"] = (zn[idx + 1] - zn[idx]).std((0, 2, 3)).clamp_min(1e-3)
    return {k: [float(x) for x in v] for k, v in stats.items()}


class Trainer(StagedTrainer):
    """Runs the stages; `run()` resumes from whatever <out>/stages holds."""

    stages = STAGES

    def __init__(self, config: TrainWorldModelConfig, make_sim: SimFactory) -> None:
        super().__init__(config.out, config)
        self.config = config
        self.fresh_student = True  # the distill stage starts its student as a copy of the DiT
        info = task_info(config.task)
        self.data = TrainingData(config.datasets, config.image_size, self.progress)
        torch.manual_seed(config.seed)
        dims, offset = (object_dims(info.name, self.data.env_states.shape[1]) if config.object_dynamics
                        else (None, None))
        if config.init is not None:
            self.model = self._extend(WorldModel.load(config.init, task=config.task), dims, offset)
        else:
            wm_config = WorldModelConfig(
                task=info.name, instruction=info.instruction, image_size=config.image_size,
                agent_pos_dim=self.data.poses.shape[1], env_state_dim=self.data.env_states.shape[1],
                context_frames=config.context_frames, sampling_steps=config.sampling_steps,
                residual_deadband=config.residual_deadband,
                autoencoder=AutoencoderConfig(image_size=config.image_size, latent_channels=config.latent_channels),
                dit=DiTConfig(preset=config.preset, patch=config.patch),
                camera=task_camera(make_sim, info.name, config.image_size) if config.pose_map else None,
                object_dims=dims, object_offset_dims=offset, object_quaternion=info.object_quaternion,
                pixel_probe=config.pixel_probe,
                object_map=config.object_map, pose_objects=config.pose_objects and dims is not None,
                pose_width=config.pose_width or WorldModelConfig.pose_width, head_width=config.head_width,
                object_layer=self._layered(dims is not None, config.pose_map),
                arm_contact=self._contact(dims is not None),
                finger_rule=self._grips(dims is not None),
                one_step="distill" in config.train_stages, distill_steps=config.distill_steps,
            )
            stats = compute_stats(self.data) | (object_stats(self.data, dims, offset) if dims else {})
            self.model = WorldModel(wm_config, {**default_stats(wm_config), **stats})
        self.model.to(self.device)

    def _layered(self, objects: bool, camera: bool) -> bool:
        """Whether the model draws its object with the object layer: asked for, and it can."""
        extents = task_info(self.config.task).object_extents
        return self.config.object_layer and objects and camera and extents is not None

    def _contact(self, objects: bool) -> bool:
        """Whether the model stops its imagined gripper on the table and the object: asked for, and it can."""
        info = task_info(self.config.task)
        return (self.config.arm_contact and objects and info.object_extents is not None
                and info.table_height is not None)

    def _grips(self, objects: bool) -> bool:
        """Whether the model's fingers follow the finger rule: asked for, and it can."""
        return self.config.finger_rule and objects and task_info(self.config.task).object_extents is not None

    def _extend(self, init: WorldModel, dims: list[int] | None, offset: list[int] | None) -> WorldModel:
        """The init checkpoint with this run's deadband and the parts this run adds (object dynamics, pixel
        probe, object map), built fresh; its statistics are kept (its DiT was trained on them)."""
        cfg = self.config
        init.check_compatible(image_size=cfg.image_size, action_dim=self.data.actions.shape[1], source=cfg.init)
        old = init.config
        new = WorldModelConfig(**{**old.to_dict(), "residual_deadband": cfg.residual_deadband})
        carries = dims is not None or old.object_dims is not None
        new.object_layer = self._layered(carries, old.camera is not None)
        new.arm_contact = self._contact(carries)
        new.finger_rule = self._grips(carries)
        added = []
        if dims is not None and old.object_dims is None:
            new.object_dims, new.object_offset_dims = dims, offset
            new.object_quaternion = task_info(old.task).object_quaternion
            added.append("objects")
        if cfg.pixel_probe and not old.pixel_probe:
            new.pixel_probe = True
            added.append("probe")
        if cfg.object_map and not old.object_map:
            new.object_map = True
            added.append("dit")
        if cfg.pose_objects and new.object_dims is not None and not old.pose_objects:
            new.pose_objects = True
            added.append("pose")
        if cfg.pose_width is not None and cfg.pose_width != old.pose_width:
            new.pose_width = cfg.pose_width
            added.append("pose")
        if "distill" in cfg.train_stages:
            new.one_step, new.distill_steps = True, cfg.distill_steps
            if not old.one_step or "dit" in cfg.train_stages or old.distill_steps != cfg.distill_steps:
                added.append("distill")  # a fresh student of this run's DiT
            else:
                self.fresh_student = False  # the init's student of the same DiT is distilled further
        elif old.one_step and "dit" in cfg.train_stages:  # the student would follow a DiT that is gone
            new.one_step = False
            logger.warning("init=%s has a one-step DiT distilled from the DiT this run retrains: it is dropped; "
                           "add distill to stages to distil it again", cfg.init)
        new = WorldModelConfig(**new.to_dict())  # re-derive the DiT's flags
        missing = sorted(set(added) - set(cfg.train_stages))
        if missing:
            raise ValueError(f"init={cfg.init} lacks parts this run adds; train them too: stages={missing} "
                             f"(now {cfg.train_stages})" + (f" or keep the init's pose dynamics: pose_objects="
                                                            f"{str(old.pose_objects).lower()}, pose_width="
                                                            f"{old.pose_width}" if "pose" in missing else ""))
        stats = dict(init.stats)
        if new.object_dims is not None and "object_mean" not in stats:
            stats |= object_stats(self.data, new.object_dims, new.object_offset_dims)
        model = WorldModel(new, stats)
        rebuilt = {"probe", "pose"} & set(added)  # parts whose old weights do not fit the new ones
        if "distill" in added or not new.one_step:
            rebuilt.add("one_step_dit")
        kept = {k: v for k, v in init.state_dict().items() if k.split(".")[0] not in rebuilt}
        result = model.load_state_dict(kept, strict=False)
        unexpected = [k for k in result.unexpected_keys]
        built = ("objects.", "probe.", "dit.object_map_in.", "one_step_dit.") + (("pose.",) if "pose" in added else ())
        fresh = [k for k in result.missing_keys if not k.startswith(built)]
        if unexpected or fresh:
            raise CheckpointError(f"init={cfg.init} does not fit this model: unexpected {unexpected}, "
                                  f"missing {fresh}")
        return model

    # -- stage bookkeeping -------------------------------------------------------------------------------

    def num_parameters(self) -> dict[str, int]:
        return self.model.num_parameters()

    def extra_state(self) -> dict[str, Any]:
        return {"stats": self.model.stats}

    def weight_decay(self, stage: str) -> float:
        return 0.01 if stage == "dit" else 0.0

    def run(self) -> Path:
        for stage in RUN_ORDER:
            if stage in self.config.train_stages:  # with init, the rest is the checkpoint's
                getattr(self, f"_train_{stage}")()
            if stage == "autoencoder":
                with self.main_first():  # rank 0 encodes and caches the latents, the other ranks read them
                    self._encode_latents()
        final = self.out / "checkpoint"
        if self.shard.is_main:
            self.model.cpu().save(final)
            self.model.to(self.device)
        self.close()
        return final

    # -- stages ------------------------------------------------------------------------------------------

    def _train_autoencoder(self) -> None:
        ae = self.model.autoencoder
        self._loop("autoencoder", {"model": ae}, list(ae.parameters()), self.config.autoencoder,
                   self.autoencoder_loss_fn())

    def autoencoder_loss_fn(self) -> LossFn:
        """The autoencoder stage's loss on this trainer's frames (a shared model's trainer mixes tasks')."""
        ae, data = self.model.autoencoder, self.data

        def loss_fn(batch: int, g: torch.Generator):
            idx = self.shard.take(torch.randint(data.num_frames, (batch,), generator=g))
            images = pixels_to_tensor(data.pixels[idx].to(self.device))
            # under torchrun the latent noise is drawn per process, at its rows' latent std: the same law as
            # in one process, not the same draws
            return autoencoder_loss(ae, images, latent_noise=self.config.latent_noise, generator=g)

        return loss_fn

    def _encode_latents(self) -> None:
        """Encode every frame once with the trained autoencoder; set the latent statistics."""
        path = self.stage_dir / "latents.pt"
        if path.is_file():
            raw = torch.load(path, map_location="cpu")
        else:
            ae = self.model.autoencoder.eval()
            chunks = []
            with torch.inference_mode():
                for i in tqdm(range(0, self.data.num_frames, 512), desc="encoding frames",
                              disable=not self.progress):
                    images = pixels_to_tensor(self.data.pixels[i:i + 512].to(self.device))
                    chunks.append(ae.encode(images).float().cpu())
            raw = torch.cat(chunks)
            buffer = io.BytesIO()
            torch.save(raw, buffer)
            atomic_write_bytes(path, buffer.getvalue())
        if self.config.init is None:
            self.model.set_stats({**self.model.stats, **compute_stats(self.data, raw)})  # object stats kept
            self.model.to(self.device)
        mean = torch.tensor(self.model.stats["latent_mean"]).view(1, -1, 1, 1)
        std = torch.tensor(self.model.stats["latent_std"]).view(1, -1, 1, 1)
        self.data.latents = ((raw - mean) / std).to(self.device)

    def _train_pose(self) -> None:
        pose = self.model.pose
        self._loop("pose", {"model": pose}, list(pose.parameters()), self.config.pose, self.pose_loss_fn())

    def pose_loss_fn(self) -> LossFn:
        """The pose dynamics stage's loss: open-loop rollouts of `pose_unroll` steps of this task's data."""
        m, data, unroll = self.model, self.data, self.config.pose_unroll

        def loss_fn(batch: int, g: torch.Generator):
            idx = data.transitions(batch, g, unroll)
            remaining = data.lengths[data.episode_of[idx]] - 1 - data.frame_offset(idx)
            steps = int(min(unroll, remaining.min().item()))
            idx = self.shard.take(idx)
            poses = torch.stack([data.poses[data.back(idx, 1)], data.poses[idx]], 1).to(self.device)
            prev = torch.where((data.frame_offset(idx) > 0)[:, None], data.actions[data.back(idx, 1)], 0.0)
            prev = prev.to(self.device)
            dims = m.config.object_dims if m.config.pose_objects else None
            loss = 0.0
            for k in range(steps):
                action = data.actions[idx + k].to(self.device)
                objects = data.env_states[idx + k][:, dims].to(self.device) if dims is not None else None
                nxt = m._pose_step(poses, action, prev, objects)
                target = data.poses[idx + k + 1].to(self.device)
                loss = loss + F.mse_loss(nxt / m._dpose_std, target / m._dpose_std)
                poses, prev = torch.stack([poses[:, -1], nxt], 1), action
            loss = loss / steps
            eef = (nxt[:, :3] - target[:, :3]).norm(dim=-1).mean()
            return loss, {"loss": loss.item(), f"eef_err_h{steps}_mm": 1000 * eef.item()}

        return loss_fn

    def _train_objects(self) -> None:
        """Object dynamics on open-loop rollouts of the object under the simulator's arm, displaced by a drift
        that grows over the rollout (as a learned pose model's arm drifts), with the moving gate's loss."""
        m, data, cfg = self.model, self.data, self.config
        if m.config.object_dims is None:
            return
        dims, unroll = m.config.object_dims, cfg.object_unroll

        def loss_fn(batch: int, g: torch.Generator):
            idx = data.transitions(batch, g, unroll)
            remaining = data.lengths[data.episode_of[idx]] - 1 - data.frame_offset(idx)
            steps = int(min(unroll, remaining.min().item()))
            drift = (cfg.object_drift * torch.randn(batch, 3, generator=g)).to(self.device)
            idx, drift = self.shard.take(idx), self.shard.take(drift)
            scene = m.settle_scene(data.env_states[idx].to(self.device))  # the start's, as imagined
            objects = scene[:, dims]
            object_loss, gate_loss = 0.0, 0.0
            for k in range(steps):
                arm = torch.stack([data.poses[idx + k], data.poses[idx + k + 1]], 1).to(self.device)
                shift = torch.stack([drift * k / unroll, drift * (k + 1) / unroll], 1)
                objects, logit = m._object_step(torch.cat([arm[..., :3] + shift, arm[..., 3:]], -1), objects,
                                                data.actions[idx + k].to(self.device), with_logit=True,
                                                base=scene)
                truth = data.env_states[idx + k + 1][:, dims].to(self.device)
                before = data.env_states[idx + k][:, dims].to(self.device)
                moving = ((truth[:, :3] - before[:, :3]).norm(dim=-1) > cfg.object_still).float()
                gate_loss = gate_loss + F.binary_cross_entropy_with_logits(logit, moving)
                error = (objects - truth) / m._dobject_std
                if m.config.object_quaternion:
                    flipped = (objects[:, 3:] + truth[:, 3:]) / m._dobject_std[3:]  # q and -q: one rotation
                    error = torch.cat([error[:, :3], torch.minimum(error[:, 3:].abs(), flipped.abs())], 1)
                object_loss = object_loss + error.pow(2).mean()
            loss = (object_loss + gate_loss) / steps
            position = (objects[:, :3] - truth[:, :3]).norm(dim=-1).mean()
            return loss, {"loss": loss.item(), "moving_bce": gate_loss.item() / steps,
                          f"object_err_h{steps}_mm": 1000 * position.item()}

        self._loop("objects", {"model": m.objects}, list(m.objects.parameters()), cfg.objects, loss_fn)

    def _train_probe(self) -> None:
        m, data = self.model, self.data
        if not m.config.pixel_probe:
            return

        def loss_fn(batch: int, g: torch.Generator):
            rows = self.shard.rows(batch)
            idx = torch.randint(data.num_frames, (batch,), generator=g)[rows]
            images = pixels_to_tensor(data.pixels[idx].to(self.device))
            # imagined frames carry the autoencoder's blur: the batch's first quarter are its decodings
            blurred = int((torch.arange(batch) < batch // 4)[rows].sum())
            with torch.no_grad():
                decoded = m.autoencoder.decode(m.denormalize_latents(data.latents[idx[:blurred]]))
            images = torch.cat([decoded.float().clamp(-1, 1), images[blurred:]])
            noise = torch.randn((batch, *images.shape[1:]), generator=g)[rows]
            images = images + 0.02 * noise.to(self.device)
            state = m._norm(data.env_states[idx].to(self.device), "env_state")
            loss = F.mse_loss(m.probe(images), state)
            return loss, {"loss": loss.item()}

        m.autoencoder.eval()
        self._loop("probe", {"probe": m.probe}, list(m.probe.parameters()), self.config.probe, loss_fn)

    def _train_heads(self) -> None:
        m, data = self.model, self.data

        def loss_fn(batch: int, g: torch.Generator):
            idx = torch.randint(data.num_frames, (batch,), generator=g)
            noise = torch.randn((batch, *data.latents.shape[1:]), generator=g)
            has = data.frame_offset(idx) > 0  # frame 0 received no reward
            idx, noise = self.shard.take(idx), self.shard.take(noise)
            z = data.latents[idx] + 0.1 * noise.to(self.device)  # imagined latents are not exact
            state = m._norm(data.env_states[idx].to(self.device), "env_state")
            probe = torch.zeros(()) if m.config.pixel_probe else F.mse_loss(m.probe(z), state)  # else: stage probe
            out = m.reward(z, m._norm(data.poses[idx].to(self.device), "pose"))
            reward = m._norm(data.rewards[idx].to(self.device), "reward").view(-1)
            r_loss = self.shard.masked_mean((out[:, 0] - reward).pow(2), has)
            s_loss = self.shard.masked_mean(F.binary_cross_entropy_with_logits(
                out[:, 1], data.success[idx].float().to(self.device), reduction="none"), has)
            loss = probe + r_loss + s_loss
            return loss, {"probe": probe.item(), "reward": r_loss.item(), "success_bce": s_loss.item()}

        params = ([] if m.config.pixel_probe else list(m.probe.parameters())) + list(m.reward.parameters())
        self._loop("heads", {"probe": m.probe, "reward": m.reward}, params, self.config.heads, loss_fn)

    def dit_batch(self, batch: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """One training batch for the DiT (normalised tensors on the device)."""
        m, data, cfg = self.model, self.data, self.config
        K, H = cfg.context_frames, m.config.dit.action_history
        idx = data.transitions(batch, g)
        ctx = torch.stack([data.latents[data.back(idx, K - 1 - k)] for k in range(K)], 1)
        offset = data.frame_offset(idx)
        chunk = torch.stack([torch.where((offset >= H - 1 - k)[:, None], data.actions[data.back(idx, H - 1 - k)], 0.0)
                             for k in range(H)], 1)
        poses = torch.stack([data.poses[idx], data.poses[idx + 1]], 1).to(self.device)
        poses = poses + cfg.pose_noise * m._pose_std * torch.randn(poses.shape, generator=g).to(self.device)
        pose_cond = m._norm(poses, "pose")
        noise_level = torch.rand(batch, generator=g) * cfg.ctx_noise_max
        noise_level = torch.where(torch.rand(batch, generator=g) < 0.3, 0.0, noise_level).to(self.device)
        ctx = ctx + noise_level.view(-1, 1, 1, 1, 1) * torch.randn(ctx.shape, generator=g).to(self.device)
        delta = (data.latents[idx + 1] - data.latents[idx]) / m._delta_std.view(1, -1, 1, 1)
        extra = {}
        if m.config.object_map:
            objects = torch.stack([data.env_states[idx], data.env_states[idx + 1]], 1)[..., m.config.object_dims]
            objects = objects.to(self.device)
            extra["object_map"] = m.object_map(objects)
            # the loss weight's bump: one latent cell wide at the object's projection now and next
            size = m.config.autoencoder.latent_size
            uv = project(m._camera, objects[..., :3]) * size / m.config.image_size  # [B,2,2] latent cells
            cells = torch.arange(size, device=self.device, dtype=uv.dtype) + 0.5
            d2 = (cells.view(1, 1, 1, -1) - uv[..., 0, None, None]).pow(2) + \
                (cells.view(1, 1, -1, 1) - uv[..., 1, None, None]).pow(2)
            extra["object_cells"] = torch.exp(-d2 / 2).amax(1, keepdim=True)  # [B,1,h,w]
        return extra | {
            "delta": delta, "context": ctx, "ctx_noise": noise_level, "actions": chunk.to(self.device),
            "text": data.text_table[data.text_index[data.episode_of[idx]]].to(self.device),
            "pose": pose_cond, "pose_map": m.pose_map(poses),
            "keep_action": (torch.rand(batch, generator=g) >= cfg.drop_action).to(self.device),
            "keep_text": (torch.rand(batch, generator=g) >= cfg.drop_text).to(self.device),
        }

    def _train_dit(self) -> None:
        m = self.model
        if self.config.motion_weight > 0 and self.config.init is None:
            # measured on Stack (dit-mini): from scratch the weighted loss stalled at a flow MSE of 1.46,
            # where plain MSE reached 0.88 by step 500; the model drew noise over the still table
            logger.warning("motion_weight=%s on a DiT trained from scratch: the weighted loss can stall it; "
                           "train with plain MSE first, then weight motion with init=<that checkpoint>, as "
                           "`make world-model` does", self.config.motion_weight)
        ema = AveragedModel(m.dit, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay))
        self._loop("dit", {"model": m.dit}, list(m.dit.parameters()), self.config.dit, self.dit_loss_fn(),
                   ema=ema)
        m.dit.load_state_dict(ema.module.state_dict())

    def dit_loss_fn(self) -> LossFn:
        """The DiT stage's flow-matching loss on this trainer's windows (its camera draws the gripper map)."""
        m = self.model

        def loss_fn(batch: int, g: torch.Generator):
            b = self.dit_batch(batch, g)
            time_ = sample_time(batch, g, uniform=self.config.uniform_time).to(self.device)
            noise = torch.randn(b["delta"].shape, generator=g).to(self.device)
            b, time_, noise = self.shard.take_each(b), self.shard.take(time_), self.shard.take(noise)
            noisy, target = flow_pair(b["delta"], time_, noise)
            pred = m.dit(noisy, b["context"], time_, b["ctx_noise"], b["actions"], b["text"], b["pose"],
                         b["keep_action"], b["keep_text"], b["pose_map"], b.get("object_map"))
            error = (pred - target).pow(2)
            moving = b["delta"].pow(2).mean(1, keepdim=True).sqrt()  # [B,1,h,w], ~1 on average
            weight = 1 + self.config.motion_weight * moving  # weights 0: plain MSE
            if "object_cells" in b:
                weight = weight + self.config.object_weight * b["object_cells"]
            loss = (weight * error).mean()
            return loss, {"loss": loss.item(), "mse": error.mean().item()}

        return loss_fn


    def _train_distill(self) -> None:
        """The one-step DiT, started as a copy of the trained DiT (or init's student of the same DiT): from
        noise x0 at t=0 its one velocity must land where the DiT's `distill_steps` Euler steps land, on the
        DiT's own training batches (every condition drop included, so plans distil too)."""
        m, steps = self.model, self.model.config.distill_steps
        if self.fresh_student:
            m.one_step_dit.load_state_dict(m.dit.state_dict())
        ema = AveragedModel(m.one_step_dit, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay))
        m.dit.eval().requires_grad_(False)

        def loss_fn(batch: int, g: torch.Generator):
            b = self.dit_batch(batch, g)
            noise = torch.randn(b["delta"].shape, generator=g).to(self.device)
            b, noise = self.shard.take_each(b), self.shard.take(noise)  # this process's rows under torchrun
            args = (b["context"], b["ctx_noise"], b["actions"], b["text"], b["pose"], b["keep_action"],
                    b["keep_text"], b["pose_map"], b.get("object_map"))

            def call(dit, x, t):
                return dit(x, args[0], t, *args[1:])

            with torch.no_grad():
                target = euler_sample(lambda x, t: call(m.dit, x, t), noise.shape, steps, noise=noise)
            start = torch.zeros(len(noise), device=self.device)
            pred = noise + call(m.one_step_dit, noise, start)
            loss = (pred - target).pow(2).mean()
            return loss, {"loss": loss.item()}

        self._loop("distill", {"model": m.one_step_dit}, list(m.one_step_dit.parameters()), self.config.distill,
                   loss_fn, ema=ema)
        m.one_step_dit.load_state_dict(ema.module.state_dict())


class SharedTrainer(StagedTrainer):
    """One world model for `config.tasks` (world_models/video/shared.py). A Trainer per task holds that task's
    data and model (its camera, statistics and heads, in <out>/tasks/<task>/); the task models are built on
    one autoencoder, DiT and pose dynamics, trained here on every task's data: each step draws its batch from
    one task, chosen in proportion to the tasks' frames. The heads, the probe and the object dynamics (of the
    tasks whose object_pose lets them carry their object) train per task. With init (a shared
    checkpoint), each task's model starts from its section, and only `stages` (the DiT by default) train on.
    `run()` resumes."""

    stages = STAGES
    weight_decay = Trainer.weight_decay

    def __init__(self, config: TrainWorldModelConfig, make_sim: SimFactory) -> None:
        super().__init__(config.out, config)
        self.config = config
        self.trainers: dict[str, Trainer] = {}
        for name, specs in datasets_by_task(config.datasets, config.tasks or []).items():
            out = str(Path(config.out) / "tasks" / name.lower())
            carries = config.object_dynamics and task_info(name).object_pose is not None
            own = replace(config, task=name, tasks=None, datasets=specs, out=out, object_dynamics=carries)
            self.trainers[name] = Trainer(own, make_sim)
        self.model = next(iter(self.trainers.values())).model  # holds the shared parts
        for trainer in self.trainers.values():
            for part in SHARED_MODULES:
                setattr(trainer.model, part, getattr(self.model, part))
        frames = torch.tensor([float(t.data.num_frames) for t in self.trainers.values()])
        self.share = frames / frames.sum()

    def num_parameters(self) -> dict[str, int]:
        """Parameters per part: the shared ones once, each task's heads."""
        counts = {part: sum(p.numel() for p in getattr(self.model, part).parameters())
                  for part in ("autoencoder", "dit", "pose")}
        for name, trainer in self.trainers.items():
            counts[f"{name} heads"] = sum(p.numel() for p in trainer.model.parameters()) - sum(
                counts[part] for part in ("autoencoder", "dit", "pose"))
        return counts

    def _mixed(self, loss_of: Callable[[Trainer], LossFn]) -> LossFn:
        """One loss for the shared parts: each step, the loss of one task's batch (drawn by its frames)."""
        losses = [loss_of(trainer) for trainer in self.trainers.values()]

        def loss_fn(batch: int, g: torch.Generator):
            return losses[int(torch.multinomial(self.share, 1, generator=g))](batch, g)

        return loss_fn

    def run(self) -> Path:
        stages, m = self.config.train_stages, self.model
        if "autoencoder" in stages:
            self._loop("autoencoder", {"model": m.autoencoder}, list(m.autoencoder.parameters()),
                       self.config.autoencoder, self._mixed(lambda t: t.autoencoder_loss_fn()))
        for trainer in self.trainers.values():
            with self.main_first():  # as Trainer.run: rank 0 encodes and caches each task's latents
                trainer._encode_latents()
        if "pose" in stages:
            self._loop("pose", {"model": m.pose}, list(m.pose.parameters()), self.config.pose,
                       self._mixed(lambda t: t.pose_loss_fn()))
        for stage in ("heads", "objects", "probe"):
            if stage in stages:
                for trainer in self.trainers.values():
                    getattr(trainer, f"_train_{stage}")()
        if "dit" in stages:
            ema = AveragedModel(m.dit, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay))
            self._loop("dit", {"model": m.dit}, list(m.dit.parameters()), self.config.dit,
                       self._mixed(lambda t: t.dit_loss_fn()), ema=ema)
            m.dit.load_state_dict(ema.module.state_dict())
        final = self.out / "checkpoint"
        if self.shard.is_main:
            models = {name: trainer.model.cpu() for name, trainer in self.trainers.items()}
            save_shared(models, final, FORMAT_VERSION)
        for trainer in self.trainers.values():
            trainer.model.to(self.device)
            trainer.tb.close()
        self.close()
        return final

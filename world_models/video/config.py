"""WorldModelConfig: everything needed to rebuild the video world model, saved as config.json beside its
weights, and its identity statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from wow_gym.world_models.video.autoencoder import AutoencoderConfig
from wow_gym.world_models.video.dit import DiTConfig

FORMAT_VERSION = 1


@dataclass
class WorldModelConfig:
    """Everything needed to rebuild the model; saved as config.json beside the weights."""

    task: str = "Lift"
    instruction: str = "lift the red cube"
    image_size: int = 64
    action_dim: int = 7
    agent_pos_dim: int = 9
    env_state_dim: int = 10
    context_frames: int = 2
    sampling_steps: int = 2
    ctx_noise: float = 0.0  # context-noise level used when imagining (training draws it at random)
    # Imagined frame = newest real context frame + decode(imagined latent) - decode(that frame's latent):
    # what the model leaves unchanged keeps the real frame's pixels instead of the autoencoder's blur.
    residual_decoding: bool = True
    # With residual decoding: a pixel keeps the newest real context frame's value unless the decoded change
    # from that frame exceeds this many levels (in any channel) at it or at a pixel of its 3x3
    # neighbourhood. The sim's background is static; without it, sampling noise in the latent shimmers over
    # the whole picture. 0 keeps every decoded change.
    residual_deadband: float = 0.0
    # The task camera's 3x4 projection (world -> pixel column, row); when set, the DiT is told where the
    # gripper is in the picture (world_models/pose_map.py). None: the pose is a global condition only.
    camera: list[list[float]] | None = None
    # Object state carried with its own dynamics (world_models/video/dynamics.py ObjectDynamics): the
    # environment_state entries of the task object's position (3) then orientation quaternion (4), or with
    # object_quaternion false its position then the rest of its state (Door: the door's position, hinge and
    # handle angles), and those holding its position minus the gripper's. None: the object state is the
    # probe's reading of each frame.
    object_dims: list[int] | None = None
    object_offset_dims: list[int] | None = None
    object_quaternion: bool = True
    # The object probe reads uint8 frames (PixelProbe) instead of the frame latent (LatentHead).
    pixel_probe: bool = False
    # The DiT is also told where the object is in the picture (needs camera and object_dims).
    object_map: bool = False
    # The object layer (world_models/video/object_layer.py) moves the pictured object to its carried pose in
    # every imagined frame: the task's box (Task.object_extents) seen through `camera`, textured from the
    # newest real context frame (needs object_dims, camera and residual_decoding).
    object_layer: bool = False
    # ... where the object rests on its support too (pushed along the table); False: there it stays in place
    object_layer_pushes: bool = False
    # Pose dynamics also reads the carried object state (its height, orientation and offset from the gripper):
    # closing fingers stop on an object between them and close fully on nothing (needs object_dims).
    pose_objects: bool = False
    # Hidden width of the pose dynamics' MLP (PoseDynamics). 256 for the checkpoints before this key existed.
    pose_width: int = 256
    # Conv width of the latent heads (the environment_state probe, reward and success): a shared model keeps
    # a pair per task, so narrower heads keep it within the checkpoint budget (48: a third of the weights)
    head_width: int = 128
    # The imagined gripper stops where its fingertips meet the table or the carried object's top face
    # (world_models/video/contact.py), as the simulated one does (needs object_dims and the task's
    # object_extents and table_height).
    arm_contact: bool = False
    # The imagined fingers follow robosuite's integrated gripper command through a model of the finger servos
    # and close on the carried object only where it lies between the pads (world_models/video/fingers.py),
    # instead of the pose dynamics' learned finger step (needs object_dims and the task's object_extents).
    finger_rule: bool = False
    # The imagined arm is the robot's own: its joints stepped in MuJoCo under robosuite's controller
    # (world_models/video/arm.py) instead of the pose dynamics' learned step; the fingers stay the finger
    # rule's or the pose dynamics', the contact stop still stops the hand.
    arm_physics: bool = False
    # Every imagined frame shows the robot's own arm (robosuite's Panda MJCF, through the task camera) where
    # the imagined pose state has it (world_models/video/arm_layer.py): a render per frame, so an option for
    # evaluations and physics checks, off in the shipped checkpoint.
    arm_layer: bool = False
    # With the arm layer: the pixels that showed the arm at the start frame's pose and do not show it at the
    # imagined one get the cell behind the arm (arm_layer.py), instead of the DiT's ghost of the start arm
    arm_erase: bool = False
    # Every imagined frame draws the task's still object (Stack's green cube: Task.scene_pose) again where the
    # start's scene has it, from the anchor frame (object_layer.py), over the DiT's fading of it; under the
    # arm layer's arm. An option for evaluations, off in the shipped checkpoint.
    scene_layer: bool = False
    # An imagined env reset from a simulator state or a stored episode starts the carried object state from
    # that known environment_state instead of the probe's reading of the frame (the probe reads Stack's red
    # cube about 2 cm off, where the stacking test allows 2.5 cm across); a reset from pixels reads the probe.
    known_state: bool = False
    # A held object (the task's grasp test before and after the step, as the support rule asks) moves with the
    # gripper, by the gripper's own translation, instead of the learned step's: the learned carry lags the
    # hand by about a millimetre a step, and after 20-30 steps of carrying the lag is past the grasp reach
    # and the cube drops (Stack's replay check with the robot's own arm). Its orientation stays learned. A
    # held object goes no lower than its rest height (Stack: set on the green cube, not pushed into it).
    carry_rule: bool = False
    # With the finger rule, a square box (Task.square_object) turned about the approach stops the closing
    # fingers at its width across the pads, up to its diagonal (fingers.py, box_across), as the simulated
    # fingers stop, instead of at its side; fingers stopped there hold it (the support rule's grasp test),
    # and with the carry rule a held cube turns with the hand too, keeping its width in the grip.
    # The turn is the carried state's: an option for runs with known_state (the probe reads a start's turn
    # only up to the cube's symmetry).
    grip_turn: bool = False
    # An articulated object's joints move by the task's rule under a hand that grips it (Task.joint_step;
    # Door: the lever turns with the hand and, once it frees the latch, the door swings with it about the
    # hinge; the door holds the hand on their circles), instead of the learned object step: the learned
    # step let the hand pull free of the lever, and no imagined door opened. Needs the finger rule (what
    # grips the lever: Task.grip_box).
    joint_rule: bool = False
    # A second DiT distilled to take one Euler step to where the DiT's `distill_steps` steps go (the train
    # stage "distill"); imagining at sampling_steps=1 uses it. False: one step of the DiT itself.
    one_step: bool = False
    distill_steps: int = 2
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.autoencoder, dict):
            self.autoencoder = AutoencoderConfig(**self.autoencoder)
        if isinstance(self.dit, dict):
            self.dit = DiTConfig(**self.dit)
        if self.autoencoder.image_size != self.image_size:
            raise ValueError(f"autoencoder.image_size {self.autoencoder.image_size} != image_size {self.image_size}")
        if self.grip_turn and not self.finger_rule:
            raise ValueError("grip_turn=true turns the finger rule's box; turn finger_rule on too")
        if self.joint_rule and not self.finger_rule:
            raise ValueError("joint_rule=true moves the joints under fingers that grip; turn finger_rule on "
                             "too")
        self.dit.latent_channels = self.autoencoder.latent_channels
        self.dit.latent_size = self.autoencoder.latent_size
        self.dit.context_frames = self.context_frames
        self.dit.action_dim = self.action_dim
        self.dit.pose_dim = self.agent_pos_dim
        self.dit.pose_map = self.camera is not None
        self.dit.object_map = self.object_map
        if self.object_dims is not None:
            dims = list(self.object_dims) + list(self.object_offset_dims or [])
            if len(self.object_offset_dims or []) != 3 or (
                    len(self.object_dims) != 7 if self.object_quaternion else len(self.object_dims) < 4):
                shape = ("7 environment_state entries (position, quaternion)" if self.object_quaternion
                         else "at least 4 environment_state entries (position, then the rest of its state)")
                raise ValueError(f"object_dims must name {shape} and object_offset_dims 3, got "
                                 f"{self.object_dims} and {self.object_offset_dims}")
            if len(set(dims)) != len(dims) or not all(0 <= d < self.env_state_dim for d in dims):
                raise ValueError(f"object_dims + object_offset_dims must name distinct entries of "
                                 f"environment_state's {self.env_state_dim}, got {dims}")
        if self.pose_objects and self.object_dims is None:
            raise ValueError("pose_objects needs object_dims (the carried object state)")
        if self.arm_contact and self.object_dims is None:
            raise ValueError("arm_contact needs object_dims (the carried object state)")
        if self.finger_rule and self.object_dims is None:
            raise ValueError("finger_rule needs object_dims (the carried object state)")
        if self.object_map and (self.object_dims is None or self.camera is None):
            raise ValueError("object_map needs object_dims (the carried object state) and camera")
        if self.object_layer and (self.object_dims is None or self.camera is None
                                  or not self.residual_decoding):
            raise ValueError("object_layer needs object_dims (the carried object state), camera and "
                             "residual_decoding")
        if self.pose_width < 1:
            raise ValueError(f"pose_width must be >= 1, got {self.pose_width}")
        if self.head_width < 1:
            raise ValueError(f"head_width must be >= 1, got {self.head_width}")
        if self.distill_steps < 2:
            raise ValueError(f"distill_steps must be >= 2 (the teacher's steps), got {self.distill_steps}")
        if not self.residual_deadband >= 0:
            raise ValueError(f"residual_deadband must be >= 0 pixel levels, got {self.residual_deadband}")
        if self.camera is not None and np.asarray(self.camera).shape != (3, 4):
            raise ValueError(f"camera must be a 3x4 projection matrix, got shape {np.asarray(self.camera).shape}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_stats(config: WorldModelConfig) -> dict[str, list[float]]:
    """Identity statistics (for a model not yet fitted to data)."""
    c, p, e = config.autoencoder.latent_channels, config.agent_pos_dim, config.env_state_dim
    o = len(config.object_dims or ())  # the carried object's entries (7 for a free body's pose; Door's 8)
    return {
        "latent_mean": [0.0] * c, "latent_std": [1.0] * c, "delta_std": [1.0] * c,
        "pose_mean": [0.0] * p, "pose_std": [1.0] * p, "dpose_std": [1.0] * p,
        "env_state_mean": [0.0] * e, "env_state_std": [1.0] * e,
        "reward_mean": [0.0], "reward_std": [1.0],
    } | ({} if config.object_dims is None else {
        "object_mean": [0.0] * o, "object_std": [1.0] * o, "dobject_std": [1.0] * o, "offset_std": [1.0] * 3,
    })

"""The arm layer: every imagined frame shows the robot's own arm where the imagined pose state has it.

The world model carries the gripper's pose as state, and that state follows the simulated arm closely (on
the expert's actions within about 3 mm over 60 steps). The DiT draws the arm from it, but a CPU-sized DiT
decoding 8x8 latents in one or two flow steps draws a moving arm as a blur: on the expert's imagined video
FM-IDM's pose head read the gripper 20-36 mm from where the state had it, against 8 mm on simulator
frames, and tracking that reading solved 55% of a tuning split's starts where tracking the state solved
95% (stop 44's closing note). The arm is the robot's, not the world's: its description (robosuite's Panda
MJCF) and the task camera are what a real arm and its cell ship with. So the layer poses that description
at the imagined hand pose (inverse kinematics from the rest posture, PhysicsArm.joints; the joints
themselves where the robot's own arm steps them, arm_physics) with the imagined fingers, renders it through
the task camera with the sim twin's look (wow_gym.simulator.scene_renderer) and pastes its pixels, found by
MuJoCo's segmentation, over the imagined frame. The task's objects are moved out of the render's sight:
what the world does stays the world model's (the object layer draws the object), and the DiT's blur
around the pasted arm stays. The DiT also leaves the arm of the frame it started from where it was (a ghost
beside the pasted arm, 1.6 dB below copy-last on Door's held-out open loop). With `arm_erase` the layer draws
the arm's motion since the start frame: the pixels that showed the arm at the start frame's pose and do not
show it now get the cell behind the arm (rendered once from the same scene with the arm swung out of the
way), and where the drawn arm looks as it did at the start pose, the frame's own arm stays (the solved
posture is not the real one: on Door's held-out expert starts, `make eval-arm-layer-door`, 26.2 / 24.3 /
22.2 dB at h = 4 / 8 / 16; pasting the whole drawn arm, as commit 032a69e did, 22.7 / 21.9 / 20.7).

It costs a render per imagined frame (tens of milliseconds on a CPU, as much as the sim twin's camera), so
it is an option for evaluations and physics checks (`arm_layer`), off in the RL env by default.
Hand-written: robosuite renders a whole simulated scene; this renders the arm alone at poses no simulator
state holds.
"""

from __future__ import annotations

import functools

import mujoco
import numpy as np
import torch

from wow_gym.registry import task_info
from wow_gym.simulator import arm_geoms, arm_pixels, scene_renderer
from wow_gym.world_models.video.arm import ARM_JOINTS, PhysicsArm, shared_arm

OUT_OF_SIGHT = -10.0  # metres: where the layer's scene keeps the task's free objects (below the floor)
# radians added to the first joint (the base's turn) from the rest posture: the arm swung to each side and
# behind, so that together the renders show every pixel of the cell the arm can hide, except its fixed base
CELL_TURNS = (0.0, 1.6, -1.6, 3.1)
# metres and radians: the layer's hand is solved to a micrometre. arm.IK_TOLERANCE (1e-9) is below what the
# solve reaches on many poses, so it ran all 32 seeds, 300 iterations each: 0.23 s per Door frame on this CPU
# against 0.5 ms (a millimetre's tolerance stopped before the posture settled: colours 4.3 levels off)
LAYER_IK_TOLERANCE = 1e-6
SAME_LEVELS = 8  # a drawn arm pixel within this many levels of its start-pose drawing has not moved
MASK_CACHE = 4096  # arm renders kept per layer, by pose: a start frame's is needed at every step


@functools.cache
def shared_arm_layer(task: str, image_size: int) -> ArmLayer:
    """The task's ArmLayer at this frame size, built once per process (it shares the task's PhysicsArm)."""
    return ArmLayer(shared_arm(task), task_info(task).camera, image_size)


class ArmLayer:
    """Pastes the robot arm posed at agent_pos [B, 9] (or at joints [B, 7]) over uint8 frames [B, H, W, 3],
    as `camera` of the arm's task scene sees it."""

    def __init__(self, arm: PhysicsArm, camera: str, image_size: int) -> None:
        model = arm.model
        cameras = [model.camera(i).name for i in range(model.ncam)]
        if camera not in cameras:
            raise ValueError(f"camera {camera!r} is not in the task scene; expected one of {cameras}")
        self.arm, self.camera, self.image_size = arm, camera, image_size
        self.data = mujoco.MjData(model)
        self.data.qpos[:] = arm.park
        for joint in np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE):
            self.data.qpos[model.jnt_qposadr[joint] + 2] = OUT_OF_SIGHT
        self.colour = scene_renderer(model, image_size)
        self.segment = scene_renderer(model, image_size, segmentation=True)
        self.geoms = arm_geoms(model)
        self._masks: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    @functools.cached_property
    def cell(self) -> tuple[np.ndarray, np.ndarray]:
        """The cell behind the arm, rendered once: uint8 colour [H, W, 3] and where it is known [H, W] (pixels
        some CELL_TURNS render shows without the arm)."""
        colour = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        known = np.zeros((self.image_size, self.image_size), bool)
        for turn in CELL_TURNS:
            joints = self.arm.park[:ARM_JOINTS].copy()
            joints[0] += turn
            render, arm = self.render(np.full(9, np.nan), joints)
            fresh = ~arm & ~known
            colour[fresh], known[fresh] = render[fresh], True
        return colour, known

    def drawn(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """render(pose) (int colour), kept (MASK_CACHE) for poses seen before: a start frame's, every step."""
        key = np.asarray(pose, np.float64).tobytes()
        if key not in self._masks:
            if len(self._masks) >= MASK_CACHE:
                self._masks.pop(next(iter(self._masks)))
            colour, arm = self.render(pose)
            self._masks[key] = (colour.astype(int), arm)
        return self._masks[key]

    def render(self, pose: np.ndarray, joints: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The arm at agent_pos `pose` [9] (its hand by inverse kinematics unless `joints` [7] are given):
        uint8 colour [H, W, 3] and its bool pixels [H, W]."""
        model, data = self.arm.model, self.data
        data.qpos[:ARM_JOINTS] = self.arm.joints(pose, LAYER_IK_TOLERANCE) if joints is None else joints
        if np.all(np.isfinite(pose[7:9])):  # else the fingers stay as they were
            data.qpos[self.arm.finger_qpos] = pose[7:9]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mj_camlight(model, data)  # the cameras and lights where the scene puts them
        self.colour.update_scene(data, camera=self.camera)
        self.segment.update_scene(data, camera=self.camera)
        return self.colour.render(), arm_pixels(self.segment.render(), self.geoms)

    def __call__(self, frames: torch.Tensor, poses: torch.Tensor, joints: torch.Tensor | None = None,
                 shown: torch.Tensor | None = None) -> torch.Tensor:
        """frames with the arm pasted at `poses` [B, P]; with `shown` [B, P] (the poses of the arm the frames
        already show), the arm's motion since then: where it was and is not, the cell behind it; where it is
        drawn as it was drawn there, the frames' own arm."""
        if frames.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"the arm layer draws {self.image_size} px frames [B, H, W, 3], got "
                             f"{tuple(frames.shape)}")
        out = frames.cpu().numpy().copy()
        pose_rows = poses.detach().double().cpu().numpy()
        joint_rows = None if joints is None else joints.detach().double().cpu().numpy()
        shown_rows = None if shown is None else shown.detach().double().cpu().numpy()
        for i, pose in enumerate(pose_rows):
            if not np.all(np.isfinite(pose)):
                continue  # no pose state (a plan): the DiT's drawing stays
            colour, pixels = self.render(pose, None if joint_rows is None else joint_rows[i, :ARM_JOINTS])
            if shown_rows is not None and np.all(np.isfinite(shown_rows[i])):
                cell, known = self.cell
                before, was = self.drawn(shown_rows[i])
                gone = was & ~pixels & known
                out[i][gone] = cell[gone]
                # where the drawn arm looks as it did at the start, the frame's own arm stays: the solved
                # posture is not the real one, and the real arm's pixels beat a render of it
                pixels = pixels & ~(was & (np.abs(colour.astype(int) - before).max(-1) <= SAME_LEVELS))
            out[i][pixels] = colour[pixels]
        return torch.from_numpy(out).to(frames.device)

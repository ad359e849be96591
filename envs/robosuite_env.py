"""Gymnasium adapter over a robosuite 1.5 task: Panda arm, OSC_POSE control, exact state restore.

robosuite's own GymWrapper is not Gymnasium-compliant (no metadata, the horizon reported as termination,
global RNG seeding), so this adapter drives the robosuite env directly: `ignore_done=True` with TimeLimit
for truncation, robosuite's RNGs reseeded from the Gymnasium RNG on every reset, and frames rendered by a
`mujoco.Renderer` of our own so CPU rendering costs can be tuned.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from wow_gym.checks import check_actions  # noqa: E402
from wow_gym.registry import CONTROL_FREQ, task_info  # noqa: E402
from wow_gym.simulator import arm_geoms, arm_pixels, make_robosuite, scene_renderer  # noqa: E402

AGENT_POS_DIM = 9  # end-effector position (3), orientation quaternion xyzw (4), gripper finger joints (2)
_STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
_GRIPPER_STATE = 2  # the Panda gripper's integrated finger command
@dataclass(frozen=True)
class RenderConfig:
    """How frames are rendered. The defaults are tuned for CPU rendering (about 3x faster than robosuite's)."""

    image_size: int = 64
    camera: str | None = None  # None: the task's default camera
    shadows: bool = False
    reflections: bool = False
    skybox: bool = False


class RobosuiteEnv(gym.Env):
    """A robosuite task as a Gymnasium env with the observation/action spaces every wow_gym env shares."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(
        self,
        task: str = "Lift",
        instruction: str | None = None,
        image_size: int = 64,
        camera: str | None = None,
        use_camera: bool = True,
        shadows: bool = False,
        reflections: bool = False,
        skybox: bool = False,
        control_freq: int = CONTROL_FREQ,
        terminate_on_success: bool = False,
        render_mode: str | None = None,
    ) -> None:
        info = task_info(task)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if use_camera and not 16 <= image_size <= 1024:
            raise ValueError(f"image_size must be between 16 and 1024 pixels, got {image_size}")
        self.task = info.name
        self.instruction = instruction or info.instruction
        self.render_mode = render_mode
        self.terminate_on_success = terminate_on_success
        self.render_config = RenderConfig(image_size, camera or info.camera, shadows, reflections, skybox)
        self.robosuite = make_robosuite(info.robosuite_env, control_freq)
        self.model: mujoco.MjModel = self.robosuite.sim.model._model
        self.data: mujoco.MjData = self.robosuite.sim.data._data
        self._renderer = self._make_renderer() if use_camera else None
        self._segmenter: mujoco.Renderer | None = None
        self._last_observation: dict[str, np.ndarray] | None = None

        raw = self.robosuite.reset()
        obs_spaces: dict[str, spaces.Space] = {}
        if use_camera:
            obs_spaces["pixels"] = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        obs_spaces["agent_pos"] = spaces.Box(-np.inf, np.inf, (AGENT_POS_DIM,), np.float32)
        env_state_dim = raw["object-state"].shape[0]
        obs_spaces["environment_state"] = spaces.Box(-np.inf, np.inf, (env_state_dim,), np.float32)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(-1.0, 1.0, (7,), np.float32)
        self._physics_state_size = mujoco.mj_stateSize(self.model, _STATE_SPEC)
        # Bodies fixed to the world that robosuite may move at reset by editing the model (Door's door).
        self._fixture_bodies = np.array([b for b in range(1, self.model.nbody)
                                         if self.model.body_parentid[b] == 0 and self.model.body_jntnum[b] == 0])
        self.sim_state_size = self.get_sim_state().size

    # -- Gymnasium API -----------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: a fresh seeded layout, or the exact state in options['sim_state']."""
        super().reset(seed=seed)
        self._reseed_robosuite(int(self.np_random.integers(2**63 - 1)))
        self.robosuite.reset()
        sim_state = (options or {}).get("sim_state")
        # A fresh episode goes through the same restore path as a stored state, so that stepping from
        # either is bit-identical (robosuite's controller initialisation would otherwise differ slightly).
        raw = self._restore(self.get_sim_state() if sim_state is None else sim_state)
        observation = self._observation(raw)
        return observation, self._info()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one OSC_POSE action (20 Hz control); truncation is left to the TimeLimit wrapper."""
        action = check_actions(action, (7,), "action", np.float64)
        _, reward, _, _ = self.robosuite.step(np.clip(action, -1.0, 1.0))
        raw = self._refresh()
        observation = self._observation(raw)
        info = self._info()
        terminated = bool(self.terminate_on_success and info["is_success"])
        return observation, float(reward), terminated, False, info

    def render(self) -> np.ndarray | None:
        """The last observed frame (rgb_array), or None when render_mode is None."""
        if self.render_mode is None or self._last_observation is None:
            return None
        if "pixels" in self._last_observation:
            return self._last_observation["pixels"].copy()
        return self.render_frame()

    def close(self) -> None:
        for name in ("_renderer", "_segmenter"):
            if getattr(self, name) is not None:
                getattr(self, name).close()
                setattr(self, name, None)
        self.robosuite.close()

    # -- state restore -----------------------------------------------------------------------------------

    def get_sim_state(self) -> np.ndarray:
        """Everything that determines what happens next, as one float64 vector.

        MuJoCo's integration state (time, qpos, qvel, actuator state, warm start, controls), then what
        robosuite keeps outside it: poses of fixed bodies it places at reset (the door), the grippers'
        integrated commands and the arm controllers' nullspace posture targets.
        """
        physics = np.empty(self._physics_state_size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, physics, _STATE_SPEC)
        fixtures = [self.model.body_pos[self._fixture_bodies].ravel(), self.model.body_quat[self._fixture_bodies].ravel()]
        # The Panda gripper's command starts as shape (1,) and becomes (2,) after the first step, with
        # the same meaning; store the (2,) form so every state of a task has one size.
        grippers = [np.broadcast_to(g.current_action, (_GRIPPER_STATE,)) for g in self._grippers()]
        postures = [np.asarray(c.initial_joint, dtype=np.float64) for c in self._arm_controllers()]
        return np.concatenate([physics, *fixtures, *grippers, *postures])

    def _grippers(self) -> list[Any]:
        return [g for robot in self.robosuite.robots for g in robot.gripper.values()]

    def _arm_controllers(self) -> list[Any]:
        """The OSC controllers; their nullspace term pulls toward the episode's initial posture."""
        return [robot.composite_controller.part_controllers[arm] for robot in self.robosuite.robots
                for arm in robot.arms]

    def _restore(self, sim_state: np.ndarray) -> dict[str, np.ndarray]:
        state = np.asarray(sim_state, dtype=np.float64)
        if state.shape != (self.sim_state_size,):
            raise ValueError(f"sim_state for {self.task} must have shape ({self.sim_state_size},), got "
                             f"{state.shape}; was it stored by a different task or mujoco version?")
        mujoco.mj_setState(self.model, self.data, state[: self._physics_state_size], _STATE_SPEC)
        offset = self._physics_state_size
        for field, width in ((self.model.body_pos, 3), (self.model.body_quat, 4)):
            size = len(self._fixture_bodies) * width
            field[self._fixture_bodies] = state[offset : offset + size].reshape(-1, width)
            offset += size
        for gripper in self._grippers():
            gripper.current_action = state[offset : offset + _GRIPPER_STATE].copy()
            offset += _GRIPPER_STATE
        for controller in self._arm_controllers():
            size = len(controller.initial_joint)
            controller.initial_joint = state[offset : offset + size].copy()
            offset += size
        for robot in self.robosuite.robots:
            robot.composite_controller.update_state()
            for controller in robot.composite_controller.part_controllers.values():
                if hasattr(controller, "update"):
                    controller.update(force=True)
            robot.composite_controller.reset()
        return self._refresh()

    def _refresh(self) -> dict[str, np.ndarray]:
        """Recompute kinematics and observations from the current state.

        robosuite's step ends after mj_step2, whose kinematics lag the integrated state by one physics
        substep; observing the state itself makes an observation a function of get_sim_state() alone, so a
        restored state renders the same frame as the step that produced it.
        """
        mujoco.mj_forward(self.model, self.data)
        return self.robosuite._get_observations(force_update=True)

    # -- internals ---------------------------------------------------------------------------------------

    def _reseed_robosuite(self, seed: int) -> None:
        """Point robosuite's RNG and every placement sampler at one generator derived from our seed."""
        rng = np.random.default_rng(seed)
        self.robosuite.rng = rng
        samplers = [getattr(self.robosuite, "placement_initializer", None)]
        while samplers:
            sampler = samplers.pop()
            if sampler is None:
                continue
            sampler.rng = rng
            samplers.extend(getattr(sampler, "samplers", {}).values())

    def _make_renderer(self) -> mujoco.Renderer:
        cfg = self.render_config
        cameras = [self.model.camera(i).name for i in range(self.model.ncam)]
        if cfg.camera not in cameras:
            raise ValueError(f"camera {cfg.camera!r} is not in the {self.task} scene; expected one of {cameras}")
        return scene_renderer(self.model, cfg.image_size, shadows=cfg.shadows, reflections=cfg.reflections,
                              skybox=cfg.skybox)

    def render_frame(self) -> np.ndarray:
        """Render the task camera now, as uint8 HxWx3."""
        if self._renderer is None:
            raise RuntimeError("this env was made with use_camera=False; make it with use_camera=True to render")
        self._renderer.update_scene(self.data, camera=self.render_config.camera)
        return self._renderer.render()

    def render_arm_mask(self) -> np.ndarray:
        """bool HxW: the task camera's pixels that show the robot arm or its gripper, from MuJoCo's
        segmentation rendering (exact, so FM-IDM's mask head can learn from it)."""
        if self._segmenter is None:
            self._segmenter = scene_renderer(self.model, self.render_config.image_size, segmentation=True)
            self._arm_geoms = arm_geoms(self.model)
        self._segmenter.update_scene(self.data, camera=self.render_config.camera)
        return arm_pixels(self._segmenter.render(), self._arm_geoms)

    def arm_masks(self, sim_states: np.ndarray) -> np.ndarray:
        """bool [T, H, W] arm masks of stored states [T, S] (an episode's `sim_state`), rendered by setting
        each state's poses only; the env's own state is put back afterwards."""
        return self._posed(sim_states, self.render_arm_mask)

    def render_states(self, sim_states: np.ndarray) -> np.ndarray:
        """uint8 [T, H, W, 3] camera frames of stored (or edited, see `qpos_slice`) states [T, S], posed
        without stepping physics; the env's own state is put back afterwards."""
        return self._posed(sim_states, self.render_frame)

    @property
    def qpos_slice(self) -> slice:
        """Where a sim_state vector holds MuJoCo's qpos (after the time), e.g. to pose an object by hand."""
        return slice(1, 1 + self.model.nq)

    def _object_joint(self) -> int:
        """The MuJoCo id of the task object's joint: Task.object_joint, else the scene's first free joint."""
        name = task_info(self.task).object_joint
        if name is None:
            free = [j for j in range(self.model.njnt) if self.model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
            if not free:
                raise ValueError(f"the {self.task} scene has no free-moving object; name its object_joint")
            return free[0]
        joint = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if joint < 0:
            raise ValueError(f"the {self.task} scene has no joint {name!r} (its Task.object_joint)")
        return joint

    def object_qpos_index(self) -> np.ndarray:
        """Indices into a sim_state of the task object's joint (Task.object_joint): its free-joint pose
        (x, y, z, qw, qx, qy, qz), or the one angle of a hinge (the door's)."""
        joint = self._object_joint()
        size = {mujoco.mjtJoint.mjJNT_FREE: 7, mujoco.mjtJoint.mjJNT_HINGE: 1,
                mujoco.mjtJoint.mjJNT_SLIDE: 1}.get(mujoco.mjtJoint(self.model.jnt_type[joint]))
        if size is None:
            raise ValueError(f"the {self.task} object joint must be free, hinge or slide")
        return self.qpos_slice.start + self.model.jnt_qposadr[joint] + np.arange(size)

    def object_joint_range(self) -> tuple[float, float]:
        """The limits of the task object's joint (radians for a hinge: how far the door opens); infinite
        where the joint has none."""
        joint = self._object_joint()
        if not self.model.jnt_limited[joint]:
            return -np.inf, np.inf
        low, high = self.model.jnt_range[joint]
        return float(low), float(high)

    def _posed(self, sim_states: np.ndarray, render: Any) -> np.ndarray:
        states = np.asarray(sim_states, dtype=np.float64)
        if states.ndim != 2 or states.shape[1] != self.sim_state_size:
            raise ValueError(f"sim_states for {self.task} must have shape (T, {self.sim_state_size}), got "
                             f"{states.shape}")
        saved = np.empty(self._physics_state_size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, saved, _STATE_SPEC)
        out = []
        for state in states:
            mujoco.mj_setState(self.model, self.data, state[: self._physics_state_size], _STATE_SPEC)
            mujoco.mj_kinematics(self.model, self.data)
            out.append(render())
        mujoco.mj_setState(self.model, self.data, saved, _STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)
        return np.stack(out)

    def camera_matrix(self) -> np.ndarray:
        """The 3x4 projection of the task camera: [u*w, v*w, w] = P @ [x, y, z, 1] maps a world point to
        pixel column u and row v of this env's frames (row 0 at the top, as rendered)."""
        cam = self.model.camera(self.render_config.camera).id
        rotation = self.data.cam_xmat[cam].reshape(3, 3)  # columns: the camera's x, y, z axes in the world
        position = self.data.cam_xpos[cam]
        size = self.render_config.image_size
        focal = 0.5 * size / np.tan(np.deg2rad(self.model.cam_fovy[cam]) / 2)
        # MuJoCo cameras look down their -z axis with +y up; image rows grow downwards.
        intrinsics = np.array([[focal, 0.0, size / 2], [0.0, -focal, size / 2], [0.0, 0.0, 1.0]])
        extrinsics = np.diag([1.0, 1.0, -1.0]) @ rotation.T
        return intrinsics @ np.hstack([extrinsics, -(extrinsics @ position)[:, None]])

    def _observation(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        agent_pos = np.concatenate([raw["robot0_eef_pos"], raw["robot0_eef_quat"], raw["robot0_gripper_qpos"]])
        observation = {
            "agent_pos": agent_pos.astype(np.float32),
            "environment_state": np.asarray(raw["object-state"], dtype=np.float32),
        }
        if self._renderer is not None:
            observation = {"pixels": self.render_frame(), **observation}
        self._last_observation = observation
        return observation

    def _info(self) -> dict[str, Any]:
        return {"is_success": bool(self.robosuite._check_success()), "instruction": self.instruction}

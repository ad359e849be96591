"""The robot's own arm in imagination: the Panda's joints stepped in MuJoCo under robosuite's OSC_POSE
controller, for a batch of imagined episodes.

The learned pose dynamics maps (pose, its last change, the actions) to the next end-effector pose. The arm's
true state is its seven joints and their velocities: the end-effector pose leaves the elbow free, and the
controller's response to an action depends on the whole posture (its operational-space inertia couples
position and orientation). A learned step from the pose alone is off by a fraction of a millimetre a step,
consistently in one direction along a trajectory, so open loop the imagined gripper is 10-35 mm from the
simulated one after 40 steps, while the simulator itself is not sensitive (a 1 mrad nudge of every joint at
the start moves its gripper about 1 mm after 40 steps; scratch checks, stop 35's closing note has them).
Near a grasp, that drift decides whether the fingers close around the cube or beside it.

The arm is the robot's, not the world's: its description (robosuite's Panda MJCF) and its controller are what
a real arm ships with. So the imagined arm is the robot model and the controller, run as robosuite runs them
(every 2 ms physics substep: kinematics, the controller's torques, integration), in a copy of the task's
model where the hand meets the table and the robot's mount and nothing else collides. The fingers are held
where the caller puts them (the world model's fingers: the finger rule, or learned), and what the arm meets
of the object stays the world model's (the contact stop on its top, the finger rule between the pads);
`follow` moves the joints to where the contact stop left the hand.

Making the object solid here instead (at the pose the world model carries, standing still through each step)
was tried and dropped: the probe reads the cube's start 5-10 mm off, and a solid cube there pushes the arm
aside or stops fingers where the simulated ones pass (tuning split: 8 of 22 lifts seen, against 19 of 22
with the finger rule; stop 35's closing note).

Hand-written: robosuite's controller is written for one simulator; this runs it for a batch of states held
in tensors, with the controller's algebra batched in numpy.
"""

from __future__ import annotations

import copy
import functools

import mujoco
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from wow_gym.registry import CONTROL_FREQ, task_info
from wow_gym.simulator import make_robosuite

ARM_JOINTS = 7
# a batch's arm state: joint positions, joint velocities, and the controller's nullspace posture target
POSTURE = slice(2 * ARM_JOINTS, 3 * ARM_JOINTS)
STATE_DIM = 3 * ARM_JOINTS
NULL_KP = 10.0  # robosuite's nullspace_torques gain (control_utils.nullspace_torques' joint_kp)
IK_ITERATIONS = 300
IK_TOLERANCE = 1e-9  # metres and radians
IK_SEEDS = 32  # the rest posture, then postures drawn across the joints' range (a fixed draw)
# the start's step shot again (PhysicsArm.solve): the velocity nudge (rad/s) of its finite differences,
# radians of hand turn weighed as this many metres, and how near (m) the shot must land
SHOT_EPSILON = 1e-3
SHOT_TURN = 0.1
SHOT_TOLERANCE = 2e-3


@functools.cache
def shared_arm(task: str) -> PhysicsArm:
    """The task's PhysicsArm, built once per process (building one builds the task's simulator). A
    PhysicsArm steps one batch at a time: share it between the models of one thread only."""
    return PhysicsArm(task)


class PhysicsArm:
    """Steps arm states [B, STATE_DIM] of `task` under 7-D OSC_POSE actions; hand poses come back as
    agent_pos[:7] (grip site position, hand body quaternion xyzw)."""

    def __init__(self, task: str) -> None:
        env = make_robosuite(task_info(task).robosuite_env, CONTROL_FREQ)
        try:
            env.reset()
            model, data = env.sim.model._model, env.sim.data._data
            robot = env.robots[0]
            controller = robot.composite_controller.part_controllers["right"]
            hand = model.body(robot.robot_model.eef_name["right"]).id
            self.model = _arm_only(model, hand)
            self.kp, self.kd = np.asarray(controller.kp, float), np.asarray(controller.kd, float)
            self.scale = np.asarray(controller.output_max, float)  # input range [-1, 1]
            self.torque_low = np.asarray(controller.actuator_min, float)
            self.torque_high = np.asarray(controller.actuator_max, float)
            self.origin_pos = np.asarray(controller.origin_pos, float)
            self.origin_ori = np.asarray(controller.origin_ori, float)
            constants = (self.origin_pos, self.origin_ori, self.kp, self.kd)
            self._gains = tuple(torch.from_numpy(x) for x in constants)  # the controller's, for _torques
            self.rest_posture = np.asarray(robot.init_qpos, float)
            self.joint_range = self.model.jnt_range[:ARM_JOINTS].T.copy()  # [2, 7]: low, high
            draws = np.random.default_rng(0).uniform(*self.joint_range, (IK_SEEDS - 1, ARM_JOINTS))
            self.seeds = np.concatenate([self.rest_posture[None], draws])
            self.site = self.model.site(controller.ref_name).id
            self.hand = hand
            self.arm_actuators = np.asarray(robot._ref_actuators_indexes_dict["right"])
            self.finger_actuators = np.asarray(robot._ref_actuators_indexes_dict["right_gripper"])
            fingers = [j for j in range(self.model.njnt) if "finger_joint" in self.model.joint(j).name]
            self.finger_qpos = self.model.jnt_qposadr[fingers]
            self.park = data.qpos.copy()
            self.substeps = int(round(env.control_timestep / env.model_timestep))
        finally:
            env.close()
        self._datas: list[mujoco.MjData] = []

    def _pool(self, b: int) -> list[mujoco.MjData]:
        while len(self._datas) < b:
            self._datas.append(mujoco.MjData(self.model))
        return self._datas[:b]

    def _load(self, data: mujoco.MjData, state: np.ndarray, fingers: np.ndarray) -> None:
        data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number = 0
        data.qpos[:] = self.park
        data.qvel[:] = 0.0
        data.qpos[:ARM_JOINTS] = state[:ARM_JOINTS]
        data.qvel[:ARM_JOINTS] = state[ARM_JOINTS:2 * ARM_JOINTS]
        data.qpos[self.finger_qpos] = fingers
        data.ctrl[self.finger_actuators] = fingers  # their position servos hold them there

    def pose(self, data: mujoco.MjData) -> np.ndarray:
        """agent_pos[:7] of a data whose kinematics are current."""
        quat = data.xquat[self.hand]  # wxyz
        return np.concatenate([data.site_xpos[self.site], quat[1:], quat[:1]])

    def step(self, state: torch.Tensor, fingers: torch.Tensor, action: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(next arm states [B, STATE_DIM], next hand poses [B, 7]) after one control step of actions [B, 7]
        (the gripper's entry unused) from arm states [B, STATE_DIM] with the fingers [B, 2] (joints)."""
        states = state.detach().double().cpu().numpy().copy()
        finger = fingers.detach().double().cpu().numpy()
        act = np.clip(action.detach().double().cpu().numpy(), -1.0, 1.0)
        b = len(states)
        datas = self._pool(b)
        for i, data in enumerate(datas):
            self._load(data, states[i], finger[i])
        posture = states[:, POSTURE]
        goal_pos = goal_ori = None
        frame = _Frame(b, self.model.nv)
        for substep in range(self.substeps):
            for i, data in enumerate(datas):
                mujoco.mj_step1(self.model, data)
                frame.read(i, self.model, data, self.site)
            if substep == 0:  # robosuite sets the goal once per control step, from the achieved pose
                delta = act[:, :6] * self.scale
                goal_pos = (frame.pos - self.origin_pos) @ self.origin_ori + delta[:, :3]
                goal_ori = Rotation.from_rotvec(delta[:, 3:]).as_matrix() @ (self.origin_ori.T @ frame.mat)
            torques = self._torques(goal_pos, goal_ori, frame, posture)
            for data, tau in zip(datas, torques):
                data.ctrl[self.arm_actuators] = tau
                mujoco.mj_step2(self.model, data)
        poses = np.empty((b, 7))
        for i, data in enumerate(datas):
            if data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number:
                # MuJoCo reset this one mid-step: the arm stays where it was, at rest, rather than jumping to
                # the model's default posture
                self._load(data, states[i], finger[i])
                data.qvel[:] = 0.0
            mujoco.mj_kinematics(self.model, data)
            poses[i] = self.pose(data)
            states[i, :ARM_JOINTS] = data.qpos[:ARM_JOINTS]
            states[i, ARM_JOINTS:2 * ARM_JOINTS] = data.qvel[:ARM_JOINTS]
        return (torch.as_tensor(states, dtype=state.dtype, device=state.device),
                torch.as_tensor(poses, dtype=torch.float32, device=state.device))

    def _torques(self, goal_pos: np.ndarray, goal_ori: np.ndarray, frame: _Frame, posture: np.ndarray
                 ) -> np.ndarray:
        """robosuite's OperationalSpaceController.run_controller (uncoupled position and orientation, fixed
        impedance, fixed base), batched: arm torques [B, 7] toward goals [B, 3] and [B, 3, 3] in the
        controller's base frame. In torch (float64), whose thread pool imagination already uses: numpy's
        BLAS threads beside torch's fight for the cores and made these small inverses 10x slower."""
        pos, mat, jac, mass, bias, q, qd = (torch.from_numpy(x) for x in (
            frame.pos, frame.mat, frame.jac, frame.mass, frame.bias, frame.q, frame.qd))
        origin_pos, origin_ori, kp, kd = self._gains
        vel = (jac @ qd[:, :, None])[..., 0]
        desired_pos = origin_pos + torch.from_numpy(goal_pos) @ origin_ori.T
        desired_ori = origin_ori @ torch.from_numpy(goal_ori)
        ori_error = 0.5 * torch.linalg.cross(mat, desired_ori, dim=1).sum(-1)  # over the three axes
        force = kp[:3] * (desired_pos - pos) - kd[:3] * vel[:, :3]
        torque = kp[3:] * ori_error - kd[3:] * vel[:, 3:]
        inv_mass = torch.linalg.inv(mass)
        jt = jac.transpose(1, 2)
        # robosuite takes pseudo-inverses; away from a singular arm they are the inverses, which cost less
        lambda_full = torch.linalg.inv(jac @ inv_mass @ jt)
        lambda_pos = torch.linalg.inv(jac[:, :3] @ inv_mass @ jt[:, :, :3])
        lambda_ori = torch.linalg.inv(jac[:, 3:] @ inv_mass @ jt[:, :, 3:])
        wrench = torch.cat([lambda_pos @ force[:, :, None], lambda_ori @ torque[:, :, None]], dim=1)
        tau = (jt @ wrench)[..., 0] + bias
        nullspace = torch.eye(ARM_JOINTS, dtype=jac.dtype) - inv_mass @ jt @ lambda_full @ jac
        toward = NULL_KP * (torch.from_numpy(posture) - q) - 2 * NULL_KP ** 0.5 * qd
        pose_torques = mass @ toward[:, :, None]
        tau = tau + (nullspace.transpose(1, 2) @ pose_torques)[..., 0]
        return np.clip(tau.numpy(), self.torque_low, self.torque_high)

    def follow(self, state: torch.Tensor, pose: torch.Tensor, fingers: torch.Tensor) -> torch.Tensor:
        """Arm states [B, STATE_DIM] moved to put the hand at agent_pos `pose` [B, P] where a rule outside
        (the contact stop) moved it after the step: the joints by one Jacobian step (a few millimetres), and
        the hand's velocity back along the move taken away where it kept on going that way."""
        states = state.detach().double().cpu().numpy().copy()
        target = pose.detach().double().cpu().numpy()
        finger = fingers.detach().double().cpu().numpy()
        data = self._pool(1)[0]
        for i in range(len(states)):
            self._load(data, states[i], finger[i])
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            move = target[i, :3] - data.site_xpos[self.site]
            if not np.any(np.abs(move) > 1e-7):
                continue
            jac = self._jacobian(data)[:3]
            inverse = np.linalg.pinv(jac)
            states[i, :ARM_JOINTS] += inverse @ move
            along = move / np.linalg.norm(move)
            speed = along @ (jac @ states[i, ARM_JOINTS:2 * ARM_JOINTS])
            if speed < 0:
                states[i, ARM_JOINTS:2 * ARM_JOINTS] -= inverse @ (along * speed)
        return torch.as_tensor(states, dtype=state.dtype, device=state.device)

    def solve(self, poses: torch.Tensor, last_action: torch.Tensor | None = None) -> torch.Tensor:
        """Arm states [B, STATE_DIM] for the last two agent_pos [B, 2, P] (grip site position, hand quaternion
        xyzw, fingers). The joints come by damped least squares from the robot's rest posture, which is also
        the posture target (robosuite starts an episode near it).

        The joint velocities matter as much as the joints: under the controller the arm's velocity changes
        within a control step, so the last step's average velocity is a poor start (test_arm.py: the shot
        stays closer to the simulator). With the action between the two poses (`last_action` [B, 7]), the
        step is shot again: the joints at the first pose and the velocities (one Gauss-Newton step) that take
        the hand to the second under that action, and the state the step ends in; without it, the average
        velocity."""
        both = poses.detach().double().cpu().numpy()
        b = len(both)
        dt = self.model.opt.timestep * self.substeps
        out = np.zeros((b, STATE_DIM))
        out[:, POSTURE] = self.rest_posture
        for i, pose in enumerate(both[:, -1]):
            out[i, :ARM_JOINTS] = self.joints(pose)
            out[i, ARM_JOINTS:2 * ARM_JOINTS] = self._average_velocity(out[i, :ARM_JOINTS], both[i], dt)
        if last_action is None:
            return torch.as_tensor(out, dtype=torch.float64, device=poses.device)
        start = out.copy()
        for i in range(b):
            start[i, :ARM_JOINTS] = self.joints(both[i, 0])
            start[i, ARM_JOINTS:2 * ARM_JOINTS] = self._average_velocity(start[i, :ARM_JOINTS], both[i], dt)
        action = torch.as_tensor(last_action.detach().double().cpu().numpy())
        fingers = torch.as_tensor(both[:, 0, 7:9])
        want = Rotation.from_quat(both[:, -1, 3:7]).as_matrix()  # [B, 3, 3]
        nudges = np.concatenate([np.zeros((1, ARM_JOINTS)), np.eye(ARM_JOINTS) * SHOT_EPSILON])
        rows = ARM_JOINTS + 1

        # one step from the average velocity and from each of its nudges: over one step the end is close to
        # linear in the start's velocity, so one Gauss-Newton step on those finite differences lands it
        trial = np.repeat(start[:, None], rows, axis=1)
        trial[:, :, ARM_JOINTS:2 * ARM_JOINTS] += nudges
        ends, reached = self.step(torch.as_tensor(trial.reshape(-1, STATE_DIM)),
                                  fingers.repeat_interleave(rows, 0), action.repeat_interleave(rows, 0))
        ends, reached = ends.numpy().reshape(b, rows, STATE_DIM), reached.double().numpy().reshape(b, rows, 7)
        turned = Rotation.from_quat(reached[..., 3:7].reshape(-1, 4)).as_matrix().reshape(b, rows, 3, 3)
        residual = np.concatenate([both[:, -1:, :3] - reached[..., :3],
                                   SHOT_TURN * _rotation_error(want[:, None], turned)], axis=-1)  # [B, 8, 6]
        jac = (residual[:, :1] - residual[:, 1:]).transpose(0, 2, 1) / SHOT_EPSILON  # [B, 6, 7]: -d residual
        change = np.einsum("bij,bj->bi", np.linalg.pinv(jac), residual[:, 0])  # [B, 7]
        moved = residual[:, 0] - np.einsum("bij,bj->bi", jac, change)
        slope = (ends[:, 1:] - ends[:, :1]).transpose(0, 2, 1) / SHOT_EPSILON  # [B, STATE_DIM, 7]
        landed = ends[:, 0] + np.einsum("bij,bj->bi", slope, change)
        hit = np.abs(moved[:, :3]).max(-1) < SHOT_TOLERANCE  # elsewhere keep the solved pose
        out[hit, :2 * ARM_JOINTS] = landed[hit, :2 * ARM_JOINTS]
        return torch.as_tensor(out, dtype=torch.float64, device=poses.device)

    def joints(self, pose: np.ndarray, tolerance: float = IK_TOLERANCE) -> np.ndarray:
        """[7] joints that put the hand at agent_pos `pose` within `tolerance` (metres, radians): from the
        first seed that gets there, else the nearest."""
        data = self._pool(1)[0]
        want = Rotation.from_quat(pose[3:7]).as_matrix()
        best, miss = None, np.inf
        for seed in self.seeds:
            error = self._reach(data, seed, pose, want, tolerance)
            if error < miss:
                best, miss = data.qpos[:ARM_JOINTS].copy(), error
            if error < tolerance:
                break
        return best

    def _average_velocity(self, joints: np.ndarray, poses: np.ndarray, dt: float) -> np.ndarray:
        """[7] joint velocities that move the hand at joints [7] as it moved, on average, between agent_pos
        poses [2, P] a control step `dt` apart."""
        data = self._pool(1)[0]
        data.qpos[:ARM_JOINTS] = joints
        mujoco.mj_kinematics(self.model, data)
        mujoco.mj_comPos(self.model, data)
        turn = Rotation.from_quat(poses[1, 3:7]) * Rotation.from_quat(poses[0, 3:7]).inv()  # world frame
        twist = np.concatenate([poses[1, :3] - poses[0, :3], turn.as_rotvec()]) / dt
        return np.linalg.pinv(self._jacobian(data)) @ twist

    def _reach(self, data: mujoco.MjData, seed: np.ndarray, pose: np.ndarray, want: np.ndarray,
               tolerance: float = IK_TOLERANCE) -> float:
        """Joints in `data` that put the hand at `pose` (want: its rotation matrix), by damped least squares
        from `seed`, at first also pulled toward the rest posture within the pose's nullspace (the branch
        robosuite's nullspace term keeps the arm on), inside the joints' range. Returns the largest error left
        (metres, radians)."""
        self._load(data, np.concatenate([seed, np.zeros(STATE_DIM - ARM_JOINTS)]), pose[7:9])
        for iteration in range(IK_ITERATIONS):
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            error = self._pose_error(data, pose, want)
            if np.abs(error).max() < tolerance:
                return float(np.abs(error).max())
            jac = self._jacobian(data)
            inverse = jac.T @ np.linalg.inv(jac @ jac.T + 1e-6 * np.eye(6))
            pull = 0.5 if iteration < IK_ITERATIONS // 3 else 0.0
            toward_rest = (np.eye(ARM_JOINTS) - inverse @ jac) @ (self.rest_posture - data.qpos[:ARM_JOINTS])
            step = inverse @ error + pull * toward_rest
            data.qpos[:ARM_JOINTS] = np.clip(data.qpos[:ARM_JOINTS] + step, *self.joint_range)
        mujoco.mj_kinematics(self.model, data)
        return float(np.abs(self._pose_error(data, pose, want)).max())

    def _pose_error(self, data: mujoco.MjData, pose: np.ndarray, want: np.ndarray) -> np.ndarray:
        """[6]: the hand's position and turn from where `data` has it (kinematics current) to agent_pos
        `pose`, whose rotation is `want` [3, 3]."""
        return np.concatenate([pose[:3] - data.site_xpos[self.site],
                               _rotation_error(want, data.xmat[self.hand].reshape(3, 3))])

    def _jacobian(self, data: mujoco.MjData) -> np.ndarray:
        """[6, 7]: the grip site's linear and the hand's angular velocity per arm joint velocity."""
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        mujoco.mj_jacSite(self.model, data, jacp, jacr, self.site)
        return np.vstack([jacp, jacr])[:, :ARM_JOINTS]


def _arm_only(model: mujoco.MjModel, hand: int) -> mujoco.MjModel:
    """A copy of the task model where only the hand (with the fingers on it) collides, and only with what is
    fixed to the world (the table, the robot's mount): the objects and the arm's links collide with nothing.
    The arm's links never reach the table in these tasks, and each collision test costs time every substep."""
    arm = copy.deepcopy(model)
    for g in range(arm.ngeom):
        body, on_hand = arm.geom_bodyid[g], False
        while body != 0 and not on_hand:
            on_hand, body = body == hand, arm.body_parentid[body]
        if not (on_hand or arm.body_weldid[arm.geom_bodyid[g]] == 0):
            arm.geom_contype[g] = 0
            arm.geom_conaffinity[g] = 0
    return arm


class _Frame:
    """What robosuite's controller reads after mj_step1, for a batch: the grip site's position and rotation,
    its Jacobian over the arm's joints, the arm's mass matrix, gravity/Coriolis compensation, joints."""

    def __init__(self, b: int, nv: int) -> None:
        self.pos, self.mat = np.zeros((b, 3)), np.zeros((b, 3, 3))
        self.jac, self.mass = np.zeros((b, 6, ARM_JOINTS)), np.zeros((b, ARM_JOINTS, ARM_JOINTS))
        self.bias, self.q, self.qd = (np.zeros((b, ARM_JOINTS)) for _ in range(3))
        self._jacp, self._jacr, self._full = np.zeros((3, nv)), np.zeros((3, nv)), np.zeros((nv, nv))

    def read(self, i: int, model: mujoco.MjModel, data: mujoco.MjData, site: int) -> None:
        mujoco.mj_jacSite(model, data, self._jacp, self._jacr, site)
        self.jac[i, :3], self.jac[i, 3:] = self._jacp[:, :ARM_JOINTS], self._jacr[:, :ARM_JOINTS]
        mujoco.mj_fullM(model, self._full, data.qM)
        self.mass[i] = self._full[:ARM_JOINTS, :ARM_JOINTS]
        self.pos[i], self.mat[i] = data.site_xpos[site], data.site_xmat[site].reshape(3, 3)
        self.bias[i], self.q[i], self.qd[i] = (data.qfrc_bias[:ARM_JOINTS], data.qpos[:ARM_JOINTS],
                                               data.qvel[:ARM_JOINTS])


def _rotation_error(desired: np.ndarray, current: np.ndarray) -> np.ndarray:
    """robosuite's orientation_error for rotation matrices [..., 3, 3]: the small rotation [..., 3] taking
    `current` to `desired` (half the sum of the crosses of their columns)."""
    return 0.5 * np.cross(current, desired, axis=-2).sum(-1)

"""Door: turn the handle and pull the door open (robosuite Door)."""

from __future__ import annotations

import numpy as np
import torch

from wow_gym.tasks.base import ArrayT, CriticStage, Task, stages_by_distance

# environment_state: door_pos (3), handle_pos (3), hinge_qpos (1), door_to_eef_pos (3), handle_to_eef_pos (3),
# handle_qpos (1). The handle is what the gripper moves; the door body swings with the hinge.
DOOR_POSITION = slice(0, 3)
OBJECT_POSITION = slice(3, 6)
HINGE_ANGLE = 6
DOOR_OFFSET = slice(7, 10)  # door minus gripper
GRIPPER_OFFSET = slice(10, 13)  # handle minus gripper
HANDLE_ANGLE = 13
# What the world model carries of the door (world_models/video/dynamics.py ObjectDynamics): the handle's
# position, the door body's, the hinge's and the handle's angles; the offsets to the gripper follow
CARRIED = (3, 4, 5, 0, 1, 2, HINGE_ANGLE, HANDLE_ANGLE)
OPEN = 0.3  # radians: robosuite Door's success, the hinge turned past this
NEAR = 0.03  # metres: the gripper is at the handle

# The door's joints (robosuite's door_lock.xml), in the door body's frame (door_pos; it turns about z by
# the placement's yaw plus the hinge angle): the hinge's anchor (axis z), the latch joint's anchor (axis y,
# the door's normal; a positive angle turns the lever's tip down), and in the latch's frame the handle site
# and the lever (a box: its centre and half-extents). The lever's half-width across the pads is the width
# the hand's tilted pads meet (30 mm thick, 40 mm tall, the pads tilted 0.45 rad: the simulated fingers
# stop on it 43-45 mm apart in the shipped BC policy's grasps on tuning seeds)
HINGE_ANCHOR = (0.255, 0.0, 0.0)
LATCH_ANCHOR = (-0.175, 0.0, -0.025)
HANDLE_SITE = (0.125, -0.10, 0.0)
LEVER_CENTRE = (0.075, -0.10, 0.0)
LEVER_EXTENTS = (0.075, 0.022, 0.02)
HINGE_RANGE = (0.0, 0.4)
HANDLE_RANGE = (-1.57, 1.57)
# Gripped further out than SHORT_GRIP from its axis, the lever stops turning at LONG_GRIP_STOP short of its
# stop: in the shipped BC policy's simulated episodes on tuning seeds (800000-800015; and its actions chosen
# in imagination, replayed there), with the grip site's distance from the axis as the lever passed 0.8 rad,
# 10 of the 16 levers gripped within 100 mm turned past 1.45 (to 1.51-1.59; the other 6 to 1.37-1.44),
# 4 of the 16 gripped further out (12 stopped at 1.33-1.41). The stop holds only while the door is shut:
# once it swings, the pull turns the lever on (BC's actions chosen in imagination on those seeds with the
# imagined door swinging at 0.45 of its speed, a variant not kept, replayed in the simulator, where BC kept
# pulling: the 11 levers gripped further out all turned past 1.45)
SHORT_GRIP = 0.100
LONG_GRIP_STOP = 1.38
# The joint rule's numbers, from the shipped BC policy's simulated episodes on tuning seeds (800000-800015):
# the door swings once the lever is turned past LATCH_FREE (a tenth of the steps where the shut door swung
# had the lever below 1.28; the latch's tip clears the frame past about 1.16 by the XML's geometry); a
# released lever springs back SPRING_BACK a step (its spring, 1.26 to 0.13 rad in 9 steps); a released door
# drifts shut DOOR_DRIFT a step (the mean over the released open doors); a door ajar past AJAR has its
# latch clear of the frame whatever the lever
LATCH_FREE = 1.25
SPRING_BACK = 0.13
DOOR_DRIFT = 0.005
AJAR = 0.01
# The door moves only under a pull along its arc of at least BREAKAWAY (the action's position part, the
# controller's units: it commands the hand's push), and of LATCH_CLEAR_BREAKAWAY with the lever turned past
# LATCH_CLEAR (the latch no longer rubs the frame): in those episodes, doors held by a lever at 1.2-1.4
# moved (4 mrad in 3 steps) under 15 of 932 pulls below 0.4, 32 of 82 at 0.4-0.5, 45 of 133 at 0.5-0.6
# and 211 of 212 above (0.5: the middle of the band where a third to two fifths moved); with the lever at
# 1.4-1.6 under 13 of 22 below 0.2 (a door already swinging), 5 of 6 at 0.2-0.3 and all 54 at 0.3-0.4
BREAKAWAY = 0.5
LATCH_CLEAR = 1.4
LATCH_CLEAR_BREAKAWAY = 0.25
# Turned past CAGE_TURN a gripped lever has slid out of the pads toward the palm (the grip site 26-37 mm
# from its long axis in the expert's and BC's simulated episodes, 2-4 mm before the turn) and the fingers
# close under it (the expert's to 1-3 mm, BC's to 18-36): the hand holds it caged. CAGE_REACH: the grip
# site within this of the lever's centre (the lever is 15 cm long; the rule keeps a held hand where it
# gripped, 1-3 cm from the centre)
CAGE_TURN = 1.2
CAGE_REACH = 0.05
SOLVE_STEPS = 4  # Gauss-Newton steps of the joint rule's solve (a step moves the angles by a few degrees)


def opened(state: ArrayT, agent_pos: ArrayT) -> ArrayT:
    """robosuite Door's success on (imagined) environment_state [N, E]: the hinge turned past 0.3 rad."""
    return state[..., HINGE_ANGLE] > OPEN


def derive_state(state: ArrayT, agent_pos: ArrayT) -> ArrayT:
    """The door's offset from the gripper (robosuite's door_to_robot0_eef_pos), in place."""
    state[..., DOOR_OFFSET] = state[..., DOOR_POSITION] - agent_pos[..., :3]
    return state


def shaped_reward(state: np.ndarray, agent_pos: np.ndarray, success: np.ndarray) -> dict[str, np.ndarray]:
    """robosuite Door's shaped reward (with its latch) on (imagined) state: reach 0.25 (1 - tanh(10 d)) to the
    handle and 0.25 |handle angle| / (pi / 2), at most 0.25, or 1 on success."""
    distance = np.linalg.norm(state[:, GRIPPER_OFFSET], axis=1)
    reach = np.where(success, 0.0, 0.25 * (1 - np.tanh(10 * distance)))
    turn = np.where(success, 0.0, np.minimum(0.25 * np.abs(state[:, HANDLE_ANGLE]) / (0.5 * np.pi), 0.25))
    return {"reach": reach.astype(np.float32), "turn": turn.astype(np.float32),
            "open": success.astype(np.float32)}

def _rotate(points: torch.Tensor, angle: torch.Tensor, axis: str) -> torch.Tensor:
    """Points [B, 3] turned by angle [B] about the frame's z axis or y axis (right-handed)."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y, z = points.unbind(-1)
    if axis == "z":
        return torch.stack([c * x - s * y, s * x + c * y, z], dim=-1)
    return torch.stack([c * x + s * z, y, -s * x + c * z], dim=-1)


def _in_latch(local: tuple[float, float, float], handle: torch.Tensor) -> torch.Tensor:
    """A point of the lever (latch frame) in the door body's frame, the lever turned `handle` [B]."""
    point = torch.tensor(local, dtype=handle.dtype, device=handle.device).expand(len(handle), 3)
    return _rotate(point, handle, "y") + torch.tensor(LATCH_ANCHOR, dtype=handle.dtype, device=handle.device)


def door_frame(objects: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The door body's yaw [B] (placement plus hinge) and the hinge's anchor [B, 3] (world) from carried door
    states [B, 8] (CARRIED: handle site, door body, hinge and handle angles): the handle site's offset from
    the door body turns with the yaw."""
    handle, door, angle = objects[:, 0:3], objects[:, 3:6], objects[:, 7]
    local = _in_latch(HANDLE_SITE, angle)
    offset = handle - door
    yaw = torch.atan2(offset[:, 1], offset[:, 0]) - torch.atan2(local[:, 1], local[:, 0])
    anchor = door + _rotate(torch.tensor(HINGE_ANCHOR, dtype=objects.dtype, device=objects.device)
                            .expand(len(objects), 3), yaw, "z")
    return yaw, anchor


def door_state(yaw: torch.Tensor, anchor: torch.Tensor, hinge: torch.Tensor, handle: torch.Tensor
               ) -> torch.Tensor:
    """Carried door states [B, 8] of the door turned `hinge` [B] about its anchor [B, 3] from the yaw [B] it
    has at hinge 0, and the lever turned `handle` [B]."""
    turned = yaw + hinge
    hinge_local = torch.tensor(HINGE_ANCHOR, dtype=anchor.dtype, device=anchor.device).expand(len(anchor), 3)
    door = anchor - _rotate(hinge_local, turned, "z")
    site = door + _rotate(_in_latch(HANDLE_SITE, handle), turned, "z")
    return torch.cat([site, door, hinge[:, None], handle[:, None]], dim=1)


def lever_box(objects: torch.Tensor) -> torch.Tensor:
    """The lever as the finger rule's box [B, 7] (its centre, an identity quaternion: the rule takes a box
    square to the pads) from carried door states [B, 8]."""
    yaw, _ = door_frame(objects)
    centre = objects[:, 3:6] + _rotate(_in_latch(LEVER_CENTRE, objects[:, 7]), yaw, "z")
    unit = torch.zeros(len(objects), 4, dtype=objects.dtype, device=objects.device)
    unit[:, 3] = 1
    return torch.cat([centre, unit], dim=1)


def lever_caged(objects: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """[B]: the lever of carried door states [B, 8] is turned past CAGE_TURN with the grip site of raw
    agent_pos `pose` [B, P] within CAGE_REACH of its centre: caged in the hand, not between the pads."""
    centre = lever_box(objects)[:, :3]
    return (objects[:, 7] >= CAGE_TURN) & ((pose[:, :3].to(centre.dtype) - centre).norm(dim=-1) < CAGE_REACH)


def _held_point(p: torch.Tensor, handle: torch.Tensor, hinge: torch.Tensor) -> torch.Tensor:
    """Where a point `p` [B, 3] held on the lever (door body frame) goes with the lever turned by `handle` [B]
    and the door by `hinge` [B], in the door body's frame before the turn."""
    latch = torch.tensor(LATCH_ANCHOR, dtype=p.dtype, device=p.device)
    pivot = torch.tensor(HINGE_ANCHOR, dtype=p.dtype, device=p.device)
    return _rotate(_rotate(p - latch, handle, "y") + latch - pivot, hinge, "z") + pivot


def joint_step(objects: torch.Tensor, before: torch.Tensor, after: torch.Tensor, held: torch.Tensor,
               push: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The door's joints over one step (the world model's joint rule): carried door states [B, 8] (CARRIED)
    and the grip site's position before [B, 3] and after [B, 3] the arm's step (the controller's), with
    `held` [B] the fingers gripping the lever and `push` [B, 3] the action's position part (world axes).
    Returns the door states after the step and where the hand is [B, 3].

    A held lever and the door turn so that the point the hand holds comes as near as their ranges allow to
    where the arm went (a damped least-squares solve over the two angles); the door only under a push along
    its arc of BREAKAWAY or more (LATCH_CLEAR_BREAKAWAY with the lever past LATCH_CLEAR), and opens only
    once the lever is past LATCH_FREE or the door is already ajar (the latch holds it shut); a lever
    gripped further out than SHORT_GRIP stops at LONG_GRIP_STOP while the door is shut. The hand stays on
    the point it holds: the simulator's door holds the hand on the lever's circle and the door's arc while
    the controller pulls elsewhere. A released lever springs back SPRING_BACK a step; a released door drifts
    shut DOOR_DRIFT a step. Nothing else moves the door: a hand that pushes the lever or the door without
    gripping it does not (the rule replaces the learned object step for every row).
    """
    yaw, anchor = door_frame(objects)
    door, hinge, handle = objects[:, 3:6], objects[:, 6], objects[:, 7]
    # the hand in the door body's frame (its yaw now)
    p = _rotate(before - door, -yaw, "z")
    q = _rotate(after - door, -yaw, "z")
    latch = torch.tensor(LATCH_ANCHOR, dtype=p.dtype, device=p.device)
    pivot = torch.tensor(HINGE_ANCHOR, dtype=p.dtype, device=p.device)
    y_axis = torch.tensor([0.0, 1.0, 0.0], dtype=p.dtype, device=p.device).expand_as(p)
    z_axis = torch.tensor([0.0, 0.0, 1.0], dtype=p.dtype, device=p.device).expand_as(p)
    arc = torch.linalg.cross(z_axis, p - pivot)
    arc = arc / arc.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    needs = torch.where(handle >= LATCH_CLEAR, torch.full_like(handle, LATCH_CLEAR_BREAKAWAY),
                        torch.full_like(handle, BREAKAWAY))
    pulls = (_rotate(push.to(p.dtype), -yaw, "z") * arc).sum(-1).abs() >= needs
    radius = (p - latch)[:, [0, 2]].norm(dim=-1)  # how far out along the lever the hand holds it
    # (a lever already turned past the stop is not snapped back to it)
    stop = torch.where((radius < SHORT_GRIP) | (hinge > AJAR), torch.full_like(handle, HANDLE_RANGE[1]),
                       torch.full_like(handle, LONG_GRIP_STOP).maximum(handle))
    new_handle, new_hinge = handle.clone(), hinge.clone()
    for _ in range(SOLVE_STEPS):  # Gauss-Newton on the two angles, each step kept in range
        turn, swing = new_handle - handle, new_hinge - hinge
        point = _held_point(p, turn, swing)
        free = (new_handle >= LATCH_FREE) | (hinge > AJAR)
        by_handle = _rotate(torch.linalg.cross(y_axis, _rotate(p - latch, turn, "y")), swing, "z")
        by_hinge = torch.linalg.cross(z_axis, point - pivot) * pulls[:, None]
        jacobian = torch.stack([by_handle, by_hinge], dim=-1)  # [B, 3, 2]
        normal = jacobian.transpose(1, 2) @ jacobian + 1e-6 * torch.eye(2, dtype=p.dtype, device=p.device)
        delta = torch.linalg.solve(normal, (jacobian.transpose(1, 2) @ (q - point)[..., None]))[..., 0]
        new_handle = (new_handle + delta[:, 0]).clamp(HANDLE_RANGE[0]).minimum(stop)
        new_hinge = (new_hinge + delta[:, 1]).clamp(*HINGE_RANGE)
        new_hinge = torch.where(free, new_hinge, new_hinge.minimum(hinge))
    sprung = torch.sign(handle) * (handle.abs() - SPRING_BACK).clamp_min(0)
    drifted = (hinge - DOOR_DRIFT).clamp_min(HINGE_RANGE[0]).minimum(hinge)
    new_handle = torch.where(held, new_handle, sprung)
    new_hinge = torch.where(held, new_hinge, drifted)
    point = _held_point(p, new_handle - handle, new_hinge - hinge)
    hand = torch.where(held[:, None], door + _rotate(point, yaw, "z"), after)
    return door_state(yaw - hinge, anchor, new_hinge, new_handle), hand


STAGES = (
    CriticStage("approach", "no_reach", "the gripper stays {distance:.0f} cm from the door handle"),
    CriticStage("at_object", "no_grasp", "the gripper reaches the door handle but does not close on it"),
    CriticStage("grasped", "no_open", "the handle is grasped but the door is not pulled open"),
    CriticStage("opened", "", "the door is pulled open"),
)

TASK = Task(
    name="Door",
    robosuite_env="Door",
    instruction="open the door",
    object_name="door handle",
    steps=("reach the door handle", "grasp the handle", "turn the handle", "pull the door open"),
    object_position=OBJECT_POSITION,
    gripper_offset=GRIPPER_OFFSET,
    object_pose=CARRIED,
    object_quaternion=False,
    state_reward=shaped_reward,
    state_success=opened,
    derive_state=derive_state,
    object_joint="Door_hinge",
    grip_box=lever_box,
    grip_extents=LEVER_EXTENTS,
    grip_caged=lever_caged,
    joint_step=joint_step,
    critic_stages=STAGES,
    stage_labels=stages_by_distance(GRIPPER_OFFSET, NEAR, len(STAGES)),
    failure_hints={
        "no_reach": "first move the gripper right in front of the door handle",
        "closed_early": "keep the gripper open until it is around the handle",
        "no_grasp": "close the gripper firmly around the handle",
        "no_open": "after grasping, turn the handle down and pull the door towards the robot",
        "implausible": "the door must not move unless the gripper pulls it",
    },
    distractors=("close the door", "knock on the door", "wave the arm in the air", "pour the water"),
    near=NEAR,
    max_episode_steps=200,
)

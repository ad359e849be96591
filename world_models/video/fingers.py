"""The imagined fingers: robosuite's gripper command, the finger servos, and the object between the pads.

The pose dynamics learned the fingers from data where closing mostly meets the cube, so its fingers stop at
the cube's width wherever they close, also beside the cube: the BC policy closes 2-3 cm off the cube's centre,
the simulated fingers close on nothing, the imagined ones stop as if they held it, and imagination calls a
lift that physics does not make. Neither reading the object state (pose_objects) nor more near-miss data
taught it the difference. The fingers are simple enough to write down instead:

- The command. robosuite's Panda gripper integrates its action: every control step the command moves SPEED
  toward the sign of the action's last entry, clipped to [-1, 1] (PandaGripper.format_action), and each
  finger's position servo aims at the middle of its range plus the command times half the range. The
  imagined state carries this command, which the pose (the fingers' positions) cannot tell: a finger pressed
  on the cube looks the same under any closing command.
- The servos. Each finger joint is a position actuator (gain KP, force limit FORCE_LIMIT) on a slide joint
  with DAMPING, FRICTION_LOSS and an armature, integrated at the simulator's timestep for one control step:
  the free finger's trajectory, within 2 mm of the simulated one open loop (test_fingers.py).
- The object. Where the carried object (a box of the task's half extents) lies in the pads' closing sweep and
  between the fingers, the fingers close no further than its width across them; the first finger to meet it
  pushes it over to the other (a resting cube slides under 20 N), so the gap stops at the width. A box that
  overlaps the pads too little is squeezed out past their edge. Elsewhere the fingers close on nothing, fully.
  Fingers already gripping a box stay where they found it.
- The turn (WorldModelConfig.grip_turn, a square box: Task.square_object). Unless the state's turn is
  trusted the box is taken square to the pads. A cube turned about the approach stops the fingers at its
  width across the pads' span, up to its diagonal at 45 degrees, not at its side: the simulated fingers
  close on Lift's cube turned 30, 40 and 45 degrees within 3 mm of that width and lift it, where the rule
  square to the pads stops them 8 mm or more short (test_fingers.py). The width matters to a policy that
  reads the fingers: the shipped Stack policy, cloned on grips square to the cube, waits with its fingers
  that wide instead of lifting.

It is not the default (WorldModelConfig.finger_rule): the imagined arm drifts from the simulated one, the
rule then grips cubes the simulated fingers missed, and on held-out episodes imagination saw more lifts but
called more false ones (README; `wow-gym eval-world-model task=lift finger_rule=true`).

Hand-written: what it models is a slide joint, a servo and a box across a gap; MuJoCo itself would need the
imagined arm and object rebuilt as a scene every step for each episode of the batch.
"""

from __future__ import annotations

import torch

from wow_gym.tasks.base import finger_gap
from wow_gym.world_models.video.contact import TIP_AHEAD, TIP_HALF_WIDTH
from wow_gym.world_models.video.object_layer import quat_matrix, quat_product

# robosuite 1.5's Panda gripper (panda_gripper.xml, panda_gripper.py); test_fingers.py checks them against the
# simulator's model
SPEED = 0.2  # command change per control step
RANGE = 0.04  # each finger joint's travel (metres): closed at 0, open at RANGE
KP = 1000.0  # the position actuator's gain (N/m)
FORCE_LIMIT = 20.0  # N
DAMPING = 100.0  # N s/m
FRICTION_LOSS = 1.0  # N
MASS = 1.0 + 0.1 + 0.01  # kg: the joint's armature, the finger and its pad
TIMESTEP = 0.002  # s, the simulator's step
SUBSTEPS = 25  # simulator steps per 20 Hz control step
# How far up the fingers reach from their tips, along the approach (metres): a box above the fingertips but
# within this is in the sweep. The fingers are 5.4 cm long; the hand above them stops anything higher.
FINGER_LENGTH = 0.054
# A box blocks the fingers only where the pads overlap it by this much across (along their width) and its
# top is this far above the fingertips. Less, and the squeeze pushes it out past the pads' edge or from under
# their tips and the fingers close on nothing. Over the simulator's closings near the cube in the six training
# sets of `make lift-data` (260 closings; counted by hand in stop 34, its closing note has the figures): with
# the cube's top well above the tips, 2 of 5 held with an overlap across of 0-4 mm, 5 of 7 at 4-6 mm, 152 of
# 153 from 8 mm; with the cube well within the pads across, 2 of 22 held with its top less than 10 mm above
# the tips, 156 of 157 from 10 mm.
OVERLAP_ACROSS = 0.005
OVERLAP_DOWN = 0.010
# Fingers whose gap is within this of the box's width grip it already
GRIPPING = 0.003
# Fingers slower than this (m/s; a free finger closing moves at up to 0.2) are at rest on what they grip
REST_SPEED = 0.001
# A box in the sweep is between the fingers where its centre lies between their inner faces before the step,
# or this far outside one
BETWEEN = 0.003


def carried_rigidly(objects: torch.Tensor, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Raw object states [B, 7] (position, xyzw quaternion) held fast in a hand going from raw agent_pos
    `before` [B, P] to `after`: moved and turned with it, so that its place and turn in the grip stay."""
    conjugate = before[:, 3:7] * torch.tensor([-1.0, -1.0, -1.0, 1.0], device=before.device)
    turn = quat_product(after[:, 3:7], conjugate)  # the hand's rotation over the step
    offset = torch.einsum("bij,bj->bi", quat_matrix(turn), objects[:, :3] - before[:, :3])
    quaternion = quat_product(turn, objects[:, 3:7])
    quaternion = quaternion / quaternion.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return torch.cat([after[:, :3] + offset, quaternion], dim=1)


def command_step(command: torch.Tensor, grip_action: torch.Tensor) -> torch.Tensor:
    """The gripper command [B] after one control step with grip actions [B] (> 0 closes). The command is
    robosuite's first entry: +1 aims the fingers fully open, -1 fully closed."""
    return (command - SPEED * torch.sign(grip_action)).clamp(-1.0, 1.0)


def servo(opening: torch.Tensor, velocity: torch.Tensor, command: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Free fingers after one control step under the command [B]: each finger's opening [B, 2] (its joint
    travel from closed, metres) and its velocity [B, 2], from those before. MuJoCo's Euler step: damping
    implicit, the friction loss a dry friction that holds the joint where the servo's push does not exceed it,
    the joint's range a hard stop."""
    target = (0.5 + 0.5 * command)[:, None] * RANGE
    slip = FRICTION_LOSS * TIMESTEP / (MASS + TIMESTEP * DAMPING)
    for _ in range(SUBSTEPS):
        force = (KP * (target - opening)).clamp(-FORCE_LIMIT, FORCE_LIMIT)
        free = (velocity * MASS + TIMESTEP * force) / (MASS + TIMESTEP * DAMPING)
        velocity = torch.where(free.abs() <= slip, torch.zeros_like(free), free - torch.sign(free) * slip)
        opening = opening + TIMESTEP * velocity
        stopped = (opening < 0) | (opening > RANGE)
        opening = opening.clamp(0.0, RANGE)
        velocity = torch.where(stopped, torch.zeros_like(velocity), velocity)
    return opening, velocity


def _gripping(gap: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """[B]: fingers `gap` [B] apart grip the box already (their gap within GRIPPING of its width [B])."""
    return (gap - width).abs() < GRIPPING


def box_across(pose: torch.Tensor, objects: torch.Tensor, half_extents: torch.Tensor, turned: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The box `objects` [B, 7] as the pads of raw agent_pos `pose` [B, P] meet it: its centre in the gripper
    frame [B, 3], the gripper's rotation [B, 3, 3], its width across the pads' span [B] (what stops the
    fingers) and how far it reaches from its centre along the pads' width [B]. The box is taken upright and,
    unless `turned`, square to the pads (its side, and half of it): without known_state its turn is often
    tens of degrees off (the probe reads a start's turn only up to the box's symmetry). `turned` (a square
    footprint): its turn about the approach, from the box axis lying most in the pads' plane."""
    rotation = quat_matrix(pose[:, 3:7])  # gripper -> world
    local = torch.einsum("bji,bj->bi", rotation, objects[:, :3] - pose[:, :3])
    if not turned:
        return (local, rotation, (2 * half_extents[1]).expand_as(local[:, 0]),
                half_extents[0].expand_as(local[:, 0]))
    axes = torch.einsum("bji,bjk->bik", rotation, quat_matrix(objects[:, 3:7]))[:, :2, :]  # [B, 2, 3]
    axis = axes.gather(2, axes.norm(dim=1).argmax(-1)[:, None, None].expand(-1, 2, 1))[..., 0]  # [B, 2]
    # the turn folded into (0, 90) degrees (the square's symmetry), off its ends so that both faces' bounds
    # below stay finite
    turn = torch.atan2(axis[:, 1].abs(), axis[:, 0].abs()).clamp(1e-4, torch.pi / 2 - 1e-4)
    c, s, h = torch.cos(turn), torch.sin(turn), half_extents[0]
    # the turned square in its centre's frame (gripper axes): |x c + y s| <= h and |y c - x s| <= h, so at
    # x its top is the lower of (h - x c) / s and (h + x s) / c, highest at its corner x = h (c - s); its
    # bottom the mirror. The pads span TIP_HALF_WIDTH either side of the gripper's centre line.
    low, high = -local[:, 0] - TIP_HALF_WIDTH, -local[:, 0] + TIP_HALF_WIDTH
    x = torch.minimum(torch.maximum(h * (c - s), low), high)
    top = torch.minimum((h - x * c) / s, (h + x * s) / c)
    x = torch.minimum(torch.maximum(-h * (c - s), low), high)
    bottom = torch.maximum((-h - x * c) / s, (-h + x * s) / c)
    return local, rotation, (top - bottom).clamp_min(0), h * (c + s)


def _sweep(local: torch.Tensor, reach: torch.Tensor, half_extents: torch.Tensor, gripping: torch.Tensor
           ) -> torch.Tensor:
    """[B]: the box (centre `local` [B, 3] in the gripper frame, reaching `reach` [B] along the pads' width)
    is in the pads' closing sweep: overlapping them across and along the approach. Fingers already
    `gripping` [B] the box keep it with any overlap: squeezed, friction holds it where a new grasp would
    push it out."""
    x, _, z = local.unbind(-1)
    across = torch.where(gripping, 0.0, OVERLAP_ACROSS)
    down = torch.where(gripping, 0.0, OVERLAP_DOWN)
    return ((x.abs() < TIP_HALF_WIDTH + reach - across)
            & (z - half_extents[2] < TIP_AHEAD - down)
            & (z + half_extents[2] > TIP_AHEAD - FINGER_LENGTH))


def blocking_gap(pose: torch.Tensor, before: torch.Tensor, objects: torch.Tensor, half_extents: torch.Tensor,
                 turned: bool = False) -> torch.Tensor:
    """[B]: the smallest gap the fingers of raw agent_pos `pose` [B, P] can close to with the box `objects`
    [B, 7] (position, xyzw quaternion; half extents [3]) where it is, or 0 where they close on nothing.
    `before` [B, 2] are the fingers' openings before the step: the box's centre must lie between them, and
    they must be about as wide apart as the box at least. Fingers already closer cannot have it between them
    (a drifted arm, or a start's misread box, puts one inside closed fingers): the rule only ever stops a
    closing, it never opens the fingers around a box. `turned`: the box's turn sets its width (box_across)."""
    gap = before.sum(-1)
    local, _, width, reach = box_across(pose, objects, half_extents, turned)
    sweep = _sweep(local, reach, half_extents, _gripping(gap, width))
    y = local[:, 1]
    between = (y < before[:, 0] + BETWEEN) & (y > -before[:, 1] - BETWEEN) & (gap > width - GRIPPING)
    return torch.where(sweep & between, width, torch.zeros_like(y))


def gripping_box(pose: torch.Tensor, objects: torch.Tensor, half_extents: torch.Tensor) -> torch.Tensor:
    """[B]: the fingers of raw agent_pos `pose` [B, P] grip the box `objects` [B, 7] (square to the pads):
    it lies in their sweep and between them, and their gap is within GRIPPING of its width."""
    with torch.autocast(pose.device.type, enabled=False):
        pose, objects, half_extents = pose.float(), objects.float(), half_extents.float()
        local, _, width, reach = box_across(pose, objects, half_extents)
        gap = finger_gap(pose)
        y = local[:, 1]
        between = (y < pose[:, 7] + BETWEEN) & (y > pose[:, 8] - BETWEEN)
        return _sweep(local, reach, half_extents, torch.ones_like(gap, dtype=torch.bool)) & between & (
            _gripping(gap, width))


def push_between(now: torch.Tensor, pose: torch.Tensor, objects: torch.Tensor, half_extents: torch.Tensor,
                 turned: bool = False) -> torch.Tensor:
    """Raw object states [B, 7] after the fingers going from raw agent_pos `now` [B, P] to `pose` pushed the
    box, as the simulator's do:
    - a box in the sweep whose centre lies between the fingers moves across the gripper until it lies wholly
      between them (the first finger to meet a resting cube slides it over to the other);
    - a box the fingers closed past, overlapping the pads across by less than OVERLAP_ACROSS, is pushed out
      past the pads' edge (the squeeze's sideways push).
    The learned object dynamics does neither: it leaves a box half inside a finger, and draws a box near a
    closing gripper in toward its middle, as in the grasps it learned from. A box the fingers gripped before
    the step stays where the dynamics puts it: held, it is not pushed, and a start's box is where the probe
    read it (re-centring it between the fingers would draw the probe's error into the picture). `turned`: the
    box's turn sets its width and reach across the pads (box_across)."""
    with torch.autocast(pose.device.type, enabled=False):
        now, pose, objects = now.float(), pose.float(), objects.float()
        half_extents = half_extents.float()
        gap = finger_gap(pose)
        local, rotation, width, reach = box_across(pose, objects, half_extents, turned)
        gripping = _gripping(finger_gap(now), width)
        sweep = _sweep(local, reach, half_extents, gripping)
        x, y, z = local.unbind(-1)
        left, right = pose[:, 7], -pose[:, 8]
        between = (y < left + BETWEEN) & (y > -right - BETWEEN)
        room = ((left + right - width) / 2).clamp_min(0)  # how far the centre may stray from the middle
        middle = (left - right) / 2
        pushed = torch.minimum(torch.maximum(y, middle - room), middle + room)
        across = torch.where(sweep & between & ~gripping, pushed - y, torch.zeros_like(y))
        # the pads' edge: the box overlaps them across, too little to hold, and the fingers closed past its
        # width
        edge = TIP_HALF_WIDTH + reach
        level = ((z - half_extents[2] < TIP_AHEAD - OVERLAP_DOWN)
                 & (z + half_extents[2] > TIP_AHEAD - FINGER_LENGTH))
        slips = (level & between & ~gripping & (gap < width) & (x.abs() < edge)
                 & (x.abs() >= edge - OVERLAP_ACROSS))
        out = torch.where(slips, torch.sign(x) * edge - x, torch.zeros_like(x))
        moved = objects[:, :3] + rotation[:, :, 1] * across[:, None] + rotation[:, :, 0] * out[:, None]
        return torch.cat([moved, objects[:, 3:]], dim=1)


def finger_step(now: torch.Tensor, nxt: torch.Tensor, gripper: torch.Tensor, grip_action: torch.Tensor,
                objects: torch.Tensor, half_extents: torch.Tensor, turned: bool = False,
                blocks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The next raw agent_pos [B, P] with its fingers (entries 7, 8) set by the rule, and the next gripper
    state [B, 3] (command, both fingers' opening velocities). `now` [B, P] is the pose before the step, `nxt`
    after it (its arm), `gripper` [B, 3] the gripper state before, grip_action [B] the action's last entry,
    objects [B, 7] the carried box before the step (`turned`: its turn sets its width, box_across); `blocks`
    [B] (None: everywhere) where the box can stop the fingers (elsewhere they close as on nothing). In float32
    under bf16 autocast too: a finger's travel is millimetres."""
    with torch.autocast(now.device.type, enabled=False):
        now, nxt, gripper = now.float(), nxt.float(), gripper.float()
        command = command_step(gripper[:, 0], grip_action.float())
        before = torch.stack([now[:, 7], -now[:, 8]], dim=1)  # each finger's opening
        opening, velocity = servo(before, gripper[:, 1:], command)
        half_extents = half_extents.float()
        floor = blocking_gap(now, before, objects.float(), half_extents, turned)
        if blocks is not None:
            floor = torch.where(blocks, floor, torch.zeros_like(floor))
        # fingers gripping the box stay where they found it: its true size (the task's boxes vary about their
        # nominal extents) is what they show. With the turn, gripping is at rest there: fingers still closing
        # that come within GRIPPING of the box close onto it (stopped on the way in, a turned cube's grip
        # stood 3 mm wide). Without, as the figures measured with the rule had it.
        gripping = (floor > 0) & _gripping(before.sum(-1), floor)
        if turned:
            gripping = gripping & (gripper[:, 1:].abs() < REST_SPEED).all(-1)
        floor = torch.where(gripping, before.sum(-1), floor)
        short = (floor - opening.sum(-1)).clamp_min(0)  # [B]: how far the free fingers overshoot the box
        opening = torch.where((gripping & (short > 0))[:, None], before, opening + short[:, None] / 2)
        velocity = torch.where((short > 0)[:, None], torch.zeros_like(velocity), velocity)
        fingers = torch.stack([opening[:, 0], -opening[:, 1]], dim=1)
        return torch.cat([nxt[:, :7], fingers, nxt[:, 9:]], dim=1), torch.cat([command[:, None], velocity], 1)


def infer_gripper(poses: torch.Tensor, last_grip: torch.Tensor | None) -> torch.Tensor:
    """A start's gripper state [B, 3] from its last two raw agent_pos [B, 2, P] and its last grip action [B]
    (None without a previous action: a start from one frame). The command is read off the fingers' resting
    openings (the servo holds a free finger about 1 mm short of its target against the friction loss); fingers
    stopped short of closed under a closing action press on something, and their command is taken as fully
    closed. The velocities are the last step's average."""
    opening = torch.stack([poses[:, -1, 7], -poses[:, -1, 8]], dim=1).float()
    velocity = torch.stack([poses[:, -1, 7] - poses[:, -2, 7], poses[:, -2, 8] - poses[:, -1, 8]], dim=1)
    velocity = velocity.float() / (TIMESTEP * SUBSTEPS)
    # the command moves in steps of SPEED from 0 at the simulator's reset
    command = torch.round((opening.mean(-1) / RANGE * 2 - 1).clamp(-1, 1) / SPEED) * SPEED
    if last_grip is not None:
        pressing = (last_grip > 0) & (velocity.abs().amax(-1) < 0.005) & (opening.mean(-1) > 0.004)
        command = torch.where(pressing, torch.full_like(command, -1.0), command)
    return torch.cat([command[:, None], velocity], dim=1)

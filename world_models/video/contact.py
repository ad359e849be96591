"""Arm contact in imagination: the imagined gripper stops where its fingertips meet the table or the top of
the carried object, as the simulated one does.

The pose dynamics is a regression on the arm's own state and the actions. Where a policy pushes down with a
finger resting on the cube's top edge, the simulated arm stops (MuJoCo's contact), but the learned step keeps
going down about a millimetre a step: the imagined fingers slide down around the cube and close on it, and
imagination calls a grasp that physics does not make. This rule is the geometry of that stop. After the
learned step, each fingertip of the next pose is tested against what is under it: the object's top face where
the tip is over the object's footprint and was above that face (less BESIDE) before the step, else the table.
A tip may sink SINK below the face (the simulator's soft contact lets a pressing finger sink that far); below
that, the step's descent is cut back so that the lowest tip rests there. The rule only ever cuts a descent: it
never lifts the arm above where it was.

The footprint is the disc inscribed in the top face, whatever the object's turn about the vertical. A start's
orientation is read off one frame by the probe, and a cube looks the same every 90 degrees, so the read turn
is often tens of degrees off; a square footprint turned that far puts its corners under fingers that pass
beside the real cube. On tuning starts (seeds 800000+) the disc brought the BC policy's imagined success,
with and without action noise, closer to the simulator's than the square did (a comparison run by hand in
stop 31; its closing note has the figures).

Hand-written: a collision library (MuJoCo itself) would need a scene of the imagined arm and object rebuilt
every step for each episode of the batch; the test needed is eight points against a disc and a plane.
"""

from __future__ import annotations

import torch

from wow_gym.world_models.video.object_layer import quat_matrix

# The Panda gripper's fingertips in the end-effector frame (robosuite's grip site: agent_pos[:3] and [3:7]):
# the fingers open along local y (finger 1 at +agent_pos[7], finger 2 at agent_pos[8] < 0), local z points
# along the approach (down, for a gripper pointing at the table). Each tip is a 17.4 x 14.3 mm face 9.2 mm
# past the grip site, from the finger's inner face outwards. Read off the finger collision meshes of
# robosuite 1.5's Panda gripper (tests/world_models/video/test_contact.py checks them against the
# simulator's model).
TIP_AHEAD = 0.0092  # local z
TIP_HALF_WIDTH = 0.0087  # local x
TIP_DEPTH = 0.0143  # local y, outwards from the finger's inner face
# metres a pressing fingertip sinks below the object's top face in the simulator: the median over the BC and
# noisy training episodes' steps where the arm pushes down and stops with a finger on the cube
SINK = 0.008
# a tip lower than the face less this was beside the object, not on it
BESIDE = 0.012


def fingertips(pose: torch.Tensor) -> torch.Tensor:
    """World positions [B, 8, 3] of the corners of both fingertips for raw agent_pos [B, P] (position,
    xyzw quaternion, finger joints)."""
    rotation = quat_matrix(pose[:, 3:7].float())  # [B, 3, 3], gripper -> world
    b = pose.shape[0]
    across = torch.tensor([-TIP_HALF_WIDTH, TIP_HALF_WIDTH], device=pose.device)
    outward = torch.tensor([0.0, TIP_DEPTH], device=pose.device)
    corners = []
    for joint, sign in ((pose[:, 7], 1.0), (pose[:, 8], -1.0)):
        y = joint[:, None, None] + sign * outward[None, None, :]  # [B, 1, 2]
        x = across[None, :, None].expand(b, 2, 2)
        local = torch.stack([x, y.expand(b, 2, 2), torch.full_like(x, TIP_AHEAD)], dim=-1).reshape(b, 4, 3)
        corners.append(local)
    local = torch.cat(corners, dim=1)  # [B, 8, 3]
    return pose[:, None, :3].float() + torch.einsum("bij,bnj->bni", rotation, local)


def contact_stop(now: torch.Tensor, nxt: torch.Tensor, objects: torch.Tensor, half_extents: torch.Tensor,
                 table: float) -> torch.Tensor:
    """The next raw agent_pos [B, P] with its descent cut back where a fingertip would go into the table or
    into the object's top face (objects [B, 7]: the object's raw pose before the step; half_extents [3] its
    box). `now` [B, P] is the pose before the step. In float32 under bf16 autocast too: bf16 resolves a
    position near the table's 0.8 m only to about 4 mm."""
    with torch.autocast(now.device.type, enabled=False):
        return _contact_stop(now.float(), nxt.float(), objects.float(), half_extents.float(), table)


def _contact_stop(now: torch.Tensor, nxt: torch.Tensor, objects: torch.Tensor, half_extents: torch.Tensor,
                  table: float) -> torch.Tensor:
    before, after = fingertips(now), fingertips(nxt)
    rotation = quat_matrix(objects[:, 3:7])  # object -> world
    # the tips in the object's frame
    inside = torch.einsum("bji,bnj->bni", rotation, after - objects[:, None, :3])
    top = objects[:, 2:3] + half_extents[2]  # [B, 1]: the top face's height (an upright object)
    over = inside[..., :2].norm(dim=-1) < half_extents[:2].min()  # the footprint's inscribed disc
    on = over & (before[..., 2] > top - BESIDE)
    floor = torch.where(on, top - SINK, torch.full_like(top, table).expand_as(on))
    rise = (floor - after[..., 2]).amax(-1).clamp_min(0)  # [B]
    descent = (now[:, 2] - nxt[:, 2]).clamp_min(0)
    z = nxt[:, 2] + torch.minimum(rise, descent)
    return torch.cat([nxt[:, :2], z[:, None], nxt[:, 3:]], dim=1)

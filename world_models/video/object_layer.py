"""The object layer: the pictured object goes where the carried object state says.

The world model carries the task object's pose as state with learned dynamics (`ObjectDynamics`), and that
state lifts the cube when the gripper does. The DiT, a small CPU model, draws the arm but hardly moves the
object: trained with an object map beside the gripper map it still showed the cube lifted in about half
the imagined rollouts whose state lifted it. The object layer closes that gap with geometry instead of
learning. The object is a box of known half-extents (the task's) seen through the task camera's 3x4
projection saved in the checkpoint; in the newest real context frame (the frame imagination is anchored
to) its outline at the anchor pose, widened by MARGIN pixels, holds the object, and of that region the
pixels unlike the colour around it (the table) are the object's. Each imagined frame

- erases those pixels, filling with the colour around them, except where the DiT drew something other
  than a fading object there (the arm);
- draws them again at the carried pose, moved by the shift of the object's projected centre from the
  anchor pose.

Keying the object's pixels by colour inside a widened outline, rather than taking the outline itself,
keeps the layer right when the anchor pose is a few millimetres off (a start read off pixels by the probe
is, by about 9 mm). An object that has not moved is drawn again where it was, over the DiT's fading of it.
The key is by colour against the surroundings only: where the anchor frame shows the arm within the widened
outline, those arm pixels count as the object's and travel (or stay) with it.
Hand-written: no library moves a keyed sprite by a projected 3-D displacement in batched torch (a
renderer would need the scene and its lights, which a world model does not have).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wow_gym.world_models.video.pose_map import project

MARGIN = 2  # pixels the anchor outline is widened by (the probe's pose error is about 1.3 px)
# levels (RGB distance) from the fill colour: a real pixel this near is not the object, this far fully it
KEY = (20.0, 60.0)


def quat_matrix(quat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] of unit quaternions [..., 4] in (x, y, z, w) order (robosuite's)."""
    q = quat / quat.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    x, y, z, w = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def quat_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The Hamilton product a b [..., 4] of quaternions in (x, y, z, w) order: rotation b, then a."""
    ax, ay, az, aw = a.unbind(-1)
    bx, by, bz, bw = b.unbind(-1)
    return torch.stack([aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw,
                        aw * bw - ax * bx - ay * by - az * bz], dim=-1)


class ObjectLayer(torch.nn.Module):
    """Moves the pictured box-shaped object of `camera` (3x4 projection) frames of `size` pixels."""

    def __init__(self, camera: torch.Tensor, half_extents: tuple[float, float, float], size: int) -> None:
        super().__init__()
        camera = torch.as_tensor(camera, dtype=torch.float64)
        if camera.shape != (3, 4):
            raise ValueError(f"the object layer needs a 3x4 camera projection, got shape "
                             f"{tuple(camera.shape)}")
        half = torch.as_tensor(half_extents, dtype=torch.float32)
        if half.shape != (3,) or bool((half <= 0).any()):
            raise ValueError(f"object half-extents must be 3 positive lengths in metres, got {half_extents}")
        inverse = torch.linalg.inv(camera[:, :3])
        origin = -(inverse @ camera[:, 3])
        centres = torch.arange(size, dtype=torch.float64) + 0.5  # a ray through each pixel's centre
        rows, cols = torch.meshgrid(centres, centres, indexing="ij")
        directions = torch.stack([cols, rows, torch.ones_like(cols)], dim=-1).reshape(-1, 3) @ inverse.T
        self.size = size
        self.register_buffer("camera", camera.float(), persistent=False)
        self.register_buffer("origin", origin.float(), persistent=False)
        self.register_buffer("directions", (directions / directions.norm(dim=-1, keepdim=True)).float(),
                             persistent=False)  # [H*W, 3]
        self.register_buffer("extents", half, persistent=False)

    def outline(self, pose: torch.Tensor) -> torch.Tensor:
        """The box's pixels at raw poses [B, 7] (position, xyzw quaternion): bool [B, H, W], the pixels whose
        centre's camera ray meets it (the slab test in the box's frame)."""
        rotation = quat_matrix(pose[:, 3:7].float())  # [B, 3, 3], box -> world
        o = torch.einsum("bji,bj->bi", rotation, self.origin - pose[:, :3].float())  # R^T (o - p)
        d = torch.einsum("bji,nj->bni", rotation, self.directions)
        d = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
        t1 = (-self.extents - o[:, None]) / d
        t2 = (self.extents - o[:, None]) / d
        near = torch.minimum(t1, t2).amax(-1)
        far = torch.maximum(t1, t2).amin(-1)
        return ((far >= near) & (far > 0)).reshape(-1, self.size, self.size)

    def forward(self, frames: torch.Tensor, real: torch.Tensor, anchor: torch.Tensor, pose: torch.Tensor,
                band: float = 24.0) -> torch.Tensor:
        """Imagined frames [B, H, W, 3] (float, 0-255) with the object taken from the real anchor frames
        [B, H, W, 3] (where it is at raw pose `anchor` [B, 7]) and drawn at raw pose `pose` [B, 7], moved by
        the shift of its projected centre. Inside the old object, an imagined pixel more than `band` levels
        from any blend of the real pixel and the fill colour is something the DiT drew there (the arm), kept
        rather than erased."""
        size = self.size
        if frames.shape[1:3] != (size, size):
            raise ValueError(f"the object layer was built for {size} px frames, got "
                             f"{tuple(frames.shape[1:3])}")
        with torch.autocast(frames.device.type, enabled=False):  # in float32 under bf16 autocast
            return self._compose(frames.float(), real.float(), anchor.float(), pose.float(), band)

    def _compose(self, frames: torch.Tensor, real: torch.Tensor, anchor: torch.Tensor, pose: torch.Tensor,
                 band: float) -> torch.Tensor:
        size = self.size
        region = F.max_pool2d(self.outline(anchor).float()[:, None], 2 * MARGIN + 1, stride=1, padding=MARGIN)
        ring = (F.max_pool2d(region, 5, stride=1, padding=2) > 0) & (region == 0)  # [B, 1, H, W]
        # the colour around the object in the real frame: the median of a 2-pixel ring (of the whole frame
        # where the ring is out of the picture)
        flat = real.reshape(real.shape[0], -1, 3)
        fill = torch.where(ring.reshape(ring.shape[0], -1, 1), flat, torch.nan).nanmedian(dim=1).values
        fill = torch.where(fill.isnan(), flat.median(dim=1).values, fill)[:, None, None]  # [B, 1, 1, 3]
        distance = (real - fill).norm(dim=-1, keepdim=True)
        alpha = region.permute(0, 2, 3, 1) * ((distance - KEY[0]) / (KEY[1] - KEY[0])).clamp(0, 1)
        # the DiT fades the object where it stood (a blend of the object and the fill) but draws the arm
        # passing there in other colours: a pixel farther than `band` from that blend is the arm, kept
        span = fill - real
        along = ((frames - real) * span).sum(-1, keepdim=True)
        blend = along / (span * span).sum(-1, keepdim=True).clamp_min(1.0)
        drawn = ((frames - (real + blend.clamp(0, 1) * span)).norm(dim=-1, keepdim=True) > band).float()
        erase = alpha * (1 - drawn)
        background = frames * (1 - erase) + fill * erase
        # the object's pixels (alpha-premultiplied) and alpha, moved by the shift of its projected centre:
        # output pixel p reads the anchor frame at p - shift ([B, 2] pixels: column, row)
        shift = project(self.camera, pose[:, :3]) - project(self.camera, anchor[:, :3])
        centres = torch.arange(size, dtype=frames.dtype, device=frames.device) + 0.5
        ys, xs = torch.meshgrid(centres, centres, indexing="ij")
        source = torch.stack([xs, ys], dim=-1)[None] - shift[:, None, None]  # [B, H, W, 2]
        grid = source / size * 2 - 1  # pixel centres at i + 0.5: align_corners=False
        layer = torch.cat([real * alpha, alpha], -1).permute(0, 3, 1, 2)
        sprite = F.grid_sample(layer, grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False).permute(0, 2, 3, 1)
        return background * (1 - sprite[..., 3:]) + sprite[..., :3]

"""One synthetic NYUv2 frame: a seeded room seen by a Kinect-like RGB-D camera, with the 60 x 36 x 60 grid placed
in front of the camera as NYU places it, and every array the NYU files hold.

Frames are independent (NYU is a set of single views, not a sequence): frame ``index`` of seed ``seed`` builds its
own room from ``SeedSequence([seed, index])``, so any frame can be made alone and a longer run repeats a shorter
one's frames exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ssc_core.data.downsample import downsample_labels
from ssc_core.data.nyu import NYU_CAM_K, NYU_DIMS, NYU_IMAGE_HW, decode_nyu_depth, encode_nyu_depth
from ssc_core.data.synthetic.kinect import KinectModel, kinect_depth
from ssc_core.data.synthetic.options import seed_stream
from ssc_core.data.synthetic.primitives import bounding_boxes, contains
from ssc_core.data.synthetic.raycast import NOTHING, CameraGrid, cast_solids
from ssc_core.data.synthetic.room import Room, build_room
from ssc_core.data.synthetic.texture import surface_texture
from ssc_core.geometry.tsdf import ROOM_AXES, DepthVolume, depth_volume
from ssc_core.types import IGNORE_LABEL, GridSpec

NYU_VOXEL_M = 0.08
MAX_DEPTH_M = 20.0


@dataclass
class IndoorOptions:
    """What shapes a synthetic NYU frame besides the seed: ``subdivision`` = sub-voxels per voxel edge for the
    labels and the TSDF (4: the 240 x 144 x 240 grid of 0.02 m the NYU labels come from; 2 is faster for tests),
    ``sensor`` the depth sensor model of the noisy (NYU) depth, ``grid_dims`` / ``voxel_size`` the grid (NYU's
    60 x 36 x 60 of 0.08 m; the NYU files need it, in-memory frames for fast tests may be coarser)."""

    subdivision: int = 4
    sensor: KinectModel = field(default_factory=KinectModel)
    grid_dims: tuple[int, int, int] = NYU_DIMS
    voxel_size: float = NYU_VOXEL_M


def camera_pose(rng: np.random.Generator, room: Room) -> np.ndarray:
    """A Kinect held 1.0-1.5 m high near the south wall, looking north (+-20 deg) and 8-25 deg down, with up to
    2 deg of roll: T_room_cam (4, 4), camera x right, y down, z forward."""
    lx = room.size[0]
    pos = np.array([rng.uniform(0.9, lx - 0.9), rng.uniform(0.3, 0.6), rng.uniform(1.0, 1.5)])
    heading, pitch, roll = np.deg2rad(rng.uniform(-20, 20)), np.deg2rad(rng.uniform(8, 25)), np.deg2rad(
        rng.uniform(-2, 2))
    forward = np.array([np.cos(pitch) * np.sin(heading), np.cos(pitch) * np.cos(heading), -np.sin(pitch)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    T = np.eye(4)
    T[:3, :3] = np.stack([right, down, forward], axis=1)
    T[:3, 3] = pos
    return T


def grid_in_front(rng: np.random.Generator, T_room_cam: np.ndarray, dims: tuple[int, int, int] = NYU_DIMS,
                  voxel_size: float = NYU_VOXEL_M) -> GridSpec:
    """The grid (NYU's: 60 x 36 x 60 of 0.08 m, 4.8 m x 2.88 m high x 4.8 m), axis-aligned with the room, starting
    0.1-0.5 m behind the camera, centred on it across (+-0.3 m), its floor layer 4-12 cm below the floor."""
    cam = T_room_cam[:3, 3]
    origin = (cam[0] - dims[0] * voxel_size / 2 + rng.uniform(-0.3, 0.3), cam[1] - rng.uniform(0.1, 0.5),
              -rng.uniform(0.04, 0.12))
    return GridSpec(dims=dims, voxel_size=voxel_size, origin=origin)


@dataclass
class RoomView:
    """A rendered view: rgb (H, W, 3) uint8; depth (H, W) float32 true depth along the optical axis; semantic
    (H, W) uint8 NYU class of the visible surface; incidence_cos (H, W) |cos| between ray and normal; glass
    (H, W) bool pixels that see glass."""

    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    incidence_cos: np.ndarray
    glass: np.ndarray


def render_room(room: Room, T_room_cam: np.ndarray, K: np.ndarray = NYU_CAM_K,
                image_hw: tuple[int, int] = NYU_IMAGE_HW) -> RoomView:
    """Ray-cast the room from ``T_room_cam``: Lambert shading under the ceiling light (inverse-square falloff) plus
    ambient light, procedural texture on every surface."""
    P = np.hstack([np.asarray(K, dtype=np.float64), np.zeros((3, 1))])
    grid = CameraGrid(T_room_cam, P, (image_hw[1], image_hw[0]))
    t, solid, normal = cast_solids(grid, room.prims, MAX_DEPTH_M)
    hit = solid != NOTHING
    point = grid.origin + np.where(hit, t, 0.0)[..., None] * grid.dirs
    dirs = grid.dirs / np.linalg.norm(grid.dirs, axis=-1, keepdims=True)
    cos_view = np.abs(np.einsum("hwc,hwc->hw", normal, dirs))
    normal = np.where((np.einsum("hwc,hwc->hw", normal, dirs) > 0)[..., None], -normal, normal)
    to_light = room.light - point
    dist = np.linalg.norm(to_light, axis=-1)
    lambert = np.clip(np.einsum("hwc,hwc->hw", normal, to_light / np.maximum(dist, 1e-6)[..., None]), 0.0, 1.0)
    shade = 0.3 + 0.9 * lambert / (1.0 + 0.08 * dist**2)
    idx = np.where(hit, solid, 0)
    albedo = room.prims.color[idx]
    tex = surface_texture(point.reshape(-1, 3), room.texture_seed).reshape(shade.shape)
    rgb = np.where(hit[..., None], albedo * (tex * shade)[..., None], 0.0)
    semantic = np.where(hit, room.prims.semantic[idx], 0).astype(np.uint8)
    return RoomView(rgb=np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8),
                    depth=np.where(hit, t, 0.0).astype(np.float32), semantic=semantic,
                    incidence_cos=np.where(hit, cos_view, 0.0), glass=hit & room.glass[idx])


def room_labels(room: Room, grid: GridSpec, subdivision: int) -> np.ndarray:
    """Labels of the sub-voxels of ``grid`` (dims * subdivision, NYU index order) uint8: the NYU class of the last
    solid (painting order) that reaches into the sub-voxel (its centre within half a sub-voxel of the solid: a
    surface voxelisation, as NYU's labels voxelise CAD surfaces, so every surface point's sub-voxel is labelled),
    0 inside the room elsewhere, 255 outside the room's walls, floor and ceiling."""
    dims = tuple(d * subdivision for d in grid.dims)
    step = grid.voxel_size / subdivision
    coords = [np.asarray(grid.origin)[ROOM_AXES[a]] + (np.arange(dims[a]) + 0.5) * step for a in range(3)]
    lo, hi = room.outer_bounds
    outside = [(c < lo[ROOM_AXES[a]]) | (c > hi[ROOM_AXES[a]]) for a, c in enumerate(coords)]
    labels = np.where(outside[0][:, None, None] | outside[1][None, :, None] | outside[2][None, None, :],
                      np.uint8(IGNORE_LABEL), np.uint8(0))
    box_lo, box_hi = bounding_boxes(room.prims, step / 2)
    for i in range(len(room.prims)):
        ranges = []
        for a in range(3):
            c = coords[a]
            ranges.append(np.nonzero((c >= box_lo[i, ROOM_AXES[a]]) & (c <= box_hi[i, ROOM_AXES[a]]))[0])
        if any(len(r) == 0 for r in ranges):
            continue
        block = np.ix_(*ranges)
        mesh = np.meshgrid(*(coords[a][ranges[a]] for a in range(3)), indexing="ij")
        points = np.stack([mesh[0], mesh[2], mesh[1]], axis=-1).reshape(-1, 3)  # index axes -> room (x, y, z)
        inside = contains(room.prims, i, points, step / 2).reshape(mesh[0].shape)
        labels[block] = np.where(inside, np.uint8(room.prims.semantic[i]), labels[block])
    return labels


@dataclass
class IndoorFrame:
    """Everything of one synthetic NYU frame. rgb (480, 640, 3) uint8; depth (480, 640) float32 metres as the NYU
    depth PNG stores it (noisy, holes = 0); depth_clean the same for the perfect depth (NYUCAD); semantic
    (480, 640) uint8 NYU class per pixel (of the clean view); T_room_cam (4, 4); K (3, 3); grid: the 60 x 36 x 60
    grid (origin in the room frame); labels_full (dims * subdivision) uint8; labels (60, 36, 60) uint8 by the SSC
    x-subdivision rule; noisy / clean: DepthVolume of depth / depth_clean; room: the scene."""

    rgb: np.ndarray
    depth: np.ndarray
    depth_clean: np.ndarray
    semantic: np.ndarray
    T_room_cam: np.ndarray
    K: np.ndarray
    grid: GridSpec
    labels_full: np.ndarray
    labels: np.ndarray
    noisy: DepthVolume
    clean: DepthVolume
    room: Room

    def label_weight(self, cad: bool = False) -> np.ndarray:
        """(60, 36, 60) float32 label weight of the noisy (or, ``cad``, the clean) depth, 0 where labels are 255."""
        volume = self.clean if cad else self.noisy
        return volume.label_weight * (self.labels != IGNORE_LABEL)


def room_seed(seed: int, index: int) -> int:
    """The seed of frame ``index``'s room under run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def make_indoor_frame(seed: int, index: int, options: IndoorOptions | None = None) -> IndoorFrame:
    """Build, render and voxelise frame ``index`` of seed ``seed`` (deterministic)."""
    options = options or IndoorOptions()
    frame_seed = room_seed(seed, index)
    room = build_room(frame_seed)
    rng = seed_stream(frame_seed, "camera")
    T_room_cam = camera_pose(rng, room)
    grid = grid_in_front(rng, T_room_cam, options.grid_dims, options.voxel_size)
    view = render_room(room, T_room_cam)
    noise_rng = seed_stream(frame_seed, "depth_noise")
    noisy = decode_nyu_depth(encode_nyu_depth(kinect_depth(view.depth, view.incidence_cos, view.glass,
                                                           float(NYU_CAM_K[0, 0]), noise_rng, options.sensor)))
    clean = decode_nyu_depth(encode_nyu_depth(view.depth))
    labels_full = room_labels(room, grid, options.subdivision)
    return IndoorFrame(
        rgb=view.rgb, depth=noisy, depth_clean=clean, semantic=view.semantic, T_room_cam=T_room_cam,
        K=NYU_CAM_K.copy(), grid=grid, labels_full=labels_full,
        labels=downsample_labels(labels_full, options.subdivision),
        noisy=depth_volume(noisy, NYU_CAM_K, T_room_cam, grid, options.subdivision),
        clean=depth_volume(clean, NYU_CAM_K, T_room_cam, grid, options.subdivision), room=room,
    )

"""Headless 3D view of a voxel scene: exposed voxel faces, orthographic camera, z-buffer, Lambert shading.

Only numpy: every exposed face that looks towards the camera is sampled on a small lattice (spacing at most half
a pixel) and the samples are projected. Faces are processed in chunks: within a chunk one argsort over a
combined pixel/depth key finds each pixel's nearest sample, which replaces the running z-buffer's entry only if
it is nearer. Faces of one orientation share one shade, and the lattice border darkens slightly so single cubes
stay readable. A 256x256x32 street scene renders in about 0.3 s at 800 px on one core. The sort is stable, so
ties in depth go to the earlier face and the image does not depend on the chunk size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ssc_core.data.label_maps import ClassSet
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import GridSpec
from ssc_core.viz.colors import RGB, check_labels, occupied_mask, palette


@dataclass(frozen=True)
class View:
    """An orthographic camera around the grid. azimuth_deg: direction the camera LOOKS, measured in the
    LiDAR x-y plane from +x towards +y (0 = looking forward from behind the car); elevation_deg: how far it
    looks down (90 = straight down)."""

    azimuth_deg: float = -30.0
    elevation_deg: float = 40.0

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(view direction, screen right, screen up), each (3,) float64 in the grid frame."""
        az, el = math.radians(self.azimuth_deg), math.radians(self.elevation_deg)
        direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), -math.sin(el)])
        right = np.array([math.sin(az), -math.cos(az), 0.0])
        up = np.cross(right, direction)
        return direction, right, up


VIEWS: dict[str, View] = {
    "iso": View(-30.0, 40.0),
    "front": View(0.0, 30.0),
    "side": View(90.0, 25.0),
    "top": View(0.0, 90.0),
}

# Light from above, front-left of the car (grid frame); ambient keeps shadowed faces legible.
_LIGHT = np.array([0.35, 0.55, 1.0]) / np.linalg.norm([0.35, 0.55, 1.0])
_AMBIENT = 0.45
_EDGE_SHADE = 0.85
_CHUNK_SAMPLES = 1 << 21
_EDGE_MIN_PIXELS = 3.0  # voxel outlines only when a voxel is at least this many pixels wide


def resolve_view(view: str | View) -> View:
    """A View from a preset name ('iso', 'front', 'side', 'top') or a View itself."""
    if isinstance(view, View):
        return view
    try:
        return VIEWS[view]
    except KeyError:
        raise ConfigError(f"unknown view {view!r}; known: {sorted(VIEWS)} or a View(azimuth, elevation)") from None


def _exposed_faces(occupied: np.ndarray, direction: np.ndarray):
    """Yield (normal axis, sign, (M, 3) int voxel indices) of faces with an empty neighbour facing the camera."""
    padded = np.pad(occupied, 1)
    inner = (slice(1, -1),) * 3
    for axis in range(3):
        for sign in (-1, 1):
            if sign * direction[axis] >= 0:  # back face
                continue
            shifted = list(inner)
            shifted[axis] = slice(2, None) if sign > 0 else slice(None, -2)
            exposed = occupied & ~padded[tuple(shifted)]
            yield axis, sign, np.argwhere(exposed)


@dataclass(frozen=True)
class Camera:
    """Where a 3D view puts things: ``project`` (3, 3) maps a point in voxel units (grid frame, voxel (0, 0, 0)
    spanning [0, 1)^3) to (screen x, screen y, depth); pixel = screen * ``scale`` + ``offset``; the image is
    ``width`` x ``height`` pixels."""

    project: np.ndarray
    scale: float
    offset: np.ndarray
    width: int
    height: int

    def pixels(self, points_vox: np.ndarray) -> np.ndarray:
        """(N, 3) points in voxel units -> (N, 2) float pixel coordinates (x right, y down)."""
        return np.asarray(points_vox, dtype=np.float64) @ self.project[:, :2] * self.scale + self.offset


def view_camera(dims: tuple[int, ...], view: str | View = "iso", width: int = 800,
                include: np.ndarray | None = None) -> Camera:
    """The Camera of ``render_voxels_3d`` for a grid of ``dims`` voxels: the whole grid volume (and the (N, 3)
    voxel-unit points ``include``, e.g. the ego car's corners) fits ``width`` pixels with a small margin."""
    if width < 16:
        raise ConfigError(f"render width must be >= 16 pixels, got {width}")
    direction, right, up = resolve_view(view).axes()
    project = np.stack([right, -up, direction], axis=1)  # voxel-unit point (3,) -> (screen x, screen y, depth)
    corners = np.stack(np.meshgrid(*[[0, d] for d in dims], indexing="ij"), -1).reshape(-1, 3)
    if include is not None:
        corners = np.concatenate([corners, np.asarray(include, dtype=np.float64).reshape(-1, 3)])
    corner_screen = corners @ project[:, :2]
    margin = max(4, width // 50)
    lo, hi = corner_screen.min(0), corner_screen.max(0)
    scale = (width - 2 * margin) / max(hi[0] - lo[0], 1e-9)
    height = int(math.ceil((hi[1] - lo[1]) * scale)) + 2 * margin
    return Camera(project, float(scale), margin - lo * scale, width, height)


def render_voxels_3d(
    labels: np.ndarray,
    class_set: ClassSet,
    grid: GridSpec | None = None,
    view: str | View = "iso",
    width: int = 800,
    background: RGB = (255, 255, 255),
    edges: bool = True,
    camera: Camera | None = None,
) -> np.ndarray:
    """Render a semantic voxel scene in 3D (``edges``: darken voxel outlines when voxels are >= 3 px).

    labels: (X, Y, Z) integer train ids on ``grid`` ([x][y][z], LiDAR frame; 0 empty and 255 ignore are not
    drawn); class_set gives the colours; view: preset name or View; width: image width in pixels (the height
    follows from the view so that the whole grid volume fits; two scenes on the same grid and view line up
    pixel for pixel); camera: a ``view_camera`` to use instead of view and width (e.g. one that also fits the
    ego car). Returns (H, width, 3) uint8 RGB.
    """
    labels = check_labels(labels, class_set)
    if grid is not None and tuple(labels.shape) != tuple(grid.dims):
        raise DataFormatError(f"labels shape {labels.shape} does not match grid dims {grid.dims}")
    camera = camera or view_camera(labels.shape, view, width)
    project, scale, offset, width, height = camera.project, camera.scale, camera.offset, camera.width, camera.height
    corners = np.stack(np.meshgrid(*[[0, d] for d in labels.shape], indexing="ij"), -1).reshape(-1, 3)
    direction = project[:, 2]

    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = np.asarray(background, dtype=np.uint8)
    occupied = occupied_mask(labels)
    if not occupied.any():
        return image

    lut = palette(class_set).astype(np.float32)
    n = max(2, int(math.ceil(scale / 0.5)) + 1)  # samples per face edge: spacing <= 0.5 px
    t = np.linspace(0.0, 1.0, n)
    uu, vv = (a.ravel() for a in np.meshgrid(t, t, indexing="ij"))
    border = (uu == 0) | (uu == 1) | (vv == 0) | (vv == 1)

    # A running z-buffer over chunks of faces bounds memory (about _CHUNK_SAMPLES samples at a time).
    depth_lo = float((corners @ project[:, 2]).min())
    depth_span = max(float((corners @ project[:, 2]).max()) - depth_lo, 1e-9)
    zbuffer = np.full(height * width, np.iinfo(np.int64).max, dtype=np.int64)
    flat_image = image.reshape(-1, 3)
    shade_edges = edges and scale >= _EDGE_MIN_PIXELS
    chunk = max(1, _CHUNK_SAMPLES // len(uu))
    for axis, sign, voxels in _exposed_faces(occupied, direction):
        normal = np.zeros(3)
        normal[axis] = sign
        shade = _AMBIENT + (1.0 - _AMBIENT) * max(0.0, float(normal @ _LIGHT))
        e1, e2 = np.eye(3)[(axis + 1) % 3], np.eye(3)[(axis + 2) % 3]
        lattice = (uu[:, None] * (e1 @ project) + vv[:, None] * (e2 @ project)).astype(np.float32)  # (S, 3)
        for begin in range(0, len(voxels), chunk):
            part = voxels[begin : begin + chunk]
            base = part.astype(np.float32)
            if sign > 0:
                base[:, axis] += 1.0
            samples = (base @ project.astype(np.float32))[:, None, :] + lattice[None]  # (M, S, 3)
            px = np.floor(samples[..., 0] * scale + offset[0]).astype(np.int64)
            py = np.floor(samples[..., 1] * scale + offset[1]).astype(np.int64)
            inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
            pixel = (py * width + px)[inside]
            depth_q = ((samples[..., 2][inside] - depth_lo) / depth_span * ((1 << 24) - 1)).astype(np.int64)
            sample = np.broadcast_to(np.arange(samples.shape[0] * len(uu)).reshape(samples.shape[:2]), px.shape)
            sample = sample[inside]
            # One sort on (pixel, quantised depth): the first entry of each pixel run is the chunk's nearest.
            order = np.argsort((pixel << 24) | depth_q, kind="stable")  # ties: the earlier face wins
            first = np.ones(len(order), dtype=bool)
            first[1:] = pixel[order][1:] != pixel[order][:-1]
            winners = order[first]
            pixel, depth_q, sample = pixel[winners], depth_q[winners], sample[winners]
            nearer = depth_q < zbuffer[pixel]
            pixel, depth_q, sample = pixel[nearer], depth_q[nearer], sample[nearer]
            zbuffer[pixel] = depth_q
            face, lattice_index = np.divmod(sample, len(uu))
            colour = lut[labels[tuple(part[face].T)]] * shade
            if shade_edges:
                colour[border[lattice_index]] *= _EDGE_SHADE
            flat_image[pixel] = np.clip(colour, 0, 255).astype(np.uint8)
    return image

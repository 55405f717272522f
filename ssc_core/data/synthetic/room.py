"""A seeded furnished room in the 12 NYUv2 SSC classes, built from the synthetic world's solids.

Room frame: metric, z up, the floor at z = 0, the interior spanning x in [0, Lx], y in [0, Ly], z in [0, H]; walls,
floor and ceiling are 15 cm slabs outside that box. Furniture templates are written in a local frame (x across the
front, y towards the back, z up from the floor) and placed with a yaw that turns their back to a wall. Every
solid's ``semantic`` is a NYU class id (1 ceiling .. 11 objects). Solids are listed in painting order (structure,
windows, furniture, then the things standing on it), which the voxel labels follow where solids overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssc_core.data.synthetic.options import seed_stream
from ssc_core.data.synthetic.primitives import BOX, CYLINDER, ELLIPSOID, Primitives

CEILING, FLOOR, WALL, WINDOW, CHAIR, BED, SOFA, TABLE, TVS, FURNITURE, OBJECTS = range(1, 12)
SLAB_M = 0.15
ROOM_KINDS = ("bedroom", "living_room", "office")

Template = list[tuple]  # rows (kind, center, size, yaw, semantic, color) in the object's local frame


@dataclass
class Item:
    """A template with its footprint (``width`` across, ``depth`` front to back, metres) and the height of a top
    that small objects may stand on (None: nothing goes on it)."""

    rows: Template
    width: float
    depth: float
    top: float | None = None


@dataclass
class Room:
    """A furnished room: interior ``size`` (Lx, Ly, H) metres, ``prims`` (semantic = NYU class, painting
    order), ``glass`` (n,) bool solids a structured-light sensor sees no depth on (windows, some TV screens),
    ``light`` (3,) room-frame position of the ceiling light, ``texture_seed``, ``kind`` (one of ROOM_KINDS)."""

    size: tuple[float, float, float]
    prims: Primitives
    glass: np.ndarray
    light: np.ndarray
    texture_seed: int
    kind: str

    @property
    def outer_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) room-frame corners of the room including its wall, floor and ceiling slabs."""
        lx, ly, h = self.size
        return np.array([-SLAB_M, -SLAB_M, -SLAB_M]), np.array([lx + SLAB_M, ly + SLAB_M, h + SLAB_M])


def _box(center, half, sem: int, color, yaw: float = 0.0) -> tuple:
    return (BOX, tuple(center), tuple(half), yaw, sem, tuple(color))


def _legs(width: float, depth: float, height: float, sem: int, color, inset: float = 0.04) -> Template:
    return [_box((sx * (width / 2 - inset), sy * (depth / 2 - inset), height / 2), (0.02, 0.02, height / 2), sem,
                 color) for sx in (-1, 1) for sy in (-1, 1)]


# -------------------------------------------------------------------------------------------- templates
def bed(rng: np.random.Generator) -> Item:
    """A bed: mattress base, headboard at the back and a pillow."""
    width, depth, top = rng.uniform(0.95, 1.6), rng.uniform(1.9, 2.1), rng.uniform(0.45, 0.58)
    color = rng.uniform(0.45, 0.95, 3)
    rows = [_box((0, 0, top / 2), (width / 2, depth / 2, top / 2), BED, color),
            _box((0, depth / 2 - 0.03, 0.5), (width / 2, 0.03, 0.5), BED, color * 0.7),
            (ELLIPSOID, (0, depth / 2 - 0.3, top + 0.06), (width * 0.35, 0.18, 0.08), 0.0, BED, (0.95, 0.95, 0.92))]
    return Item(rows, width, depth)


def sofa(rng: np.random.Generator) -> Item:
    """A sofa: seat, back and two arms."""
    width, depth = rng.uniform(1.5, 2.2), rng.uniform(0.8, 0.95)
    color = rng.uniform(0.2, 0.8, 3)
    return Item([_box((0, 0, 0.21), (width / 2, depth / 2, 0.21), SOFA, color),
                 _box((0, depth / 2 - 0.1, 0.45), (width / 2, 0.1, 0.45), SOFA, color * 0.85),
                 _box((-(width / 2 - 0.08), 0, 0.31), (0.08, depth / 2, 0.31), SOFA, color * 0.9),
                 _box((width / 2 - 0.08, 0, 0.31), (0.08, depth / 2, 0.31), SOFA, color * 0.9)], width, depth)


def chair(rng: np.random.Generator) -> Item:
    """A chair: legs, seat and a back."""
    size = rng.uniform(0.42, 0.52)
    color = rng.uniform(0.15, 0.7, 3)
    seat = rng.uniform(0.43, 0.48)
    rows = _legs(size, size, seat - 0.03, CHAIR, color)
    rows += [_box((0, 0, seat - 0.015), (size / 2, size / 2, 0.025), CHAIR, color),
             _box((0, size / 2 - 0.025, seat + 0.25), (size / 2, 0.025, 0.25), CHAIR, color)]
    return Item(rows, size, size)


def table(rng: np.random.Generator, low: bool = False) -> Item:
    """A table (dining/desk height, or a low coffee table): a top on four legs."""
    width, depth = (rng.uniform(0.8, 1.2), rng.uniform(0.5, 0.7)) if low else (rng.uniform(0.9, 1.6),
                                                                                rng.uniform(0.6, 0.9))
    height = rng.uniform(0.38, 0.45) if low else rng.uniform(0.72, 0.77)
    color = rng.uniform(0.3, 0.75, 3) * np.array([1.0, 0.85, 0.7])
    rows = _legs(width, depth, height - 0.04, TABLE, color) + [
        _box((0, 0, height - 0.02), (width / 2, depth / 2, 0.02), TABLE, color)]
    return Item(rows, width, depth, top=height)


def cabinet(rng: np.random.Generator, height: tuple[float, float] = (0.5, 2.0)) -> Item:
    """Furniture: a cabinet, dresser, wardrobe or bookshelf as one box."""
    width, depth, tall = rng.uniform(0.5, 1.3), rng.uniform(0.35, 0.6), rng.uniform(*height)
    color = rng.uniform(0.3, 0.85, 3)
    return Item([_box((0, 0, tall / 2), (width / 2, depth / 2, tall / 2), FURNITURE, color)], width, depth,
                top=tall if tall < 1.3 else None)


def tv_on_stand(rng: np.random.Generator) -> Item:
    """A TV standing on a low furniture stand."""
    stand, width, depth = rng.uniform(0.4, 0.6), rng.uniform(1.0, 1.6), rng.uniform(0.4, 0.5)
    screen_w, screen_h = min(width - 0.1, rng.uniform(0.8, 1.3)), rng.uniform(0.5, 0.75)
    return Item([_box((0, 0, stand / 2), (width / 2, depth / 2, stand / 2), FURNITURE, rng.uniform(0.2, 0.6, 3)),
                 _box((0, 0.05, stand + 0.05 + screen_h / 2), (screen_w / 2, 0.03, screen_h / 2), TVS,
                      (0.06, 0.06, 0.07)),
                 _box((0, 0.05, stand + 0.025), (0.12, 0.08, 0.025), TVS, (0.1, 0.1, 0.1))], width, depth)


def small_object(rng: np.random.Generator, on_floor: bool) -> Item:
    """An object: a box, a bin or a lamp (cylinder) or a plant / ball (ellipsoid); larger on the floor."""
    color = rng.uniform(0.1, 0.95, 3)
    scale = 2.0 if on_floor else 1.0
    roll = rng.random()
    if roll < 0.45:
        half = rng.uniform(0.05, 0.15, 3) * scale
        extent = 2 * float(np.hypot(half[0], half[1]))
        return Item([_box((0, 0, half[2]), half, OBJECTS, color, yaw=rng.uniform(0, np.pi))], extent, extent)
    if roll < 0.8:
        radius, half_h = rng.uniform(0.05, 0.12) * scale, rng.uniform(0.06, 0.2) * scale * (1.5 if on_floor else 1)
        return Item([(CYLINDER, (0, 0, half_h), (radius, radius, half_h), 0.0, OBJECTS, tuple(color))], 2 * radius,
                    2 * radius)
    radius = rng.uniform(0.08, 0.16) * scale
    return Item([(ELLIPSOID, (0, 0, radius * 0.9), (radius, radius, radius * 0.9), 0.0, OBJECTS,
                  tuple(color * np.array([0.5, 1.0, 0.5])))], 2 * radius, 2 * radius)


# ----------------------------------------------------------------------------------------------- layout
WALL_YAWS = {"south": np.pi, "east": -np.pi / 2, "north": 0.0, "west": np.pi / 2}


class _RoomLayout:
    """Places templates on the floor of a room (Lx, Ly) without overlaps (axis-aligned footprints), keeping a
    disc around the camera position clear."""

    def __init__(self, size: tuple[float, float, float], keep_clear: tuple[float, float, float]):
        self.lx, self.ly, self.h = size
        self.keep_clear = keep_clear
        self.footprints: list[tuple[float, float, float, float]] = []
        self.rows: list[tuple] = []
        self.tops: list[tuple[float, ...]] = []  # (x0, x1, y0, y1, height) of surfaces things can stand on

    def fits(self, fp: tuple[float, float, float, float], gap: float = 0.05) -> bool:
        x0, x1, y0, y1 = fp
        if x0 < 0.01 or y0 < 0.01 or x1 > self.lx - 0.01 or y1 > self.ly - 0.01:
            return False
        cx, cy, r = self.keep_clear
        nx, ny = np.clip(cx, x0, x1), np.clip(cy, y0, y1)
        if np.hypot(nx - cx, ny - cy) < r:
            return False
        return all(x1 + gap <= a0 or a1 + gap <= x0 or y1 + gap <= b0 or b1 + gap <= y0
                   for a0, a1, b0, b1 in self.footprints)

    def put(self, item: Item, cx: float, cy: float, yaw: float, z0: float = 0.0, track: bool = True) -> bool:
        """Place ``item`` with its footprint centre at (cx, cy), standing at height z0, with a yaw that is a multiple
        of 90 deg; returns False (nothing placed) when ``track`` and it does not fit."""
        quarter = round(yaw / (np.pi / 2)) % 2 == 1
        hx, hy = (item.depth / 2, item.width / 2) if quarter else (item.width / 2, item.depth / 2)
        fp = (cx - hx, cx + hx, cy - hy, cy + hy)
        if track and not self.fits(fp):
            return False
        c, s = np.cos(yaw), np.sin(yaw)
        for kind, center, size, local_yaw, sem, color in item.rows:
            x, y, z = center
            self.rows.append((kind, (cx + c * x - s * y, cy + s * x + c * y, z0 + z), size, yaw + local_yaw, sem,
                              color))
        if item.top is not None:
            self.tops.append((*fp, z0 + item.top))
        if track:
            self.footprints.append(fp)
        return True

    def against_wall(self, rng: np.random.Generator, item: Item, walls: list[str], tries: int = 20
                     ) -> tuple[float, float, float] | None:
        """Put ``item`` with its back to one of ``walls`` at a random place along it; returns (cx, cy, yaw)."""
        for _ in range(tries):
            wall = walls[rng.integers(len(walls))]
            length = self.lx if wall in ("south", "north") else self.ly
            if length < item.width + 0.1:
                continue
            along = rng.uniform(item.width / 2 + 0.05, length - item.width / 2 - 0.05)
            off = item.depth / 2 + 0.02
            cx, cy = {"south": (along, off), "north": (along, self.ly - off), "west": (off, along),
                      "east": (self.lx - off, along)}[wall]
            if self.put(item, cx, cy, WALL_YAWS[wall]):
                return cx, cy, WALL_YAWS[wall]
        return None

    def free_spot(self, rng: np.random.Generator, item: Item, tries: int = 30) -> tuple[float, float, float] | None:
        """Put ``item`` anywhere on the floor with a random multiple of 90 deg yaw; returns (cx, cy, yaw)."""
        for _ in range(tries):
            yaw = rng.integers(4) * np.pi / 2
            cx, cy = rng.uniform(0.3, self.lx - 0.3), rng.uniform(0.3, self.ly - 0.3)
            if self.put(item, cx, cy, yaw):
                return cx, cy, yaw
        return None

    def chairs_around(self, rng: np.random.Generator, cx: float, cy: float, yaw: float, table_item: Item,
                      count: int) -> None:
        """Up to ``count`` chairs beside the table centred at (cx, cy), their backs away from it."""
        quarter = round(yaw / (np.pi / 2)) % 2 == 1
        hx, hy = (table_item.depth / 2, table_item.width / 2) if quarter else (table_item.width / 2,
                                                                               table_item.depth / 2)
        sides = [("south", cx, cy - hy - 0.3), ("north", cx, cy + hy + 0.3), ("west", cx - hx - 0.3, cy),
                 ("east", cx + hx + 0.3, cy)]
        for i in rng.permutation(4)[:count]:
            wall, x, y = sides[i]
            self.put(chair(rng), x, y, WALL_YAWS[wall])

    def objects_on_tops(self, rng: np.random.Generator, count: int) -> None:
        """Small objects standing on table and furniture tops (their footprints are not tracked)."""
        for _ in range(count):
            if not self.tops:
                return
            x0, x1, y0, y1, top = self.tops[rng.integers(len(self.tops))]
            item = small_object(rng, on_floor=False)
            if x1 - x0 < item.width + 0.04 or y1 - y0 < item.depth + 0.04:
                continue
            cx = rng.uniform(x0 + item.width / 2 + 0.02, x1 - item.width / 2 - 0.02)
            cy = rng.uniform(y0 + item.depth / 2 + 0.02, y1 - item.depth / 2 - 0.02)
            self.put(item, cx, cy, 0.0, z0=top, track=False)


def _structure(size: tuple[float, float, float], rng: np.random.Generator) -> Template:
    lx, ly, h = size
    t = SLAB_M
    wall, floor = rng.uniform(0.6, 0.95, 3), rng.uniform(0.25, 0.6) * np.array([1.0, 0.8, 0.6])
    return [
        _box((lx / 2, ly / 2, -t / 2), (lx / 2 + t, ly / 2 + t, t / 2), FLOOR, floor),
        _box((lx / 2, ly / 2, h + t / 2), (lx / 2 + t, ly / 2 + t, t / 2), CEILING, (0.93, 0.93, 0.9)),
        _box((lx / 2, -t / 2, h / 2), (lx / 2 + t, t / 2, h / 2 + t), WALL, wall),
        _box((lx / 2, ly + t / 2, h / 2), (lx / 2 + t, t / 2, h / 2 + t), WALL, wall),
        _box((-t / 2, ly / 2, h / 2), (t / 2, ly / 2 + t, h / 2 + t), WALL, wall),
        _box((lx + t / 2, ly / 2, h / 2), (t / 2, ly / 2 + t, h / 2 + t), WALL, wall),
    ]


def _windows(size: tuple[float, float, float], rng: np.random.Generator) -> Template:
    """One or two windows on the east, north or west wall: glass panes slightly proud of the wall face."""
    lx, ly, h = size
    rows = []
    for wall in rng.choice(["east", "north", "west"], size=int(rng.integers(1, 3)), replace=False):
        length = lx if wall == "north" else ly
        width, height = rng.uniform(0.7, min(1.6, length - 0.6)), rng.uniform(0.9, min(1.4, h - 1.1))
        along, sill = rng.uniform(0.3 + width / 2, length - 0.3 - width / 2), rng.uniform(0.75, h - height - 0.2)
        center = {"north": (along, ly - 0.02), "west": (0.02, along), "east": (lx - 0.02, along)}[wall]
        half = (width / 2, 0.04, height / 2) if wall == "north" else (0.04, width / 2, height / 2)
        rows.append(_box((*center, sill + height / 2), half, WINDOW, (0.65, 0.78, 0.9)))
    return rows


def build_room(seed: int, camera_xy: tuple[float, float] | None = None) -> Room:
    """A seeded room (3-6 m a side, 2.4-2.8 m high) of one of ROOM_KINDS with windows, furniture and objects.
    ``camera_xy``: a room-frame position that stays clear of furniture (0.8 m), default near the south wall."""
    rng = seed_stream(seed, "room")
    size = (float(rng.uniform(3.2, 6.0)), float(rng.uniform(3.2, 6.0)), float(rng.uniform(2.4, 2.8)))
    cam = camera_xy if camera_xy is not None else (size[0] / 2, 0.4)
    kind = ROOM_KINDS[int(rng.integers(len(ROOM_KINDS)))]
    layout = _RoomLayout(size, (cam[0], cam[1], 0.8))
    rows = _structure(size, rng) + _windows(size, rng)
    glass = [False] * 6 + [True] * (len(rows) - 6)
    walls = ["east", "north", "west"]
    if kind == "bedroom":
        layout.against_wall(rng, bed(rng), walls)
        for _ in range(int(rng.integers(1, 3))):
            layout.against_wall(rng, cabinet(rng, (0.45, 0.7)), walls)
        layout.against_wall(rng, cabinet(rng, (1.6, 2.1)), walls)
        if rng.random() < 0.5:
            desk = table(rng)
            placed = layout.against_wall(rng, desk, walls)
            if placed is not None:
                layout.chairs_around(rng, *placed, desk, 1)
    elif kind == "living_room":
        layout.against_wall(rng, sofa(rng), walls)
        layout.free_spot(rng, table(rng, low=True))
        for _ in range(int(rng.integers(0, 3))):
            layout.free_spot(rng, chair(rng))
        for _ in range(int(rng.integers(1, 3))):
            layout.against_wall(rng, cabinet(rng), walls)
    else:
        for _ in range(1 + int(rng.random() < 0.3)):
            desk = table(rng)
            placed = layout.free_spot(rng, desk)
            if placed is not None:
                layout.chairs_around(rng, *placed, desk, int(rng.integers(1, 5)))
        for _ in range(int(rng.integers(1, 4))):
            layout.against_wall(rng, cabinet(rng), walls)
    if rng.random() < 0.7:
        layout.against_wall(rng, tv_on_stand(rng), walls)
    for _ in range(int(rng.integers(2, 6))):
        layout.free_spot(rng, small_object(rng, on_floor=True))
    layout.objects_on_tops(rng, int(rng.integers(3, 9)))
    screen_glass = rng.random(len(layout.rows)) < 0.5
    glass += [bool(g and r[4] == TVS) for g, r in zip(screen_glass, layout.rows)]
    rows = [(k, c, s, y, sem, 0, col, 0.0) for k, c, s, y, sem, col in rows + layout.rows]
    light = np.array([size[0] / 2, size[1] / 2, size[2] - 0.05])
    texture_seed = int(seed_stream(seed, "room_texture").integers(0, 2**31 - 1))
    return Room(size, Primitives.from_rows(rows), np.asarray(glass, dtype=bool), light, texture_seed, kind)

"""The synthetic world: a street, the static solids along it and the movers driving or walking on it.

Objects are built from small templates in a local frame (x forward along the street, y left, z up from the
ground under the object) and placed at street coordinates (s, d). All randomness comes from the generator
passed in, so a seed fixes the world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ssc_core.data.synthetic.options import seed_stream
from ssc_core.data.synthetic.primitives import BOX, CYLINDER, ELLIPSOID, Primitives
from ssc_core.data.synthetic.street import OTHER_GROUND, PARKING, ROAD, SIDEWALK, TERRAIN, Street

CAR, BICYCLE, MOTORCYCLE, TRUCK, OTHER_VEHICLE, PERSON = 10, 11, 15, 18, 20, 30
BUILDING, FENCE, OTHER_STRUCTURE, VEGETATION, TRUNK, POLE, TRAFFIC_SIGN = 50, 51, 52, 70, 71, 80, 81
OTHER_OBJECT = 99
MOVING_CAR, MOVING_BICYCLIST, MOVING_PERSON, MOVING_MOTORCYCLIST = 252, 253, 254, 255

# Albedo (RGB in [0, 1]) and LiDAR reflectance of the ground classes.
GROUND_COLOR = {ROAD: (0.33, 0.33, 0.35), PARKING: (0.45, 0.43, 0.44), SIDEWALK: (0.62, 0.6, 0.58),
                OTHER_GROUND: (0.52, 0.46, 0.38), TERRAIN: (0.42, 0.5, 0.27)}
GROUND_REFLECTANCE = {ROAD: 0.18, PARKING: 0.22, SIDEWALK: 0.3, OTHER_GROUND: 0.26, TERRAIN: 0.4}
REFLECTANCE = {CAR: 0.35, BICYCLE: 0.4, MOTORCYCLE: 0.4, MOVING_BICYCLIST: 0.35, MOVING_MOTORCYCLIST: 0.35,
               TRUCK: 0.4, OTHER_VEHICLE: 0.38, PERSON: 0.3, BUILDING: 0.3, FENCE: 0.35,
               VEGETATION: 0.45, TRUNK: 0.3, POLE: 0.5, TRAFFIC_SIGN: 0.9, MOVING_CAR: 0.35, MOVING_PERSON: 0.3,
               OTHER_STRUCTURE: 0.3, OTHER_OBJECT: 0.35}
CAR_COLORS = np.array([(0.75, 0.1, 0.1), (0.1, 0.2, 0.6), (0.85, 0.85, 0.85), (0.1, 0.1, 0.1), (0.5, 0.5, 0.55),
                       (0.2, 0.45, 0.25), (0.8, 0.6, 0.1)])

Template = list[tuple]  # rows of Primitives.from_rows in the object's local frame, instance filled at placement


@dataclass
class Mover:
    """An object moving along the street: ``template`` in its local frame, at lateral offset ``d``, at arc
    length ``s0 + speed * t`` (speed < 0 drives towards smaller s, facing that way)."""

    template: Template
    s0: float
    d: float
    speed: float


class World:
    """The whole scene: ``street``, ``static`` solids, ``movers`` and ``texture_seed`` for surface noise."""

    def __init__(self, street: Street, static: Primitives, movers: list[Mover], texture_seed: int):
        self.street = street
        self.static = static
        self.movers = movers
        self.texture_seed = texture_seed

    def primitives_at(self, time_s: float) -> Primitives:
        """All solids at ``time_s`` seconds (static ones first, then the movers that are on the street)."""
        rows: list[tuple] = []
        for mover in self.movers:
            s = mover.s0 + mover.speed * time_s
            if not 0.0 <= s <= self.street.length:
                continue
            flip = np.pi if mover.speed < 0 else 0.0
            rows += _place(self.street, mover.template, s, mover.d, flip)
        return self.static.concat(Primitives.from_rows(rows))


def _place(street: Street, template: Template, s: float, d: float, yaw_offset: float = 0.0) -> list[tuple]:
    xy, yaw, z = street.place(np.array([s]), np.array([d]))
    yaw = float(yaw[0]) + yaw_offset
    c, sn = np.cos(yaw), np.sin(yaw)
    rows = []
    for kind, center, size, local_yaw, sem, inst, color, refl in template:
        cx, cy, cz = center
        world_center = (xy[0, 0] + c * cx - sn * cy, xy[0, 1] + sn * cx + c * cy, z[0] + cz)
        rows.append((kind, world_center, size, yaw + local_yaw, sem, inst, color, refl))
    return rows


# ----------------------------------------------------------------------------------------------- templates
def _row(kind: int, center, size, sem: int, inst: int, color, yaw: float = 0.0) -> tuple:
    return (kind, tuple(center), tuple(size), yaw, sem, inst, tuple(color), REFLECTANCE[sem])


def car(rng: np.random.Generator, inst: int, sem: int = CAR) -> Template:
    """A car: body box (0.25-1.05 m) and a cabin box on top, 3.9-4.6 m long."""
    length, width = rng.uniform(3.9, 4.6), rng.uniform(1.7, 1.85)
    color = CAR_COLORS[rng.integers(len(CAR_COLORS))]
    cabin_h = rng.uniform(0.38, 0.5)
    return [
        _row(BOX, (0, 0, 0.65), (length / 2, width / 2, 0.4), sem, inst, color),
        _row(BOX, (-0.1 * length, 0, 1.05 + cabin_h / 2), (0.27 * length, width / 2 - 0.08, cabin_h / 2), sem, inst,
             color * 0.6),
    ]


def truck(rng: np.random.Generator, inst: int) -> Template:
    """A truck: a cab and a tall cargo box, 7-9 m long."""
    length, width = rng.uniform(7.0, 9.0), rng.uniform(2.4, 2.55)
    color = rng.uniform(0.3, 0.9, 3)
    cargo_h = rng.uniform(2.6, 3.2)
    return [
        _row(BOX, (length / 2 - 1.1, 0, 1.75), (1.1, width / 2, 1.35), TRUCK, inst, color),
        _row(BOX, (-1.15, 0, 0.6 + cargo_h / 2), (length / 2 - 1.15, width / 2, cargo_h / 2), TRUCK, inst,
             (0.85, 0.85, 0.8)),
    ]


def other_vehicle(rng: np.random.Generator, inst: int) -> Template:
    """A caravan/trailer-like box on wheels height, 4.5-6 m long."""
    length, width, height = rng.uniform(4.5, 6.0), rng.uniform(2.0, 2.3), rng.uniform(2.0, 2.6)
    return [_row(BOX, (0, 0, 0.4 + height / 2), (length / 2, width / 2, height / 2), OTHER_VEHICLE, inst,
                 (0.9, 0.88, 0.8))]


def bicycle(rng: np.random.Generator, inst: int, sem: int = BICYCLE) -> Template:
    """A bicycle: a thin 1.7 m box from 0.3 m to 1.0 m."""
    return [_row(BOX, (0, 0, 0.65), (0.85, 0.05, 0.35), sem, inst, rng.uniform(0.1, 0.8, 3))]


def motorcycle(rng: np.random.Generator, inst: int, sem: int = MOTORCYCLE) -> Template:
    """A motorcycle: a 2 m long, 0.4 m wide box from 0.3 m to 1.1 m."""
    return [_row(BOX, (0, 0, 0.7), (1.0, 0.2, 0.4), sem, inst, rng.uniform(0.1, 0.8, 3))]


def _rider(rng: np.random.Generator, inst: int, sem: int) -> tuple:
    return _row(CYLINDER, (0, 0, 1.3), (0.25, 0.25, 0.45), sem, inst, rng.uniform(0.1, 0.7, 3))


def bicyclist(rng: np.random.Generator, inst: int) -> Template:
    """A riding bicyclist (moving): bicycle and rider, both labelled moving-bicyclist as SemanticKITTI does."""
    return [*bicycle(rng, inst, MOVING_BICYCLIST), _rider(rng, inst, MOVING_BICYCLIST)]


def motorcyclist(rng: np.random.Generator, inst: int) -> Template:
    """A riding motorcyclist (moving): motorcycle and rider, both labelled moving-motorcyclist (raw 255)."""
    return [*motorcycle(rng, inst, MOVING_MOTORCYCLIST), _rider(rng, inst, MOVING_MOTORCYCLIST)]


def person(rng: np.random.Generator, inst: int, sem: int = PERSON) -> Template:
    """A person: a 1.6-1.9 m cylinder of radius 0.25 m."""
    height = rng.uniform(1.6, 1.9)
    return [_row(CYLINDER, (0, 0, height / 2), (0.25, 0.25, height / 2), sem, inst, rng.uniform(0.1, 0.7, 3))]


def tree(rng: np.random.Generator) -> Template:
    """A tree: trunk cylinder and an ellipsoidal crown."""
    trunk_r, trunk_h = rng.uniform(0.15, 0.3), rng.uniform(2.0, 3.5)
    crown = rng.uniform(1.5, 3.0)
    crown_z = crown * rng.uniform(0.8, 1.3)
    green = np.array([0.18, 0.42, 0.15]) * rng.uniform(0.7, 1.2)
    return [
        _row(CYLINDER, (0, 0, trunk_h / 2), (trunk_r, trunk_r, trunk_h / 2), TRUNK, 0, (0.36, 0.25, 0.15)),
        _row(ELLIPSOID, (0, 0, trunk_h + 0.7 * crown_z), (crown, crown, crown_z), VEGETATION, 0, green),
    ]


def bush(rng: np.random.Generator) -> Template:
    """A low bush ellipsoid."""
    rx, rz = rng.uniform(0.6, 1.5), rng.uniform(0.4, 0.9)
    return [_row(ELLIPSOID, (0, 0, 0.6 * rz), (rx, rx * rng.uniform(0.6, 1.0), rz), VEGETATION, 0,
                 np.array([0.2, 0.45, 0.17]) * rng.uniform(0.7, 1.2))]


def pole(rng: np.random.Generator, with_sign: bool) -> Template:
    """A pole (4-8 m; 2.6-3.2 m when it carries a traffic sign facing along the street)."""
    height = rng.uniform(2.6, 3.2) if with_sign else rng.uniform(4.0, 8.0)
    radius = rng.uniform(0.06, 0.12)
    rows = [_row(CYLINDER, (0, 0, height / 2), (radius, radius, height / 2), POLE, 0, (0.55, 0.55, 0.58))]
    if with_sign:
        color = ((0.8, 0.1, 0.1), (0.1, 0.3, 0.8), (0.9, 0.8, 0.1))[rng.integers(3)]
        rows.append(_row(BOX, (0.0, 0, height - 0.35), (0.03, 0.35, 0.35), TRAFFIC_SIGN, 0, color))
    return rows


def building(rng: np.random.Generator, length: float, depth: float) -> Template:
    """A building block of the given footprint, 5-18 m tall, sunk 1 m into the ground (slopes)."""
    height = rng.uniform(5.0, 18.0)
    color = rng.uniform(0.45, 0.85, 3)
    return [_row(BOX, (0, depth / 2, height / 2 - 1.0), (length / 2, depth / 2, height / 2 + 1.0), BUILDING, 0,
                 color)]


def fence(rng: np.random.Generator, length: float) -> Template:
    """A fence 1-2 m high, 8 cm thick, along x."""
    height = rng.uniform(1.0, 2.0)
    return [_row(BOX, (0, 0, height / 2 - 0.2), (length / 2, 0.04, height / 2 + 0.2), FENCE, 0,
                 rng.uniform(0.3, 0.6, 3))]


def wall(rng: np.random.Generator, length: float) -> Template:
    """A low garden wall (other-structure), 0.6-1.4 m high and 30 cm thick, along x."""
    height = rng.uniform(0.6, 1.4)
    return [_row(BOX, (0, 0, height / 2 - 0.2), (length / 2, 0.15, height / 2 + 0.2), OTHER_STRUCTURE, 0,
                 rng.uniform(0.5, 0.75, 3))]


def litter_bin(rng: np.random.Generator) -> Template:
    """A litter bin (other-object): a 1 m cylinder of radius 0.3 m."""
    return [_row(CYLINDER, (0, 0, 0.5), (0.3, 0.3, 0.5), OTHER_OBJECT, 0, rng.uniform(0.2, 0.6, 3))]


# ----------------------------------------------------------------------------------------------- layout
MOVER_HORIZON_S = 40.0
INSTANCE_SLOTS = 5  # instance id = 1 + slot + 5 * k: each placement stream numbers its own things


class _StreetLayout:
    """Places templates along both sides of a street; rejects objects that would land on the road. Every
    kind of placement on every side draws from its own seeded stream, so a longer street keeps a shorter
    one's objects."""

    def __init__(self, street: Street, seed: int, density: float):
        self.street, self.seed, self.density = street, seed, max(density, 1e-3)
        self.rows: list[tuple] = []
        self.counts = [0] * INSTANCE_SLOTS

    def instance(self, slot: int) -> int:
        self.counts[slot] += 1
        return 1 + slot + INSTANCE_SLOTS * (self.counts[slot] - 1)

    def gap(self, rng: np.random.Generator, lo: float, hi: float) -> float:
        return rng.uniform(lo, hi) / self.density

    def clear(self, s: float, d: float, half_len: float, d_lo: float, d_hi: float) -> bool:
        """True when the footprint (s +- half_len, d_lo..d_hi) stays on its side beyond the road, outside
        junctions: its world points map back to the same side at |d| >= min(|d_lo|, |d_hi|) - 0.3 m."""
        ss = np.array([s - half_len, s, s + half_len] * 2)
        dd = np.array([d_lo] * 3 + [d_hi] * 3)
        xy, _, _ = self.street.place(ss, dd)
        s_back, d_back, _ = self.street.locate(xy)
        min_d = min(abs(d_lo), abs(d_hi)) - 0.3
        ok = np.all(np.abs(d_back) >= min_d) and np.all(np.sign(d_back) == np.sign(d))
        return bool(ok and not np.any(self.street.in_junction(s_back, d_back)))

    def put(self, template: Template, s: float, d: float, yaw: float = 0.0) -> None:
        self.rows += _place(self.street, template, s, d, yaw)

    def edges(self, s: float, side: int) -> np.ndarray:
        return self.street.sections.band_edges(np.array([s]), np.array([side]))[0]

    def side(self, sign: float, s_min: float, s_max: float) -> None:
        """Everything on one side (sign -1 = right, +1 = left) between arc lengths s_min and s_max."""
        side = int(sign > 0)
        for name in ("building_line", "greenery", "poles", "sidewalk", "parking"):
            rng = seed_stream(self.seed, f"{name}/{side}")
            getattr(self, name)(rng, sign, side, s_min, s_max)

    def building_line(self, rng: np.random.Generator, sign: float, side: int, s_min: float, s_max: float) -> None:
        """Buildings, or fences / low walls with trees and bushes behind them."""
        s = s_min
        while s < s_max:
            length = rng.uniform(8.0, 25.0)
            mid = s + length / 2
            d0 = self.edges(mid, side)[3]
            if rng.random() < 0.7:
                depth = rng.uniform(8.0, 15.0)
                template = building(rng, length, depth)
                if self.clear(mid, sign * d0, length / 2, sign * d0, sign * (d0 + depth)):
                    self.put(template, mid, sign * d0, 0.0 if sign > 0 else np.pi)
            else:
                template = fence(rng, length) if rng.random() < 0.75 else wall(rng, length)
                plants = [(t, tree(rng) if rng.random() < 0.5 else bush(rng), rng.uniform(1.5, 3.0))
                          for t in np.arange(s + 2.0, s + length - 1.0, self.gap(rng, 4.0, 9.0))]
                if self.clear(mid, sign * (d0 - 0.3), length / 2, sign * (d0 - 0.3), sign * (d0 + 3)):
                    self.put(template, mid, sign * (d0 - 0.3))
                    for t, plant, offset in plants:
                        self.put(plant, t, sign * (d0 + offset))
            s += length + self.gap(rng, 0.0, 8.0)

    def greenery(self, rng: np.random.Generator, sign: float, side: int, s_min: float, s_max: float) -> None:
        """Trees and bushes in the setback strip between the sidewalk and the building line."""
        s = s_min + rng.uniform(0, 10)
        while s < s_max:
            e = self.edges(s, side)
            d = sign * (e[2] + (e[3] - e[2]) * rng.uniform(0.35, 0.65))
            template = tree(rng) if rng.random() < 0.6 else bush(rng)
            if e[3] - e[2] > 2.0 and self.clear(s, d, 1.0, d - sign * 0.8, d + sign * 0.8):
                self.put(template, s, d)
            s += self.gap(rng, 7.0, 16.0)

    def poles(self, rng: np.random.Generator, sign: float, side: int, s_min: float, s_max: float) -> None:
        """Poles (some carrying traffic signs) at the road side of the sidewalk."""
        s = s_min + rng.uniform(0, 15)
        while s < s_max:
            d = sign * (self.edges(s, side)[1] + 0.4)
            template = pole(rng, with_sign=rng.random() < 0.4)
            if self.clear(s, d, 0.3, d, d):
                self.put(template, s, d, 0.0 if sign < 0 else np.pi)
            s += self.gap(rng, 18.0, 40.0)

    def sidewalk(self, rng: np.random.Generator, sign: float, side: int, s_min: float, s_max: float) -> None:
        """People, bicycles and litter bins on the sidewalk."""
        slot = side
        s = s_min + rng.uniform(0, 20)
        while s < s_max:
            e = self.edges(s, side)
            d = sign * (e[1] + (e[2] - e[1]) * rng.uniform(0.45, 0.8))
            roll, yaw = rng.random(), rng.uniform(-0.3, 0.3)
            if self.clear(s, d, 0.9, d, d):
                if roll < 0.5:
                    self.put(person(rng, self.instance(slot)), s, d, yaw)
                elif roll < 0.85:
                    self.put(bicycle(rng, self.instance(slot)), s, d, yaw)
                else:
                    self.put(litter_bin(rng), s, d)
            s += self.gap(rng, 10.0, 35.0)

    def parking(self, rng: np.random.Generator, sign: float, side: int, s_min: float, s_max: float) -> None:
        """Parked cars, trucks and caravans nose to tail in parking bands."""
        slot = 2 + side
        s = s_min
        while s < s_max:
            e = self.edges(s, side)
            if e[1] - e[0] <= 1.5:
                s += 5.0
                continue
            d = sign * (e[0] + (e[1] - e[0]) / 2 + 0.1)
            roll, yaw = rng.random(), float(rng.normal(0, 0.03))
            make = car if roll < 0.75 else truck if roll < 0.85 else other_vehicle if roll < 0.93 else motorcycle
            template = make(rng, 0)
            half = max(abs(r[1][0]) + r[2][0] for r in template)
            if self.clear(s + half, d, half, d, d):
                inst = self.instance(slot)
                self.put([(*r[:5], inst, *r[6:]) for r in template], s + half, d, yaw)
            s += 2 * half + self.gap(rng, 0.7, 6.0)


def build_world(street: Street, seed: int, s_range: tuple[float, float], density: float, duration_s: float,
                ego_s: Callable[[float], float]) -> World:
    """Populate ``street`` between arc lengths ``s_range`` on both sides, and add movers (oncoming cars and
    motorcyclists in the left lane, walkers and bicyclists on the sidewalks) that pass the ego car
    (``ego_s(t)``) within ``duration_s`` (and 40 s beyond). ``density`` scales the number of objects; the
    seed varies it further by 0.75-1.3x."""
    density *= seed_stream(seed, "density").uniform(0.75, 1.3)
    layout = _StreetLayout(street, seed, density)
    for sign in (-1.0, 1.0):
        layout.side(sign, *s_range)
    # Movers meeting the ego car up to MOVER_HORIZON_S after the end are created too: they are far out of
    # sight (> 250 m) until then, and make a longer run repeat a shorter one's frames exactly.
    movers = []
    horizon = duration_s + MOVER_HORIZON_S
    rng = seed_stream(seed, "moving_cars")
    meet = rng.uniform(0.0, 4.0) / density
    lane = float(street.sections.road_half.min()) / 2
    while meet < horizon:
        speed = -rng.uniform(6.0, 12.0)
        s0 = ego_s(meet) - speed * meet + rng.uniform(5.0, 40.0)
        movers.append(Mover(car(rng, layout.instance(4), MOVING_CAR), s0, lane, speed))
        meet += rng.uniform(2.0, 8.0) / density
    rng = seed_stream(seed, "walkers")
    meet = rng.uniform(0.0, 10.0) / density
    while meet < horizon:
        s0 = ego_s(meet) + rng.uniform(10.0, 30.0)
        side = int(rng.integers(0, 2))
        e = street.sections.band_edges(np.array([s0]), np.array([side]))[0]
        d = (1 if side else -1) * (e[1] + (e[2] - e[1]) * 0.3)
        movers.append(Mover(person(rng, layout.instance(4), MOVING_PERSON), s0, d, rng.choice([-1.3, 1.3])))
        meet += rng.uniform(5.0, 15.0) / density
    rng = seed_stream(seed, "motorcyclists")
    meet = rng.uniform(0.0, 20.0) / density
    while meet < horizon:
        speed = -rng.uniform(8.0, 14.0)
        s0 = ego_s(meet) - speed * meet + rng.uniform(5.0, 40.0)
        movers.append(Mover(motorcyclist(rng, layout.instance(4)), s0, lane + rng.uniform(-0.5, 0.5), speed))
        meet += rng.uniform(10.0, 30.0) / density
    rng = seed_stream(seed, "bicyclists")
    meet = rng.uniform(0.0, 15.0) / density
    while meet < horizon:
        s0 = ego_s(meet) + rng.uniform(10.0, 40.0)
        side = int(rng.integers(0, 2))
        e = street.sections.band_edges(np.array([s0]), np.array([side]))[0]
        d = (1 if side else -1) * (e[1] + (e[2] - e[1]) * 0.7)
        movers.append(Mover(bicyclist(rng, layout.instance(4)), s0, d, rng.choice([-4.5, 4.5])))
        meet += rng.uniform(8.0, 20.0) / density
    texture_seed = int(seed_stream(seed, "texture").integers(0, 2**31 - 1))
    return World(street, Primitives.from_rows(layout.rows), movers, texture_seed)

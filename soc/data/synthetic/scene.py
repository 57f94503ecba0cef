"""SynthRVOS scenes: a textured drifting background and 2-4 shapes with a colour, a size and a motion,
drawn back to front; each object's mask is its visible part (empty when it has left, is hidden or has not
appeared yet). Everything is drawn from a ``numpy.random.Generator``, so a scene is a pure function of its
seed.

Long videos (``long_videos=True``, hundreds of frames) use looping motions instead, so that a motion phrase
stays true over the whole video: an object that "moves left" crosses the frame 1.5-2.5 times, leaving on the
left and coming back on the right after a while out of view; one that "turns around" goes back and forth
1.5-3 times; one that "stays still" stays. Objects never "appear later" or "leave the frame" for good.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "SHAPES",
    "COLOURS",
    "SIZES",
    "MOTIONS",
    "LONG_MOTIONS",
    "SceneObject",
    "Scene",
    "sample_scene",
    "render_scene",
]

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
COLOURS = {
    "red": (220, 35, 35),
    "green": (35, 175, 60),
    "blue": (35, 75, 225),
    "yellow": (240, 215, 35),
    "purple": (140, 55, 190),
    "orange": (250, 135, 25),
    "white": (248, 248, 248),
}
SIZES = {"small": 0.10, "large": 0.17}  # radius as a fraction of min(H, W)
MOTIONS = (
    "moves left",
    "moves right",
    "moves up",
    "moves down",
    "stays still",
    "turns around",
    "appears later",
    "leaves the frame",
)
# the motions of long videos; the four "moves" loop through the border (leave, stay out a while, come back)
LONG_MOTIONS = ("moves left", "moves right", "moves up", "moves down", "stays still", "turns around")
_DIRS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class SceneObject:
    """One shape. ``centres`` (T, 2) are (x, y) pixels; ``present`` (T,) says whether it is drawn at all."""

    obj_id: int
    shape: str
    colour: str
    size: str
    motion: str
    radius: float
    angle: float
    centres: np.ndarray
    present: np.ndarray
    direction: Optional[str] = None  # for "leaves the frame": where it exits

    @property
    def motion_set(self) -> set:
        """Every motion phrase that truthfully describes this object (for uniqueness checks)."""
        if self.motion == "leaves the frame":
            return {"leaves the frame", f"moves {self.direction}"}
        if self.motion == "appears later":
            return {"appears later", "stays still"}
        return {self.motion}


@dataclass
class Scene:
    """A rendered video: ``frames`` uint8 (T, H, W, 3), ``index`` uint8 (T, H, W) (0 = background,
    k = object k on top), ``objects`` back to front order in ``depth`` (list of obj ids)."""

    frames: np.ndarray
    index: np.ndarray
    objects: List[SceneObject]
    depth: List[int]
    temporal_pair: Tuple[int, ...] = field(default_factory=tuple)

    def mask(self, obj_id: int) -> np.ndarray:
        """Visible mask of one object, bool (T, H, W)."""
        return self.index == obj_id


def _upsample(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of ``(h0, w0, C)`` to ``(h, w, C)``, pure numpy."""
    ys = np.linspace(0, a.shape[0] - 1, h)
    xs = np.linspace(0, a.shape[1] - 1, w)
    y0 = np.floor(ys).astype(int).clip(0, a.shape[0] - 2)
    x0 = np.floor(xs).astype(int).clip(0, a.shape[1] - 2)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    top = a[y0][:, x0] * (1 - wx) + a[y0][:, x0 + 1] * wx
    bottom = a[y0 + 1][:, x0] * (1 - wx) + a[y0 + 1][:, x0 + 1] * wx
    return top * (1 - wy) + bottom * wy


def _background(rng: np.random.Generator, h: int, w: int, t: int) -> np.ndarray:
    """A textured background (noise plus gradients) drifting slowly: uint8 (T, H, W, 3)."""
    # pixels per frame (x, y); at least 1 px horizontally, so consecutive frames always differ
    velocity = np.array([rng.choice([-1, 1]) * rng.uniform(1.0, 2.0), rng.uniform(-1.0, 1.0)])
    margin = int(np.ceil(np.abs(velocity).max() * t)) + 2
    hh, ww = h + 2 * margin, w + 2 * margin
    grey = rng.uniform(70, 160)
    base = grey + rng.uniform(-20, 20, size=3)
    cell = max(4, min(h, w) // 8)
    grid = (hh // cell + 2, ww // cell + 2)
    luma = rng.normal(0, 1, size=grid + (1,)) * 26  # mostly brightness texture, a little colour
    chroma = rng.normal(0, 1, size=grid + (3,)) * 8
    coarse = _upsample(luma + chroma, hh, ww)
    gy, gx = rng.uniform(-30, 30, size=2)
    grad = np.linspace(-gy, gy, hh)[:, None, None] + np.linspace(-gx, gx, ww)[None, :, None]
    fine = rng.normal(0, 5, size=(hh, ww, 1)) + rng.normal(0, 1.5, size=(hh, ww, 3))  # grain, mostly luma
    texture = np.clip(base + coarse + grad + fine, 0, 255).astype(np.uint8)
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        ox = int(round(margin + velocity[0] * i))
        oy = int(round(margin + velocity[1] * i))
        frames[i] = texture[oy : oy + h, ox : ox + w]
    return frames


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> List[List[Tuple[float, float]]]:
    def pts(radii: Sequence[float], offsets: Sequence[float]):
        return [(cx + rr * np.cos(a + angle), cy + rr * np.sin(a + angle)) for rr, a in zip(radii, offsets)]

    if shape == "square":
        s = 0.85 * r * np.sqrt(2)
        return [pts([s] * 4, [np.pi / 4 + k * np.pi / 2 for k in range(4)])]
    if shape == "triangle":
        return [pts([r] * 3, [-np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)])]
    if shape == "star":
        return [
            pts(
                [r if k % 2 == 0 else 0.45 * r for k in range(10)],
                [-np.pi / 2 + k * np.pi / 5 for k in range(10)],
            )
        ]
    if shape == "cross":
        a, b = r, r / 3
        bars = []
        for rect in ([(-a, -b), (a, -b), (a, b), (-a, b)], [(-b, -a), (b, -a), (b, a), (-b, a)]):
            c, s = np.cos(angle), np.sin(angle)
            bars.append([(cx + x * c - y * s, cy + x * s + y * c) for x, y in rect])
        return bars
    raise ValueError(shape)


def _rasterize(obj: SceneObject, t: int, h: int, w: int) -> np.ndarray:
    """Pixels covered by ``obj`` in frame ``t`` (ignoring occlusion): bool (H, W)."""
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    cx, cy = obj.centres[t]
    r = obj.radius
    if obj.shape in ("circle", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        if obj.shape == "ring":
            q = 0.55 * r
            draw.ellipse([cx - q, cy - q, cx + q, cy + q], fill=0)
    else:
        for poly in _polygon(obj.shape, cx, cy, r, obj.angle):
            draw.polygon(poly, fill=1)
    return np.asarray(img, dtype=bool)


def _trajectory(rng: np.random.Generator, motion: str, r: float, h: int, w: int, t: int):
    """Centres (T, 2), presence (T,) and exit direction for a motion."""
    s = np.linspace(0.0, 1.0, t)
    present = np.ones(t, dtype=bool)
    direction = None
    lo = np.array([r, r])
    hi = np.array([w - r, h - r])
    if motion.startswith("moves") or motion == "turns around":
        name = motion.split()[-1] if motion.startswith("moves") else rng.choice(list(_DIRS))
        d = np.array(_DIRS[name], dtype=float)
        axis = 0 if d[0] != 0 else 1
        extent = hi[axis] - lo[axis]
        frac = (0.35, 0.55) if motion.startswith("moves") else (0.3, 0.45)
        dist = min(rng.uniform(*frac) * (w, h)[axis], extent)
        start = rng.uniform(lo, hi)
        start[axis] = (
            rng.uniform(lo[axis], hi[axis] - dist) if d[axis] > 0 else rng.uniform(lo[axis] + dist, hi[axis])
        )
        profile = s if motion.startswith("moves") else 1 - np.abs(2 * s - 1)
        centres = start[None] + d[None] * dist * profile[:, None]
    elif motion == "stays still":
        centres = np.repeat(rng.uniform(lo, hi)[None], t, axis=0)
    elif motion == "appears later":
        centres = np.repeat(rng.uniform(lo, hi)[None], t, axis=0)
        first = int(np.clip(round(rng.uniform(0.35, 0.6) * t), 1, t - 2))
        present[:first] = False
    elif motion == "leaves the frame":
        direction = str(rng.choice(list(_DIRS)))
        d = np.array(_DIRS[direction], dtype=float)
        start = rng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo))
        axis = 0 if d[0] != 0 else 1
        border = (w, h)[axis] if d[axis] > 0 else 0.0
        gone = abs(border - start[axis]) + r + 2  # distance until fully outside
        exit_frame = max(1.0, rng.uniform(0.5, 0.75) * (t - 1))
        centres = start[None] + d[None] * (gone / exit_frame) * np.arange(t)[:, None]
    else:
        raise ValueError(motion)
    return centres, present, direction


def _looping_trajectory(rng: np.random.Generator, motion: str, r: float, h: int, w: int, t: int):
    """Centres (T, 2), presence (T,) and exit direction (None) for a motion of ``LONG_MOTIONS``.

    "moves <dir>": constant speed along <dir>, 1.5-2.5 laps over the video; a lap is the crossing (the centre
    goes from ``-r`` to ``W + r``, mirrored for left/up) plus a stretch out of view of 20-50 % of it, after
    which the object re-enters on the opposite side. The first frame shows the object whole.
    "turns around": a triangle wave of 1.5-3 periods along a random direction.
    """
    lo = np.array([r, r])
    hi = np.array([w - r, h - r])
    centres = np.repeat(rng.uniform(lo, hi)[None], t, axis=0)
    present = np.ones(t, dtype=bool)
    if motion.startswith("moves"):
        d = np.array(_DIRS[motion.split()[-1]], dtype=float)
        axis = 0 if d[0] != 0 else 1
        extent = (w, h)[axis]
        crossing = extent + 2 * r  # centre positions from -r to extent + r
        lap = crossing * (1 + rng.uniform(0.2, 0.5))
        speed = lap * rng.uniform(1.5, 2.5) / max(t - 1, 1)  # pixels per frame
        start = rng.uniform(r, extent - r)  # where the (forward) centre is at frame 0
        travel = (start + r + speed * np.arange(t)) % lap  # position along the lap, crossing first
        forward = travel - r
        centres[:, axis] = forward if d[axis] > 0 else extent - forward
        present = travel < crossing
    elif motion == "turns around":
        axis = int(rng.integers(2))
        half = rng.uniform(0.3, 0.45) * (hi[axis] - lo[axis]) / 2  # half the swing
        mid = rng.uniform(lo[axis] + half, hi[axis] - half)
        phase = rng.uniform(1.5, 3.0) * np.linspace(0.0, 1.0, t) + rng.uniform()  # periods
        triangle = 4 * np.abs(phase - np.floor(phase + 0.5)) - 1  # in [-1, 1]
        centres[:, axis] = mid + half * triangle
    elif motion != "stays still":
        raise ValueError(f"{motion!r} is not a long-video motion {LONG_MOTIONS}")
    return centres, present, None


def sample_scene(
    rng: np.random.Generator, h: int, w: int, t: int, temporal: bool, long_videos: bool = False
) -> Tuple[List[SceneObject], List[int], Tuple[int, ...]]:
    """Draw 2-4 objects (a look-alike pair differing only in motion when ``temporal``) and a depth order.

    With ``long_videos`` the motions are those of ``LONG_MOTIONS`` (looping) and the first of the pair always
    "moves" somewhere, so it leaves the frame and comes back.
    """
    k = int(rng.integers(2, 5))
    looks: List[Tuple[str, str, str]] = []
    motions: List[str] = []
    pair: Tuple[int, ...] = ()
    pool = LONG_MOTIONS if long_videos else MOTIONS
    if temporal:
        look = (str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS))), str(rng.choice(list(SIZES))))
        if long_videos:
            first = str(rng.choice(LONG_MOTIONS[:4]))
            motions += [first, str(rng.choice([m for m in LONG_MOTIONS if m != first]))]
        else:
            m = rng.choice(len(MOTIONS), size=2, replace=False)
            motions += [MOTIONS[m[0]], MOTIONS[m[1]]]
        looks += [look, look]
        pair = (1, 2)
    while len(looks) < k:  # every other object looks different from all the rest
        look = (str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS))), str(rng.choice(list(SIZES))))
        if look not in looks:
            looks.append(look)
            motions.append(str(rng.choice(pool)))
    trajectory = _looping_trajectory if long_videos else _trajectory
    objects = []
    for i, ((shape, colour, size), motion) in enumerate(zip(looks, motions)):
        r = SIZES[size] * min(h, w)
        centres, present, direction = trajectory(rng, motion, r, h, w, t)
        angle = float(rng.uniform(-0.25, 0.25))
        objects.append(SceneObject(i + 1, shape, colour, size, motion, r, angle, centres, present, direction))
    depth = [int(d) + 1 for d in rng.permutation(k)]  # back to front
    return objects, depth, pair


def render_scene(
    rng: np.random.Generator,
    objects: List[SceneObject],
    depth: List[int],
    h: int,
    w: int,
    t: int,
    pair: Tuple[int, ...] = (),
) -> Scene:
    """Draw the background and the objects back to front. Returns the frames and the visible-id map."""
    frames = _background(rng, h, w, t)
    index = np.zeros((t, h, w), dtype=np.uint8)
    by_id: Dict[int, SceneObject] = {o.obj_id: o for o in objects}
    for i in range(t):
        for obj_id in depth:
            obj = by_id[obj_id]
            if not obj.present[i]:
                continue
            m = _rasterize(obj, i, h, w)
            index[i][m] = obj_id
            frames[i][m] = COLOURS[obj.colour]
    return Scene(frames=frames, index=index, objects=objects, depth=depth, temporal_pair=pair)

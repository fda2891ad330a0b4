"""Scenes with gold annotations: simple coloured shapes on photo-like backgrounds.

Why shapes: every crawl, region and text test needs images whose content is known exactly. A
scene is planned first (classes, colours, sizes, boxes, relations that hold by construction) and
rendered second, so the gold boxes are the drawn geometry, not a guess. Backgrounds are smooth
gradients with blobs, grain and a little blur, so a "natural vs graphic" filter sees a photo and a
detector sees textured objects rather than flat fills. Rendering is numpy + Pillow only and takes a
few milliseconds per image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "pentagon",
    "diamond",
    "cross",
    "arrow",
    "heart",
)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 35),
    "green": (40, 160, 60),
    "blue": (35, 75, 200),
    "yellow": (240, 205, 30),
    "purple": (130, 50, 170),
    "orange": (240, 125, 20),
    "pink": (235, 110, 180),
    "black": (25, 25, 25),
}
SIZES: tuple[str, ...] = ("small", "large")
PREDICATES: tuple[str, ...] = ("left of", "right of", "above", "below", "next to", "on")
# Fraction of the image's shorter side that an object's box spans, per size word.
_SIZE_RANGE: dict[str, tuple[float, float]] = {"small": (0.14, 0.2), "large": (0.3, 0.4)}


@dataclass
class SceneObject:
    """One drawn shape; `box` is xyxy in image pixels and is exactly the drawn extent."""

    label: str
    colour: str
    size: str
    box: tuple[float, float, float, float]

    @property
    def attributes(self) -> list[str]:
        return [self.colour, self.size]


@dataclass
class Relation:
    """`objects[subject]` <predicate> `objects[object]`, true by construction of the layout."""

    subject: int
    predicate: str
    object: int


@dataclass
class Scene:
    """A planned image: its size, the objects in drawing order and the relations between them."""

    width: int
    height: int
    objects: list[SceneObject] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    style: int = 0  # seeds the background; two scenes with equal plans still look different

    def scaled(self, width: int, height: int) -> Scene:
        """The same scene resized to `width`x`height` (boxes scaled), e.g. for a near duplicate."""
        sx, sy = width / self.width, height / self.height
        objs = [
            SceneObject(o.label, o.colour, o.size, (o.box[0] * sx, o.box[1] * sy, o.box[2] * sx, o.box[3] * sy))
            for o in self.objects
        ]
        return Scene(width, height, objs, list(self.relations), self.style)


def relation_holds(subj: tuple[float, ...], obj: tuple[float, ...], predicate: str) -> bool:
    """Whether boxes `subj` and `obj` (xyxy) satisfy `predicate`; the layout's and the tests' rule."""
    sx0, sy0, sx1, sy1 = subj
    ox0, oy0, ox1, oy1 = obj
    scx, scy = (sx0 + sx1) / 2, (sy0 + sy1) / 2
    x_overlap = min(sx1, ox1) - max(sx0, ox0)
    y_overlap = min(sy1, oy1) - max(sy0, oy0)
    if predicate == "left of":
        return sx1 <= ox0 and oy0 <= scy <= oy1
    if predicate == "right of":
        return sx0 >= ox1 and oy0 <= scy <= oy1
    if predicate == "above":
        return sy1 <= oy0 and ox0 <= scx <= ox1
    if predicate == "below":
        return sy0 >= oy1 and ox0 <= scx <= ox1
    if predicate == "next to":
        gap = max(sx0 - ox1, ox0 - sx1)
        side = min(sx1 - sx0, ox1 - ox0)
        return 0 <= gap <= 0.5 * side and y_overlap > 0.5 * min(sy1 - sy0, oy1 - oy0)
    if predicate == "on":
        # Resting on the top edge: the subject's bottom lies in the object's upper third and the
        # subject is centred over the object.
        return ox0 <= scx <= ox1 and oy0 < sy1 <= oy0 + (oy1 - oy0) / 3 and sy0 < oy0 and x_overlap > 0
    raise ValueError(f"unknown predicate {predicate!r}")


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], margin: float) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _place(
    rng: np.random.Generator, w: int, h: int, side: float, anchor: tuple[float, ...], predicate: str
) -> tuple[float, float, float, float]:
    """A box of `side` px for a subject in `predicate` to `anchor`; may fall outside (caller checks)."""
    ax0, ay0, ax1, ay1 = anchor
    acx, acy = (ax0 + ax1) / 2, (ay0 + ay1) / 2
    aside = ax1 - ax0
    jitter = float(rng.uniform(-0.3, 0.3))
    if predicate == "left of":
        x1 = ax0 - float(rng.uniform(0.1, 1.5)) * side
        cy = acy + jitter * (ay1 - ay0)
        return (x1 - side, cy - side / 2, x1, cy + side / 2)
    if predicate == "right of":
        x0 = ax1 + float(rng.uniform(0.1, 1.5)) * side
        cy = acy + jitter * (ay1 - ay0)
        return (x0, cy - side / 2, x0 + side, cy + side / 2)
    if predicate == "above":
        y1 = ay0 - float(rng.uniform(0.1, 1.2)) * side
        cx = acx + jitter * aside
        return (cx - side / 2, y1 - side, cx + side / 2, y1)
    if predicate == "below":
        y0 = ay1 + float(rng.uniform(0.1, 1.2)) * side
        cx = acx + jitter * aside
        return (cx - side / 2, y0, cx + side / 2, y0 + side)
    if predicate == "next to":
        gap = float(rng.uniform(0.05, 0.3)) * min(side, aside)
        cy = acy + 0.15 * jitter * (ay1 - ay0)
        if rng.random() < 0.5:
            return (ax0 - gap - side, cy - side / 2, ax0 - gap, cy + side / 2)
        return (ax1 + gap, cy - side / 2, ax1 + gap + side, cy + side / 2)
    if predicate == "on":
        y1 = ay0 + float(rng.uniform(0.05, 0.25)) * (ay1 - ay0)
        cx = acx + 0.3 * jitter * aside
        return (cx - side / 2, y1 - side, cx + side / 2, y1)
    raise ValueError(f"unknown predicate {predicate!r}")


def plan_scene(
    rng: np.random.Generator,
    width: int,
    height: int,
    n_objects: int | None = None,
    classes: tuple[str, ...] = CLASSES,
) -> Scene:
    """Choose 1-4 objects and a layout in which every listed relation holds.

    Each object after the first is placed relative to an earlier one (its anchor) by rejection
    sampling, so relations are true by construction; an object that cannot be placed is dropped.
    Sometimes a "group" is planned: 2-3 copies of one class and colour in the same relation to the
    same anchor, which is what captions like "two green triangles above a star" need.
    """
    n = int(n_objects if n_objects is not None else rng.choice([1, 2, 2, 3, 3, 4]))
    short = min(width, height)
    scene = Scene(width, height, style=int(rng.integers(0, 2**31 - 1)))
    colours = list(COLOURS)

    def new_object(label: str | None = None, colour: str | None = None, size: str | None = None) -> SceneObject:
        size = size or str(rng.choice(SIZES))
        lo, hi = _SIZE_RANGE[size]
        side = float(rng.uniform(lo, hi)) * short
        return SceneObject(
            label or str(rng.choice(classes)), colour or str(rng.choice(colours)), size, (0.0, 0.0, side, side)
        )

    first = new_object()
    side = first.box[2]
    x0 = float(rng.uniform(0.15 * width, max(0.15 * width, 0.85 * width - side)))
    y0 = float(rng.uniform(0.2 * height, max(0.2 * height, 0.8 * height - side)))
    first.box = (x0, y0, x0 + side, y0 + side)
    scene.objects.append(first)

    group = n >= 3 and rng.random() < 0.3
    group_pred = str(rng.choice(PREDICATES[:5]))
    group_template: SceneObject | None = None
    margin = 0.03 * short
    while len(scene.objects) < n:
        if group:
            if group_template is None:
                group_template = new_object(size="small")
            proto = new_object(group_template.label, group_template.colour, "small")
            choices = [(0, group_pred)]
        else:
            proto = new_object()
            choices = [(int(rng.integers(0, len(scene.objects))), str(rng.choice(PREDICATES))) for _ in range(6)]
        placed = False
        for anchor_idx, pred in choices:
            anchor = scene.objects[anchor_idx]
            side = proto.box[2]
            if pred == "on" and side > 0.8 * (anchor.box[2] - anchor.box[0]):
                continue  # something resting on a smaller thing reads oddly and is hard to draw
            for _ in range(12):
                box = _place(rng, width, height, side, anchor.box, pred)
                if box[0] < 2 or box[1] < 2 or box[2] > width - 2 or box[3] > height - 2:
                    continue
                if not relation_holds(box, anchor.box, pred):
                    continue
                others = [o for i, o in enumerate(scene.objects) if not (pred == "on" and i == anchor_idx)]
                if any(_overlaps(box, o.box, margin) for o in others):
                    continue
                if pred == "on" and any(r.object == anchor_idx and r.predicate == "on" for r in scene.relations):
                    continue
                proto.box = box
                scene.objects.append(proto)
                scene.relations.append(Relation(len(scene.objects) - 1, pred, anchor_idx))
                placed = True
                break
            if placed:
                break
        if not placed:
            if group and len(scene.objects) == 1:
                group = False  # the group did not fit: fall back to independent objects
                continue
            break
    return scene


# --- rendering ----------------------------------------------------------------------------------


def _unit_polygon(label: str) -> list[tuple[float, float]] | None:
    """Vertices in [0, 1]^2 touching all four edges; None for the circle (drawn as an ellipse)."""
    if label == "circle":
        return None
    if label == "square":
        return [(0, 0), (1, 0), (1, 1), (0, 1)]
    if label == "triangle":
        return [(0.5, 0), (1, 1), (0, 1)]
    if label == "diamond":
        return [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)]
    if label == "cross":
        a, b = 0.33, 0.67
        return [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)]
    if label == "arrow":
        return [(0, 0.35), (0.55, 0.35), (0.55, 0), (1, 0.5), (0.55, 1), (0.55, 0.65), (0, 0.65)]
    if label in ("star", "hexagon", "pentagon"):
        k, step = {"star": (10, 5), "hexagon": (6, 6), "pentagon": (5, 5)}[label]
        pts = []
        for i in range(k):
            r = 0.42 if (label == "star" and i % 2) else 1.0
            t = -math.pi / 2 + 2 * math.pi * i / k
            pts.append((r * math.cos(t), r * math.sin(t)))
        return _normalise(pts)
    if label == "heart":
        ts = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        xs = 16 * np.sin(ts) ** 3
        ys = -(13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts))
        return _normalise(list(zip(xs.tolist(), ys.tolist(), strict=True)))
    raise ValueError(f"unknown shape {label!r}")


def _normalise(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, y0, dx, dy = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    return [((x - x0) / dx, (y - y0) / dy) for x, y in pts]


def shape_polygon(label: str, box: tuple[float, ...]) -> list[tuple[float, float]] | None:
    """The shape's outline in pixels, scaled into `box`; None for the circle."""
    unit = _unit_polygon(label)
    if unit is None:
        return None
    x0, y0, x1, y1 = box
    return [(x0 + u * (x1 - x0), y0 + v * (y1 - y0)) for u, v in unit]


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Muted two-colour gradient with soft blobs and a light falloff, as a full-size RGB image.

    Computed on a 24-px-wide field and upsampled bilinearly: smooth, and cheap at any size.
    """
    c0 = rng.uniform(90, 220, size=3).astype(np.float32)
    c1 = np.clip(c0 + rng.uniform(-70, 70, size=3), 40, 235).astype(np.float32)
    # Desaturate so objects stand out, as against a photographer's backdrop.
    c0 = 0.55 * c0 + 0.45 * c0.mean()
    c1 = 0.55 * c1 + 0.45 * c1.mean()
    angle = float(rng.uniform(0, 2 * math.pi))
    gw, gh = 24, max(4, int(round(24 * height / width)))
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    t = (xx / gw) * math.cos(angle) + (yy / gh) * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    blobs = rng.normal(0, 1, size=(gh // 3 + 2, gw // 3 + 2)).astype(np.float32)
    blob_img = Image.fromarray(blobs).resize((gw, gh), Image.Resampling.BICUBIC)
    t = t + 0.3 * np.asarray(blob_img, dtype=np.float32)
    low = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    light = 1 + 0.08 * float(rng.uniform(-1, 1)) * np.linspace(-1, 1, gh, dtype=np.float32)[:, None, None]
    low_img = Image.fromarray(np.clip(low * light, 0, 255).astype(np.uint8), "RGB")
    return low_img.resize((width, height), Image.Resampling.BILINEAR)


@functools.cache
def _grain_tile() -> np.ndarray:
    """512x512 RGB sensor grain centred on 128 (std 7, in 2x2 clumps), made once per process."""
    g = np.random.default_rng(20240101).normal(128, 7, size=(256, 256, 3))
    return np.clip(g, 0, 255).astype(np.uint8).repeat(2, axis=0).repeat(2, axis=1)


def _grain(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """An `h`x`w` window of the grain tile at a random offset: per-image noise without per-image RNG cost."""
    tile = _grain_tile()
    th, tw = tile.shape[:2]
    oy, ox = int(rng.integers(0, th)), int(rng.integers(0, tw))
    return tile[(np.arange(h) + oy) % th][:, (np.arange(w) + ox) % tw]


def render_scene(scene: Scene, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw `scene` as an RGB image: background, shapes with soft shadows, sensor grain, blur.

    Full-resolution work is kept to Pillow's C loops (draw, composite, add, one box blur); the
    shadow mask is drawn at quarter resolution and upsampled, which also softens it.
    """
    rng = rng if rng is not None else np.random.default_rng(scene.style)
    w, h = scene.width, scene.height
    base = _background(rng, w, h)
    q = 4
    shadow = Image.new("L", (max(1, w // q), max(1, h // q)), 0)
    sdraw = ImageDraw.Draw(shadow)
    offset = 0.015 * min(w, h)
    for obj in scene.objects:
        box = tuple((v + offset) / q for v in obj.box)
        poly = shape_polygon(obj.label, box)
        if poly is None:
            sdraw.ellipse(box, fill=90)
        else:
            sdraw.polygon(poly, fill=90)
    shadow = shadow.filter(ImageFilter.BoxBlur(1)).resize((w, h), Image.Resampling.BILINEAR)
    base = Image.composite(Image.new("RGB", (w, h), (20, 20, 20)), base, shadow)
    draw = ImageDraw.Draw(base)
    for obj in scene.objects:
        colour = np.array(COLOURS[obj.colour], dtype=np.float32) + rng.uniform(-12, 12, size=3)
        fill = tuple(int(v) for v in np.clip(colour, 0, 255))
        poly = shape_polygon(obj.label, obj.box)
        if poly is None:
            draw.ellipse(obj.box, fill=fill)
        else:
            draw.polygon(poly, fill=fill)
    img = ImageChops.add(base, Image.fromarray(_grain(rng, w, h), "RGB"), scale=1.0, offset=-128)
    return img.filter(ImageFilter.BoxBlur(0.6))

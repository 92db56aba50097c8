"""Procedurally drawn faces showing the seven basic expressions: ferbench's built-in dataset.

Every image is drawn from scratch with OpenCV, so the dataset needs no files and no downloads, and the
same arguments always give byte-identical arrays. The generative model, top to bottom:

1. **Identity** (one per subject): face width, jaw and chin, skin tone, eye spacing and size, iris colour,
   brow thickness and arch, nose size, mouth width and lip thickness, hairstyle and hair colour, and
   sometimes glasses or a beard. Each subject also has a *resting face*: small personal offsets of every
   facial action, so that one person's neutral looks a little sad and another's a little cross.
2. **Expression**: a handful of FACS-like action units (brow raise, inner-brow raise, brow knit, lid raise,
   squint, cheek raise, nose wrinkle, upper-lip raise, sneer, smile, lip stretch, lip press, jaw drop).
   Each class has a prototype; an image shows ``resting face + intensity * prototype + jitter``, with a
   per-image intensity. Weak expressions land close to the resting face, which is what makes the task
   genuinely hard (fear vs surprise, anger vs disgust, sadness vs neutral).
3. **Pose**: yaw (the face is a cylinder: inner features slide sideways and the far side foreshortens),
   roll, scale and shift.
4. **Drawing**: anti-aliased polygons and polylines at ``SUPERSAMPLE`` times the output size, then an
   area-average downscale, so that sub-pixel changes (a lid 1/3 pixel lower) still show.
5. **Camera**: lighting (ambient level and a directional gradient), contrast, blur and sensor noise.

Two styles stand in for two real datasets (a domain pair for cross-dataset protocols): ``"studio"``
(colour, bright even light, plain backdrop, near-frontal) and ``"snapshot"`` (grey, dark, low contrast,
side light, cluttered background, stronger pose, more blur and noise). The styles draw different people.

Coordinates: a face is drawn in face-local units ``(u, v)``: ``u`` runs from -1 (left edge of the face)
to +1 (right edge), ``v`` from -1 (top of the skull) to +1 (chin); negative ``v`` offsets move a feature
up. :class:`Painter` maps them to canvas pixels.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass, fields

import cv2
import numpy as np

from ferbench.data import BASIC_EXPRESSIONS, Dataset
from ferbench.errors import DatasetError

STYLES: tuple[str, ...] = ("studio", "snapshot")
"""The visual styles; the position in this tuple is part of every seed, so the styles draw different people."""

DEFAULT_TRAIN_SUBJECTS = 50
DEFAULT_TEST_SUBJECTS = 15
DEFAULT_PER_CLASS = 7
DEFAULT_IMAGE_SIZE = 48
"""50 x 7 x 7 = 2,450 training and 15 x 7 x 7 = 735 test images per style, in a few seconds."""

SUPERSAMPLE = 4
"""Faces are drawn this many times larger than the output, then area-averaged down."""

# Entropy tags that keep the random streams of identities and images apart.
_IDENTITY, _IMAGE = 0, 1
_SPLITS = ("train", "test")


# --- expression -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Expression:
    """Facial actions, each roughly one FACS action unit; 0 is relaxed, 1 a strong action."""

    brow_raise: float = 0.0    # AU1+2: whole brows up (negative: brows lowered)
    brow_inner: float = 0.0    # AU1: inner ends up (the oblique "worried" brow)
    brow_knit: float = 0.0     # AU4: inner ends down and together
    lid_raise: float = 0.0     # AU5: upper lids up, eyes wide (negative: drooping lids)
    squint: float = 0.0        # AU7: lower lids up, eyes narrowed
    cheek_raise: float = 0.0   # AU6: cheeks push up under the eyes
    nose_wrinkle: float = 0.0  # AU9
    lip_raise: float = 0.0     # AU10: upper lip up, showing teeth
    sneer: float = 0.0         # one-sided AU10/AU14
    smile: float = 0.0         # AU12: corners up (negative: AU15, corners down)
    lip_stretch: float = 0.0   # AU20: lips pulled wide (negative: narrowed, rounded)
    lip_press: float = 0.0     # AU24: lips pressed thin
    jaw_drop: float = 0.0      # AU26/27: mouth open

    @classmethod
    def size(cls) -> int:
        return len(fields(cls))

    @classmethod
    def from_vector(cls, values: np.ndarray) -> "Expression":
        return cls(*(float(v) for v in values))

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, f.name) for f in fields(self)])


PROTOTYPES: dict[str, Expression] = {
    # Brows down and together, a hard stare (upper lids up, lower lids tight), lips pressed.
    "anger": Expression(brow_raise=-0.5, brow_knit=1.0, lid_raise=0.3, squint=0.6, lip_press=1.0,
                        smile=-0.15, lip_stretch=-0.15),
    # Nose wrinkled, upper lip raised (more on one side), brows lowered, lower lids up.
    "disgust": Expression(brow_raise=-0.3, brow_knit=0.45, squint=0.45, cheek_raise=0.35,
                          nose_wrinkle=1.0, lip_raise=1.0, sneer=0.8, smile=-0.35, jaw_drop=0.08),
    # Brows raised *and* drawn together, eyes wide, lips stretched sideways, mouth a little open.
    "fear": Expression(brow_raise=0.55, brow_inner=0.7, brow_knit=0.55, lid_raise=1.0,
                       lip_stretch=1.0, jaw_drop=0.4, smile=-0.25),
    # Corners up, cheeks raised so the eyes narrow from below, teeth showing.
    "happiness": Expression(smile=1.0, cheek_raise=1.0, squint=0.45, lip_stretch=0.45, jaw_drop=0.3,
                            lip_raise=0.25),
    "neutral": Expression(),
    # Inner brows up, lids drooping, corners down.
    "sadness": Expression(brow_raise=-0.15, brow_inner=1.0, brow_knit=0.35, lid_raise=-0.45,
                          smile=-0.9, lip_stretch=-0.1, lip_press=0.25),
    # Brows high, eyes wide, jaw dropped into an O.
    "surprise": Expression(brow_raise=1.0, lid_raise=1.0, jaw_drop=1.0, lip_stretch=-0.5),
}
assert tuple(PROTOTYPES) == BASIC_EXPRESSIONS

# How far a person's resting face and a single image stray from the prototypes (action-unit units).
RESTING_SPREAD = 0.12
IMAGE_JITTER = 0.07


# --- identity ---------------------------------------------------------------------------------------

SKIN_TONES = np.array([  # RGB, light to dark; a subject's tone is a blend of two neighbours
    (250, 222, 200), (236, 196, 160), (214, 164, 120), (176, 120, 80), (128, 84, 56), (88, 58, 40),
], dtype=np.float32)
HAIR_COLOURS = np.array([  # black, dark brown, brown, auburn, blond, grey
    (28, 22, 20), (58, 38, 28), (102, 68, 44), (132, 62, 36), (206, 172, 110), (168, 164, 160),
], dtype=np.float32)
IRIS_COLOURS = np.array([(70, 45, 25), (40, 28, 20), (70, 110, 160), (80, 110, 70), (110, 115, 120)],
                        dtype=np.float32)
HAIRSTYLES = ("short", "long", "fringe", "bald", "bun")


@dataclass(frozen=True, eq=False)
class Identity:
    """What makes a subject look like themselves, in face-local units (see the module docstring)."""

    face_width: float      # half-width of the face relative to a typical face
    jaw_width: float       # width of the jaw line at the chin, relative to the cheek width
    chin_length: float     # stretch of the lower face
    skin: np.ndarray       # RGB
    eye_x: float           # half the distance between the eye centres
    eye_y: float
    eye_width: float       # half-width of one eye
    eye_height: float      # half-height of a relaxed open eye
    iris: np.ndarray       # RGB
    brow_gap: float        # how far the brows sit above the eyes
    brow_thickness: float
    brow_arch: float
    nose_y: float
    nose_width: float
    mouth_y: float
    mouth_width: float
    lip_thickness: float
    hairstyle: str
    hair: np.ndarray       # RGB
    hairline: float        # v of the hairline at the centre
    hair_volume: float     # how far the hair stands out from the skull
    glasses: bool
    beard: bool
    clothing: np.ndarray   # RGB
    backdrop: np.ndarray   # RGB, the studio backdrop (one per sitting)
    sneer_side: float      # -1 or +1: the side this person's upper lip lifts on
    age_lines: float       # how visible the folds are at rest, 0..1
    expressiveness: float  # how far this person moves their face at a given intensity
    resting: Expression    # the person's own neutral face


def sample_identity(rng: np.random.Generator) -> Identity:
    """A new person: every trait drawn independently from a plausible range."""
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    low = int(tone)
    skin = SKIN_TONES[low] + (tone - low) * (SKIN_TONES[min(low + 1, len(SKIN_TONES) - 1)] - SKIN_TONES[low])
    skin = np.clip(skin * rng.uniform(0.94, 1.04, 3), 0, 255)
    hair = np.clip(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15), 0, 255)
    return Identity(
        face_width=rng.uniform(0.86, 1.08),
        jaw_width=rng.uniform(0.35, 0.7),
        chin_length=rng.uniform(0.92, 1.1),
        skin=skin,
        eye_x=rng.uniform(0.36, 0.46),
        eye_y=rng.uniform(-0.1, 0.0),
        eye_width=rng.uniform(0.16, 0.21),
        eye_height=rng.uniform(0.075, 0.1),
        iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))],
        brow_gap=rng.uniform(0.16, 0.22),
        brow_thickness=rng.uniform(0.035, 0.065),
        brow_arch=rng.uniform(0.0, 0.05),
        nose_y=rng.uniform(0.28, 0.36),
        nose_width=rng.uniform(0.13, 0.19),
        mouth_y=rng.uniform(0.55, 0.62),
        mouth_width=rng.uniform(0.26, 0.34),
        lip_thickness=rng.uniform(0.035, 0.06),
        hairstyle=HAIRSTYLES[rng.choice(len(HAIRSTYLES), p=[0.35, 0.3, 0.15, 0.1, 0.1])],
        hair=hair,
        hairline=rng.uniform(-0.72, -0.58),
        hair_volume=rng.uniform(1.04, 1.16),
        glasses=bool(rng.random() < 0.2),
        beard=bool(rng.random() < 0.15),
        clothing=rng.uniform(20, 230, 3),
        backdrop=rng.uniform(185, 240) + rng.uniform(-12, 12, 3),
        sneer_side=float(rng.choice([-1.0, 1.0])),
        age_lines=rng.uniform(0.0, 0.45),
        expressiveness=rng.uniform(0.75, 1.2),
        # A resting face: everyone's neutral leans a little towards some expression.
        resting=Expression.from_vector(rng.normal(0.0, RESTING_SPREAD, Expression.size())),
    )


def expression_for(identity: Identity, label: str, intensity: float, rng: np.random.Generator) -> Expression:
    """The actions one image shows: the person's resting face plus a scaled prototype plus jitter."""
    prototype = PROTOTYPES[label].vector()
    values = (identity.resting.vector() + intensity * identity.expressiveness * prototype
              + rng.normal(0.0, IMAGE_JITTER, prototype.shape))
    return Expression.from_vector(np.clip(values, -1.2, 1.4))


# --- styles -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Style:
    """How one "dataset" photographs its faces: ranges the per-image pose and camera are drawn from."""

    colour: bool
    clutter: bool          # a busy background instead of a plain backdrop
    side_lit: bool         # light from the left or right rather than from any direction
    yaw: float             # radians, +-
    roll: float            # degrees, +-
    scale: tuple[float, float]
    shift: float           # fraction of the image, +-
    ambient: tuple[float, float]
    light_gradient: tuple[float, float]  # strength of the directional light ramp across the image
    contrast: tuple[float, float]
    blur: tuple[float, float]        # Gaussian sigma in output pixels
    noise: tuple[float, float]       # Gaussian sigma in grey levels
    intensity: tuple[float, float]   # expression intensity


STYLE_SETTINGS: dict[str, Style] = {
    # Colour portraits: bright even light, a plain backdrop, people sitting still and facing the camera.
    "studio": Style(
        colour=True, clutter=False, side_lit=False,
        yaw=0.15, roll=5.0, scale=(0.95, 1.05), shift=0.03,
        ambient=(0.95, 1.05), light_gradient=(0.0, 0.12), contrast=(0.95, 1.05),
        blur=(0.0, 0.35), noise=(1.0, 3.0), intensity=(0.3, 1.0),
    ),
    # Grey snapshots: dimmer and flatter, lit from one side, a busy room behind, heads turned and tilted,
    # softer focus and more sensor noise.
    "snapshot": Style(
        colour=False, clutter=True, side_lit=True,
        yaw=0.3, roll=8.0, scale=(0.88, 1.08), shift=0.05,
        ambient=(0.65, 0.95), light_gradient=(0.2, 0.45), contrast=(0.7, 0.9),
        blur=(0.3, 0.7), noise=(2.0, 4.0), intensity=(0.3, 1.0),
    ),
}
assert tuple(STYLE_SETTINGS) == STYLES


# --- drawing ----------------------------------------------------------------------------------------

_SHIFT = 4                 # OpenCV sub-pixel bits: coordinates are passed as integers * 16
_FIXED = 1 << _SHIFT
_CYLINDER_DEPTH = 0.8      # how far the middle of the face stands out, in half-widths


def _mix(colour, other, amount: float) -> tuple[float, ...]:
    """``colour`` moved ``amount`` (0..1) of the way towards ``other``, as an OpenCV colour tuple."""
    amount = min(max(float(amount), 0.0), 1.0)
    return tuple((1 - amount) * float(c) + amount * float(o) for c, o in zip(colour, other))


def _shade(colour, factor: float) -> tuple[float, ...]:
    """``colour`` darkened (factor < 1) or lightened, as an OpenCV colour tuple."""
    return tuple(min(max(float(c) * factor, 0.0), 255.0) for c in colour)


def _rgb(colour) -> tuple[float, ...]:
    return tuple(float(c) for c in colour)


class Painter:
    """Draws shapes given in face-local ``(u, v)`` units onto the canvas, through the head's pose.

    Points on the face surface go through the yaw model (a vertical cylinder: a point at ``u`` sits at
    angle ``asin(u)`` and turns with the head, so inner features slide and the far side foreshortens);
    points on the silhouette (head outline, hair, ears) do not, since a turning head keeps its outline.
    Roll, scale and shift apply to everything.

    Shapes are collected first and drawn in order by :meth:`paint`, which projects all of a face's points
    in one vectorised step (projecting each small shape on its own costs more than drawing it).
    """

    def __init__(self, canvas: np.ndarray, centre: tuple[float, float], half_width: float,
                 half_height: float, yaw: float, roll_degrees: float):
        self.canvas = canvas
        self.half_height = half_height
        self.sin_yaw, self.cos_yaw = math.sin(yaw), math.cos(yaw)
        # (u, v) -> canvas pixels: scale to the face size, rotate by roll, move to the centre; the
        # factor _FIXED gives OpenCV sub-pixel coordinates.
        roll = math.radians(roll_degrees)
        cos_roll, sin_roll = math.cos(roll), math.sin(roll)
        self.to_pixels = _FIXED * np.array([[half_width * cos_roll, half_width * sin_roll],
                                            [-half_height * sin_roll, half_height * cos_roll]])
        self.offset = _FIXED * np.asarray(centre, dtype=np.float64)
        self.shapes: list[tuple] = []   # (points, colour, line width in pixels or 0 to fill, closed)
        self.u: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.depth: list[float] = []    # per shape: surface depth, or NaN for silhouette shapes

    def thickness(self, size: float) -> int:
        """A line width given in face-local v units, in whole canvas pixels (at least 1)."""
        return max(1, int(round(size * self.half_height)))

    def fill(self, u, v, colour, surface: bool = True, depth: float = 0.0) -> None:
        self._add(u, v, colour, 0, False, surface, depth)

    def line(self, u, v, colour, width: float, surface: bool = True, depth: float = 0.0,
             closed: bool = False) -> None:
        self._add(u, v, colour, self.thickness(width), closed, surface, depth)

    def ellipse(self, u0, v0, ru, rv, colour, surface: bool = True, depth: float = 0.0,
                n: int = 24) -> None:
        t = _steps(0, 2 * np.pi, n, endpoint=False)
        self.fill(u0 + ru * np.cos(t), v0 + rv * np.sin(t), colour, surface, depth)

    def _add(self, u, v, colour, width: int, closed: bool, surface: bool, depth: float) -> None:
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        self.u.append(u)
        self.v.append(v if v.size == u.size else np.full(u.size, v[0]))
        self.depth.append(depth if surface else math.nan)
        self.shapes.append((u.size, colour, width, closed))

    def paint(self) -> None:
        """Project every collected point to pixels and draw the shapes in the order they were added."""
        counts = [shape[0] for shape in self.shapes]
        u, v = np.concatenate(self.u), np.concatenate(self.v)
        depth = np.repeat(self.depth, counts)
        surface = ~np.isnan(depth)
        z = _CYLINDER_DEPTH * np.sqrt(np.maximum(1.0 - u * u, 0.0)) + depth
        turned = u * self.cos_yaw + z * self.sin_yaw
        points = np.stack([np.where(surface, turned, u), v], axis=1)
        pixels = np.rint(points @ self.to_pixels + self.offset).astype(np.int32)
        for (_, colour, width, closed), shape in zip(self.shapes, np.split(pixels, np.cumsum(counts)[:-1])):
            if width:
                cv2.polylines(self.canvas, [shape], closed, colour, width, cv2.LINE_AA, _SHIFT)
            else:
                cv2.fillPoly(self.canvas, [shape], colour, cv2.LINE_AA, _SHIFT)
        self.shapes, self.u, self.v, self.depth = [], [], [], []


@functools.lru_cache(maxsize=None)
def _steps(start: float, stop: float, n: int, endpoint: bool = True) -> np.ndarray:
    """``np.linspace``, cached: the same few sample grids are used for every face (read-only)."""
    steps = np.linspace(start, stop, n, endpoint=endpoint)
    steps.flags.writeable = False
    return steps


def _band(u, upper, lower) -> tuple[np.ndarray, np.ndarray]:
    """The closed outline of the region between two curves sampled at the same ``u``."""
    return np.concatenate([u, u[::-1]]), np.concatenate([upper, lower[::-1]])


def draw_background(canvas: np.ndarray, identity: Identity, style: Style, rng: np.random.Generator) -> None:
    size = canvas.shape[0]
    if not style.clutter:
        np.copyto(canvas, _studio_backdrop(tuple(identity.backdrop), size))
        return
    # A room: a wall colour, then furniture, frames, windows and door edges in random places.
    wall = np.clip(rng.uniform(40, 200) * rng.uniform(0.8, 1.2, 3), 0, 255)
    cv2.rectangle(canvas, (0, 0), (size, size), _rgb(wall), -1)
    for _ in range(int(rng.integers(6, 13))):
        colour = _rgb(rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        if kind == 0:
            w, h = rng.uniform(0.1, 0.6, 2) * size
            cv2.rectangle(canvas, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour, -1, cv2.LINE_AA)
        elif kind == 1:
            x1, y1 = rng.uniform(-0.2, 1.2, 2) * size
            cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), colour,
                     int(rng.integers(2, 4 * SUPERSAMPLE)), cv2.LINE_AA)
        else:
            cv2.circle(canvas, (int(x0), int(y0)), int(rng.uniform(0.05, 0.3) * size), colour, -1,
                       cv2.LINE_AA)


@functools.lru_cache(maxsize=4)
def _studio_backdrop(colour: tuple[float, float, float], size: int) -> np.ndarray:
    """A flat backdrop, a little darker towards the bottom; one per subject, so it is made once."""
    ramp = np.linspace(1.0, 0.9, size, dtype=np.float32)[:, None, None]
    backdrop = np.clip(np.asarray(colour, np.float32) * ramp, 0, 255).astype(np.uint8)
    backdrop = np.ascontiguousarray(np.broadcast_to(backdrop, (size, size, 3)))
    backdrop.flags.writeable = False
    return backdrop


def face_outline(identity: Identity, jaw_drop: float, n: int = 72) -> tuple[np.ndarray, np.ndarray]:
    """The face silhouette: an ellipse above the cheekbones, tapering to the jaw and chin below.

    An open jaw lengthens the lower face, which is one of the strongest cues for surprise.
    """
    t = _steps(0, 2 * np.pi, n, endpoint=False)
    u, v = np.sin(t), -np.cos(t)
    lower = v > 0
    chin = identity.chin_length * (1.0 + 0.14 * max(jaw_drop, 0.0))
    taper = 1.0 - (1.0 - identity.jaw_width) * v[lower] ** 2.5
    u[lower] *= taper
    v[lower] *= chin
    return u, v


def draw_head(p: Painter, identity: Identity, e: Expression) -> None:
    skin = identity.skin
    # Neck and shoulders, then long hair behind the head, then the ears (all behind the face).
    p.fill([-0.42, 0.42, 0.5, -0.5], [0.5, 0.5, 1.6, 1.6], _shade(skin, 0.82), surface=False)
    t = _steps(np.pi, 2 * np.pi, 24)
    p.fill(1.9 * np.cos(t), 2.3 + 0.8 * np.sin(t), _rgb(identity.clothing), surface=False)
    hair = _rgb(identity.hair)
    if identity.hairstyle == "long":
        t = _steps(np.pi, 2 * np.pi, 30)
        u = np.concatenate([identity.hair_volume * 1.05 * np.cos(t), [1.15, -1.15]])
        v = np.concatenate([identity.hair_volume * 1.02 * np.sin(t) - 0.05, [1.2, 1.2]])
        p.fill(u, v, hair, surface=False)
    elif identity.hairstyle == "bun":
        p.ellipse(0.0, -1.12, 0.32, 0.22, hair, surface=False)
    for side in (-1.0, 1.0):
        # The ear on the side the face turns away from shows more.
        reveal = 1.0 - 0.8 * side * p.sin_yaw
        p.ellipse(side * (0.97 + 0.05 * reveal), 0.1, 0.11 * reveal, 0.2, _shade(skin, 0.9), surface=False)

    u, v = face_outline(identity, e.jaw_drop)
    p.fill(u, v, _rgb(skin), surface=False)

    draw_hair_cap(p, identity)


def draw_hair_cap(p: Painter, identity: Identity) -> None:
    """The hair over the top of the head, down to the hairline (a fringe comes lower)."""
    hair = _rgb(identity.hair)
    if identity.hairstyle == "bald":
        # Only a fringe of short hair around the sides, above the ears.
        for side in (-1.0, 1.0):
            t = _steps(0.3, 1.2, 10)
            u = side * np.concatenate([np.sin(t) * 1.02, np.sin(t[::-1]) * 0.9])
            v = np.concatenate([-np.cos(t) * 1.0, -np.cos(t[::-1]) * 0.88])
            p.fill(u, v, _shade(identity.hair, 0.95), surface=False)
        return
    fringe = identity.hairstyle == "fringe"
    hairline = identity.hairline + (0.2 if fringe else 0.0)
    # Over the skull: an arc a little outside the head outline, from one temple to the other ...
    t = _steps(-1.5, 1.5, 40)
    outer_u = identity.hair_volume * np.sin(t)
    outer_v = -identity.hair_volume * np.cos(t) - 0.02
    # ... and back along the hairline: flat across the forehead, dropping at the temples (less so
    # for a fringe, which is cut straight).
    inner_u = _steps(1.0, -1.0, 25)
    temple = -0.15
    inner_v = hairline + (temple - hairline) * np.abs(inner_u) ** (6.0 if fringe else 3.0)
    p.fill(np.concatenate([outer_u, inner_u]), np.concatenate([outer_v, inner_v]), hair, surface=False)


def draw_folds(p: Painter, identity: Identity, e: Expression) -> None:
    """Skin folds that actions create: forehead lines, frown lines, nose wrinkles, nasolabial folds."""
    skin = identity.skin
    brow_v = identity.eye_y - identity.brow_gap
    # Forehead lines when the brows go up (across the whole forehead for AU1+2, the middle for AU1).
    lift = max(e.brow_raise, 0.0) + 0.5 * max(e.brow_inner, 0.0)
    if lift > 0.25:
        span = 0.45 if e.brow_raise >= e.brow_inner else 0.25
        u = _steps(-span, span, 12)
        for k in range(3):
            v = brow_v - 0.2 - 0.08 * k - 0.03 * (1 - (u / span) ** 2)
            p.line(u, v, _shade(skin, 1 - 0.45 * min(lift - 0.25, 0.8)), 0.018)
    # Vertical frown lines between knitted brows.
    if e.brow_knit > 0.3:
        for side in (-1.0, 1.0):
            p.line([side * 0.06, side * 0.05], [brow_v - 0.02, brow_v + 0.1],
                   _shade(skin, 1 - 0.5 * min(e.brow_knit - 0.3, 0.8)), 0.02)
    # Horizontal wrinkles across the bridge of the nose (disgust).
    if e.nose_wrinkle > 0.2:
        for k in range(3):
            u = _steps(-0.1, 0.1, 6)
            v = identity.eye_y + 0.08 + 0.05 * k + 0.2 * u ** 2
            p.line(u, v, _shade(skin, 1 - 0.5 * min(e.nose_wrinkle, 1.0)), 0.018, depth=0.15)
    # Nasolabial folds from the nose wings to beyond the mouth corners: deep with a smile or a sneer.
    fold = (0.4 * identity.age_lines + 0.8 * max(e.smile, 0) + 0.7 * max(e.nose_wrinkle, 0)
            + 0.5 * max(e.lip_raise, 0))
    if fold > 0.12:
        for side in (-1.0, 1.0):
            top = identity.nose_width + 0.05
            bottom = identity.mouth_width * (1 + 0.25 * e.lip_stretch + 0.15 * max(e.smile, 0)) + 0.07
            s = _steps(0, 1, 8)
            u = side * (top + (bottom - top) * s + 0.04 * np.sin(np.pi * s))
            v = identity.nose_y - 0.04 + (identity.mouth_y + 0.08 - identity.nose_y) * s
            p.line(u, v, _shade(skin, 1 - 0.45 * min(fold, 1.0)), 0.022)


def draw_eye(p: Painter, identity: Identity, e: Expression, side: float) -> None:
    """One eye: white, iris and pupil, then the lids as skin drawn over them, then the lid lines."""
    skin = identity.skin
    cu, cv = side * identity.eye_x, identity.eye_y
    w, h = identity.eye_width, identity.eye_height
    # How far the lid margins sit above and below the eye's centre line.
    upper = h * (1.0 + 0.9 * e.lid_raise - 0.35 * e.squint - 0.25 * max(e.cheek_raise, 0))
    lower = h * 0.8 * (1.0 - 0.8 * e.squint - 0.45 * max(e.cheek_raise, 0) + 0.35 * max(e.lid_raise, 0))
    upper, lower = max(upper, 0.12 * h), max(lower, 0.05 * h)
    s = _steps(-1.0, 1.0, 15)
    u = cu + w * s
    # The upper lid peaks a little towards the inner corner; the lower lid is flatter.
    profile = (1.0 - s * s) * (1.0 - 0.15 * side * s)
    upper_lid = cv - upper * profile
    lower_lid = cv + lower * (1.0 - s * s) ** 1.3
    p.fill(*_band(u, upper_lid, lower_lid), (245.0, 245.0, 240.0))
    iris_r = 0.55 * w
    p.ellipse(cu, cv, iris_r * 0.9, iris_r, _rgb(identity.iris), n=20)
    p.ellipse(cu, cv, iris_r * 0.42, iris_r * 0.46, (12.0, 10.0, 10.0), n=14)
    # Skin above the upper lid and below the lower lid hides the part of the iris the lids cover.
    above = np.full_like(u, cv - max(0.75 * w, upper + 0.02))
    below = np.full_like(u, cv + max(0.75 * w, lower + 0.02))
    p.fill(*_band(u, above, upper_lid), _rgb(skin))
    p.fill(*_band(u, lower_lid, below), _rgb(skin))
    # The lid lines: a dark upper margin with lashes, a faint lower one, and a crease above.
    p.line(u, upper_lid, (25.0, 20.0, 20.0), 0.028)
    p.line(u, lower_lid, _shade(skin, 0.7), 0.012)
    p.line(u[2:-2], upper_lid[2:-2] - 0.045 - 0.02 * max(e.lid_raise, 0), _shade(skin, 0.78), 0.012)
    # Raised cheeks bunch up under the eye.
    if e.cheek_raise > 0.25:
        inner = slice(3, -1)
        p.line(u[inner], lower_lid[inner] + 0.05 + 0.02 * (1 - s[inner] ** 2),
               _shade(skin, 1 - 0.35 * min(e.cheek_raise, 1)), 0.018)


def draw_brow(p: Painter, identity: Identity, e: Expression, side: float) -> None:
    """One eyebrow, inner end to outer end, thick at the head and tapering to the tail."""
    base = identity.eye_y - identity.brow_gap
    inner_u = identity.eye_x - identity.eye_width * 0.95 - 0.07 * e.brow_knit
    outer_u = identity.eye_x + identity.eye_width * 1.25
    s = _steps(0.0, 1.0, 12)            # 0 at the inner end, 1 at the outer end
    u = inner_u + (outer_u - inner_u) * s
    v = (base
         - 0.15 * e.brow_raise                          # whole brow up or down
         - 0.13 * e.brow_inner * (1 - s) ** 1.5         # inner end up
         + 0.08 * e.brow_knit * (1 - s) ** 1.2          # inner end down
         - (identity.brow_arch + 0.03) * np.sin(np.pi * s ** 0.8)
         + 0.02 * s)                                    # tails sit a little lower
    half = identity.brow_thickness * (1.1 - 0.6 * s)
    brow = _mix(identity.hair, (20, 15, 12), 0.35)
    p.fill(*_band(side * u, v - half, v + half), brow)


def draw_nose(p: Painter, identity: Identity, e: Expression) -> None:
    skin = identity.skin
    y, w = identity.nose_y - 0.03 * e.nose_wrinkle - 0.015 * e.lip_raise, identity.nose_width
    flare = 1.0 + 0.15 * max(e.nose_wrinkle, 0)
    # The bridge: a soft shadow line down one side.
    p.line([-0.05, -0.07, -0.08], [identity.eye_y + 0.05, y - 0.12, y - 0.05], _shade(skin, 0.88), 0.02,
           depth=0.12)
    for side in (-1.0, 1.0):
        lift = 0.03 * e.sneer * max(side * identity.sneer_side, 0)
        t = _steps(-0.6, 2.2, 10)
        wing_u = side * (w * flare * 0.75 + 0.07 * np.cos(t) * flare)
        wing_v = y - lift - 0.01 + 0.05 * np.sin(t) * 0.8
        p.line(wing_u, wing_v, _shade(skin, 0.7), 0.02, depth=0.2)
        p.ellipse(side * w * 0.42, y + 0.025 - lift, 0.045 * flare, 0.022, _shade(skin, 0.45), depth=0.22, n=12)


def draw_mouth(p: Painter, identity: Identity, e: Expression) -> None:
    """Lips, and the opening between them (dark, with the upper teeth showing) when the mouth is open.

    The mouth is built from four curves across ``x`` in [-1, 1]: the outer and inner edge of each lip.
    Corners ride up or down with ``smile``; the lower lip drops with ``jaw_drop``; the upper lip lifts with
    ``lip_raise`` (and on one side with ``sneer``); ``lip_stretch`` widens or narrows it; ``lip_press``
    thins both lips into a line.
    """
    x = _steps(-1.0, 1.0, 25)
    width = identity.mouth_width * (1.0 + 0.28 * e.lip_stretch + 0.12 * max(e.smile, 0) - 0.12 * e.lip_press
                                    - 0.1 * max(e.jaw_drop - 0.5, 0))
    width = max(width, 0.12)
    u = x * width
    middle = 1.0 - x * x
    # The corners: up for a smile, down for sadness; the sneer side pulls up and out.
    sneer_bump = e.sneer * np.exp(-(((x - 0.5 * identity.sneer_side) / 0.35) ** 2))
    corner_lift = 0.18 * e.smile * x * x + 0.02 * e.sneer * np.clip(x * identity.sneer_side, 0, None)
    # A frown also bows the middle of the mouth up a little (the chin pushes the lower lip).
    centre = identity.mouth_y - corner_lift - 0.02 * max(-e.smile, 0) * middle
    # The opening: the jaw drops the lower lip; the upper-lip raiser lifts the upper one.
    roundness = 1.0 - 0.5 * float(np.clip(e.jaw_drop, 0, 1))
    open_shape = np.clip(middle, 0, None) ** roundness
    gap_down = max(0.26 * e.jaw_drop + 0.03 * max(e.lip_raise, 0), 0.0) * open_shape
    gap_up = (max(0.04 * e.jaw_drop + 0.05 * e.lip_raise, 0.0) * open_shape + 0.05 * np.clip(sneer_bump, 0, None))
    inner_upper = centre - gap_up
    inner_lower = centre + gap_down
    thin = 1.0 - 0.75 * float(np.clip(e.lip_press, 0, 1))
    lip = identity.lip_thickness * thin
    outer_upper = inner_upper - lip * (0.5 + 0.5 * middle) - 0.012 * (1 - np.cos(np.pi * x * 2)) * middle
    outer_lower = inner_lower + 1.25 * lip * (0.35 + 0.65 * middle)

    lip_colour = _shade(identity.skin * np.array([0.92, 0.66, 0.66], dtype=np.float32), 1.0)
    p.fill(*_band(u, outer_upper, outer_lower), lip_colour)
    opening = inner_lower - inner_upper
    if opening.max() > 0.012:
        p.fill(*_band(u, inner_upper, inner_lower), (45.0, 18.0, 22.0))
        teeth_edge = np.minimum(inner_upper + 0.06, inner_lower)
        inset = slice(2, -2)
        p.fill(*_band(u[inset], inner_upper[inset], teeth_edge[inset]), (238.0, 234.0, 222.0))
    # The line where the lips meet (or the shadowed edge of the upper lip when open).
    p.line(u, inner_upper, _shade(identity.skin, 0.35 + 0.2 * thin), 0.022)


def draw_beard(p: Painter, identity: Identity, e: Expression) -> None:
    """A short beard along the jaw and chin, leaving the lips clear."""
    u, v = face_outline(identity, e.jaw_drop)
    keep = v > identity.mouth_y - 0.12
    order = np.argsort(np.arctan2(u[keep], v[keep]))
    jaw_u, jaw_v = u[keep][order], v[keep][order]
    top_u = np.linspace(jaw_u[-1], jaw_u[0], 12)
    top_v = identity.mouth_y - 0.07 + 0.05 * (top_u / max(abs(top_u).max(), 1e-6)) ** 2
    p.fill(np.concatenate([jaw_u * 1.01, top_u]), np.concatenate([jaw_v * 1.01, top_v]),
           _shade(identity.hair, 0.9), surface=False)


def draw_glasses(p: Painter, identity: Identity) -> None:
    frame = (30.0, 28.0, 28.0)
    t = _steps(0, 2 * np.pi, 24, endpoint=False)
    ru, rv = identity.eye_width * 1.45, 0.15
    for side in (-1.0, 1.0):
        cu = side * identity.eye_x
        p.line(cu + ru * np.cos(t), identity.eye_y + 0.01 + rv * np.sin(t), frame, 0.022, closed=True)
        p.line([side * (identity.eye_x + ru), side * 0.98], [identity.eye_y, identity.eye_y - 0.02], frame, 0.02)
    inner = identity.eye_x - ru
    p.line([-inner, 0.0, inner], [identity.eye_y - 0.03, identity.eye_y - 0.06, identity.eye_y - 0.03], frame,
           0.02, depth=0.1)


# --- one image --------------------------------------------------------------------------------------

def render_face(identity: Identity, expression: Expression, style: Style, rng: np.random.Generator,
                image_size: int) -> np.ndarray:
    """One photograph: uint8 ``(S, S, 3)`` RGB for colour styles, ``(S, S)`` grey otherwise."""
    size = image_size * SUPERSAMPLE
    canvas = np.empty((size, size, 3), np.uint8)
    draw_background(canvas, identity, style, rng)

    # Pose: where the head sits, how big it is, and how it is turned.
    scale = rng.uniform(*style.scale)
    centre = (size * (0.5 + rng.uniform(-style.shift, style.shift)),
              size * (0.48 + rng.uniform(-style.shift, style.shift)))
    p = Painter(canvas, centre, half_width=size * 0.33 * identity.face_width * scale,
                half_height=size * 0.42 * scale, yaw=rng.uniform(-style.yaw, style.yaw),
                roll_degrees=rng.uniform(-style.roll, style.roll))

    draw_head(p, identity, expression)
    draw_folds(p, identity, expression)
    if identity.beard:
        draw_beard(p, identity, expression)
    for side in (-1.0, 1.0):
        draw_eye(p, identity, expression, side)
        draw_brow(p, identity, expression, side)
    draw_nose(p, identity, expression)
    draw_mouth(p, identity, expression)
    if identity.glasses:
        draw_glasses(p, identity)
    p.paint()

    image = cv2.resize(canvas, (image_size, image_size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return photograph(image, style, rng)


def photograph(image: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """The camera: lighting, contrast, colour or grey, blur and sensor noise, on the final-size image."""
    size = image.shape[0]
    if not style.colour:
        image = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as ferbench.data
    # Light: an ambient level times a linear ramp across the image, from a random direction or from
    # the left or right (a window, a lamp) for side-lit styles.
    if style.side_lit:
        angle = rng.choice([0.0, np.pi]) + rng.normal(0.0, 0.4)
    else:
        angle = rng.uniform(0.0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    gradient = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]
    light = rng.uniform(*style.ambient) + rng.uniform(*style.light_gradient) * gradient
    if image.ndim == 3:
        light = light[..., None]
    contrast = rng.uniform(*style.contrast)
    image = ((image - 128.0) * contrast + 128.0) * light
    sigma = rng.uniform(*style.blur)
    if sigma > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image = image + rng.normal(0.0, rng.uniform(*style.noise), image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


# --- the dataset ------------------------------------------------------------------------------------

def _int_option(name: str, value, minimum: int) -> int:
    """An integer option (an int, a numpy int, or a string of digits from a command line) >= minimum."""
    number = None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    elif not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            pass
    if number is None:
        raise DatasetError(f"synthetic dataset option {name!r} must be an integer, got {value!r}")
    if number < minimum:
        raise DatasetError(f"synthetic dataset option {name!r} must be at least {minimum}, got {number}")
    return number


def make_synthetic(style: str = "studio", seed: int = 0, train_subjects: int = DEFAULT_TRAIN_SUBJECTS,
                   test_subjects: int = DEFAULT_TEST_SUBJECTS, per_class: int = DEFAULT_PER_CLASS,
                   image_size: int = DEFAULT_IMAGE_SIZE) -> Dataset:
    """Render the synthetic FER dataset: ``train_subjects`` people in split "train", ``test_subjects``
    other people in split "test", each showing every basic expression ``per_class`` times.

    Deterministic: each image has its own random stream seeded by (seed, style, split, subject, class,
    repeat), so the same arguments give byte-identical arrays and asking for more subjects only adds
    people. Raises :class:`~ferbench.errors.DatasetError` naming a bad option.
    """
    if style not in STYLES:
        raise DatasetError(f"synthetic dataset option 'style' must be one of {', '.join(STYLES)}, got {style!r}")
    seed = _int_option("seed", seed, 0)
    train_subjects = _int_option("train_subjects", train_subjects, 1)
    test_subjects = _int_option("test_subjects", test_subjects, 1)
    per_class = _int_option("per_class", per_class, 1)
    image_size = _int_option("image_size", image_size, 16)
    images, labels, subjects, splits, intensity = _render(style, seed, train_subjects, test_subjects,
                                                          per_class, image_size)
    n = len(images)
    # Fresh copies, so that a caller changing arrays never alters the cached rendering.
    return Dataset(
        name="synthetic" if style == "studio" else f"synthetic-{style}",
        images=images.copy(),
        labels=labels.copy(),
        classes=BASIC_EXPRESSIONS,
        subjects=subjects.copy(),
        splits=splits.copy(),
        meta={"style": np.full(n, style), "intensity": intensity.copy()},
        source=f"ferbench_synthetic style={style} seed={seed}",
    )


@functools.lru_cache(maxsize=8)
def _render(style: str, seed: int, train_subjects: int, test_subjects: int, per_class: int, image_size: int):
    """Images, labels, subject ids, splits and intensities (read-only; cached per argument set)."""
    settings = STYLE_SETTINGS[style]
    style_index = STYLES.index(style)
    images, labels, subjects, splits, intensities = [], [], [], [], []
    for split_index, (split, count) in enumerate(zip(_SPLITS, (train_subjects, test_subjects))):
        for subject in range(count):
            person = [seed, style_index, split_index, subject]
            identity = sample_identity(np.random.default_rng(np.random.SeedSequence(person + [_IDENTITY])))
            # Train and test people are numbered separately ("studio-s007", "studio-t007"), so ids never
            # collide and adding training people never changes who is in the test split.
            subject_id = f"{style}-{'s' if split == 'train' else 't'}{subject:03d}"
            for label, name in enumerate(BASIC_EXPRESSIONS):
                for repeat in range(per_class):
                    rng = np.random.default_rng(np.random.SeedSequence(person + [_IMAGE, label, repeat]))
                    intensity = 0.0 if name == "neutral" else rng.uniform(*settings.intensity)
                    expression = expression_for(identity, name, intensity, rng)
                    images.append(render_face(identity, expression, settings, rng, image_size))
                    labels.append(label)
                    subjects.append(subject_id)
                    splits.append(split)
                    intensities.append(intensity)
    arrays = (np.stack(images), np.array(labels, np.int64), np.array(subjects), np.array(splits),
              np.array(intensities, np.float32))
    for array in arrays:
        array.flags.writeable = False
    return arrays

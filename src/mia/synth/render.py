"""Drawing one synthetic pedestrian image with PIL and vectorised numpy.

The person is drawn in normalised body coordinates: ``y`` runs from 0 (top of the
head) to 1 (soles) and ``x`` is measured from the body's centre line in units of the
person's height. ``Frame`` maps these to pixels, so every image size works and body
regions land in the same horizontal stripes: head in the top sixth, the upper
garment in stripes 2-3, the lower garment in 4-5 and the shoes at the bottom.

Per identity, ``sample_appearance`` fixes the nuisance look (skin tone, build, exact
garment shades). Per camera, ``camera_scene`` fixes a background style, lighting
bias and viewpoint prior. Per image, ``render_image`` draws pose, scale, position,
background clutter, optional occlusion, lighting, blur and sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from .attributes import COLOUR_RGB, HAIR_RGB, Attributes

RGB = tuple[int, int, int]
SOURCES = ("CUHK01", "CUHK03", "Market", "test_query", "VIPER")
_LOWRES_P = {"CUHK01": 0.3, "CUHK03": 0.4, "Market": 0.2, "test_query": 0.25, "VIPER": 0.5}
_SKIN_TONES: tuple[RGB, ...] = (
    (241, 205, 178), (226, 184, 152), (204, 156, 120), (168, 118, 84), (112, 76, 56),
)
_SKIN_W = (0.25, 0.35, 0.2, 0.12, 0.08)
_SCENE_WALLS: tuple[RGB, ...] = (
    (150, 150, 146), (120, 118, 112), (176, 160, 138), (142, 92, 78), (96, 110, 124),
    (84, 112, 74), (188, 184, 176), (70, 72, 76), (158, 142, 112),
)
_SCENE_GROUNDS: tuple[RGB, ...] = (
    (96, 96, 98), (132, 128, 120), (70, 72, 74), (150, 140, 124), (92, 118, 70),
    (170, 168, 160),
)

# Body landmarks in normalised coordinates.
HEAD_CY, HEAD_RY, HEAD_RX = 0.066, 0.064, 0.047
SHOULDER_Y, WAIST_Y, CROTCH_Y = 0.165, 0.47, 0.545
KNEE_Y, ANKLE_Y = 0.73, 0.948
_HEM_Y = {"t-shirt": 0.50, "shirt": 0.505, "blouse": 0.50, "sweater": 0.515, "hoodie": 0.525,
          "jacket": 0.52, "coat": 0.70, "dress": WAIST_Y}


@dataclass(frozen=True)
class Frame:
    """Maps normalised body coordinates to pixels (with a lean that keeps feet fixed)."""

    cx: float
    top: float
    ph: float
    sx: float
    lean: float

    def p(self, x: float, y: float) -> tuple[float, float]:
        """Pixel position of body point ``(x, y)``."""
        return (self.cx + (x + self.lean * (1.0 - y)) * self.sx, self.top + y * self.ph)

    def poly(self, pts) -> list[tuple[float, float]]:
        """Pixel polygon of a list of body points."""
        return [self.p(x, y) for x, y in pts]

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        """Pixel bounding box ``[left, top, right, bottom]`` of a body-space box."""
        (a, b), (c, d) = self.p(x0, y0), self.p(x1, y1)
        return [min(a, c), min(b, d), max(a, c), max(b, d)]

    def w(self, t: float) -> int:
        """Line width in pixels for a body-space thickness (at least 1)."""
        return max(1, round(t * self.ph))


@dataclass
class Pose:
    """Per-image pose: viewpoint, walking phase, lean and what each hand does."""

    view: str  # "front" | "back" | "side"
    facing: int  # +1 / -1: image direction a side-view person faces
    stride: float  # walking phase in [-1, 1]
    spread: float  # lateral foot spread
    arm_swing: tuple[float, float]  # per image side (-1 side, +1 side)
    arm_mode: dict  # image side -> "swing" | "bag" | "phone" | "umbrella"
    umbrella_open: bool
    width: float  # torso width factor (narrow in side view)


def _jitter_colour(rng: np.random.Generator, rgb: RGB, spread: float = 10.0) -> list[int]:
    """An identity-specific shade of a nominal colour (brightness and hue jitter)."""
    c = np.asarray(rgb, dtype=np.float64) * rng.uniform(0.86, 1.14) + rng.normal(0, spread, 3)
    return [int(v) for v in np.clip(c, 0, 255)]


def sample_appearance(attrs: Attributes, rng: np.random.Generator) -> dict:
    """Identity-level nuisance look: skin, build, garment shades (JSON-serialisable)."""
    shades = {}
    for slot in ("upper", "pattern", "lower", "shoes", "carry", "hat", "accessory"):
        name = attrs.get(f"{slot}_colour")
        if name is not None:
            shades[slot] = _jitter_colour(rng, COLOUR_RGB[name])
    shades["hair"] = _jitter_colour(rng, HAIR_RGB[attrs["hair_colour"]], 6.0)
    skin = _SKIN_TONES[int(rng.choice(len(_SKIN_TONES), p=_SKIN_W))]
    shades["skin"] = _jitter_colour(rng, skin, 5.0)
    inner = ("white", "black", "grey", "blue", "beige")[int(rng.integers(5))]
    shades["inner"] = _jitter_colour(rng, COLOUR_RGB[inner])
    shades["phone"] = [20, 20, 24] if rng.random() < 0.8 else [225, 225, 230]
    return {
        "colours": shades,
        "build": round(float(rng.uniform(0.88, 1.12)), 4),
        "stature": round(float(rng.uniform(0.93, 1.0)), 4),
        "dress_hem": round(float(rng.uniform(0.66, 0.8)), 4),
    }


@lru_cache(maxsize=256)
def camera_scene(seed: int, source: str, cam: int) -> dict:
    """Background style, lighting bias and viewpoint prior of one camera."""
    rng = np.random.default_rng([seed, 7919, SOURCES.index(source), cam])
    return {
        "wall": _jitter_colour(rng, _SCENE_WALLS[int(rng.integers(len(_SCENE_WALLS)))], 14),
        "ground": _jitter_colour(rng, _SCENE_GROUNDS[int(rng.integers(len(_SCENE_GROUNDS)))], 10),
        "horizon": float(rng.uniform(0.45, 0.75)),
        "texture": float(rng.uniform(6, 24)),
        "style": ("windows", "trees", "shop", "plain")[int(rng.integers(4))],
        "gain": float(rng.uniform(0.78, 1.15)),
        "cast": rng.uniform(0.9, 1.1, 3).tolist(),
        "front_p": float(rng.uniform(0.3, 0.8)),
        "lowres_p": _LOWRES_P[source],
    }


NOISE_SIGMAS = (1.5, 3.0, 4.5, 6.0)


@lru_cache(maxsize=16)
def _noise_bank(height: int, width: int, sigma: float) -> Image.Image:
    """Fixed Gaussian sensor noise (offset by 128), larger than the image; cropped per image."""
    rng = np.random.default_rng([20240611, height, width, int(sigma * 10)])
    noise = rng.standard_normal((height + 32, width + 32, 3), dtype=np.float32) * sigma
    return Image.fromarray(np.clip(noise + 128.0, 0, 255).astype(np.uint8))


def render_image(attrs: Attributes, appearance: dict, scene: dict, height: int, width: int,
                 rng: np.random.Generator, occlusion_p: float = 0.15) -> Image.Image:
    """Draw one camera view of an identity; ``rng`` controls every per-image choice."""
    img = Image.fromarray(_background(rng, scene, height, width))
    draw = ImageDraw.Draw(img)
    _clutter(draw, rng, scene, height, width)
    frame = _frame(rng, appearance, height, width)
    pose = _pose(rng, attrs, scene)
    draw_person(draw, frame, pose, attrs, appearance)
    if rng.random() < occlusion_p:
        _occlude(draw, rng, scene, height, width)
    return _finish(img, rng, scene)


def _frame(rng: np.random.Generator, appearance: dict, height: int, width: int) -> Frame:
    """Scale (70-95% of the height), feet near the bottom, horizontal jitter, lean."""
    ph = height * rng.uniform(0.7, 0.95) * appearance["stature"] / 0.965
    ph = min(ph, height * 0.97)
    bottom = height * (1.0 - rng.uniform(0.005, 0.04))
    sx = ph * min(1.0, 3.0 * width / height)  # natural proportions; squeezed if narrower
    cx = width / 2 + rng.uniform(-0.09, 0.09) * width
    return Frame(cx=cx, top=bottom - ph, ph=ph, sx=sx, lean=float(rng.uniform(-0.03, 0.03)))


def _pose(rng: np.random.Generator, attrs: Attributes, scene: dict) -> Pose:
    """Viewpoint from the camera prior, walking phase and hand assignments."""
    u = rng.random()
    view = "side" if u < 0.15 else ("front" if u < 0.15 + 0.85 * scene["front_p"] else "back")
    facing = 1 if rng.random() < 0.5 else -1
    modes = {-1: "swing", 1: "swing"}
    bag_side = 0
    if attrs["carry"] == "handbag":
        bag_side = image_side(attrs["carry_side"], view, facing)
        modes[bag_side] = "bag"
    if attrs["accessory"] in ("phone", "umbrella"):
        free = -bag_side if bag_side else (1 if rng.random() < 0.5 else -1)
        modes[free] = attrs["accessory"]
    return Pose(
        view=view, facing=facing, stride=float(rng.uniform(-1, 1)),
        spread=float(rng.uniform(0.0, 0.03)),
        arm_swing=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
        arm_mode=modes, umbrella_open=bool(rng.random() < 0.5),
        width=0.68 if view == "side" else 1.0,
    )


def image_side(side: str | None, view: str, facing: int) -> int:
    """Image-x sign (+1 right) of the person's own left/right side under a viewpoint."""
    own = 1 if side == "left" else -1
    if view == "front":
        return own
    if view == "back":
        return -own
    return facing if side == "right" else -facing


# ----------------------------------------------------------------------------- background


def _background(rng: np.random.Generator, scene: dict, height: int, width: int) -> np.ndarray:
    """Wall/ground gradient plus smooth texture, computed at 1/4 size and upsampled."""
    h4, w4 = max(8, height // 4), max(4, width // 4)
    horizon = int(h4 * float(np.clip(scene["horizon"] + rng.uniform(-0.06, 0.06), 0.3, 0.9)))
    wall = np.asarray(scene["wall"], np.float32) * rng.uniform(0.85, 1.15)
    ground = np.asarray(scene["ground"], np.float32) * rng.uniform(0.85, 1.15)
    rows = np.empty((h4, 1, 3), np.float32)
    rows[:horizon, 0] = wall[None] * np.linspace(1.12, 0.92, horizon, dtype=np.float32)[:, None]
    t_ground = np.linspace(0.85, 1.1, h4 - horizon, dtype=np.float32)[:, None]
    rows[horizon:, 0] = ground[None] * t_ground
    amp = scene["texture"]
    gh, gw = int(rng.integers(4, 12)), int(rng.integers(2, 6))
    grid = rng.normal(0, amp * 0.3, (gh, gw, 3)) + rng.normal(0, amp, (gh, gw, 1))
    tex = Image.fromarray(np.clip(grid + 128, 0, 255).astype(np.uint8))
    tex = np.asarray(tex.resize((w4, h4), Image.BILINEAR), np.float32) - 128.0
    grain = rng.normal(0, amp * 0.25, (h4, w4, 1)).astype(np.float32)
    small = Image.fromarray(np.clip(rows + tex + grain, 0, 255).astype(np.uint8))
    return np.asarray(small.resize((width, height), Image.BILINEAR))


def _rand_colour(rng: np.random.Generator, base, spread: float = 40.0) -> RGB:
    """A random colour near ``base``: mostly a brightness change, a little hue change."""
    shift = rng.normal(0, spread) + rng.normal(0, spread * 0.5, 3)
    c = np.clip(np.asarray(base, np.float64) + shift, 0, 255)
    return tuple(int(v) for v in c)


def _clutter(d: ImageDraw.ImageDraw, rng: np.random.Generator, scene: dict, h: int,
             w: int) -> None:
    """Scene structures (windows, trees, shop fronts) and far-away passers-by."""
    style = scene["style"]
    horizon = h * scene["horizon"]
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(0, 0.8) * horizon
        bw, bh = rng.uniform(0.1, 0.5) * w, rng.uniform(0.05, 0.3) * h
        col = _rand_colour(rng, scene["wall"], 30)
        if style == "trees":
            d.ellipse([x0, y0, x0 + bw, y0 + bh], fill=_rand_colour(rng, (60, 100, 50), 20))
        elif style == "windows":
            d.rectangle([x0, y0, x0 + bw, y0 + bh], fill=col, outline=_rand_colour(rng, col, 30))
        elif style == "shop":
            d.rectangle([x0, y0, x0 + bw, horizon], fill=col)
    if rng.random() < 0.5:  # ground lines (kerb, tiles)
        for _ in range(int(rng.integers(1, 4))):
            y = rng.uniform(horizon, h)
            d.line([(0, y), (w, y + rng.uniform(-0.05, 0.05) * h)],
                   fill=_rand_colour(rng, scene["ground"], 25), width=max(1, h // 200))
    for _ in range(int(rng.integers(0, 3))):  # distant pedestrians near the horizon
        x, ph = rng.uniform(0, w), rng.uniform(0.12, 0.3) * h
        body = _rand_colour(rng, (110, 110, 110), 60)
        d.rectangle([x - ph * 0.12, horizon - ph * 0.8, x + ph * 0.12, horizon], fill=body)
        d.ellipse([x - ph * 0.07, horizon - ph, x + ph * 0.07, horizon - ph * 0.8],
                  fill=_rand_colour(rng, (170, 130, 110), 20))


def _occlude(d: ImageDraw.ImageDraw, rng: np.random.Generator, scene: dict, h: int,
             w: int) -> None:
    """Partial occlusion: a low object in front, a passer-by at the edge, or a pole."""
    kind = ("bottom", "side", "pole")[int(rng.integers(3))]
    col = _rand_colour(rng, (110, 110, 110), 60)
    if kind == "bottom":
        y0 = rng.uniform(0.7, 0.88) * h
        x0, x1 = sorted(rng.uniform(-0.3, 1.3, 2) * w)
        d.rectangle([min(x0, 0.2 * w), y0, max(x1, 0.8 * w), h], fill=col)
        d.line([(0, y0 + 0.02 * h), (w, y0 + 0.02 * h)], fill=_rand_colour(rng, col, 30),
               width=max(1, h // 100))
    elif kind == "side":
        frac = rng.uniform(0.2, 0.35) * w
        x0, x1 = (0, frac) if rng.random() < 0.5 else (w - frac, w)
        d.rectangle([x0, rng.uniform(0.1, 0.4) * h, x1, h], fill=col)
    else:
        x = rng.uniform(0.3, 0.7) * w
        half = rng.uniform(0.03, 0.06) * w
        d.rectangle([x - half, 0, x + half, h], fill=col)


# ----------------------------------------------------------------------------- finishing


def _finish(img: Image.Image, rng: np.random.Generator, scene: dict) -> Image.Image:
    """Low resolution, blur, lighting gain and colour cast, illumination ramp, noise.

    All steps are PIL operations in C (lookup table, multiply, add) to stay fast.
    """
    w, h = img.size
    if rng.random() < scene["lowres_p"]:
        f = min(rng.uniform(1.5, 2.8), h / 48)  # never below a 48-pixel-high camera
        if f > 1.2:
            img = img.resize((max(8, int(w / f)), max(8, int(h / f))), Image.BILINEAR)
            img = img.resize((w, h), Image.BILINEAR)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.4, 1.2) * h / 384))
    gain = scene["gain"] * rng.uniform(0.8, 1.2)
    cast = np.asarray(scene["cast"]) * rng.uniform(0.95, 1.05, 3) * gain
    lut = np.clip(np.arange(256)[None, :] * cast[:, None], 0, 255).astype(np.uint8)
    img = img.point(lut.ravel().tolist())
    ramp = Image.new("L", (1, 2))
    ramp.putdata([255, int(255 * rng.uniform(0.78, 1.0))][:: 1 if rng.random() < 0.5 else -1])
    img = ImageChops.multiply(img, ramp.resize((w, h), Image.BILINEAR).convert("RGB"))
    sigma = NOISE_SIGMAS[int(rng.integers(len(NOISE_SIGMAS)))]
    oy, ox = int(rng.integers(0, 32)), int(rng.integers(0, 32))
    noise = _noise_bank(h, w, sigma).crop((ox, oy, ox + w, oy + h))
    return ImageChops.add(img, noise, 1.0, -128)


# ----------------------------------------------------------------------------- the person


def draw_person(d: ImageDraw.ImageDraw, f: Frame, pose: Pose, a: Attributes,
                app: dict) -> None:
    """Draw the whole person, back to front, for the pose's viewpoint."""
    c = {k: tuple(v) for k, v in app["colours"].items()}
    back = pose.view == "back"
    sw = 0.105 * app["build"] * pose.width
    if a["carry"] == "backpack" and not back:
        _backpack(d, f, pose, c["carry"], sw, behind=True)
    if a["hair_length"] == "long" and pose.view == "front" and a["hat"] != "beanie":
        _long_hair_back(d, f, c["hair"])
    _legs(d, f, pose, a, c, app)
    _shoes(d, f, pose, a, c, app)
    d.rectangle(f.box(-0.022, 0.11, 0.022, 0.18), fill=c["skin"])
    _arms(d, f, pose, a, c, sw, behind=True)
    _torso(d, f, pose, a, c, sw, app)
    _arms(d, f, pose, a, c, sw, behind=False)
    _head(d, f, pose, a, c)
    if a["accessory"] == "scarf":
        _scarf(d, f, pose, c["accessory"])
    if a["carry"] == "backpack":
        _backpack(d, f, pose, c["carry"], sw, behind=False)
    elif a["carry"] == "shoulder_bag":
        _shoulder_bag(d, f, pose, a, c["carry"], sw, app)
    _hand_items(d, f, pose, a, c, sw)


def _hem_width(sw: float) -> float:
    """Half-width of the body at the hips for a shoulder half-width ``sw``."""
    return sw * 0.78


def _leg_geometry(f: Frame, pose: Pose, app: dict):
    """Centre lines (hip, knee, ankle) and half-widths of the two legs."""
    b = app["build"] * (0.8 if pose.view == "side" else 1.0)
    legs = []
    for i, s in enumerate((-1, 1)):
        if pose.view == "side":
            foot = s * pose.stride * 0.1
            hip, knee, ankle = (s * 0.01, CROTCH_Y - 0.05), (foot * 0.5, KNEE_Y), (foot, ANKLE_Y)
        else:
            lift = 0.025 * abs(pose.stride) if (pose.stride > 0) == (i == 0) else 0.0
            hip_x = s * 0.042 * b
            ankle = (s * (0.045 * b + pose.spread), ANKLE_Y - lift)
            hip, knee = (hip_x, CROTCH_Y - 0.05), ((hip_x + ankle[0]) / 2, KNEE_Y - lift / 2)
        legs.append(((hip, knee, ankle), (0.042 * b, 0.032 * b, 0.023 * b)))
    return legs


def _leg_poly(leg, t0: float, t1: float, extra: float = 0.0):
    """Body-space polygon of the part of a leg between t0 and t1 (0 hip, 1 ankle)."""
    (p0, p1, p2), (w0, w1, w2) = leg

    def at(t):
        if t <= 0.5:
            u = t / 0.5
            return (p0[0] + (p1[0] - p0[0]) * u, p0[1] + (p1[1] - p0[1]) * u, w0 + (w1 - w0) * u)
        u = (t - 0.5) / 0.5
        return (p1[0] + (p2[0] - p1[0]) * u, p1[1] + (p2[1] - p1[1]) * u, w1 + (w2 - w1) * u)

    ts = [t0] + ([0.5] if t0 < 0.5 < t1 else []) + [t1]
    pts = [at(t) for t in ts]
    left = [(x - w - extra, y) for x, y, w in pts]
    right = [(x + w + extra, y) for x, y, w in reversed(pts)]
    return left + right


def _legs(d, f: Frame, pose: Pose, a: Attributes, c: dict, app: dict) -> None:
    """Skin legs, then trousers / jeans / shorts / skirt over them."""
    legs = _leg_geometry(f, pose, app)
    for leg in legs:
        d.polygon(f.poly(_leg_poly(leg, 0.0, 1.0)), fill=c["skin"])
    kind = a["lower"]
    if kind is None:
        return
    col, hw = c["lower"], 0.084 * app["build"] * pose.width
    hip_block = [(-hw, WAIST_Y), (hw, WAIST_Y), (hw * 0.95, CROTCH_Y), (-hw * 0.95, CROTCH_Y)]
    if kind == "skirt":
        hem = 0.66 if a["lower_length"] == "short" else 0.84
        flare = hw + (0.035 if a["lower_length"] == "short" else 0.05)
        d.polygon(f.poly([(-hw, WAIST_Y), (hw, WAIST_Y), (flare, hem), (-flare, hem)]), fill=col)
        return
    end = 0.45 if kind == "shorts" else 1.0
    for leg in legs:
        d.polygon(f.poly(_leg_poly(leg, 0.0, end, extra=0.006)), fill=col)
    d.polygon(f.poly(hip_block), fill=col)
    if kind == "jeans":
        seam = _shade(col, 1.25)
        for (p0, _, p2), _ in legs:
            d.line([f.p(p0[0], p0[1] + 0.02), f.p(p2[0], p2[1] - 0.01)], fill=seam, width=1)


def _shoes(d, f: Frame, pose: Pose, a: Attributes, c: dict, app: dict) -> None:
    """Sneakers (with a sole), shoes, boots (up the shin) or sandals (skin + straps)."""
    col, kind = c["shoes"], a["shoes"]
    sole = (235, 235, 235) if sum(col) < 500 else (90, 90, 90)
    for (_, _, (x, y)), _ in _leg_geometry(f, pose, app):
        fx = x + (pose.facing * 0.02 if pose.view == "side" else 0.0)
        foot = f.box(fx - 0.034, y - 0.012, fx + 0.034, min(y + 0.05, 1.0))
        if kind == "boots":
            d.rectangle(f.box(x - 0.03, y - 0.085, x + 0.03, y + 0.02), fill=col)
            d.ellipse(foot, fill=col)
        elif kind == "sandals":
            d.ellipse(foot, fill=c["skin"])
            d.line([f.p(fx - 0.03, y + 0.01), f.p(fx + 0.03, y + 0.01)], fill=col,
                   width=f.w(0.01))
            d.line([f.p(fx - 0.034, y + 0.045), f.p(fx + 0.034, y + 0.045)], fill=col,
                   width=f.w(0.008))
        else:
            d.ellipse(foot, fill=col)
            if kind == "sneakers":
                d.line([f.p(fx - 0.032, y + 0.04), f.p(fx + 0.032, y + 0.04)], fill=sole,
                       width=f.w(0.01))


def _torso_outline(sw: float, hem: float, hw: float) -> list[tuple[float, float]]:
    return [(-sw, SHOULDER_Y + 0.012), (-sw * 0.82, SHOULDER_Y - 0.01), (-0.03, 0.148),
            (0.03, 0.148), (sw * 0.82, SHOULDER_Y - 0.01), (sw, SHOULDER_Y + 0.012),
            (hw, hem), (-hw, hem)]


def _torso(d, f: Frame, pose: Pose, a: Attributes, c: dict, sw: float, app: dict) -> None:
    """Upper garment body, dress skirt or coat tails, pattern and type details."""
    kind, col = a["upper"], c["upper"]
    hw = _hem_width(sw) + 0.004
    hem = _HEM_Y[kind]
    if kind == "coat":
        hw += 0.03
    outline = _torso_outline(sw, hem, hw)
    d.polygon(f.poly(outline), fill=col)
    if kind == "dress":
        flare = hw + 0.06
        d.polygon(f.poly([(-hw, WAIST_Y), (hw, WAIST_Y), (flare, app["dress_hem"]),
                          (-flare, app["dress_hem"])]), fill=col)
        hem = app["dress_hem"]
    if a["pattern"] != "plain":
        _pattern(d, f, pose, a["pattern"], c["pattern"], sw, hw, hem)
    _garment_details(d, f, pose, kind, col, c, sw, hem)


def _half_width_at(y: float, sw: float, hw: float, hem: float) -> float:
    t = (y - SHOULDER_Y) / max(hem - SHOULDER_Y, 1e-6)
    return sw + (hw - sw) * min(max(t, 0.0), 1.0)


def _pattern(d, f: Frame, pose: Pose, kind: str, col, sw: float, hw: float, hem: float) -> None:
    """Stripes, checks or a chest logo clipped to the garment outline."""
    if kind == "logo":
        if pose.view == "front":
            d.rectangle(f.box(-0.035, 0.23, 0.035, 0.3), fill=col)
        elif pose.view == "back" and hem - SHOULDER_Y > 0.3:
            d.ellipse(f.box(-0.05, 0.22, 0.05, 0.32), fill=col)
        return
    period, thick = (0.04, 0.016) if kind == "striped" else (0.05, 0.008)
    y = SHOULDER_Y + 0.02
    while y + thick < hem:
        half = _half_width_at(y, sw, hw, hem)
        d.rectangle(f.box(-half, y, half, y + thick), fill=col)
        y += period
    if kind == "checked":
        inner = min(sw, hw) * 0.95
        for x in np.arange(-inner, inner, 0.035):
            d.line([f.p(x, SHOULDER_Y + 0.01), f.p(x, hem)], fill=col, width=f.w(0.008))


def _garment_details(d, f: Frame, pose: Pose, kind: str, col, c: dict, sw: float,
                     hem: float) -> None:
    """Collars, open fronts, zips, hoods, pockets, hems: what makes a type recognisable."""
    dark, light = _shade(col, 0.7), _shade(col, 1.3)
    front = pose.view == "front"
    if kind in ("jacket", "coat") and front:
        d.rectangle(f.box(-0.022, 0.15, 0.022, min(hem, 0.45)), fill=c["inner"])
        d.line([f.p(0.023, 0.16), f.p(0.023, hem)], fill=dark, width=f.w(0.005))
        d.polygon(f.poly([(-0.03, 0.148), (-0.05, 0.2), (-0.022, 0.24)]), fill=dark)
        d.polygon(f.poly([(0.03, 0.148), (0.05, 0.2), (0.022, 0.24)]), fill=dark)
    elif kind == "shirt" and front:
        d.polygon(f.poly([(-0.032, 0.146), (0.0, 0.175), (-0.012, 0.19)]), fill=light)
        d.polygon(f.poly([(0.032, 0.146), (0.0, 0.175), (0.012, 0.19)]), fill=light)
        d.line([f.p(0.0, 0.18), f.p(0.0, hem)], fill=dark, width=1)
    elif kind == "hoodie":
        if front:
            d.ellipse(f.box(-0.045, 0.14, 0.045, 0.185), outline=dark, width=f.w(0.01))
            d.rectangle(f.box(-0.05, 0.40, 0.05, 0.48), fill=dark)
        else:
            d.polygon(f.poly([(-0.05, 0.15), (0.05, 0.15), (0.035, 0.24), (-0.035, 0.24)]),
                      fill=dark)
    elif kind in ("t-shirt", "blouse", "dress") and front:
        d.ellipse(f.box(-0.028, 0.14, 0.028, 0.175), fill=c["skin"])
    if kind in ("sweater", "hoodie"):
        d.rectangle(f.box(-sw * 0.8, hem - 0.018, sw * 0.8, hem), fill=dark)
    if kind == "coat":
        d.line([f.p(-0.08, 0.47), f.p(0.08, 0.47)], fill=dark, width=f.w(0.01))


def _arm_points(pose: Pose, s: int, sw: float):
    """Shoulder, elbow and hand of the arm on image side ``s``."""
    mode = pose.arm_mode[s]
    swing = pose.arm_swing[0 if s < 0 else 1]
    if pose.view == "side":
        sh = (s * 0.012, SHOULDER_Y + 0.015)
        el = (sh[0] + swing * 0.05, 0.325)
        hand = (el[0] + swing * 0.07, 0.47 - 0.02 * abs(swing))
    else:
        sh = (s * (sw - 0.018), SHOULDER_Y + 0.015)
        el = (s * (sw + 0.012 + 0.01 * abs(swing)), 0.325)
        hand = (s * (sw + 0.006 + 0.015 * abs(swing)), 0.475 - 0.03 * abs(swing))
    if mode == "bag":
        el, hand = (s * (sw + 0.02), 0.325), (s * (sw + 0.03), 0.48)
    elif mode == "phone":
        hand = (s * 0.03, 0.33)
    elif mode == "umbrella" and pose.umbrella_open:
        el, hand = (s * (sw + 0.04), 0.3), (s * (sw * 0.6), 0.25)
    return sh, el, hand


def _segment(p, q, w0: float, w1: float) -> list[tuple[float, float]]:
    """A tapered quad from ``p`` to ``q`` with half-widths w0, w1."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    n = max((dx * dx + dy * dy) ** 0.5, 1e-6)
    nx, ny = -dy / n, dx / n
    return [(p[0] + nx * w0, p[1] + ny * w0), (q[0] + nx * w1, q[1] + ny * w1),
            (q[0] - nx * w1, q[1] - ny * w1), (p[0] - nx * w0, p[1] - ny * w0)]


def _arms(d, f: Frame, pose: Pose, a: Attributes, c: dict, sw: float, behind: bool) -> None:
    """Arms with sleeves (long: garment to the wrist; short: skin below mid upper arm)."""
    for s in (-1, 1):
        if pose.view == "side":
            if (s == -pose.facing) != behind:
                continue
        elif behind:
            continue
        sh, el, hand = _arm_points(pose, s, sw)
        skin, sleeve = c["skin"], c["upper"]
        mid = ((sh[0] + el[0]) / 2, (sh[1] + el[1]) / 2)
        d.polygon(f.poly(_segment(sh, el, 0.026, 0.021)), fill=skin)
        d.polygon(f.poly(_segment(el, hand, 0.021, 0.016)), fill=skin)
        if a["sleeve"] == "long":
            d.polygon(f.poly(_segment(sh, el, 0.027, 0.022)), fill=sleeve)
            d.polygon(f.poly(_segment(el, hand, 0.022, 0.017)), fill=sleeve)
        else:
            d.polygon(f.poly(_segment(sh, mid, 0.029, 0.025)), fill=sleeve)
        d.ellipse(f.box(hand[0] - 0.019, hand[1] - 0.01, hand[0] + 0.019, hand[1] + 0.03),
                  fill=skin)


def _long_hair_back(d, f: Frame, hair) -> None:
    """Long hair falling behind the shoulders (seen beside the neck from the front)."""
    d.polygon(f.poly([(-HEAD_RX * 1.1, 0.04), (HEAD_RX * 1.1, 0.04), (HEAD_RX * 1.45, 0.27),
                      (-HEAD_RX * 1.45, 0.27)]), fill=hair)


def _head(d, f: Frame, pose: Pose, a: Attributes, c: dict) -> None:
    """Hair, face, glasses and hat for the viewpoint."""
    hair, skin = c["hair"], c["skin"]
    rx, top, bot = HEAD_RX, HEAD_CY - HEAD_RY, HEAD_CY + HEAD_RY
    long_hair = a["hair_length"] == "long"
    if pose.view == "back":
        d.ellipse(f.box(-rx, top, rx, bot), fill=skin)
        d.ellipse(f.box(-rx * 1.05, top - 0.004, rx * 1.05, bot - (0.0 if long_hair else 0.03)),
                  fill=hair)
        if long_hair:
            d.polygon(f.poly([(-rx * 1.05, HEAD_CY), (rx * 1.05, HEAD_CY), (rx * 1.4, 0.29),
                              (-rx * 1.4, 0.29)]), fill=hair)
    else:
        shift = pose.facing * rx * 0.3 if pose.view == "side" else 0.0
        d.ellipse(f.box(-rx * 1.06, top - 0.004, rx * 1.06, HEAD_CY + 0.01), fill=hair)
        d.ellipse(f.box(-rx * 0.86 + shift, top + 0.028, rx * 0.86 + shift, bot), fill=skin)
        eye = _shade(skin, 0.35)
        for ex in ((-0.017, 0.017) if pose.view == "front" else (pose.facing * 0.025,)):
            d.rectangle(f.box(ex - 0.005, 0.06, ex + 0.005, 0.066), fill=eye)
        if long_hair and pose.view == "front":
            for s in (-1, 1):
                d.polygon(f.poly([(s * rx * 0.8, 0.03), (s * rx * 1.12, 0.03),
                                  (s * rx * 1.3, 0.25), (s * rx * 0.9, 0.25)]), fill=hair)
        elif long_hair:
            s = -pose.facing
            d.polygon(f.poly([(s * rx * 0.2, 0.02), (s * rx * 1.1, 0.03), (s * rx * 1.3, 0.26),
                              (s * rx * 0.1, 0.26)]), fill=hair)
        if a["glasses"]:
            _glasses(d, f, pose)
    if a["hat"] != "none":
        _hat(d, f, pose, a["hat"], c["hat"])


def _glasses(d, f: Frame, pose: Pose) -> None:
    col = (18, 18, 22)
    xs = (-0.018, 0.018) if pose.view == "front" else (pose.facing * 0.026,)
    for x in xs:
        d.rectangle(f.box(x - 0.013, 0.056, x + 0.013, 0.07), outline=col, width=f.w(0.005))
    if len(xs) == 2:
        d.line([f.p(-0.005, 0.06), f.p(0.005, 0.06)], fill=col, width=f.w(0.004))


def _hat(d, f: Frame, pose: Pose, kind: str, col) -> None:
    """A cap (crown and brim), a brimmed hat or a beanie."""
    rx, top = HEAD_RX, HEAD_CY - HEAD_RY
    if kind == "cap":
        d.ellipse(f.box(-rx * 1.08, top - 0.008, rx * 1.08, top + 0.06), fill=col)
        if pose.view == "front":
            d.ellipse(f.box(-rx * 0.95, top + 0.03, rx * 0.95, top + 0.05), fill=_shade(col, 0.8))
        elif pose.view == "side":
            x0 = pose.facing * rx * 0.6
            d.rectangle(f.box(x0, top + 0.03, x0 + pose.facing * rx * 0.9, top + 0.045), fill=col)
    elif kind == "hat":
        d.ellipse(f.box(-rx * 1.9, top + 0.026, rx * 1.9, top + 0.05), fill=col)
        d.rectangle(f.box(-rx * 0.95, top - 0.022, rx * 0.95, top + 0.04), fill=col)
        d.line([f.p(-rx * 0.95, top + 0.03), f.p(rx * 0.95, top + 0.03)], fill=_shade(col, 0.6),
               width=f.w(0.008))
    else:
        d.ellipse(f.box(-rx * 1.1, top - 0.015, rx * 1.1, top + 0.07), fill=col)
        d.rectangle(f.box(-rx * 1.1, top + 0.04, rx * 1.1, top + 0.058), fill=_shade(col, 0.8))


def _scarf(d, f: Frame, pose: Pose, col) -> None:
    d.rectangle(f.box(-0.05, 0.128, 0.05, 0.172), fill=col)
    if pose.view != "back":
        d.rectangle(f.box(0.008, 0.16, 0.04, 0.3), fill=_shade(col, 0.9))


def _backpack(d, f: Frame, pose: Pose, col, sw: float, behind: bool) -> None:
    """Behind: the pack peeking out at the sides; in front: straps or the pack itself."""
    dark = _shade(col, 0.7)
    if pose.view == "side":
        if behind:
            x0 = -pose.facing * 0.05
            d.rectangle(f.box(x0, 0.18, x0 - pose.facing * 0.12, 0.43), fill=col)
        return
    if behind:
        d.rectangle(f.box(-sw * 1.12, 0.19, sw * 1.12, 0.40), fill=col)
    elif pose.view == "back":
        d.rounded_rectangle(f.box(-sw * 0.8, 0.19, sw * 0.8, 0.44), radius=f.w(0.02), fill=col)
        d.rectangle(f.box(-sw * 0.6, 0.33, sw * 0.6, 0.42), fill=dark)
    else:
        for s in (-1, 1):
            d.line([f.p(s * sw * 0.55, SHOULDER_Y), f.p(s * sw * 0.72, 0.38)], fill=col,
                   width=f.w(0.018))


def _shoulder_bag(d, f: Frame, pose: Pose, a: Attributes, col, sw: float, app: dict) -> None:
    """A bag hanging at the hip on the person's left or right, strap over the shoulder."""
    s = image_side(a["carry_side"], pose.view, pose.facing)
    if pose.view == "side":
        x_in, x_out = -0.03, 0.06
    else:
        x_in, x_out = _hem_width(sw) - 0.01, _hem_width(sw) + 0.075
    d.line([f.p(s * sw * 0.6, SHOULDER_Y), f.p(s * (x_in + x_out) / 2, 0.44)], fill=col,
           width=f.w(0.012))
    d.rectangle(f.box(s * x_in, 0.43, s * x_out, 0.55), fill=col)
    d.line([f.p(s * x_in, 0.46), f.p(s * x_out, 0.46)], fill=_shade(col, 0.7), width=f.w(0.006))


def _hand_items(d, f: Frame, pose: Pose, a: Attributes, c: dict, sw: float) -> None:
    """Handbag, phone or umbrella held by the hand that the pose assigned to them."""
    for s, mode in pose.arm_mode.items():
        if mode == "swing":
            continue
        if pose.view == "side" and s == -pose.facing and mode != "umbrella":
            continue
        _, _, (hx, hy) = _arm_points(pose, s, sw)
        if mode == "bag":
            col = c["carry"]
            d.line([f.p(hx - 0.03, hy + 0.04), f.p(hx, hy), f.p(hx + 0.03, hy + 0.04)],
                   fill=col, width=f.w(0.008))
            d.rectangle(f.box(hx - 0.045, hy + 0.035, hx + 0.045, hy + 0.12), fill=col)
        elif mode == "phone":
            d.rectangle(f.box(hx - 0.012, hy - 0.025, hx + 0.012, hy + 0.01), fill=c["phone"])
        else:
            _umbrella(d, f, pose, c["accessory"], hx, hy, s)


def _umbrella(d, f: Frame, pose: Pose, col, hx: float, hy: float, s: int) -> None:
    """An open canopy over the head, or a closed umbrella hanging from the hand."""
    if pose.umbrella_open:
        tx = s * 0.03
        d.line([f.p(hx, hy), f.p(tx, -0.05)], fill=(40, 40, 40), width=f.w(0.007))
        d.chord(f.box(tx - 0.27, -0.13, tx + 0.27, 0.03), 180, 360, fill=col)
    else:
        d.line([f.p(hx, hy), f.p(hx + s * 0.02, 0.86)], fill=col, width=f.w(0.02))


def _shade(col, k: float) -> RGB:
    """Darker (k < 1) or lighter (k > 1) version of a colour."""
    return tuple(int(min(255, max(0, v * k))) for v in col)

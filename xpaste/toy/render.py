"""Drawing of toy objects and backgrounds.

:func:`draw_instance` is the single place where an object of a :class:`ToyCategory` is drawn;
the scenes of :func:`xpaste.toy.make_toy_lvis` and the single-object images of
:func:`render_single_instance` (what a text-to-image model would return for
``"a photo of a single {name}"``) both use it, so the two share the same in-class variation:
size, rotation, aspect ratio, hue/saturation/brightness jitter, texture scale, angle and phase,
and shading.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from xpaste.utils.checks import check_number
from .categories import ToyCategory

# Fixed-point bits used to rasterise polygons with sub-pixel accuracy.
_SHIFT = 4


def _regular_polygon(n: int,
                     radius: float = 1.0,
                     start_deg: float = -90.0,
                     centre=(0.0, 0.0)) -> np.ndarray:
    angles = np.deg2rad(start_deg + 360.0 * np.arange(n) / n)
    return np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)],
                    axis=1)


def _star(points: int = 5, inner: float = 0.5) -> np.ndarray:
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    angles = np.deg2rad(-90.0 + 180.0 * np.arange(2 * points) / points)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _heart(n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t)**3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], axis=1)


def _cross(half_width: float = 0.33) -> np.ndarray:
    a = half_width
    return np.array([(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a),
                     (-1, a), (-1, -a), (-a, -a)],
                    dtype=float)


def _arrow() -> np.ndarray:
    return np.array([(-1, -0.28), (0.15, -0.28), (0.15, -0.75), (1, 0), (0.15, 0.75), (0.15, 0.28),
                     (-1, 0.28)],
                    dtype=float)


def _normalise(parts: list[tuple[np.ndarray, bool]]) -> list[tuple[np.ndarray, bool]]:
    """Scale and centre a shape so that its additive parts span [-1, 1] on both axes."""
    pts = np.concatenate([p for p, add in parts if add])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    return [((p - centre) / half, add) for p, add in parts]


#: Shape name -> list of (unit polygon (N, 2), additive). Subtractive parts cut holes.
_SHAPE_PARTS = {
    'circle':
    _normalise([(_regular_polygon(72), True)]),
    'square':
    _normalise([(_regular_polygon(4, start_deg=45.0), True)]),
    'triangle':
    _normalise([(_regular_polygon(3), True)]),
    'star':
    _normalise([(_star(), True)]),
    'cross':
    _normalise([(_cross(), True)]),
    'ring':
    _normalise([(_regular_polygon(72), True), (_regular_polygon(72, 0.55), False)]),
    'hexagon':
    _normalise([(_regular_polygon(6, start_deg=0.0), True)]),
    'crescent':
    _normalise([(_regular_polygon(72), True), (_regular_polygon(72, 0.8,
                                                                centre=(0.45, -0.1)), False)]),
    'heart':
    _normalise([(_heart(), True)]),
    'arrow':
    _normalise([(_arrow(), True)]),
}


@dataclass(frozen=True)
class ToyPose:
    """The per-instance variation of a toy object (everything but its size).

    Args:
        rotation (float): Rotation in degrees, counter-clockwise.
        aspect (float): Width / height stretch of the unit shape (before rotation).
        hue_shift (float): Hue offset in degrees from the category's hue.
        saturation (float): HSV saturation in [0, 1].
        value (float): HSV value (brightness) in [0, 1].
        texture_cells (float): Number of texture periods across the object's extent.
        texture_angle (float): Orientation of the texture in degrees.
        texture_phase (tuple[float, float]): Offset of the texture, in periods.
        light_angle (float): Direction of the shading gradient in degrees.
        light_strength (float): Relative brightness change across the object.
    """

    rotation: float
    aspect: float
    hue_shift: float
    saturation: float
    value: float
    texture_cells: float
    texture_angle: float
    texture_phase: tuple[float, float]
    light_angle: float
    light_strength: float


def sample_pose(rng: np.random.Generator) -> ToyPose:
    """Draw the in-class variation of one instance.

    Args:
        rng (np.random.Generator): Source of randomness.

    Returns:
        ToyPose: Rotation uniform in [0, 360), aspect log-uniform in [0.75, 1.33], hue jitter
        within +-6 degrees, saturation in [0.7, 1], value in [0.75, 1], 3.5-5.5 texture periods
        across the object, random texture angle/phase and shading of 5-25 %.
    """
    return ToyPose(
        rotation=float(rng.uniform(0, 360)),
        aspect=float(np.exp(rng.uniform(np.log(0.75), np.log(1.33)))),
        hue_shift=float(rng.uniform(-6, 6)),
        saturation=float(rng.uniform(0.7, 1.0)),
        value=float(rng.uniform(0.75, 1.0)),
        texture_cells=float(rng.uniform(3.5, 5.5)),
        texture_angle=float(rng.uniform(0, 180)),
        texture_phase=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1))),
        light_angle=float(rng.uniform(0, 360)),
        light_strength=float(rng.uniform(0.05, 0.25)),
    )


def hsv_to_bgr(hue_deg: float, saturation: float, value: float) -> np.ndarray:
    """Convert one HSV colour (hue in degrees, s and v in [0, 1]) to a float BGR in [0, 255]."""
    hsv = np.array([[[hue_deg % 360.0, saturation, value]]], dtype=np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64) * 255.0


def _shape_mask(shape: str, extent: float, pose: ToyPose) -> np.ndarray:
    """Rasterise a shape; returns a uint8 {0, 1} mask, tight to the object."""
    parts = _SHAPE_PARTS[shape]
    sx = sy = extent / 2.0
    if pose.aspect >= 1:
        sy /= pose.aspect
    else:
        sx *= pose.aspect
    theta = np.deg2rad(pose.rotation)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    placed = [((p * (sx, sy)) @ rot.T, add) for p, add in parts]
    pts = np.concatenate([p for p, add in placed if add])
    origin = pts.min(axis=0) - 1.0
    w, h = (np.ceil(pts.max(axis=0) - origin) + 2).astype(int)
    mask = np.zeros((h, w), dtype=np.uint8)
    for poly, add in placed:
        fixed = np.round((poly - origin) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [fixed], 1 if add else 0, lineType=cv2.LINE_8, shift=_SHIFT)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError(f'extent {extent!r} is too small to draw a {shape!r}')
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _texture(texture: str, h: int, w: int, extent: float, pose: ToyPose) -> np.ndarray:
    """A {0, 1} pattern (1 where the light secondary colour goes) in object coordinates."""
    if texture == 'solid':
        return np.zeros((h, w), dtype=bool)
    period = max(extent / pose.texture_cells, 5.0)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    xs -= w / 2
    ys -= h / 2
    a = np.deg2rad(pose.texture_angle)
    u = (xs * np.cos(a) + ys * np.sin(a)) / period + pose.texture_phase[0]
    v = (-xs * np.sin(a) + ys * np.cos(a)) / period + pose.texture_phase[1]
    if texture == 'stripes':
        return (u % 1.0) < 0.5
    if texture == 'checker':
        return (np.floor(u) + np.floor(v)) % 2 == 1
    if texture == 'dots':
        return (u % 1.0 - 0.5)**2 + (v % 1.0 - 0.5)**2 < 0.3**2
    raise ValueError(f'unknown texture {texture!r}')


def draw_instance(category: ToyCategory,
                  extent: float,
                  rng: np.random.Generator | None = None,
                  pose: ToyPose | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one object of a category on its own tight canvas.

    1. Rasterise the category's shape, stretched by ``pose.aspect`` so that its longer unrotated
       side is ``extent`` pixels, then rotated by ``pose.rotation``.
    2. Fill it with the jittered category colour, the texture's light secondary colour and a
       linear shading gradient.

    Args:
        category (ToyCategory): What to draw.
        extent (float): Length in pixels of the longer side of the object before rotation;
            at least 4.
        rng (np.random.Generator, optional): Used to draw a pose when ``pose`` is None.
        pose (ToyPose, optional): The instance's variation; drawn with :func:`sample_pose` if
            None. Defaults to None.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(bgr, mask)``: a uint8 (h, w, 3) image whose pixels
        outside the object are 0, and a bool (h, w) mask, both tight to the object.
    """
    if not extent >= 4:
        raise ValueError(f'extent must be >= 4 pixels, got {extent!r}')
    if pose is None:
        if rng is None:
            raise ValueError('draw_instance needs either rng or pose, got neither')
        pose = sample_pose(rng)
    mask = _shape_mask(category.shape, extent, pose).astype(bool)
    h, w = mask.shape
    base = hsv_to_bgr(category.hue + pose.hue_shift, pose.saturation, pose.value)
    light = base * 0.45 + 255.0 * 0.55
    pattern = _texture(category.texture, h, w, extent, pose)
    colour = np.where(pattern[..., None], light, base)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.deg2rad(pose.light_angle)
    ramp = ((xs - w / 2) * np.cos(a) + (ys - h / 2) * np.sin(a)) / max(h, w, 1)
    colour *= (1.0 + 2.0 * pose.light_strength * ramp)[..., None]
    bgr = np.clip(colour, 0, 255).astype(np.uint8)
    bgr[~mask] = 0
    return bgr, mask


def _smooth_field(h: int,
                  w: int,
                  rng: np.random.Generator,
                  cells: int,
                  channels: int = 1) -> np.ndarray:
    """Smooth random field in [0, 1] (bicubic upsampling of a coarse random grid)."""
    ch, cw = max(2, round(cells * h / max(h, w))), max(2, round(cells * w / max(h, w)))
    coarse = rng.random((ch, cw, channels)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(field.reshape(h, w, channels), 0, 1)


def _gradient(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A linear ramp in [-0.5, 0.5] of random direction, shape (h, w)."""
    a = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = xs * np.cos(a) + ys * np.sin(a)
    return (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6) - 0.5


def cluttered_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A cluttered, low-saturation scene background.

    Smooth colour noise, a brightness gradient, 4-12 blurred low-contrast blobs of any hue and
    pixel noise: the objects stay recognisable, but edges and colours are not free.

    Args:
        height (int): Image height.
        width (int): Image width.
        rng (np.random.Generator): Source of randomness.

    Returns:
        np.ndarray: uint8 BGR image of shape (height, width, 3).
    """
    h, w = height, width
    hsv = np.empty((h, w, 3), dtype=np.float32)
    hsv[..., 0] = (rng.uniform(0, 360) + 120 * (_smooth_field(h, w, rng, 4)[..., 0] - 0.5)) % 360
    hsv[..., 1] = rng.uniform(0.0, 0.25) * _smooth_field(h, w, rng, 5)[..., 0]
    value = rng.uniform(0.35, 0.75) + 0.25 * (_smooth_field(h, w, rng, 6)[..., 0] - 0.5)
    hsv[..., 2] = np.clip(value + rng.uniform(0.1, 0.3) * _gradient(h, w, rng), 0.05, 0.95)
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255.0
    blobs = img.copy()
    alpha = np.zeros((h, w), dtype=np.float32)
    for _ in range(int(rng.integers(4, 13))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(8, max(9, w // 4))), int(rng.integers(8, max(9, h // 4))))
        colour = hsv_to_bgr(rng.uniform(0, 360), rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.9))
        cv2.ellipse(blobs, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour.tolist(), -1)
        cv2.ellipse(alpha, centre, axes, 0, 0, 360, float(rng.uniform(0.15, 0.35)), -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 3)[..., None]
    img = img * (1 - alpha) + blobs * alpha
    img += 4.0 * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def textured_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A patterned surface (fabric, wood, tiles): two colours mixed by a periodic pattern.

    A sum of two sine gratings of random period (8-40 px), orientation and phase, optionally
    squared into tiles, mixes two random muted colours; a brightness gradient and pixel noise
    follow. Unlike :func:`plain_background` the border is not one colour, and unlike
    :func:`cluttered_background` the pattern is regular and may have strong edges.

    Args:
        height (int): Image height.
        width (int): Image width.
        rng (np.random.Generator): Source of randomness.

    Returns:
        np.ndarray: uint8 BGR image of shape (height, width, 3).
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    pattern = np.zeros((height, width), np.float32)
    for _ in range(2):
        a = rng.uniform(0, np.pi)
        period = rng.uniform(8, 40)
        u = (xs * np.cos(a) + ys * np.sin(a)) / period + rng.uniform(0, 1)
        pattern += np.sin(2 * np.pi * u).astype(np.float32)
    if rng.random() < 0.5:  # tiles: hard edges
        pattern = np.sign(pattern)
    weight = (0.5 + 0.25 * pattern)[..., None]
    first = hsv_to_bgr(rng.uniform(0, 360), rng.uniform(0.05, 0.5), rng.uniform(0.3, 0.9))
    second = hsv_to_bgr(rng.uniform(0, 360), rng.uniform(0.05, 0.5), rng.uniform(0.3, 0.9))
    img = first * weight + second * (1 - weight)
    img *= 1 + rng.uniform(0.0, 0.3) * _gradient(height, width, rng)[..., None]
    img += 3.0 * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def plain_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A light, near-uniform background with a faint gradient and pixel noise.

    Args:
        height (int): Image height.
        width (int): Image width.
        rng (np.random.Generator): Source of randomness.

    Returns:
        np.ndarray: uint8 BGR image of shape (height, width, 3).
    """
    tint = hsv_to_bgr(rng.uniform(0, 360), rng.uniform(0.0, 0.06), rng.uniform(0.86, 0.96))
    ramp = rng.uniform(0.0, 0.08) * _gradient(height, width, rng)
    img = tint.astype(np.float32)[None, None, :] * (1 + ramp[..., None])
    img += 2.0 * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def paste(image: np.ndarray, bgr: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Paste an object drawn by :func:`draw_instance` into ``image`` in place (hard mask).

    Args:
        image (np.ndarray): uint8 (H, W, 3) destination.
        bgr (np.ndarray): uint8 (h, w, 3) object pixels.
        mask (np.ndarray): bool (h, w) object mask.
        x (int): Left column of the object's canvas in ``image``.
        y (int): Top row of the object's canvas in ``image``.
    """
    h, w = mask.shape
    if x < 0 or y < 0 or y + h > image.shape[0] or x + w > image.shape[1]:
        raise ValueError(f'object of size {(h, w)} at (x={x}, y={y}) does not fit into an image '
                         f'of size {image.shape[:2]}')
    window = image[y:y + h, x:x + w]
    window[mask] = bgr[mask]


def extent_for_coverage(shape: str,
                        pose: ToyPose,
                        coverage: float,
                        size: int,
                        fit: float = 0.92) -> tuple[float, float]:
    """The extent at which an object covers ``coverage`` of a square image, capped to fit.

    Area grows with extent**2 and the object's canvas with extent: the extent is scaled from
    a reference drawing to hit the target area, then capped so that the longer side of the
    object's canvas is at most ``fit * size``.

    Args:
        shape (str): One of :data:`TOY_SHAPES`.
        pose (ToyPose): The instance's variation (rotation and aspect change the area).
        coverage (float): Target object area / image area.
        size (int): Side of the square image.
        fit (float): Largest canvas side, as a fraction of ``size``. Defaults to 0.92.

    Returns:
        tuple[float, float]: ``(extent, area)``: the extent for :func:`draw_instance` and the
        object area in pixels it gives (approximately).
    """
    ref_extent = float(size)
    ref_mask = _shape_mask(shape, ref_extent, pose)
    extent = ref_extent * min(
        np.sqrt(coverage * size * size / ref_mask.sum()), fit * size / max(ref_mask.shape))
    return extent, float(ref_mask.sum() * (extent / ref_extent)**2)


def render_single_instance(category: ToyCategory,
                           rng: np.random.Generator,
                           size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Render one instance of a category alone on a plain light background.

    This is the toy counterpart of a text-to-image model answering
    ``"a photo of a single {name}"``: one object, centred-ish, covering 20-70 % of the image
    (the target coverage is drawn uniformly in [0.25, 0.6]), with the same in-class variation
    as the objects of the toy scenes.

    Args:
        category (ToyCategory): What to draw.
        rng (np.random.Generator): Source of randomness.
        size (int): Side of the square image in pixels, at least 32. Defaults to 256.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(bgr, mask)``: uint8 (size, size, 3) image and bool
        (size, size) mask of the object.
    """
    size = check_number('size', size, 32, integer=True)
    for _ in range(50):
        pose = sample_pose(rng)
        coverage = rng.uniform(0.25, 0.6)
        extent, area = extent_for_coverage(category.shape, pose, coverage, size)
        if area >= 0.22 * size * size:
            break
    bgr, mask = draw_instance(category, extent, pose=pose)
    h, w = mask.shape
    x = int(round((size - w) / 2 + rng.uniform(-0.4, 0.4) * (size - w)))
    y = int(round((size - h) / 2 + rng.uniform(-0.4, 0.4) * (size - h)))
    x, y = min(max(x, 0), size - w), min(max(y, 0), size - h)
    image = plain_background(size, size, rng)
    paste(image, bgr, mask, x, y)
    full_mask = np.zeros((size, size), dtype=bool)
    full_mask[y:y + h, x:x + w] = mask
    return image, full_mask

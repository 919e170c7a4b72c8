"""A toy generator with a gap to the dataset: style, backgrounds and wrong images.

:func:`xpaste.toy.render_single_instance` draws objects exactly as the toy scenes do, alone on a
plain background: an oracle generator. :func:`render_gapped_instance` is the toy counterpart of
a real text-to-image model, whose images differ from the dataset's and are sometimes wrong:

- *style gap*: object colour, lighting and texture outside the dataset's range, blur, pixel
  noise and a colour cast over the whole image, object sizes from tiny to large;
- *background gap*: cluttered or patterned backgrounds as well as plain ones, so that a
  border-colour segmenter can fail;
- *defects*, each in a set fraction of the images (:class:`GapSettings`): ``wrong_class``
  (another class is drawn, often one that differs in a single attribute), ``two_objects`` (a
  second object, of the class or another), ``truncated`` (the object cut by the image border),
  ``empty`` (no object), ``black`` (what a safety checker returns) and ``duplicate`` (one of a
  few per-class "modes" drawn again with a little noise: near-duplicates, right but redundant).

Every image carries its defect as a tag (:func:`gap_tag`, read back by :func:`parse_gap_tag`)
that the bank builder's ``ToySource`` appends to the prompt, so that the instances of a bank can
be counted by defect. The same seed gives the same image.
"""
import functools
import re
import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Optional, Sequence

import cv2
import numpy as np

from xpaste.utils.checks import check_number, check_prob, check_range
from .categories import ToyCategory, max_toy_categories, toy_categories
from .render import (ToyPose, cluttered_background, draw_instance, extent_for_coverage, paste,
                     plain_background, sample_pose, textured_background)

#: Defect kinds, in the order their probabilities are stacked by :func:`draw_defect`.
DEFECTS = ('wrong_class', 'two_objects', 'truncated', 'empty', 'black', 'duplicate')
#: Defects that make an image wrong for its class (a duplicate is right, only redundant).
WRONG_DEFECTS = ('wrong_class', 'two_objects', 'truncated', 'empty', 'black')
#: Background kinds and the functions that draw them.
BACKGROUNDS = {
    'plain': plain_background,
    'cluttered': cluttered_background,
    'textured': textured_background,
}

# Default defect fractions: 32 % wrong images in all (plus 10 % near-duplicates). Black images
# and most empty ones never reach a bank (no mask), so an unfiltered bank holds ~27 % wrong
# instances (measured on the default toy world: 147 of 548), enough label noise on pasted
# instances to matter. Wrong classes are the largest share (attribute binding is a known
# weakness of text-to-image models); black images are rare, as from a safety checker on benign
# prompts.
DEFAULT_DEFECTS = dict(
    wrong_class=0.12, two_objects=0.08, truncated=0.06, empty=0.04, black=0.02, duplicate=0.10)
DEFAULT_BACKGROUNDS = dict(plain=0.3, cluttered=0.4, textured=0.3)

# Bounds of the range settings and of the numbers (from 0) of GapSettings.
_RANGE_BOUNDS = dict(
    saturation=(0, 2),
    value=(0, 2),
    light_strength=(0, 0.5),
    texture_scale=(0.1, 10),
    coverage=(0.001, 0.8),
    blur_sigma=(0, 20))
# hue_shift: toy colours are >= 27 degrees apart and the dataset jitters +-6.
_NUMBER_BOUNDS = dict(hue_shift=13.0, colour_cast=0.5, noise=64.0)
_DEFECT_STREAM = 0xDEF
_RENDER_STREAM = 0x6A9
_TAG = re.compile(r'\[gap: ([a-z_]+) drew=([^\]\s]*)\]\s*$')


def _check_weights(name: str, value, defaults: dict) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f'GapSettings.{name} must be a dict, got {value!r}')
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ValueError(f'GapSettings.{name} has unknown keys {unknown}; known: '
                         f'{sorted(defaults)}')
    merged = dict(defaults, **value)
    return {k: check_prob(f'GapSettings.{name}.{k}', v) for k, v in merged.items()}


@dataclass(frozen=True)
class GapSettings:
    """How the generated images differ from the toy dataset's.

    Args:
        defects (dict): Fraction of images with each defect of :data:`DEFECTS`; keys not given
            keep :data:`DEFAULT_DEFECTS`, 0 turns one off. Their sum is at most 1; the rest are
            right images. Defaults to :data:`DEFAULT_DEFECTS` (32 % wrong, 10 % duplicates).
        backgrounds (dict): Relative weights of the background kinds of :data:`BACKGROUNDS`;
            keys not given keep :data:`DEFAULT_BACKGROUNDS`. Defaults to plain 0.3, cluttered
            0.4, textured 0.3.
        confusable (float): Share of ``wrong_class`` images whose class differs from the
            requested one in a single attribute (shape, colour or texture); the others are any
            other class. Defaults to 0.5.
        same_class_second (float): Share of ``two_objects`` images whose second object is of the
            requested class. Defaults to 0.5.
        hue_shift (float): Extra hue jitter in degrees, on top of the dataset's +-6 (toy colours
            are at least 27 degrees apart, so +-12 in all keeps every colour its own).
            Defaults to 6.0.
        saturation (tuple[float, float]): Range of the factor on the object's saturation.
            Defaults to (0.55, 1.1).
        value (tuple[float, float]): Range of the factor on the object's brightness.
            Defaults to (0.65, 1.15).
        light_strength (tuple[float, float]): Range of the shading across the object (the
            dataset: 0.05-0.25). Defaults to (0.05, 0.45).
        texture_scale (tuple[float, float]): Range of the factor on the number of texture
            periods across the object. Defaults to (0.6, 1.6).
        coverage (tuple[float, float]): Range of the object area / image area (the oracle:
            0.25-0.6). Defaults to (0.06, 0.6).
        colour_cast (float): Largest relative gain change of one colour channel over the whole
            image. Defaults to 0.1.
        blur (float): Probability of a Gaussian blur of the whole image. Defaults to 0.4.
        blur_sigma (tuple[float, float]): Range of its sigma in pixels at 256 px (scaled with
            the image size). Defaults to (0.6, 2.0).
        noise (float): Largest standard deviation of the pixel noise. Defaults to 8.0.
        duplicate_modes (int): Number of per-class images that ``duplicate`` images repeat.
            Defaults to 2.
        seed (int): Seed of the per-class duplicate modes. Defaults to 0.
    """

    defects: dict = field(default_factory=lambda: dict(DEFAULT_DEFECTS))
    backgrounds: dict = field(default_factory=lambda: dict(DEFAULT_BACKGROUNDS))
    confusable: float = 0.5
    same_class_second: float = 0.5
    hue_shift: float = 6.0
    saturation: tuple = (0.55, 1.1)
    value: tuple = (0.65, 1.15)
    light_strength: tuple = (0.05, 0.45)
    texture_scale: tuple = (0.6, 1.6)
    coverage: tuple = (0.06, 0.6)
    colour_cast: float = 0.1
    blur: float = 0.4
    blur_sigma: tuple = (0.6, 2.0)
    noise: float = 8.0
    duplicate_modes: int = 2
    seed: int = 0

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, 'defects', _check_weights('defects', self.defects, DEFAULT_DEFECTS))
        set_(self, 'backgrounds',
             _check_weights('backgrounds', self.backgrounds, DEFAULT_BACKGROUNDS))
        if sum(self.defects.values()) > 1 + 1e-9:
            raise ValueError(f'GapSettings.defects must sum to at most 1, got {self.defects!r} '
                             f'(sum {sum(self.defects.values()):.3f})')
        if sum(self.backgrounds.values()) <= 0:
            raise ValueError(f'GapSettings.backgrounds needs a positive weight, got '
                             f'{self.backgrounds!r}')
        for name in ('confusable', 'same_class_second', 'blur'):
            set_(self, name, check_prob(f'GapSettings.{name}', getattr(self, name)))
        for name, (lo, hi) in _RANGE_BOUNDS.items():
            set_(self, name, check_range(f'GapSettings.{name}', getattr(self, name), lo, hi))
        for name, hi in _NUMBER_BOUNDS.items():
            set_(self, name, check_number(f'GapSettings.{name}', getattr(self, name), 0, hi))
        check_number('GapSettings.duplicate_modes', self.duplicate_modes, 1, integer=True)
        check_number('GapSettings.seed', self.seed, 0, integer=True)

    @classmethod
    def from_config(cls, cfg) -> 'GapSettings':
        """Settings from a config value: a :class:`GapSettings`, a dict of its fields, or
        ``'default'``."""
        if isinstance(cfg, cls):
            return cfg
        if cfg == 'default':
            return cls()
        if not isinstance(cfg, dict):
            raise ValueError(f"gap must be None, 'default' or a dict of GapSettings fields, "
                             f'got {cfg!r}')
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f'gap has unknown keys {unknown}; known: {sorted(known)}')
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})

    @property
    def wrong_fraction(self) -> float:
        """Expected fraction of wrong images (the defects of :data:`WRONG_DEFECTS`)."""
        return sum(self.defects[k] for k in WRONG_DEFECTS)

    def to_dict(self) -> dict:
        """Plain-json settings (recorded in a bank's build info)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class GappedImage:
    """One generated image and what it really shows.

    Attributes:
        image (np.ndarray): BGR uint8 (size, size, 3).
        mask (np.ndarray): bool (size, size): pixels of the drawn objects (empty for ``empty``
            and ``black`` images).
        defect (str): ``'none'`` or one of :data:`DEFECTS`.
        drawn (tuple[str, ...]): Names of the drawn categories, in drawing order.
        background (str): One of :data:`BACKGROUNDS` (``'black'`` for a black image).
    """

    image: np.ndarray
    mask: np.ndarray
    defect: str
    drawn: tuple
    background: str

    @property
    def tag(self) -> str:
        """The tag recording the defect, e.g. ``'[gap: wrong_class drew=blue_dotted_ring]'``."""
        return gap_tag(self.defect, self.drawn)


def gap_tag(defect: str, drawn: Sequence[str]) -> str:
    """The tag of an image: ``'[gap: <defect> drew=<name>+<name>]'`` (``drew=-`` if none)."""
    return f'[gap: {defect} drew={"+".join(drawn) or "-"}]'


def parse_gap_tag(text: str) -> Optional[tuple[str, tuple]]:
    """The ``(defect, drawn names)`` of a text ending in a :func:`gap_tag`, None without one.

    Example:
        >>> parse_gap_tag('a photo of a single red plain star [gap: none drew=red_plain_star]')
        ('none', ('red_plain_star',))
    """
    match = _TAG.search(text or '')
    if match is None:
        return None
    drawn = match.group(2)
    return match.group(1), tuple(drawn.split('+')) if drawn != '-' else ()


def draw_defect(seed: int, settings: GapSettings) -> str:
    """The defect of the image with ``seed``: ``'none'`` or one of :data:`DEFECTS`.

    Drawn from its own random stream, so the fractions hold whatever the rendering draws.
    """
    u = np.random.default_rng([int(seed), _DEFECT_STREAM]).random()
    edge = 0.0
    for kind in DEFECTS:
        edge += settings.defects[kind]
        if u < edge:
            return kind
    return 'none'


@functools.lru_cache(maxsize=1)
def _every_category() -> tuple:
    return tuple(toy_categories(max_toy_categories(), seed=0))


def _attributes(category: ToyCategory) -> tuple[str, str, str]:
    return category.shape, category.colour, category.texture


def confusion(category: ToyCategory, world: Sequence[ToyCategory], rng: np.random.Generator,
              confusable: float) -> ToyCategory:
    """Another class of ``world`` for a wrong-class image: with probability ``confusable`` one
    differing from ``category`` in a single attribute (when ``world`` has one), else any."""
    others = [c for c in world if c.name != category.name]
    if not others:
        raise ValueError(f'no other category than {category.name!r} to draw a wrong class from')
    if rng.random() < confusable:
        near = [
            c for c in others
            if sum(a != b for a, b in zip(_attributes(c), _attributes(category))) == 1
        ]
        if near:
            return near[int(rng.integers(len(near)))]
    return others[int(rng.integers(len(others)))]


def _gapped_pose(rng: np.random.Generator, s: GapSettings) -> ToyPose:
    pose = sample_pose(rng)
    return replace(
        pose,
        hue_shift=pose.hue_shift + float(rng.uniform(-s.hue_shift, s.hue_shift)),
        saturation=float(np.clip(pose.saturation * rng.uniform(*s.saturation), 0.2, 1.0)),
        value=float(np.clip(pose.value * rng.uniform(*s.value), 0.25, 1.0)),
        texture_cells=pose.texture_cells * float(rng.uniform(*s.texture_scale)),
        light_strength=float(rng.uniform(*s.light_strength)))


def _draw(category: ToyCategory,
          size: int,
          rng: np.random.Generator,
          s: GapSettings,
          coverage_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    pose = _gapped_pose(rng, s)
    coverage = float(rng.uniform(*s.coverage)) * coverage_scale
    extent, _ = extent_for_coverage(category.shape, pose, coverage, size)
    return draw_instance(category, max(extent, 4.0), pose=pose)


def _paste_clipped(image: np.ndarray, full_mask: np.ndarray, bgr: np.ndarray, mask: np.ndarray,
                   x: int, y: int) -> None:
    """Paste an object whose canvas may stick out of the image; the mask of what is visible
    is added to ``full_mask`` (later objects occlude earlier ones)."""
    size_y, size_x = image.shape[:2]
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, size_x), min(y + h, size_y)
    if x1 <= x0 or y1 <= y0:
        return
    part = mask[y0 - y:y1 - y, x0 - x:x1 - x]
    paste(image, bgr[y0 - y:y1 - y, x0 - x:x1 - x], part, x0, y0)
    full_mask[y0:y1, x0:x1] |= part


def _visible_fraction(mask: np.ndarray, x: int, y: int, size: int) -> float:
    h, w = mask.shape
    part = mask[max(-y, 0):min(size - y, h), max(-x, 0):min(size - x, w)]
    return float(part.sum()) / max(int(mask.sum()), 1)


def _truncated_position(mask: np.ndarray,
                        size: int,
                        rng: np.random.Generator,
                        visible: tuple = (0.3, 0.7)) -> tuple[int, int]:
    """A position where ``visible`` of the object stays in the image (the closest of 40 tries
    to the middle of that range when none is in it)."""
    h, w = mask.shape
    best, best_gap = (0, 0), np.inf
    for _ in range(40):
        side = int(rng.integers(4))
        along_x = int(rng.integers(0, max(size - w, 0) + 1))
        along_y = int(rng.integers(0, max(size - h, 0) + 1))
        depth = float(rng.uniform(0.2, 0.8))
        x, y = {
            0: (int(-depth * w), along_y),
            1: (int(size - (1 - depth) * w), along_y),
            2: (along_x, int(-depth * h)),
            3: (along_x, int(size - (1 - depth) * h)),
        }[side]
        frac = _visible_fraction(mask, x, y, size)
        if visible[0] <= frac <= visible[1]:
            return x, y
        gap = abs(frac - sum(visible) / 2)
        if gap < best_gap:
            best, best_gap = (x, y), gap
    return best


def _random_position(mask: np.ndarray, size: int, rng: np.random.Generator) -> tuple[int, int]:
    h, w = mask.shape
    return int(rng.integers(0, max(size - w, 0) + 1)), int(rng.integers(0, max(size - h, 0) + 1))


def _finish(image: np.ndarray, rng: np.random.Generator, s: GapSettings) -> np.ndarray:
    """Whole-image style: colour cast, optional blur, pixel noise."""
    img = image.astype(np.float32) * (1 + rng.uniform(-s.colour_cast, s.colour_cast, size=3))
    if rng.random() < s.blur:
        sigma = float(rng.uniform(*s.blur_sigma)) * image.shape[0] / 256
        if sigma > 0:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += float(rng.uniform(0, s.noise)) * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _render(category: ToyCategory, defect: str, rng: np.random.Generator, size: int, s: GapSettings,
            world: Sequence[ToyCategory]) -> GappedImage:
    weights = np.array([s.backgrounds[k] for k in BACKGROUNDS])
    background = list(BACKGROUNDS)[int(rng.choice(len(weights), p=weights / weights.sum()))]
    image = BACKGROUNDS[background](size, size, rng)
    mask = np.zeros((size, size), bool)
    drawn = []
    if defect == 'two_objects':
        second = category if rng.random() < s.same_class_second else confusion(
            category, world, rng, 0.0)
        for obj in (category, second):
            bgr, m = _draw(obj, size, rng, s, coverage_scale=0.5)
            _paste_clipped(image, mask, bgr, m, *_random_position(m, size, rng))
            drawn.append(obj.name)
    elif defect != 'empty':
        obj = confusion(category, world, rng, s.confusable) if defect == 'wrong_class' \
            else category
        bgr, m = _draw(obj, size, rng, s)
        position = _truncated_position(m, size, rng) if defect == 'truncated' \
            else _random_position(m, size, rng)
        _paste_clipped(image, mask, bgr, m, *position)
        drawn.append(obj.name)
    return GappedImage(_finish(image, rng, s), mask, defect, tuple(drawn), background)


def render_gapped_instance(category: ToyCategory,
                           seed: int,
                           settings: Optional[GapSettings] = None,
                           size: int = 256,
                           world: Optional[Sequence[ToyCategory]] = None) -> GappedImage:
    """Render what a generator with a gap answers to ``"a photo of a single {name}"``.

    1. Draw the image's defect (:func:`draw_defect`, its own random stream).
    2. ``black``: an all-black image. ``duplicate``: the image of one of the class's
       ``duplicate_modes`` modes (seeded by ``settings.seed`` and the class name), plus light
       pixel noise of this seed.
    3. Otherwise draw a background (:data:`BACKGROUNDS`), then the object(s) the defect asks
       for with the style gap of ``settings`` (:class:`GapSettings`), then blur, noise and a
       colour cast over the whole image.

    Args:
        category (ToyCategory): The requested class.
        seed (int): Seed of the image; the same seed gives the same image.
        settings (GapSettings, optional): Defaults to ``GapSettings()``.
        size (int): Side of the square image, at least 32. Defaults to 256.
        world (Sequence[ToyCategory], optional): Classes a wrong object is drawn from.
            Defaults to every toy category (:func:`xpaste.toy.max_toy_categories`).

    Returns:
        GappedImage: The image, the mask of what was drawn, its defect and the drawn classes.
    """
    size = check_number('size', size, 32, integer=True)
    settings = settings or GapSettings()
    if world is None:
        world = _every_category()
    defect = draw_defect(seed, settings)
    rng = np.random.default_rng([int(seed), _RENDER_STREAM])
    if defect == 'black':
        return GappedImage(
            np.zeros((size, size, 3), np.uint8), np.zeros((size, size), bool), defect, (), 'black')
    if defect == 'duplicate':
        mode = int(rng.integers(settings.duplicate_modes))
        mode_rng = np.random.default_rng([settings.seed, zlib.crc32(category.name.encode()), mode])
        out = _render(category, 'none', mode_rng, size, settings, world)
        noisy = out.image + 1.5 * rng.standard_normal(size=out.image.shape, dtype=np.float32)
        out.image = np.clip(noisy, 0, 255).astype(np.uint8)
        out.defect = 'duplicate'
        return out
    return _render(category, defect, rng, size, settings, world)

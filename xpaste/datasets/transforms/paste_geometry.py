"""Geometry and appearance of one pasted instance, for :class:`~.XPaste`.

Everything here works on the instance's own crop and its window of the image, never on a
full-frame array: the size model (:class:`SizeModel`), resizing, flipping, rotating and placing a
crop (:func:`place_instance`), colour jitter (:func:`jitter_color`) and photometric matching to
the background (:func:`match_luminance`).
"""
import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .blend import MASK_ALPHA_THR

SIZE_MODES = ('class_stats', 'range', 'original')

# Luminance weights of OpenCV's BGR -> grey conversion (ITU-R BT.601), in BGR order.
_LUMA_BGR = (0.114, 0.587, 0.299)

#: Bounds of the contrast gain of :func:`match_luminance` (a flat window or a flat instance
#: would otherwise give an extreme gain).
MATCH_GAIN_RANGE = (0.25, 4.0)


def mask_tight_box(mask: np.ndarray) -> Optional[tuple]:
    """``(y0, y1, x0, x1)`` (ends exclusive) of the non-zero pixels of a 2D uint8 array."""
    if mask.strides[0] < 0 or mask.strides[1] != mask.itemsize:  # e.g. a flipped view
        mask = np.ascontiguousarray(mask)
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    return y, y + h, x, x + w


@dataclass(frozen=True)
class SizeModel:
    """Scale factor of a stored crop so that its pasted ``sqrt(mask area)`` follows a model.

    ``L = s * sqrt(H * W)`` pixels, with ``s`` drawn from the class's prior (``'class_stats'``:
    ``mean + std * z`` with the bank's per-class statistics), or uniformly in ``size_range``
    (``'range'``: ``lo + (hi - lo) * u``), then clipped to ``[min_size, max_size_ratio *
    min(H, W)]``; ``'original'`` keeps the stored size.

    Args:
        mode (str): One of :data:`SIZE_MODES`.
        size_range (tuple[float, float]): Range of ``s`` in ``'range'`` mode.
        min_size (float): Lower clip of ``L`` in pixels.
        max_size_ratio (float): Upper clip of ``L`` as a fraction of the shorter image side.
        prior (np.ndarray, optional): ``(num bank categories, 2)`` float64 ``(mean, std)`` of
            ``s`` per bank category; required by ``'class_stats'``. Defaults to None.
    """

    mode: str
    size_range: tuple
    min_size: float
    max_size_ratio: float
    prior: Optional[np.ndarray] = None

    @classmethod
    def from_bank(cls, bank, mode: str, size_range: tuple, min_size: float,
                  max_size_ratio: float) -> 'SizeModel':
        """The model with the per-category priors of ``bank`` (an :class:`InstanceBank`)."""
        prior = None
        if mode == 'class_stats':
            prior = np.array([bank.size_prior(n) for n in bank.category_names],
                             dtype=np.float64).reshape(-1, 2)
        return cls(mode, size_range, min_size, max_size_ratio, prior)

    def scale(self, cat: int, area: int, z: float, u: float, hw: tuple) -> float:
        """Scale factor of a crop of bank category ``cat`` whose mask has ``area`` pixels.

        Args:
            cat (int): Bank category position.
            area (int): Mask pixels of the stored crop (> 0).
            z (float): Standard normal draw (``'class_stats'``).
            u (float): Uniform draw in [0, 1) (``'range'``).
            hw (tuple[int, int]): Image height and width.

        Returns:
            float: The factor to resize the crop by.
        """
        if self.mode == 'original':
            return 1.0
        h, w = hw
        if self.mode == 'class_stats':
            mean, std = self.prior[cat]
            s = mean + std * z
        else:
            lo, hi = self.size_range
            s = lo + (hi - lo) * u
        side = s * math.sqrt(h * w)
        side = min(max(side, self.min_size), self.max_size_ratio * min(h, w))
        return side / math.sqrt(area)


@dataclass
class PlacedInstance:
    """The visible part of one crop placed in the image.

    Attributes:
        win (tuple[int, int, int, int]): ``(y0, y1, x0, x1)`` of the visible part in the image.
        bgr (np.ndarray): ``(h, w, 3)`` uint8 colour of the visible part.
        alpha (np.ndarray): ``(h, w)`` uint8 opacity of the visible part.
        full_mask (np.ndarray): ``alpha >= 128`` as uint8 0/1, ``(h, w)``.
        mask (np.ndarray): ``full_mask`` cropped to its tight box ``box``.
        box (tuple[int, int, int, int]): ``(y0, y1, x0, x1)`` of ``mask`` in the image.
    """

    win: tuple
    bgr: np.ndarray
    alpha: np.ndarray
    full_mask: np.ndarray
    mask: np.ndarray
    box: tuple


def place_instance(bgra: np.ndarray, scale: float, aspect: float, flip: bool, angle: float,
                   pos: tuple, hw: tuple, min_visible_size: int) -> Optional[PlacedInstance]:
    """Resize, flip, rotate and place a BGRA crop; return its visible part or None.

    Args:
        bgra (np.ndarray): ``(h, w, 4)`` uint8 crop.
        scale (float): Resize factor (area scales by ``scale ** 2``).
        aspect (float): Aspect-ratio factor: width times ``sqrt(aspect)``, height divided by it.
        flip (bool): Flip horizontally.
        angle (float): Rotation in degrees (counter-clockwise); 0 for none.
        pos (tuple[float, float]): ``(uy, ux)`` in [0, 1): the top-left corner is drawn
            uniformly among the positions that keep the crop inside the image (or that make it
            cover the image along an axis where it does not fit).
        hw (tuple[int, int]): Image height and width.
        min_visible_size (int): Minimum side of the visible tight box.

    Returns:
        PlacedInstance | None: None if nothing (or too little) of the mask is visible.
    """
    H, W = hw
    r = math.sqrt(aspect)
    h, w = bgra.shape[:2]
    tw, th = max(1, round(w * scale * r)), max(1, round(h * scale / r))
    if (tw, th) != (w, h):
        bgra = cv2.resize(bgra, (tw, th), interpolation=cv2.INTER_LINEAR)
    if flip:
        bgra = cv2.flip(bgra, 1)
    if angle != 0:
        bgra = rotate_expand(bgra, angle)
    h, w = bgra.shape[:2]
    # top-left inside the image when the crop fits, else the crop covers the image
    uy, ux = pos
    ylo, yhi = min(0, H - h), max(0, H - h)
    xlo, xhi = min(0, W - w), max(0, W - w)
    y0 = ylo + min(int(uy * (yhi - ylo + 1)), yhi - ylo)
    x0 = xlo + min(int(ux * (xhi - xlo + 1)), xhi - xlo)
    vy0, vy1 = max(y0, 0), min(y0 + h, H)
    vx0, vx1 = max(x0, 0), min(x0 + w, W)
    if vy0 >= vy1 or vx0 >= vx1:
        return None
    vis = bgra[vy0 - y0:vy1 - y0, vx0 - x0:vx1 - x0]
    alpha = cv2.extractChannel(vis, 3)
    mask = (alpha >= MASK_ALPHA_THR).view(np.uint8)
    tb = mask_tight_box(mask)
    if tb is None or min(tb[1] - tb[0], tb[3] - tb[2]) < min_visible_size:
        return None
    ty0, ty1, tx0, tx1 = tb
    return PlacedInstance(
        win=(vy0, vy1, vx0, vx1),
        bgr=cv2.cvtColor(vis, cv2.COLOR_BGRA2BGR),
        alpha=alpha,
        full_mask=mask,
        mask=np.ascontiguousarray(mask[ty0:ty1, tx0:tx1]),
        box=(vy0 + ty0, vy0 + ty1, vx0 + tx0, vx0 + tx1))


def rotate_expand(bgra: np.ndarray, angle: float) -> np.ndarray:
    """Rotate a BGRA crop by ``angle`` degrees (counter-clockwise) on a canvas that holds it."""
    h, w = bgra.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw = max(1, int(math.ceil(h * sin + w * cos)))
    nh = max(1, int(math.ceil(h * cos + w * sin)))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(
        bgra,
        m, (nw, nh),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0))


def jitter_color(bgr: np.ndarray, mask: np.ndarray, brightness: float, contrast: float,
                 saturation: float) -> np.ndarray:
    """Brightness, contrast (around the mean grey of the masked pixels) and saturation."""
    brightness, contrast, saturation = float(brightness), float(contrast), float(saturation)
    x = bgr.astype(np.float32)
    x *= brightness
    if contrast != 1:
        b, g, r, _ = cv2.mean(x, mask=mask)
        grey = _LUMA_BGR[0] * b + _LUMA_BGR[1] * g + _LUMA_BGR[2] * r
        x = (x - grey) * contrast + grey
    if saturation != 1:
        grey = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)[..., None]
        x = (x - grey) * saturation + grey
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def luminance_stats(bgr: np.ndarray, mask: Optional[np.ndarray] = None) -> tuple:
    """``(mean, std)`` of the BT.601 luminance of ``bgr`` (where ``mask`` is non-zero)."""
    grey = cv2.cvtColor(np.ascontiguousarray(bgr, dtype=np.float32), cv2.COLOR_BGR2GRAY)
    mean, std = cv2.meanStdDev(grey, mask=mask)
    return float(mean[0, 0]), float(std[0, 0])


def match_luminance(bgr: np.ndarray, mask: np.ndarray, background: np.ndarray,
                    strength: float) -> np.ndarray:
    """Move the luminance mean and std of an instance towards those of its background.

    With ``(m_i, s_i)`` the luminance mean and std of the instance's mask pixels and
    ``(m_b, s_b)`` those of ``background`` (the image window the instance is pasted into, as it
    was before the paste), every colour channel becomes ``(x - m_i) * g + m_i + t * (m_b - m_i)``
    with gain ``g = 1 + t * (s_b / s_i - 1)`` (``s_b / s_i`` clipped to
    :data:`MATCH_GAIN_RANGE`) and ``t = strength``: ``t = 0`` changes nothing, ``t = 1`` gives
    the instance the background's luminance mean and std (before rounding and clipping to
    [0, 255]). One affine map for all channels keeps the instance's hues.

    Args:
        bgr (np.ndarray): ``(h, w, 3)`` uint8 instance colour.
        mask (np.ndarray): ``(h, w)`` uint8 0/1 instance mask.
        background (np.ndarray): ``(h, w, 3)`` image window (uint8 or float32 in 0..255).
        strength (float): ``t`` in [0, 1].

    Returns:
        np.ndarray: The adjusted uint8 colour (``bgr`` itself when nothing changes).
    """
    t = float(strength)
    if t <= 0 or not mask.any():
        return bgr
    m_i, s_i = luminance_stats(bgr, mask)
    m_b, s_b = luminance_stats(background)
    ratio = s_b / s_i if s_i > 1e-6 else 1.0
    gain = 1.0 + t * (float(np.clip(ratio, *MATCH_GAIN_RANGE)) - 1.0)
    x = bgr.astype(np.float32)
    x = (x - m_i) * gain + (m_i + t * (m_b - m_i))
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)

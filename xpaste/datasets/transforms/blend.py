"""Blend modes used by :class:`~xpaste.datasets.transforms.XPaste`.

Every mode composites a small source patch into a *window* of the destination image in place:
the caller passes ``dst`` as a view (``img[y0:y1, x0:x1]``) of the same height and width as the
patch, so no full-frame array is ever built. The opacity is the patch's 8-bit alpha channel.

Modes (``BLEND_MODES``):

- ``'hard'``: copy the source where ``alpha >= 128`` (the pixels that form the instance mask).
- ``'alpha'``: ``dst = src * a + dst * (1 - a)`` with ``a = alpha / 255``.
- ``'gaussian'``: as ``'alpha'`` with the alpha feathered by a Gaussian blur of standard
  deviation ``sigma`` (pixels), which hides the cut-out's outline.
- ``'poisson'``: seamless cloning (``cv2.seamlessClone``, ``NORMAL_CLONE``) of the pixels where
  ``alpha >= 128``, solved inside the window only. OpenCV solves on uint8 images: a float32
  window (values in 0..255, as ``LoadImageFromFile(to_float32=True)`` gives) is rounded to uint8
  for the solve, and only the instance's pixels (``alpha >= 128``) are written back, so the rest
  of the window keeps its float values.
"""
from typing import Optional

import cv2
import numpy as np

from xpaste.utils.checks import check_choice

BLEND_MODES = ('hard', 'alpha', 'gaussian', 'poisson')

#: Alpha value from which a pixel belongs to the instance (mask) and is copied by ``'hard'``.
MASK_ALPHA_THR = 128

# Padding (px) around the window for Poisson cloning: OpenCV clears the outermost row and column
# of the clone mask, so an instance touching the window border needs room around it.
_POISSON_PAD = 2


def check_blend_mode(mode: str) -> str:
    """Return ``mode`` if it is a known blend mode, else raise ``ValueError`` naming it."""
    return check_choice('blend mode', mode, BLEND_MODES)


def blend_into(dst: np.ndarray,
               src: np.ndarray,
               alpha: np.ndarray,
               mode: str = 'hard',
               sigma: float = 2.0,
               mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Composite ``src`` into ``dst`` in place with the opacity ``alpha``.

    Args:
        dst (np.ndarray): Destination window, ``(h, w, C)``, usually a view of the training
            image; modified in place. uint8 or float32 (``'poisson'``: 3 channels, float32
            values in 0..255).
        src (np.ndarray): Source patch, ``(h, w, C)``, same dtype as ``dst``.
        alpha (np.ndarray): Opacity, ``(h, w)`` uint8 (255 = opaque).
        mode (str): One of :data:`BLEND_MODES`. Defaults to ``'hard'``.
        sigma (float): Standard deviation (px) of the feathering blur of ``'gaussian'``.
            Defaults to 2.0.
        mask (np.ndarray, optional): ``alpha >= MASK_ALPHA_THR`` as uint8 0/1, if the caller
            already has it (saves one pass). Defaults to None.

    Returns:
        np.ndarray: ``dst``.
    """
    check_blend_mode(mode)
    if dst.shape[:2] != alpha.shape[:2] or src.shape != dst.shape:
        raise ValueError(f'blend_into needs dst, src and alpha of the same height and width, got '
                         f'dst {dst.shape}, src {src.shape}, alpha {alpha.shape}')
    if alpha.dtype != np.uint8:
        raise TypeError(f'alpha must be uint8, got {alpha.dtype}')
    if dst.size == 0:
        return dst
    if mode == 'hard':
        if mask is None:
            mask = (alpha >= MASK_ALPHA_THR).view(np.uint8)
        if _cv_writable(dst):
            # cv2.copyTo writes into the strided view without building a 3-channel mask.
            cv2.copyTo(src, mask, dst)
        else:
            np.copyto(dst, src, where=mask.astype(bool)[..., None])
        return dst
    if mode == 'poisson':
        return _poisson_into(dst, src, alpha, mask)
    if mode == 'gaussian':
        if sigma <= 0:
            raise ValueError(f'gaussian blend needs sigma > 0, got {sigma!r}')
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    weight = alpha.astype(np.float32)
    weight *= 1.0 / 255.0
    dst[...] = cv2.blendLinear(
        np.ascontiguousarray(src), np.ascontiguousarray(dst), weight, 1.0 - weight)
    return dst


def _cv_writable(a: np.ndarray) -> bool:
    """Whether OpenCV can write into ``a`` in place (positive row strides, packed pixels)."""
    return a.ndim == 3 and a.strides[0] > 0 and a.strides[1] == a.shape[2] * a.itemsize \
        and a.strides[2] == a.itemsize


def _poisson_into(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray,
                  mask: Optional[np.ndarray]) -> np.ndarray:
    """Seamless cloning of ``src`` into the window ``dst`` (see :func:`blend_into`)."""
    if dst.dtype not in (np.uint8, np.float32) or dst.ndim != 3 or dst.shape[2] != 3:
        raise TypeError(f'poisson blend needs uint8 or float32 3-channel images, got {dst.dtype} '
                        f'{dst.shape}')
    if mask is None:
        mask = (alpha >= MASK_ALPHA_THR).view(np.uint8)
    if not mask.any():
        return dst
    if dst.dtype == np.float32:
        # OpenCV solves on uint8: solve on a rounded copy, write back the instance's pixels only
        out = _poisson_into(_to_uint8(dst), _to_uint8(src), alpha, mask)
        np.copyto(dst, out, where=mask.astype(bool)[..., None], casting='unsafe')
        return dst
    p = _POISSON_PAD
    dst_ext = cv2.copyMakeBorder(np.ascontiguousarray(dst), p, p, p, p, cv2.BORDER_REFLECT)
    src_ext = cv2.copyMakeBorder(np.ascontiguousarray(src), p, p, p, p, cv2.BORDER_REPLICATE)
    mask_ext = cv2.copyMakeBorder(mask * np.uint8(255), p, p, p, p, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(mask_ext)
    # seamlessClone puts the mask's bounding box at ``center - size // 2``: this keeps it in place.
    center = (x + w // 2, y + h // 2)
    try:
        out = cv2.seamlessClone(src_ext, dst_ext, mask_ext, center, cv2.NORMAL_CLONE)
    except cv2.error:
        # Degenerate masks (a line or a few pixels) have no interior to solve for.
        cv2.copyTo(src, mask, dst)
        return dst
    dst[...] = out[p:-p, p:-p]
    return dst


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """A float array in 0..255 rounded and clipped to uint8 (a new contiguous array)."""
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)

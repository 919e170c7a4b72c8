"""Mask utilities shared by the segmenters, the segment stage, CLIP scoring and the report."""
from typing import Optional

import cv2
import numpy as np


def largest_component(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Keep the largest 8-connected component of a bool mask.

    Returns:
        tuple[np.ndarray, float]: The cleaned mask and the fraction of the mask's pixels in that
        component (1.0 for a single component, 0.0 for an empty mask).
    """
    mask = np.asarray(mask, dtype=bool)
    total = int(mask.sum())
    if total == 0:
        return mask, 0.0
    num, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if num <= 2:
        return mask, 1.0
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best, float(stats[best, cv2.CC_STAT_AREA]) / total


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a bool mask (background regions not connected to the image border)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask
    padded = np.pad(mask, 1).astype(np.uint8)
    flood = padded.copy()
    ff_mask = np.zeros((flood.shape[0] + 2, flood.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return mask | holes


def mask_box(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """Tight box ``(x, y, w, h)`` of a bool mask, None when empty."""
    if not mask.any():
        return None
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return x, y, w, h


def cutout_on_white(image: np.ndarray,
                    mask: np.ndarray,
                    margin: float = 0.1,
                    square: bool = True) -> np.ndarray:
    """The masked object composited on white, cropped to its box.

    Args:
        image (np.ndarray): BGR uint8 (H, W, 3).
        mask (np.ndarray): bool (H, W).
        margin (float): Extra border around the box, as a fraction of its longer side.
            Defaults to 0.1.
        square (bool): Pad the crop to a square with white (so that a centre crop keeps the
            whole object). Defaults to True.

    Returns:
        np.ndarray: BGR uint8 crop; the whole white image when the mask is empty.
    """
    white = np.full_like(image, 255)
    comp = np.where(mask[..., None], image, white)
    box = mask_box(mask)
    if box is None:
        return white
    x, y, w, h = box
    side = max(w, h)
    pad = int(round(margin * side))
    out_w, out_h = (side + 2 * pad, ) * 2 if square else (w + 2 * pad, h + 2 * pad)
    crop = np.full((out_h, out_w, 3), 255, np.uint8)
    ox, oy = (out_w - w) // 2, (out_h - h) // 2
    crop[oy:oy + h, ox:ox + w] = comp[y:y + h, x:x + w]
    return crop


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """A bool mask packed to bits (uint8, 8x smaller) for storage."""
    return np.packbits(np.asarray(mask, dtype=bool).ravel())


def unpack_mask(packed: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pack_mask`."""
    n = int(shape[0]) * int(shape[1])
    return np.unpackbits(packed, count=n).astype(bool).reshape(int(shape[0]), int(shape[1]))


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to ``(height, width)`` (bilinear on 0/1, then threshold 0.5)."""
    if mask.shape == tuple(shape):
        return mask
    soft = cv2.resize(
        mask.astype(np.float32), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
    return soft >= 0.5


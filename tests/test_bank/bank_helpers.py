"""Shared inputs of the bank tests: categories and random BGRA crops."""
import cv2
import numpy as np

CATS = [{'id': 1, 'name': 'apple'}, {'id': 7, 'name': 'banana'}, {'id': 9, 'name': 'cherry'}]


def crop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A ``(h, w, 4)`` uint8 BGRA crop: random colours, an opaque ellipse inside a clear border."""
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 255, -1)
    img[..., 3] = alpha
    return img

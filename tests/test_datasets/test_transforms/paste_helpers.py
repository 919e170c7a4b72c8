"""Tiny banks and result dicts for the XPaste tests (imported by the test modules here)."""
import cv2
import numpy as np
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from xpaste.bank import BankWriter, finalize_bank

CATEGORIES = [{'id': 1, 'name': 'cat'}, {'id': 2, 'name': 'dog'}]


def write_bank(root, items, categories=CATEGORIES, image_format='png'):
    """Write ``[(bgra, category_name), ...]`` as a finalized bank at ``root``."""
    writer = BankWriter(str(root), categories=categories, image_format=image_format)
    for bgra, name in items:
        writer.add(bgra, name, crop=False)
    writer.close()
    finalize_bank(str(root))
    return str(root)


def textured_crop(h, w, seed=0, shape='ellipse'):
    """A BGRA crop: random texture, opaque inside an ellipse (or everywhere), transparent out."""
    rng = np.random.default_rng(seed)
    bgra = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    if shape == 'ellipse':
        cv2.ellipse(alpha, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360,
                    255, -1)
    else:
        alpha[:] = 255
    bgra[..., 3] = alpha
    return bgra


def box_masks(boxes, h, w):
    """Filled-rectangle BitmapMasks for integer boxes (x0, y0, x1, y1): tight by construction."""
    masks = np.zeros((len(boxes), h, w), np.uint8)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        m[y0:y1, x0:x1] = 1
    return BitmapMasks(masks, h, w)


def make_results(boxes, h=100, w=100, labels=None, with_mask=True, img=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    results = dict(
        img=np.zeros((h, w, 3), np.uint8) if img is None else img,
        gt_bboxes=HorizontalBoxes(boxes),
        gt_bboxes_labels=np.zeros(n, np.int64) if labels is None else np.asarray(labels),
        gt_ignore_flags=np.zeros(n, bool))
    results['img_shape'] = (h, w)
    if with_mask:
        results['gt_masks'] = box_masks(boxes.astype(int), h, w)
    return results


def tight_box(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def exact_paste_kwargs(**kwargs):
    """Options that paste the stored crop pixel for pixel (no resize, flip, rotation, jitter)."""
    cfg = dict(
        size_mode='original',
        aspect_jitter=0.0,
        flip=False,
        rotation=0.0,
        color_jitter=0.0,
        blend='hard',
        min_visible_size=1)
    cfg.update(kwargs)
    return cfg


def check_invariants(out, h, w, originals_tight=True):
    """Dtypes, lengths, tight boxes, non-empty masks, pasted masks disjoint from the others.

    ``originals_tight=False`` checks tight boxes of pasted instances only (instances no paste
    touches keep their input boxes, which need not be tight, e.g. LVIS polygons).
    """
    boxes = out['gt_bboxes']
    arr = boxes.numpy() if isinstance(boxes, HorizontalBoxes) else boxes
    n = len(arr)
    assert arr.dtype == np.float32
    assert out['gt_bboxes_labels'].dtype == np.int64 and len(out['gt_bboxes_labels']) == n
    assert out['gt_ignore_flags'].dtype == bool and len(out['gt_ignore_flags']) == n
    assert out['gt_pasted_flags'].dtype == bool and len(out['gt_pasted_flags']) == n
    masks = out['gt_masks']
    assert isinstance(masks, BitmapMasks) and masks.masks.dtype == np.uint8
    assert masks.masks.shape == (n, h, w) and (masks.height, masks.width) == (h, w)
    flags = out['gt_pasted_flags']
    for k in range(n):
        assert masks.masks[k].any(), f'instance {k} has an empty mask'
        if originals_tight or flags[k]:
            np.testing.assert_array_equal(arr[k], tight_box(masks.masks[k]))
    for k in np.flatnonzero(flags):
        others = np.delete(masks.masks, k, axis=0).any(0)
        assert not (others & masks.masks[k].astype(bool)).any()


def half_cover_bank(tmp_path, h=100, w=100):
    """One instance the size of the image, opaque exactly on its left half (x < w // 2).

    Pasted at its original size it can only land at (0, 0): the paste covers the left half.
    """
    bgra = textured_crop(h, w, seed=7, shape='full')
    bgra[:, w // 2:, 3] = 0
    return write_bank(tmp_path / 'half', [(bgra, 'dog')])

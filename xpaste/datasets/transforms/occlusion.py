"""Who covers whom within one call of :class:`~.XPaste`: the occlusion ledger.

The ledger holds, for every instance of the image (the originals, then each pasted one), the
box it is tested against, and, once a paste has touched it, a small local mask of the region it
occupies. :meth:`OcclusionLedger.occlude` removes a new paste's pixels from every earlier
instance whose box overlaps it, :meth:`OcclusionLedger.add` records the paste itself, and
:meth:`OcclusionLedger.finish` applies mmdet ``CopyPaste``'s filter and gives the kept instances
and their boxes; :meth:`OcclusionLedger.masks` writes the full-frame masks once, at the end.
"""
import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .paste_geometry import mask_tight_box

# In mask mode the box of an original instance is widened by this many pixels before it is
# tested against a paste window: rasterised masks may stick out of their (float) boxes by a
# pixel after Resize/RandomFlip.
BOX_MARGIN = 2


@dataclass
class OcclusionResult:
    """What :meth:`OcclusionLedger.finish` decides.

    Attributes:
        kept (np.ndarray): int64 indices of the kept instances (originals first, in order).
        boxes (np.ndarray): ``(len(kept), 4)`` float32 boxes (x0, y0, x1, y1) of the kept ones.
        num_original (int): How many of ``kept`` are original instances.
        count (int): Instances before filtering (originals and pasted).
    """

    kept: np.ndarray
    boxes: np.ndarray
    num_original: int
    count: int


class OcclusionLedger:
    """Occlusion state of the instances of one image while bank instances are pasted into it.

    Args:
        boxes (np.ndarray): ``(n, 4)`` float32 boxes (x0, y0, x1, y1) of the original instances.
        masks (np.ndarray, optional): ``(n, H, W)`` uint8 masks of the originals; None for
            box-only pipelines, where each original is a filled box.
        hw (tuple[int, int]): Image height and width.
        capacity (int): Maximum number of pasted instances that :meth:`add` will record.
    """

    def __init__(self, boxes: np.ndarray, masks: Optional[np.ndarray], hw: tuple, capacity: int):
        n0 = len(boxes)
        n_max = n0 + capacity
        self.hw = hw
        self.num_original = n0
        self._in_boxes = boxes
        self._masks = masks
        # x0, y0, x1, y1 for window-overlap tests; -1 rows never overlap
        self._test = np.full((n_max, 4), -1.0)
        if n0:
            self._test[:n0] = boxes
            if masks is not None:
                self._test[:n0, :2] -= BOX_MARGIN
                self._test[:n0, 2:] += BOX_MARGIN
        # ``region`` (y0, y1, x0, x1) and ``local`` (uint8 0/1 mask of the region) exist for
        # touched instances only; ``pre`` is the box the filter compares with.
        self._region: list = [None] * n_max
        self._local: list = [None] * n_max
        self._pre = np.zeros((n_max, 4), np.float64)
        self.count = n0

    @property
    def has_masks(self) -> bool:
        """Whether the originals came with masks (else the pipeline is box-only)."""
        return self._masks is not None

    def occlude(self, box: tuple, mask: np.ndarray) -> None:
        """Remove the pixels of ``mask`` (tight box ``box`` = y0, y1, x0, x1) from every
        instance recorded so far whose box overlaps ``box``."""
        by0, by1, bx0, bx1 = box
        inv = np.subtract(1, mask, dtype=np.uint8)
        tb = self._test[:self.count]
        hits = np.flatnonzero((tb[:, 0] < bx1) & (tb[:, 2] > bx0) & (tb[:, 1] < by1)
                              & (tb[:, 3] > by0))
        for k in hits:
            if self._region[k] is None and not self._touch(k):
                continue
            ky0, ky1, kx0, kx1 = self._region[k]
            iy0, iy1 = max(ky0, by0), min(ky1, by1)
            ix0, ix1 = max(kx0, bx0), min(kx1, bx1)
            if iy0 >= iy1 or ix0 >= ix1:
                continue
            sub = self._local[k][iy0 - ky0:iy1 - ky0, ix0 - kx0:ix1 - kx0]
            np.bitwise_and(sub, inv[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0], out=sub)

    def add(self, box: tuple, mask: np.ndarray) -> int:
        """Record a pasted instance (tight ``mask`` at ``box`` = y0, y1, x0, x1); its index."""
        by0, by1, bx0, bx1 = box
        k = self.count
        self._region[k] = box
        self._local[k] = mask
        self._pre[k] = (bx0, by0, bx1, by1)
        self._test[k] = self._pre[k]
        self.count += 1
        return k

    def _touch(self, k: int) -> bool:
        """Give original instance ``k`` a local mask on its first overlap; False if empty."""
        H, W = self.hw
        x0, y0, x1, y1 = self._in_boxes[k]
        if self._masks is not None:
            m = self._masks[k]
            ry0, ry1 = max(math.floor(y0) - BOX_MARGIN, 0), min(math.ceil(y1) + BOX_MARGIN, H)
            rx0, rx1 = max(math.floor(x0) - BOX_MARGIN, 0), min(math.ceil(x1) + BOX_MARGIN, W)
            tb = mask_tight_box(m[ry0:ry1, rx0:rx1]) if ry0 < ry1 and rx0 < rx1 else None
            if tb is not None:
                ty0, ty1, tx0, tx1 = tb[0] + ry0, tb[1] + ry0, tb[2] + rx0, tb[3] + rx0
                # the mask reaches the searched region's border: it may extend beyond the box
                if ((ty0 == ry0 and ry0 > 0) or (ty1 == ry1 and ry1 < H) or (tx0 == rx0 and rx0 > 0)
                        or (tx1 == rx1 and rx1 < W)):
                    tb = mask_tight_box(m)
                else:
                    tb = (ty0, ty1, tx0, tx1)
            elif ry0 > 0 or rx0 > 0 or ry1 < H or rx1 < W:
                tb = mask_tight_box(m)
            if tb is None:  # empty mask: nothing to occlude, passed through unchanged
                self._test[k] = -1
                return False
            ty0, ty1, tx0, tx1 = tb
            self._local[k] = m[ty0:ty1, tx0:tx1].copy()
            self._pre[k] = (tx0, ty0, tx1, ty1)
        else:
            ty0, ty1 = max(math.floor(y0), 0), min(math.ceil(y1), H)
            tx0, tx1 = max(math.floor(x0), 0), min(math.ceil(x1), W)
            if ty0 >= ty1 or tx0 >= tx1:
                self._test[k] = -1
                return False
            self._local[k] = np.ones((ty1 - ty0, tx1 - tx0), np.uint8)
            self._pre[k] = (x0, y0, x1, y1)
        self._region[k] = (ty0, ty1, tx0, tx1)
        self._test[k] = (tx0, ty0, tx1, ty1)
        return True

    def finish(self, box_occluded_thr: float, mask_occluded_thr: int) -> OcclusionResult:
        """Filter the touched instances as mmdet's ``CopyPaste`` does.

        A touched instance's box becomes the tight box of what is left of its mask (box-only:
        clipped to its input box); it is kept if more than ``mask_occluded_thr`` mask pixels
        remain **or** no side of its box moved by more than ``box_occluded_thr`` pixels; an
        empty one is dropped. Untouched instances are kept with their input boxes.
        """
        count, n0 = self.count, self.num_original
        boxes = np.empty((count, 4), np.float32)
        boxes[:n0] = self._in_boxes
        keep = np.ones(count, bool)
        pre = self._pre
        for k in range(count):
            local = self._local[k]
            if self._region[k] is None:
                continue
            tb = mask_tight_box(local)
            area = cv2.countNonZero(local) if tb is not None else 0
            if area == 0:
                keep[k] = False
                continue
            ry0, _, rx0, _ = self._region[k]
            new = np.array((rx0 + tb[2], ry0 + tb[0], rx0 + tb[3], ry0 + tb[1]), np.float64)
            if self._masks is None and k < n0:  # box-only: clip the input box to what is left
                new = np.concatenate(
                    [np.maximum(new[:2], pre[k, :2]),
                     np.minimum(new[2:], pre[k, 2:])])
            moved = np.abs(new - pre[k]).max() > box_occluded_thr
            keep[k] = area > mask_occluded_thr or not moved
            boxes[k] = new
        kept = np.flatnonzero(keep)
        return OcclusionResult(kept, boxes[kept], int(np.count_nonzero(kept < n0)), count)

    def masks(self, result: OcclusionResult) -> np.ndarray:
        """``(len(result.kept), H, W)`` uint8 masks of the kept instances.

        One full-frame array for all output masks: kept originals are copied once (one block
        copy per run of consecutive indices), every local mask is written into its region; rows
        of pasted masks stay lazily zeroed.
        """
        H, W = self.hw
        kept, n_orig = result.kept, result.num_original
        out = np.zeros((len(kept), H, W), np.uint8)
        src = kept[:n_orig]
        starts = np.flatnonzero(np.diff(src, prepend=-2) != 1)
        for a, b in zip(starts, np.append(starts[1:], n_orig)):
            out[a:b] = self._masks[src[a]:src[a] + b - a]
        for j, k in enumerate(kept):
            if self._region[k] is not None:
                y0, y1, x0, x1 = self._region[k]
                out[j, y0:y1, x0:x1] = self._local[k]
        return out

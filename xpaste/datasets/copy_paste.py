"""Simple Copy-Paste between images of different sizes (large-scale jitter without a fixed
``Pad``), as the X-Paste code does it."""
import math

import numpy as np
from mmdet.datasets.transforms import CopyPaste
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks


def _fit_image(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """``img`` cropped or zero-padded at the bottom/right to ``h x w``."""
    out = np.zeros((h, w) + img.shape[2:], dtype=img.dtype)
    hh, ww = min(h, img.shape[0]), min(w, img.shape[1])
    out[:hh, :ww] = img[:hh, :ww]
    return out


def _fit_masks(masks: BitmapMasks, h: int, w: int) -> BitmapMasks:
    arr = np.zeros((len(masks), h, w), dtype=masks.masks.dtype)
    hh, ww = min(h, masks.height), min(w, masks.width)
    arr[:, :hh, :ww] = masks.masks[:, :hh, :ww]
    return BitmapMasks(arr, h, w)


@TRANSFORMS.register_module()
class CopyPasteAnySize(CopyPaste):
    """mmdet's ``CopyPaste`` (Ghiasi et al., 2021) for a source image whose size differs from
    the destination's.

    With large-scale jitter every image is resized by its own factor and cropped to at most
    the training size, so images differ in size. mmdet's recipe pads all of them to the
    training size first; X-Paste's copy-paste (``custom_copypaste.py``) instead extends the
    destination to the extent of the selected source objects. This transform does the latter:

    1. The source objects are selected as in ``CopyPaste`` (a random subset, ``selected``).
    2. The canvas is ``max(destination size, bottom-right corner of the selected source
       boxes)``: the destination image and masks are zero-padded at the bottom/right to it,
       the source image and masks are cropped/padded to it.
    3. ``CopyPaste`` pastes the objects, updates the occluded destination masks and boxes and
       drops the instances occluded beyond ``bbox_occluded_thr`` / ``mask_occluded_thr``.

    Used in the training pipeline of a ``MultiImageMixDataset``, which draws the source image
    uniformly from the dataset.

    Required Keys:

    - img
    - gt_bboxes (BaseBoxes[torch.float32])
    - gt_bboxes_labels (np.int64)
    - gt_ignore_flags (bool)
    - gt_masks (BitmapMasks)
    - mix_results (list[dict], one result of the same keys)

    Modified Keys:

    - img (possibly larger; its dtype kept)
    - img_shape
    - gt_bboxes
    - gt_bboxes_labels
    - gt_ignore_flags
    - gt_masks

    Args:
        As :class:`mmdet.datasets.transforms.CopyPaste` (``max_num_pasted=100``,
        ``bbox_occluded_thr=10``, ``mask_occluded_thr=300``, ``selected=True``).
    """

    def _copy_paste(self, dst_results: dict, src_results: dict) -> dict:
        src_bboxes = src_results['gt_bboxes']
        if len(src_bboxes) == 0:
            return dst_results
        dtype = dst_results['img'].dtype
        dst_h, dst_w = dst_results['img'].shape[:2]
        corner = src_bboxes.tensor[:, 2:].max(dim=0)[0]
        h = max(dst_h, math.ceil(float(corner[1])))
        w = max(dst_w, math.ceil(float(corner[0])))
        if (h, w) != (dst_h, dst_w):
            dst_results['img'] = _fit_image(dst_results['img'], h, w)
            dst_results['gt_masks'] = _fit_masks(self.get_gt_masks(dst_results), h, w)
            dst_results['img_shape'] = (h, w)
        if src_results['img'].shape[:2] != (h, w):
            src_results['img'] = _fit_image(src_results['img'], h, w)
            src_results['gt_masks'] = _fit_masks(src_results['gt_masks'], h, w)
        results = super()._copy_paste(dst_results, src_results)
        # CopyPaste blends with an int mask, which turns a uint8 image into int64
        results['img'] = results['img'].astype(dtype)
        return results

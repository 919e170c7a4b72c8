"""The X-Paste transform: paste instance-bank cut-outs into training images.

All work happens inside each pasted instance's own window: the instance is resized, flipped,
rotated and colour-jittered at its own size (:mod:`.paste_geometry`), blended into its window of
the image (:mod:`.blend`), and only the masks whose box overlaps that window are updated, on
small local copies (:mod:`.occlusion`). The full-frame ``BitmapMasks`` array of the output is
materialised once, at the end. Bank categories map to labels by name (:mod:`.bank_labels`).
"""
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, autocast_box_type
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from xpaste.utils.checks import (check_bool, check_choice, check_non_empty_str, check_non_negative,
                                 check_number, check_positive, check_prob, check_range)

from ..instance_bank import InstanceBank
from .bank_labels import bank_exists, is_json_path, open_labelled_bank, resolve_class_names
from .blend import BLEND_MODES, blend_into, check_blend_mode
from .occlusion import OcclusionLedger, OcclusionResult
from .paste_geometry import (SIZE_MODES, PlacedInstance, SizeModel, jitter_color, match_luminance,
                             place_instance)

__all__ = ['XPaste', 'SIZE_MODES', 'resolve_class_names']


@dataclass
class PastePlan:
    """Every random draw of one call, one row per paste (see :meth:`XPaste._random_plan`)."""

    ids: np.ndarray  # int64 bank instance indices
    size_z: np.ndarray  # standard normal: 'class_stats' size
    size_u: np.ndarray  # uniform [0, 1): 'range' size
    aspect: np.ndarray  # aspect-ratio factor
    flip: np.ndarray  # bool
    angle: np.ndarray  # degrees
    color: np.ndarray  # (n, 3) brightness, contrast, saturation factors
    blend: np.ndarray  # index into the blend modes
    pos: np.ndarray  # (n, 2) uniform [0, 1): placement
    match_u: np.ndarray  # uniform [0, 1): photometric matching happens if < its prob
    match_t: np.ndarray  # uniform [0, 1): photometric matching strength within its range

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class GtInstances:
    """The instance keys of the input results, checked and as numpy arrays."""

    gt_bboxes: object  # the input box object (box type kept in the output)
    boxes: np.ndarray  # (n, 4) float32
    labels: np.ndarray  # (n,) int64
    ignore: np.ndarray  # (n,) bool
    pasted: np.ndarray  # (n,) bool: pasted by an earlier paste step
    masks: Optional[np.ndarray]  # (n, H, W) uint8, or None (box-only)


def writable_img(img: np.ndarray) -> np.ndarray:
    """``img`` checked as (H, W, 3), made C-contiguous and writeable (copied if needed)."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'XPaste needs a 3-channel (H, W, 3) BGR img, got shape {img.shape}')
    if not img.flags.c_contiguous:  # e.g. the flipped view RandomFlip leaves
        return np.ascontiguousarray(img)
    return img if img.flags.writeable else img.copy()


def read_instances(results: dict, hw: tuple, flag_key: str) -> GtInstances:
    """The instance keys of ``results``, checked for consistent lengths and mask shapes.

    ``flag_key`` names the pasted-instance flags of an earlier paste step (all False if absent).
    """
    gt_bboxes = results.get('gt_bboxes')
    if gt_bboxes is None:
        gt_bboxes = HorizontalBoxes(np.zeros((0, 4), np.float32))
    boxes = gt_bboxes.numpy() if hasattr(gt_bboxes, 'numpy') else np.asarray(gt_bboxes)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n0 = len(boxes)
    if 'gt_bboxes_labels' in results:
        labels = np.asarray(results['gt_bboxes_labels'], dtype=np.int64)
    elif n0 == 0:
        labels = np.zeros(0, np.int64)
    else:
        raise KeyError('XPaste: results has gt_bboxes but no gt_bboxes_labels')
    ignore = np.asarray(results.get('gt_ignore_flags', np.zeros(n0, bool)), dtype=bool)
    pasted = np.asarray(results.get(flag_key, np.zeros(n0, bool)), dtype=bool)
    if len(labels) != n0 or len(ignore) != n0 or len(pasted) != n0:
        raise ValueError(f'XPaste: per-instance keys disagree: {n0} gt_bboxes, '
                         f'{len(labels)} gt_bboxes_labels, {len(ignore)} gt_ignore_flags, '
                         f'{len(pasted)} {flag_key}')
    masks = None
    gt_masks = results.get('gt_masks')
    if gt_masks is not None:
        if isinstance(gt_masks, PolygonMasks):
            gt_masks = gt_masks.to_bitmap()
        if not isinstance(gt_masks, BitmapMasks):
            raise TypeError(f'XPaste: gt_masks must be BitmapMasks or PolygonMasks, got '
                            f'{type(gt_masks).__name__}')
        masks = gt_masks.masks
        if masks.dtype == bool:
            masks = masks.view(np.uint8)
        if masks.shape != (n0, *hw):
            raise ValueError(f'XPaste: gt_masks has shape {masks.shape}, expected '
                             f'{(n0, *hw)} ({n0} boxes, image {hw[0]}x{hw[1]})')
    return GtInstances(gt_bboxes, boxes, labels, ignore, pasted, masks)


def _check_photometric_match(value) -> Optional[dict]:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {'strength', 'prob'}:
        raise ValueError('photometric_match must be None or dict(strength=(lo, hi), prob=p), '
                         f'got {value!r}')
    return dict(
        strength=check_range('photometric_match.strength', value.get('strength', (0.0, 1.0)), 0, 1),
        prob=check_prob('photometric_match.prob', value.get('prob', 0.5)))


def _num_pastes_range(num_pastes) -> tuple:
    """``(lo, hi)`` of the number of pastes (drawn from ``lo .. hi - 1``)."""
    if isinstance(num_pastes, (int, np.integer)) and not isinstance(num_pastes, bool):
        n = check_non_negative('num_pastes', num_pastes, integer=True)
        return n, n + 1
    if isinstance(num_pastes, Sequence) and len(num_pastes) == 2:
        lo = check_non_negative('num_pastes[0]', num_pastes[0], integer=True)
        hi = check_number('num_pastes[1]', num_pastes[1], 1, integer=True)
        if lo >= hi:
            raise ValueError(f'num_pastes=(lo, hi) draws from lo..hi-1 and needs lo < hi, got '
                             f'{tuple(num_pastes)!r}')
        return lo, hi
    raise ValueError(f'num_pastes must be an int or a (lo, hi) pair, got {num_pastes!r}')


@TRANSFORMS.register_module()
class XPaste(BaseTransform):
    """Paste instances of an instance bank into the image (X-Paste).

    Insert it in a normal mmdet 3.x pipeline, after loading, resizing and flipping and before
    ``PackDetInputs``; no ``MultiImageMixDataset`` is needed (the second "image" is the bank)::

        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='RandomResize', ...), dict(type='RandomFlip', prob=0.5),
        dict(type='XPaste', bank=dict(type='InstanceBank', root='data/bank'),
             classes='LVISV1Dataset'),
        dict(type='PackDetInputs')

    The transform works as follows:

    1. With probability ``1 - prob`` nothing is pasted. Otherwise a number of pastes ``n`` is
       drawn (``num_pastes``) and ``n`` bank instances are sampled with the bank's sampling
       (category balanced by default). ``n == 0`` pastes nothing either. When nothing is
       pasted, the results are returned unchanged except that ``gt_pasted_flags`` is added
       (all False) if absent.
    2. Each instance (BGRA crop) is scaled so that the square root of its mask area is
       ``L = s * sqrt(H * W)``, with ``s`` drawn from the class's size prior
       (``size_mode='class_stats'``: normal with the bank's per-class mean/std of
       ``sqrt(area / image area)``) or uniformly in ``size_range`` (``'range'``), ``L`` clipped
       to ``[min_size, max_size_ratio * min(H, W)]`` pixels; ``'original'`` keeps the stored
       size. The aspect ratio is scaled by a factor in ``[1 - aspect_jitter, 1 + aspect_jitter]``
       (area kept), the crop is flipped horizontally with probability 0.5 (``flip``) and rotated
       by an angle in ``[-rotation, rotation]`` degrees.
    3. It is placed at a uniformly random position (entirely inside the image when it fits,
       else covering the image along that axis; the part outside the image is cut off). Its
       mask is ``alpha >= 128`` inside the image; a paste whose visible mask is empty or whose
       tight box has a side shorter than ``min_visible_size`` is skipped. Colour jitter
       (brightness, contrast, saturation factors in ``[1 - color_jitter, 1 + color_jitter]``) is
       applied to the visible part; then, with ``photometric_match``, its luminance mean and
       std are moved towards those of the image window it covers, by a strength drawn in
       ``photometric_match['strength']`` (see
       :func:`~xpaste.datasets.transforms.paste_geometry.match_luminance`). It is blended into
       its window with a blend mode drawn from ``blend`` (see
       :mod:`xpaste.datasets.transforms.blend`).
    4. Occlusion: every earlier instance (original, or pasted before) whose box overlaps the
       window loses the pixels of the new mask. Instances are pasted one after the other, so
       later pastes occlude earlier ones.
    5. Filtering, for every instance touched by a later paste, as mmdet's ``CopyPaste`` does:
       its box becomes the tight box of what is left of its mask, and it is kept if its mask
       keeps more than ``mask_occluded_thr`` pixels **or** no side of its box moved by more than
       ``box_occluded_thr`` pixels (compared with its tight box before this call, or at its own
       paste); an instance left with an empty mask is always dropped.
    6. Kept original instances come first (in their order), then the kept pasted instances in
       paste order; ``gt_pasted_flags`` marks the pasted ones.

    Boxes: the box of a pasted instance, and of an original instance that a paste touched
    (whose box, widened by 2 px when there are masks, overlaps the box of a later paste), is
    the tight box of its remaining mask, even if it lost no pixel. An original instance that no
    paste touches keeps its input box and mask unchanged (LVIS boxes of polygon masks need not
    be tight).

    Without ``gt_masks`` (box-only pipelines) every original instance is treated as a filled
    box: the pasted instance's alpha mask removes pixels from it, and a touched box is clipped to
    the tight box of its remaining pixels (intersected with its input box) and filtered by the
    same rule, using the remaining pixel count as mask area.

    Labels map by **name**: a bank category ``c`` gets the label of class
    ``category_map.get(c, c)`` in ``classes``. mmdet transforms do not see the dataset
    ``metainfo``, so the class names are an argument (a list, a metainfo dict or a registered
    dataset name such as ``'LVISV1Dataset'``). Bank categories that are not dataset classes are
    an error unless ``ignore_unknown=True``, in which case they are never sampled (a
    ``categories=`` restriction in the bank config still applies: the intersection is sampled).

    Randomness: a per-call ``numpy.random.Generator`` is seeded from numpy's global RNG, which
    mmengine seeds per dataloader worker, so results are reproducible under
    ``randomness=dict(seed=...)``. The draws are made in ``@cache_randomness`` helpers.

    ``img`` is expected in BGR order (``LoadImageFromFile``'s default), uint8, or float32 with
    values in 0..255 (``to_float32=True``), and is updated in place (copied first if read-only
    or not contiguous). ``'poisson'`` blending of a float32 image solves on the window rounded
    to uint8 and writes back the instance's pixels only. The input masks are not modified. The
    mask of an original instance is looked for within 2 px of its box (as ``LoadAnnotations``,
    ``Resize`` and ``RandomFlip`` keep them), and in the whole frame when it reaches that
    border; a paste window that only overlaps mask pixels lying farther outside the box does
    not occlude them.

    Required Keys:

    - img (np.uint8 | np.float32, ``(H, W, 3)``, BGR)
    - gt_bboxes (BaseBoxes[torch.float32] | np.float32 ndarray) (optional)
    - gt_bboxes_labels (np.int64) (optional; required with gt_bboxes)
    - gt_ignore_flags (bool) (optional)
    - gt_masks (BitmapMasks | PolygonMasks) (optional)

    Modified Keys:

    - img
    - gt_bboxes (same box type as the input; float32)
    - gt_bboxes_labels (np.int64)
    - gt_ignore_flags (bool; False for pasted instances)
    - gt_masks (BitmapMasks, uint8; PolygonMasks input is converted when anything is pasted)

    Added Keys:

    - gt_pasted_flags (bool ndarray, one per instance, True for pasted ones; the key is
      ``paste_flag_key``). Always present after this transform, also when nothing is pasted
      (then all False, one per input box); an existing one (from an earlier paste step) is
      extended.

    Place geometric transforms that drop instances (crops, ``FilterAnnotations``) before this
    one: they do not know ``gt_pasted_flags``.

    Args:
        bank (dict | str | os.PathLike | InstanceBank): Instance bank config
            (``dict(type='InstanceBank', root=...)``), bank root path, or bank object.
        classes (str | os.PathLike | Sequence[str] | dict): Dataset class names in label order,
            a dataset metainfo dict with ``'classes'``, a registered dataset name
            (``'LVISV1Dataset'``) or an LVIS/COCO json path (see :func:`resolve_class_names`).
        prob (float): Probability of pasting at all. Defaults to 1.0.
        num_pastes (int | tuple[int, int]): Number of pastes per image: an int is exact, a pair
            ``(lo, hi)`` draws uniformly from ``lo .. hi - 1`` (the paper draws 0..N-1, N=20).
            Defaults to (0, 20).
        sampling (str, optional): Override the bank's sampling (``'uniform'``,
            ``'class_balanced'``, ``'frequency'``); needs ``bank`` as a config or path.
            Defaults to None (the bank's).
        size_mode (str): ``'class_stats'``, ``'range'`` or ``'original'`` (keep the stored
            size). Defaults to ``'class_stats'``.
        size_range (tuple[float, float]): Range of ``sqrt(instance area / image area)`` of
            ``'range'``. Defaults to (0.05, 0.5).
        min_size (float): Lower clip of the pasted ``sqrt(area)`` in pixels (>= 1).
            Defaults to 10.
        max_size_ratio (float): Upper clip of the pasted ``sqrt(area)`` as a fraction of the
            image's shorter side. Defaults to 0.5.
        aspect_jitter (float): Relative aspect-ratio jitter in [0, 1). Defaults to 0.2.
        flip (bool): Flip instances horizontally with probability 0.5. Defaults to True.
        rotation (float): Maximum rotation in degrees, in [0, 180]. Defaults to 0.
        color_jitter (float): Brightness/contrast/saturation jitter strength in [0, 1].
            Defaults to 0.
        blend (str | Sequence[str]): Blend mode, or modes drawn uniformly per instance, among
            ``'hard'``, ``'alpha'``, ``'gaussian'``, ``'poisson'``. Defaults to ``'hard'``.
        blend_sigma (float): Feathering standard deviation (px) of ``'gaussian'``.
            Defaults to 2.0.
        box_occluded_thr (float): Box-move threshold of the occlusion filter (px).
            Defaults to 10.
        mask_occluded_thr (int): Remaining-area threshold of the occlusion filter (px).
            Defaults to 300.
        min_visible_size (int): Minimum side (px) of the visible tight box of a pasted instance;
            smaller pastes are skipped. Defaults to 4.
        category_map (dict, optional): Bank category name -> dataset class name, for the names
            that differ. Defaults to None (identity).
        ignore_unknown (bool): Exclude bank categories absent from ``classes`` instead of
            raising. Defaults to False.
        paste_flag_key (str): Results key of the pasted-instance flags.
            Defaults to ``'gt_pasted_flags'``.
        photometric_match (dict, optional): Match each pasted instance's luminance (mean and
            std, after colour jitter) towards the image window it is pasted into:
            ``dict(strength=(lo, hi), prob=p)``, applied to a paste with probability ``p``
            (default 0.5) with a strength drawn uniformly in ``[lo, hi]`` within [0, 1]
            (default (0.0, 1.0); 0 keeps the instance, 1 matches fully). Defaults to None (off).
    """

    def __init__(self,
                 bank: Union[dict, str, os.PathLike, InstanceBank],
                 classes: Union[str, os.PathLike, Sequence[str], dict],
                 prob: float = 1.0,
                 num_pastes: Union[int, tuple] = (0, 20),
                 sampling: Optional[str] = None,
                 size_mode: str = 'class_stats',
                 size_range: tuple = (0.05, 0.5),
                 min_size: float = 10,
                 max_size_ratio: float = 0.5,
                 aspect_jitter: float = 0.2,
                 flip: bool = True,
                 rotation: float = 0.0,
                 color_jitter: float = 0.0,
                 blend: Union[str, Sequence[str]] = 'hard',
                 blend_sigma: float = 2.0,
                 box_occluded_thr: float = 10,
                 mask_occluded_thr: int = 300,
                 min_visible_size: int = 4,
                 category_map: Optional[dict] = None,
                 ignore_unknown: bool = False,
                 paste_flag_key: str = 'gt_pasted_flags',
                 photometric_match: Optional[dict] = None) -> None:
        self.prob = check_prob('prob', prob)
        self._num_range = _num_pastes_range(num_pastes)
        self.num_pastes = (
            self._num_range if isinstance(num_pastes, Sequence) else self._num_range[0])
        self.size_mode = check_choice('size_mode', size_mode, SIZE_MODES)
        self.size_range = check_range('size_range', size_range, 0, lo_open=True)
        self.min_size = check_number('min_size', min_size, 1)
        self.max_size_ratio = check_positive('max_size_ratio', max_size_ratio)
        self.aspect_jitter = check_number('aspect_jitter', aspect_jitter, 0, 1, hi_open=True)
        self.flip = check_bool('flip', flip)
        self.rotation = check_number('rotation', rotation, 0, 180)
        self.color_jitter = check_number('color_jitter', color_jitter, 0, 1)
        modes = [blend] if isinstance(blend, str) else blend
        if not isinstance(modes, Sequence) or not modes:
            raise ValueError(f'blend must be a blend mode or a non-empty list of modes '
                             f'{BLEND_MODES}, got {blend!r}')
        self.blend = blend if isinstance(blend, str) else tuple(blend)
        self._blend_modes = tuple(check_blend_mode(m) for m in modes)
        self.blend_sigma = check_positive('blend_sigma', blend_sigma)
        self.box_occluded_thr = check_non_negative('box_occluded_thr', box_occluded_thr)
        self.mask_occluded_thr = check_non_negative(
            'mask_occluded_thr', mask_occluded_thr, integer=True)
        self.min_visible_size = check_number('min_visible_size', min_visible_size, 1, integer=True)
        if category_map is not None and not isinstance(category_map, Mapping):
            raise ValueError(f'category_map must be a dict {{bank name: class name}} or None, '
                             f'got {category_map!r}')
        self.category_map = dict(category_map) if category_map is not None else None
        self.ignore_unknown = check_bool('ignore_unknown', ignore_unknown)
        self.paste_flag_key = check_non_empty_str('paste_flag_key', paste_flag_key)
        if sampling is not None and not isinstance(sampling, str):
            raise ValueError(f'sampling must be a string or None, got {sampling!r}')
        self.sampling = sampling
        self.photometric_match = _check_photometric_match(photometric_match)
        self._classes_arg = classes if isinstance(classes, (str, os.PathLike)) else None
        # Checked now, once, in the main process (workers receive the names with the pickled
        # transform); only a json that does not exist yet (a config built before its data) is
        # read on first use.
        self._classes = (None if is_json_path(classes) and not os.path.isfile(classes) else
                         resolve_class_names(classes))
        self._classes_src = classes
        self.bank_cfg = bank
        self._bank = None
        # Check the bank against the classes now where it can be (errors surface when the
        # pipeline is built, not in a dataloader worker); a bank that does not exist yet (a
        # config built before its bank) is opened on first use.
        if self._classes is not None and bank_exists(bank):
            self._open_bank()

    @property
    def classes(self) -> tuple:
        """Dataset class names in label order."""
        if self._classes is None:
            self._classes = resolve_class_names(self._classes_src)
        return self._classes

    @property
    def bank(self) -> InstanceBank:
        """The instance bank, opened on first use (in each dataloader worker), with its
        categories mapped to labels."""
        if self._bank is None:
            self._open_bank()
        return self._bank

    def _open_bank(self) -> None:
        """Build the bank once, its label map and the size model."""
        labelled = open_labelled_bank(self.bank_cfg, self.classes, self.category_map,
                                      self.ignore_unknown, self.sampling)
        self._cat_to_label = labelled.cat_to_label
        self._size_model = SizeModel.from_bank(labelled.bank, self.size_mode, self.size_range,
                                               self.min_size, self.max_size_ratio)
        self._bank = labelled.bank

    # ------------------------------------------------------------------ randomness
    @cache_randomness
    def _random_prob(self) -> float:
        return np.random.rand()

    @cache_randomness
    def _random_plan(self) -> PastePlan:
        """Every random draw of one call: instance ids and per-paste parameters.

        All arrays are drawn whatever the options, so turning an option off does not change
        the other draws.
        """
        rng = np.random.default_rng(np.random.randint(2**31 - 1))
        lo, hi = self._num_range
        n = int(rng.integers(lo, hi)) if self.bank.num_eligible else 0
        ids = self.bank.sample(n, rng) if n else np.zeros(0, np.int64)
        n = len(ids)
        cj = self.color_jitter
        return PastePlan(
            ids=np.asarray(ids, dtype=np.int64),
            size_z=rng.standard_normal(n),
            size_u=rng.random(n),
            aspect=rng.uniform(1 - self.aspect_jitter, 1 + self.aspect_jitter, n),
            flip=rng.random(n) < 0.5,
            angle=rng.uniform(-self.rotation, self.rotation, n),
            color=rng.uniform(1 - cj, 1 + cj, (n, 3)),
            blend=rng.integers(len(self._blend_modes), size=n),
            pos=rng.random((n, 2)),
            match_u=rng.random(n),
            match_t=rng.random(n))

    # ------------------------------------------------------------------ transform
    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        """Paste bank instances into ``results`` (see the class docstring).

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: The updated result dict.
        """
        if self._random_prob() >= self.prob:
            return self._no_paste(results)
        plan = self._random_plan()
        if len(plan) == 0:
            return self._no_paste(results)
        img = writable_img(results['img'])
        gt = read_instances(results, img.shape[:2], self.paste_flag_key)
        ledger = OcclusionLedger(gt.boxes, gt.masks, img.shape[:2], len(plan))
        labels = self._paste_all(img, plan, ledger)
        if not labels:
            return self._no_paste(results)
        kept = ledger.finish(self.box_occluded_thr, self.mask_occluded_thr)
        self._transform_img(results, img)
        self._transform_bboxes(results, gt, kept)
        self._transform_labels(results, gt, labels, kept)
        self._transform_flags(results, gt, kept)
        self._transform_masks(results, ledger, kept)
        return results

    def _no_paste(self, results: dict) -> dict:
        """Nothing pasted: only add all-False flags (one per input box) if absent."""
        if self.paste_flag_key not in results:
            boxes = results.get('gt_bboxes')
            results[self.paste_flag_key] = np.zeros(0 if boxes is None else len(boxes), bool)
        return results

    # ------------------------------------------------------------------ pasting
    def _paste_all(self, img: np.ndarray, plan: PastePlan, ledger: OcclusionLedger) -> list:
        """Paste the planned instances one after the other; the labels of those pasted."""
        labels = []
        for i in range(len(plan)):
            placed, cat = self._place(plan, i, img.shape[:2])
            if placed is None:
                continue
            self._blend(img, placed, plan, i)
            ledger.occlude(placed.box, placed.mask)
            ledger.add(placed.box, placed.mask)
            labels.append(self._cat_to_label[cat])
        return labels

    def _place(self, plan: PastePlan, i: int, hw: tuple) -> tuple:
        """``(PlacedInstance or None, bank category)`` of paste ``i``: geometry only."""
        idx = int(plan.ids[i])
        bgra = self.bank.load(idx)
        if bgra is None:  # undecodable: the bank has warned once, the paste is skipped
            return None, -1
        cat = int(self.bank.category_index(idx))
        if bgra.ndim != 3 or bgra.shape[2] != 4 or bgra.dtype != np.uint8:
            raise ValueError(f'XPaste: the bank returned instance {idx} with shape {bgra.shape} '
                             f'{bgra.dtype}, expected HxWx4 uint8 BGRA')
        area = self.bank.mask_area(idx)
        if area == 0:
            return None, cat
        scale = self._size_model.scale(cat, area, plan.size_z[i], plan.size_u[i], hw)
        angle = float(plan.angle[i]) if self.rotation > 0 else 0.0
        placed = place_instance(bgra, scale, plan.aspect[i], bool(self.flip and plan.flip[i]),
                                angle, plan.pos[i], hw, self.min_visible_size)
        return placed, cat

    def _blend(self, img: np.ndarray, placed: PlacedInstance, plan: PastePlan, i: int) -> None:
        """Colour jitter, photometric matching and blending of paste ``i`` into ``img``."""
        vy0, vy1, vx0, vx1 = placed.win
        win = img[vy0:vy1, vx0:vx1]
        bgr = placed.bgr
        if self.color_jitter > 0:
            bgr = jitter_color(bgr, placed.full_mask, *plan.color[i])
        pm = self.photometric_match
        if pm is not None and plan.match_u[i] < pm['prob']:
            lo, hi = pm['strength']
            bgr = match_luminance(bgr, placed.full_mask, win, lo + (hi - lo) * plan.match_t[i])
        src = bgr if img.dtype == np.uint8 else bgr.astype(img.dtype)
        mode = self._blend_modes[int(plan.blend[i])]
        blend_into(win, src, placed.alpha, mode, self.blend_sigma, mask=placed.full_mask)

    # ------------------------------------------------------------------ output keys
    @staticmethod
    def _transform_img(results: dict, img: np.ndarray) -> None:
        results['img'] = img

    @staticmethod
    def _transform_bboxes(results: dict, gt: GtInstances, kept: OcclusionResult) -> None:
        like = gt.gt_bboxes
        results['gt_bboxes'] = kept.boxes if isinstance(like, np.ndarray) else type(like)(
            kept.boxes)

    @staticmethod
    def _transform_labels(results: dict, gt: GtInstances, pasted_labels: list,
                          kept: OcclusionResult) -> None:
        labels = np.concatenate([gt.labels, np.asarray(pasted_labels, np.int64)])
        results['gt_bboxes_labels'] = labels[kept.kept]

    def _transform_flags(self, results: dict, gt: GtInstances, kept: OcclusionResult) -> None:
        """``gt_ignore_flags`` (False for pasted ones) and the pasted-instance flags."""
        ignore = np.zeros(kept.count, bool)
        ignore[:len(gt.ignore)] = gt.ignore
        results['gt_ignore_flags'] = ignore[kept.kept]
        flags = np.ones(kept.count, bool)
        flags[:len(gt.pasted)] = gt.pasted
        results[self.paste_flag_key] = flags[kept.kept]

    @staticmethod
    def _transform_masks(results: dict, ledger: OcclusionLedger, kept: OcclusionResult) -> None:
        if ledger.has_masks:
            results['gt_masks'] = _bitmap_masks(ledger.masks(kept))

    def __repr__(self) -> str:
        classes = (
            self._classes_arg
            if self._classes_arg is not None else f'<{len(self.classes)} classes>')
        return (f'{self.__class__.__name__}(bank={self.bank_cfg!r}, classes={classes!r}, '
                f'prob={self.prob}, num_pastes={self.num_pastes}, sampling={self.sampling!r}, '
                f'size_mode={self.size_mode!r}, size_range={self.size_range}, '
                f'min_size={self.min_size}, max_size_ratio={self.max_size_ratio}, '
                f'aspect_jitter={self.aspect_jitter}, flip={self.flip}, '
                f'rotation={self.rotation}, color_jitter={self.color_jitter}, '
                f'blend={self.blend!r}, blend_sigma={self.blend_sigma}, '
                f'box_occluded_thr={self.box_occluded_thr}, '
                f'mask_occluded_thr={self.mask_occluded_thr}, '
                f'min_visible_size={self.min_visible_size}, '
                f'category_map={self.category_map!r}, ignore_unknown={self.ignore_unknown}, '
                f'paste_flag_key={self.paste_flag_key!r}, '
                f'photometric_match={self.photometric_match!r})')


def _bitmap_masks(masks: np.ndarray) -> BitmapMasks:
    """Wrap an (N, H, W) uint8 array without the copy ``BitmapMasks.__init__`` makes."""
    out = BitmapMasks([], masks.shape[1], masks.shape[2])
    out.masks = masks
    return out

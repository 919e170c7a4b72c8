"""The X-Paste transform: paste instance-bank cut-outs into training images.

All work happens inside each pasted instance's own window: the instance is resized, flipped,
rotated and colour-jittered at its own size, blended into its window of the image, and only the
masks whose box overlaps that window are updated (on small local copies). The full-frame
``BitmapMasks`` array of the output is materialised once, at the end.
"""
import math
import os
from collections.abc import Mapping, Sequence
from typing import Optional, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, autocast_box_type
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from ..lvis import names_from_ann_file
from ..instance_bank import InstanceBank, build_instance_bank
from .blend import BLEND_MODES, MASK_ALPHA_THR, blend_into, check_blend_mode

SIZE_MODES = ('class_stats', 'range', 'original')

# In mask mode the box of an original instance is widened by this many pixels before it is
# tested against a paste window: rasterised masks may stick out of their (float) boxes by a
# pixel after Resize/RandomFlip.
_BOX_MARGIN = 2


def resolve_class_names(classes) -> tuple:
    """Class names of the training dataset, in label order.

    Args:
        classes (str | Sequence[str] | Mapping): One of

            - a sequence of class names (label ``i`` is ``classes[i]``);
            - a dataset ``metainfo`` dict holding a ``'classes'`` entry;
            - the name of a dataset class registered in mmdet's ``DATASETS`` whose
              ``METAINFO['classes']`` is used, e.g. ``'LVISV1Dataset'``;
            - the path of an LVIS/COCO-format json (``*.json``) whose categories, in id order,
              are the classes, as :class:`~xpaste.datasets.LVISV1JsonDataset` labels them.

    Returns:
        tuple[str]: The class names.
    """
    source = classes
    if isinstance(classes, str) and classes.endswith('.json'):
        classes = names_from_ann_file(classes)
    elif isinstance(classes, str):
        ds_cls = DATASETS.get(classes)
        if ds_cls is None:
            raise KeyError(f'classes={classes!r} is neither a list of class names nor a dataset '
                           "registered in mmdet's DATASETS")
        classes = getattr(ds_cls, 'METAINFO', {}).get('classes')
        if classes is None:
            raise ValueError(f'dataset {source!r} has no METAINFO["classes"]')
    elif isinstance(classes, Mapping):
        if 'classes' not in classes:
            raise KeyError(f'classes: a metainfo dict must hold a "classes" entry, got keys '
                           f'{sorted(classes)}')
        classes = classes['classes']
    if not isinstance(classes, Sequence) or isinstance(classes, (str, bytes)) or not classes:
        raise TypeError(f'classes must be a non-empty sequence of class names, a metainfo dict or '
                        f'a registered dataset name, got {source!r}')
    names = tuple(classes)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f'class names must be strings, got {bad[:5]!r}')
    dup = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if dup:
        raise ValueError(f'duplicate class names in classes: {dup[:10]!r}')
    return names


def _check_number(name: str, value, lo=None, hi=None, integer: bool = False):
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f'{name} must be {"an int" if integer else "a number"}, got {value!r}')
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = '-inf' if lo is None else lo
        hi_s = 'inf' if hi is None else hi
        raise ValueError(f'{name} must lie in [{lo_s}, {hi_s}], got {value!r}')
    return value


def _mask_tight_box(mask: np.ndarray) -> Optional[tuple]:
    """``(y0, y1, x0, x1)`` (ends exclusive) of the non-zero pixels of a 2D uint8 array."""
    if mask.strides[0] < 0 or mask.strides[1] != mask.itemsize:  # e.g. a flipped view
        mask = np.ascontiguousarray(mask)
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    return y, y + h, x, x + w


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

    1. With probability ``1 - prob`` the results are returned unchanged. Otherwise a number of
       pastes ``n`` is drawn (``num_pastes``) and ``n`` bank instances are sampled with the
       bank's sampling (category balanced by default). ``n == 0`` returns the results unchanged.
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
       applied to the visible part, which is blended into its window with a blend mode drawn
       from ``blend`` (see :mod:`xpaste.datasets.transforms.blend`).
    4. Occlusion: every earlier instance (original, or pasted before) whose box overlaps the
       window loses the pixels of the new mask. Instances are pasted one after the other, so
       later pastes occlude earlier ones.
    5. Filtering, for every instance touched by a later paste, as mmdet's ``CopyPaste`` does:
       its box becomes the tight box of what is left of its mask, and it is kept if its mask
       keeps more than ``mask_occluded_thr`` pixels **or** no side of its box moved by more than
       ``box_occluded_thr`` pixels (compared with its tight box before this call, or at its own
       paste); an instance left with an empty mask is always dropped. Instances that no paste
       touches are passed through unchanged.
    6. Kept original instances come first (in their order), then the kept pasted instances in
       paste order; ``gt_pasted_flags`` marks the pasted ones.

    Without ``gt_masks`` (box-only pipelines) every original instance is treated as a filled
    box: the pasted instance's alpha mask removes pixels from it, and a touched box is clipped to
    the tight box of its remaining pixels (intersected with its input box) and filtered by the
    same rule, using the remaining pixel count as mask area.

    Labels map by **name**: a bank category ``c`` gets the label of class
    ``category_map.get(c, c)`` in ``classes``. mmdet transforms do not see the dataset
    ``metainfo``, so the class names are an argument (a list, a metainfo dict or a registered
    dataset name such as ``'LVISV1Dataset'``). Bank categories that are not dataset classes are
    an error unless ``ignore_unknown=True``, in which case they are never sampled.

    Randomness: a per-call ``numpy.random.Generator`` is seeded from numpy's global RNG, which
    mmengine seeds per dataloader worker, so results are reproducible under
    ``randomness=dict(seed=...)``. The draws are made in ``@cache_randomness`` helpers.

    ``img`` is expected in BGR order (``LoadImageFromFile``'s default), uint8 or float32, and is
    updated in place (copied first if read-only or not contiguous). The input masks are not
    modified. The mask of an original instance is looked for within 2 px of its box (as
    ``LoadAnnotations``, ``Resize`` and ``RandomFlip`` keep them), and in the whole frame when it
    reaches that border; a paste window that only overlaps mask pixels lying farther outside the
    box does not occlude them.

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
      ``paste_flag_key``)

    Place geometric transforms that drop instances (crops, ``FilterAnnotations``) before this
    one: they do not know ``gt_pasted_flags``.

    Args:
        bank (dict | str | InstanceBank): Instance bank config (``dict(type='InstanceBank',
            root=...)``), bank root path, or bank object.
        classes (str | Sequence[str] | dict): Dataset class names in label order, a dataset
            metainfo dict with ``'classes'``, or a registered dataset name (``'LVISV1Dataset'``).
        prob (float): Probability of pasting at all. Defaults to 1.0.
        num_pastes (int | tuple[int, int]): Number of pastes per image: an int is exact, a pair
            ``(lo, hi)`` draws uniformly from ``lo .. hi - 1`` (the paper draws 0..N-1, N=20).
            Defaults to (0, 20).
        sampling (str, optional): Override the bank's sampling (e.g. ``'class_balanced'``,
            ``'instance'``); needs ``bank`` as a config or path. Defaults to None (the bank's).
        size_mode (str): ``'class_stats'``, ``'range'`` or ``'original'`` (keep the stored
            size). Defaults to ``'class_stats'``.
        size_range (tuple[float, float]): Range of ``sqrt(instance area / image area)`` of
            ``'range'``. Defaults to (0.05, 0.5).
        min_size (float): Lower clip of the pasted ``sqrt(area)`` in pixels. Defaults to 10.
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
    """

    def __init__(self,
                 bank: Union[dict, str, InstanceBank],
                 classes: Union[str, Sequence[str], dict],
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
                 paste_flag_key: str = 'gt_pasted_flags') -> None:
        self.prob = float(_check_number('prob', prob, 0, 1))
        if isinstance(num_pastes, (int, np.integer)) and not isinstance(num_pastes, bool):
            _check_number('num_pastes', num_pastes, 0, integer=True)
            self.num_pastes = int(num_pastes)
            self._num_range = (int(num_pastes), int(num_pastes) + 1)
        elif isinstance(num_pastes, Sequence) and len(num_pastes) == 2:
            lo, hi = num_pastes
            _check_number('num_pastes[0]', lo, 0, integer=True)
            _check_number('num_pastes[1]', hi, 1, integer=True)
            if lo >= hi:
                raise ValueError(f'num_pastes=(lo, hi) draws from lo..hi-1 and needs lo < hi, got '
                                 f'{tuple(num_pastes)!r}')
            self.num_pastes = (int(lo), int(hi))
            self._num_range = self.num_pastes
        else:
            raise TypeError(f'num_pastes must be an int or a (lo, hi) pair, got {num_pastes!r}')
        if size_mode not in SIZE_MODES:
            raise ValueError(f'size_mode must be one of {SIZE_MODES}, got {size_mode!r}')
        self.size_mode = size_mode
        if not (isinstance(size_range, Sequence) and len(size_range) == 2):
            raise TypeError(f'size_range must be a (min, max) pair, got {size_range!r}')
        _check_number('size_range[0]', size_range[0], 0)
        _check_number('size_range[1]', size_range[1], 0)
        if not 0 < size_range[0] <= size_range[1]:
            raise ValueError(f'size_range must satisfy 0 < min <= max, got {tuple(size_range)!r}')
        self.size_range = (float(size_range[0]), float(size_range[1]))
        self.min_size = float(_check_number('min_size', min_size, 1))
        self.max_size_ratio = float(_check_number('max_size_ratio', max_size_ratio, 0))
        if self.max_size_ratio == 0:
            raise ValueError(f'max_size_ratio must be > 0, got {max_size_ratio!r}')
        self.aspect_jitter = float(_check_number('aspect_jitter', aspect_jitter, 0, 0.99))
        if not isinstance(flip, bool):
            raise TypeError(f'flip must be a bool, got {flip!r}')
        self.flip = flip
        self.rotation = float(_check_number('rotation', rotation, 0, 180))
        self.color_jitter = float(_check_number('color_jitter', color_jitter, 0, 1))
        modes = [blend] if isinstance(blend, str) else blend
        if not isinstance(modes, Sequence) or not modes:
            raise TypeError(f'blend must be a blend mode or a non-empty list of modes '
                            f'{BLEND_MODES}, got {blend!r}')
        self.blend = blend if isinstance(blend, str) else tuple(blend)
        self._blend_modes = tuple(check_blend_mode(m) for m in modes)
        self.blend_sigma = float(_check_number('blend_sigma', blend_sigma, 0))
        if self.blend_sigma == 0:
            raise ValueError(f'blend_sigma must be > 0, got {blend_sigma!r}')
        self.box_occluded_thr = float(_check_number('box_occluded_thr', box_occluded_thr, 0))
        self.mask_occluded_thr = int(
            _check_number('mask_occluded_thr', mask_occluded_thr, 0, integer=True))
        self.min_visible_size = int(
            _check_number('min_visible_size', min_visible_size, 1, integer=True))
        if category_map is not None and not isinstance(category_map, Mapping):
            raise TypeError(f'category_map must be a dict {{bank name: class name}} or None, got '
                            f'{category_map!r}')
        self.category_map = dict(category_map) if category_map is not None else None
        if not isinstance(ignore_unknown, bool):
            raise TypeError(f'ignore_unknown must be a bool, got {ignore_unknown!r}')
        self.ignore_unknown = ignore_unknown
        if not isinstance(paste_flag_key, str) or not paste_flag_key:
            raise ValueError(f'paste_flag_key must be a non-empty string, got {paste_flag_key!r}')
        self.paste_flag_key = paste_flag_key
        if sampling is not None and not isinstance(sampling, str):
            raise TypeError(f'sampling must be a string or None, got {sampling!r}')
        self.sampling = sampling
        self._classes_arg = classes if isinstance(classes, str) else None
        # Checked now, once, in the main process (workers receive the names with the pickled
        # transform); only a json that does not exist yet (a config built before its data) is
        # read on first use.
        self._classes = (None if _is_json_path(classes) and not os.path.isfile(classes) else
                         resolve_class_names(classes))
        self._classes_src = classes
        self.bank_cfg = bank
        self._bank = None
        # Check the bank against the classes now where it can be (errors surface when the
        # pipeline is built, not in a dataloader worker); a bank that does not exist yet (a
        # config built before its bank) is opened on first use.
        if self._classes is not None and _bank_exists(bank):
            self._bank = self._build_bank(bank)

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
            self._bank = self._build_bank(self.bank_cfg)
        return self._bank

    # ------------------------------------------------------------------ setup
    def _build_bank(self, bank) -> InstanceBank:
        """Build the bank, map its categories to labels and restrict sampling if needed."""
        if self.sampling is not None:
            if isinstance(bank, InstanceBank):
                raise TypeError('XPaste: sampling= overrides the sampling of a bank config or '
                                f'path; got a built bank {bank!r} (set its sampling instead)')
            bank = dict(type='InstanceBank', root=bank) if isinstance(bank, str) else dict(bank)
            bank['sampling'] = self.sampling
        built = build_instance_bank(bank)
        names = list(built.category_names)
        if self.category_map is not None:
            stray = sorted(set(self.category_map) - set(names))
            if stray:
                raise ValueError(f'XPaste: category_map keys {stray[:20]!r} are not categories of '
                                 f'the bank {_bank_root(built)!r}')
        mapped = [self.category_map.get(n, n) if self.category_map else n for n in names]
        label_of = {c: i for i, c in enumerate(self.classes)}
        unknown = [n for n, m in zip(names, mapped) if m not in label_of]
        if unknown and not self.ignore_unknown:
            raise ValueError(
                f'XPaste: {len(unknown)} of {len(names)} categories of the bank '
                f'{_bank_root(built)!r} are not dataset classes: {unknown[:30]!r}'
                f'{" ..." if len(unknown) > 30 else ""}; map them with category_map or pass '
                'ignore_unknown=True to never paste them')
        if unknown:
            known = [n for n, m in zip(names, mapped) if m in label_of]
            if isinstance(bank, InstanceBank):
                raise ValueError(
                    f'XPaste: ignore_unknown=True needs the bank as a config or path to restrict '
                    f'its categories; the built bank {_bank_root(built)!r} has unknown '
                    f'categories {unknown[:30]!r}')
            cfg = dict(type='InstanceBank', root=bank) if isinstance(bank, str) else dict(bank)
            cfg['categories'] = known
            built = build_instance_bank(cfg)
            names = list(built.category_names)
            mapped = [self.category_map.get(n, n) if self.category_map else n for n in names]
        self._cat_to_label = np.array([label_of.get(m, -1) for m in mapped], dtype=np.int64)
        if self.size_mode == 'class_stats':
            prior = np.array([built.size_prior(n) for n in names], dtype=np.float64)
            self._size_prior = prior.reshape(-1, 2)
        else:
            self._size_prior = None
        return built

    # ------------------------------------------------------------------ randomness
    @cache_randomness
    def _random_prob(self) -> float:
        return np.random.rand()

    @cache_randomness
    def _random_plan(self) -> dict:
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
        return dict(
            ids=np.asarray(ids, dtype=np.int64),
            size_z=rng.standard_normal(n),
            size_u=rng.random(n),
            aspect=rng.uniform(1 - self.aspect_jitter, 1 + self.aspect_jitter, n),
            flip=rng.random(n) < 0.5,
            angle=rng.uniform(-self.rotation, self.rotation, n),
            color=rng.uniform(1 - cj, 1 + cj, (n, 3)),
            blend=rng.integers(len(self._blend_modes), size=n),
            pos=rng.random((n, 2)))

    # ------------------------------------------------------------------ one instance
    def _mask_area(self, idx: int, bgra: np.ndarray) -> int:
        """Pixels with ``alpha >= 128`` of a stored crop: from the bank index when it has them."""
        reader = getattr(self.bank, 'reader', None)
        columns = getattr(reader, 'columns', None)
        if columns is not None and 'area' in columns:
            return int(columns['area'][idx])
        return int(np.count_nonzero(bgra[..., 3] >= MASK_ALPHA_THR))

    def _target_scale(self, cat: int, area: int, z: float, u: float, hw: tuple) -> float:
        """Scale factor of a crop whose mask has ``area`` pixels."""
        if self.size_mode == 'original':
            return 1.0
        h, w = hw
        if self.size_mode == 'class_stats':
            mean, std = self._size_prior[cat]
            s = mean + std * z
        else:
            lo, hi = self.size_range
            s = lo + (hi - lo) * u
        side = s * math.sqrt(h * w)
        side = min(max(side, self.min_size), self.max_size_ratio * min(h, w))
        return side / math.sqrt(area)

    def _render(self, bgra: np.ndarray, cat: int, plan: dict, i: int, hw: tuple) -> Optional[dict]:
        """Scale, flip, rotate and place one crop; return its visible part or None.

        Returns:
            dict | None: ``win`` (y0, y1, x0, x1) of the visible part in the image, ``bgr`` and
            ``alpha`` of that part, ``mask`` (uint8 0/1) cropped to its tight box ``box``
            (y0, y1, x0, x1, image coordinates).
        """
        if bgra.ndim != 3 or bgra.shape[2] != 4 or bgra.dtype != np.uint8:
            raise ValueError(f'XPaste: the bank returned instance {int(plan["ids"][i])} with '
                             f'shape {bgra.shape} {bgra.dtype}, expected HxWx4 uint8 BGRA')
        H, W = hw
        area = self._mask_area(int(plan['ids'][i]), bgra)
        if area == 0:
            return None
        k = self._target_scale(cat, area, plan['size_z'][i], plan['size_u'][i], hw)
        r = math.sqrt(plan['aspect'][i])
        h, w = bgra.shape[:2]
        tw, th = max(1, round(w * k * r)), max(1, round(h * k / r))
        if (tw, th) != (w, h):
            bgra = cv2.resize(bgra, (tw, th), interpolation=cv2.INTER_LINEAR)
        if self.flip and plan['flip'][i]:
            bgra = cv2.flip(bgra, 1)
        angle = float(plan['angle'][i])
        if self.rotation > 0 and angle != 0:
            bgra = _rotate_expand(bgra, angle)
        h, w = bgra.shape[:2]
        # top-left inside the image when the crop fits, else the crop covers the image
        uy, ux = plan['pos'][i]
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
        tb = _mask_tight_box(mask)
        if tb is None or min(tb[1] - tb[0], tb[3] - tb[2]) < self.min_visible_size:
            return None
        bgr = cv2.cvtColor(vis, cv2.COLOR_BGRA2BGR)
        if self.color_jitter > 0:
            bgr = _jitter_color(bgr, mask, *plan['color'][i])
        ty0, ty1, tx0, tx1 = tb
        return dict(
            win=(vy0, vy1, vx0, vx1),
            bgr=bgr,
            alpha=alpha,
            full_mask=mask,
            mask=np.ascontiguousarray(mask[ty0:ty1, tx0:tx1]),
            box=(vy0 + ty0, vy0 + ty1, vx0 + tx0, vx0 + tx1))

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
            return results
        plan = self._random_plan()
        if len(plan['ids']) == 0:
            return results
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'XPaste needs a 3-channel (H, W, 3) BGR img, got shape {img.shape}')
        if not img.flags.c_contiguous:  # e.g. the flipped view RandomFlip leaves
            img = np.ascontiguousarray(img)
        elif not img.flags.writeable:
            img = img.copy()
        H, W = img.shape[:2]

        gt_bboxes = results.get('gt_bboxes')
        if gt_bboxes is None:
            gt_bboxes = HorizontalBoxes(np.zeros((0, 4), np.float32))
        in_boxes = gt_bboxes.numpy() if hasattr(gt_bboxes, 'numpy') else np.asarray(gt_bboxes)
        in_boxes = np.asarray(in_boxes, dtype=np.float32).reshape(-1, 4)
        n0 = len(in_boxes)
        if 'gt_bboxes_labels' in results:
            labels0 = np.asarray(results['gt_bboxes_labels'], dtype=np.int64)
        elif n0 == 0:
            labels0 = np.zeros(0, np.int64)
        else:
            raise KeyError('XPaste: results has gt_bboxes but no gt_bboxes_labels')
        ignore0 = np.asarray(results.get('gt_ignore_flags', np.zeros(n0, bool)), dtype=bool)
        pasted0 = np.asarray(results.get(self.paste_flag_key, np.zeros(n0, bool)), dtype=bool)
        if len(labels0) != n0 or len(ignore0) != n0 or len(pasted0) != n0:
            raise ValueError(f'XPaste: per-instance keys disagree: {n0} gt_bboxes, '
                             f'{len(labels0)} gt_bboxes_labels, {len(ignore0)} gt_ignore_flags, '
                             f'{len(pasted0)} {self.paste_flag_key}')

        gt_masks = results.get('gt_masks')
        with_mask = gt_masks is not None
        masks0 = None
        if with_mask:
            if isinstance(gt_masks, PolygonMasks):
                gt_masks = gt_masks.to_bitmap()
            if not isinstance(gt_masks, BitmapMasks):
                raise TypeError(f'XPaste: gt_masks must be BitmapMasks or PolygonMasks, got '
                                f'{type(gt_masks).__name__}')
            masks0 = gt_masks.masks
            if masks0.dtype == bool:
                masks0 = masks0.view(np.uint8)
            if masks0.shape != (n0, H, W):
                raise ValueError(f'XPaste: gt_masks has shape {masks0.shape}, expected '
                                 f'{(n0, H, W)} ({n0} boxes, image {H}x{W})')

        # Per-instance state. ``region`` (y0, y1, x0, x1) and ``local`` (uint8 0/1 mask of the
        # region) exist for touched instances only; ``pre`` is the box the filter compares with.
        n_max = n0 + len(plan['ids'])
        test_boxes = np.full((n_max, 4), -1.0)  # x0, y0, x1, y1 for window-overlap tests
        if n0:
            test_boxes[:n0] = in_boxes
            if with_mask:
                test_boxes[:n0, :2] -= _BOX_MARGIN
                test_boxes[:n0, 2:] += _BOX_MARGIN
        region: list = [None] * n_max
        local: list = [None] * n_max
        pre = np.zeros((n_max, 4), np.float64)
        labels = np.empty(n_max, np.int64)
        labels[:n0] = labels0
        count = n0

        for i, idx in enumerate(plan['ids']):
            bgra = self.bank.load(int(idx))
            if bgra is None:  # undecodable: the bank has warned once, the paste is skipped
                continue
            cat = int(self.bank.category_index(int(idx)))
            inst = self._render(bgra, cat, plan, i, (H, W))
            if inst is None:
                continue
            vy0, vy1, vx0, vx1 = inst['win']
            mode = self._blend_modes[int(plan['blend'][i])]
            win = img[vy0:vy1, vx0:vx1]
            src = inst['bgr'] if img.dtype == np.uint8 else inst['bgr'].astype(img.dtype)
            blend_into(win, src, inst['alpha'], mode, self.blend_sigma, mask=inst['full_mask'])

            by0, by1, bx0, bx1 = inst['box']
            inv = np.subtract(1, inst['mask'], dtype=np.uint8)
            tb = test_boxes[:count]
            hits = np.flatnonzero((tb[:, 0] < bx1) & (tb[:, 2] > bx0) & (tb[:, 1] < by1)
                                  & (tb[:, 3] > by0))
            for k in hits:
                if region[k] is None and not self._touch(k, masks0, in_boxes, region, local, pre,
                                                         test_boxes, (H, W)):
                    continue
                ky0, ky1, kx0, kx1 = region[k]
                iy0, iy1 = max(ky0, by0), min(ky1, by1)
                ix0, ix1 = max(kx0, bx0), min(kx1, bx1)
                if iy0 >= iy1 or ix0 >= ix1:
                    continue
                sub = local[k][iy0 - ky0:iy1 - ky0, ix0 - kx0:ix1 - kx0]
                np.bitwise_and(sub, inv[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0], out=sub)

            region[count] = inst['box']
            local[count] = inst['mask']
            pre[count] = (bx0, by0, bx1, by1)
            test_boxes[count] = pre[count]
            labels[count] = self._cat_to_label[cat]
            count += 1

        if count == n0:  # nothing was pasted
            return results
        self._finish(results, img, gt_bboxes, in_boxes, masks0, labels[:count], ignore0, pasted0,
                     region[:count], local[:count], pre[:count], n0)
        return results

    def _touch(self, k: int, masks0, in_boxes, region, local, pre, test_boxes, hw) -> bool:
        """Give original instance ``k`` a local mask on its first overlap; False if empty."""
        H, W = hw
        x0, y0, x1, y1 = in_boxes[k]
        if masks0 is not None:
            m = masks0[k]
            ry0, ry1 = max(math.floor(y0) - _BOX_MARGIN, 0), min(math.ceil(y1) + _BOX_MARGIN, H)
            rx0, rx1 = max(math.floor(x0) - _BOX_MARGIN, 0), min(math.ceil(x1) + _BOX_MARGIN, W)
            tb = _mask_tight_box(m[ry0:ry1, rx0:rx1]) if ry0 < ry1 and rx0 < rx1 else None
            if tb is not None:
                ty0, ty1, tx0, tx1 = tb[0] + ry0, tb[1] + ry0, tb[2] + rx0, tb[3] + rx0
                # the mask reaches the searched region's border: it may extend beyond the box
                if ((ty0 == ry0 and ry0 > 0) or (ty1 == ry1 and ry1 < H) or (tx0 == rx0 and rx0 > 0)
                        or (tx1 == rx1 and rx1 < W)):
                    tb = _mask_tight_box(m)
                else:
                    tb = (ty0, ty1, tx0, tx1)
            elif ry0 > 0 or rx0 > 0 or ry1 < H or rx1 < W:
                tb = _mask_tight_box(m)
            if tb is None:  # empty mask: nothing to occlude, passed through unchanged
                test_boxes[k] = -1
                return False
            ty0, ty1, tx0, tx1 = tb
            local[k] = m[ty0:ty1, tx0:tx1].copy()
            pre[k] = (tx0, ty0, tx1, ty1)
        else:
            ty0, ty1 = max(math.floor(y0), 0), min(math.ceil(y1), H)
            tx0, tx1 = max(math.floor(x0), 0), min(math.ceil(x1), W)
            if ty0 >= ty1 or tx0 >= tx1:
                test_boxes[k] = -1
                return False
            local[k] = np.ones((ty1 - ty0, tx1 - tx0), np.uint8)
            pre[k] = (x0, y0, x1, y1)
        region[k] = (ty0, ty1, tx0, tx1)
        test_boxes[k] = (tx0, ty0, tx1, ty1)
        return True

    def _finish(self, results, img, gt_bboxes, in_boxes, masks0, labels, ignore0, pasted0, region,
                local, pre, n0) -> None:
        """Filter occluded instances and write the output keys."""
        count = len(labels)
        H, W = img.shape[:2]
        boxes = np.empty((count, 4), np.float32)
        boxes[:n0] = in_boxes
        keep = np.ones(count, bool)
        for k in range(count):
            if region[k] is None:
                continue
            tb = _mask_tight_box(local[k])
            area = cv2.countNonZero(local[k]) if tb is not None else 0
            if area == 0:
                keep[k] = False
                continue
            ry0, _, rx0, _ = region[k]
            new = np.array((rx0 + tb[2], ry0 + tb[0], rx0 + tb[3], ry0 + tb[1]), np.float64)
            if masks0 is None and k < n0:  # box-only: clip the input box to what is left
                new = np.concatenate(
                    [np.maximum(new[:2], pre[k, :2]),
                     np.minimum(new[2:], pre[k, 2:])])
            moved = np.abs(new - pre[k]).max() > self.box_occluded_thr
            keep[k] = area > self.mask_occluded_thr or not moved
            boxes[k] = new
        kept = np.flatnonzero(keep)
        n_orig = int(np.count_nonzero(kept < n0))

        results['img'] = img
        results['gt_bboxes'] = _same_box_type(gt_bboxes, boxes[kept])
        results['gt_bboxes_labels'] = labels[kept]
        ignore = np.zeros(count, bool)
        ignore[:n0] = ignore0
        results['gt_ignore_flags'] = ignore[kept]
        flags = np.ones(count, bool)
        flags[:n0] = pasted0
        results[self.paste_flag_key] = flags[kept]
        if masks0 is None:
            return
        # One full-frame array for all output masks: kept originals are copied once, every
        # local mask is written into its region; rows of pasted masks stay lazily zeroed.
        out = np.zeros((len(kept), H, W), np.uint8)
        # kept originals, one block copy per run of consecutive indices
        src = kept[:n_orig]
        starts = np.flatnonzero(np.diff(src, prepend=-2) != 1)
        for a, b in zip(starts, np.append(starts[1:], n_orig)):
            out[a:b] = masks0[src[a]:src[a] + b - a]
        for j, k in enumerate(kept):
            if region[k] is not None:
                y0, y1, x0, x1 = region[k]
                out[j, y0:y1, x0:x1] = local[k]
        results['gt_masks'] = _bitmap_masks(out)

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
                f'paste_flag_key={self.paste_flag_key!r})')


def _bank_exists(bank) -> bool:
    if isinstance(bank, InstanceBank):
        return True
    root = bank.get('root') if isinstance(bank, Mapping) else bank
    return isinstance(root, (str, os.PathLike)) and os.path.isdir(root)


def _is_json_path(classes) -> bool:
    return isinstance(classes, str) and classes.endswith('.json')


def _bank_root(bank) -> str:
    return str(getattr(bank, 'root', bank))


def _same_box_type(like, boxes: np.ndarray):
    """``boxes`` (N, 4) float32 as the box type of ``like``."""
    if isinstance(like, np.ndarray):
        return boxes
    return type(like)(boxes)


def _bitmap_masks(masks: np.ndarray) -> BitmapMasks:
    """Wrap an (N, H, W) uint8 array without the copy ``BitmapMasks.__init__`` makes."""
    out = BitmapMasks([], masks.shape[1], masks.shape[2])
    out.masks = masks
    return out


def _rotate_expand(bgra: np.ndarray, angle: float) -> np.ndarray:
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


def _jitter_color(bgr: np.ndarray, mask: np.ndarray, brightness: float, contrast: float,
                  saturation: float) -> np.ndarray:
    """Brightness, contrast (around the mean grey of the masked pixels) and saturation."""
    brightness, contrast, saturation = float(brightness), float(contrast), float(saturation)
    x = bgr.astype(np.float32)
    x *= brightness
    if contrast != 1:
        b, g, r, _ = cv2.mean(x, mask=mask)
        grey = 0.114 * b + 0.587 * g + 0.299 * r
        x = (x - grey) * contrast + grey
    if saturation != 1:
        grey = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)[..., None]
        x = (x - grey) * saturation + grey
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)

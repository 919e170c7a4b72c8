"""Foreground segmenters of a bank build, behind one interface, and mask utilities.

A segmenter takes a list of BGR uint8 images of one class and returns one bool mask per image
(same height and width; an all-False mask when it finds nothing). Several segmenters can run on
the same images; the score stage then keeps, per image, the cut-out with the best CLIP score
(the X-Paste ensemble).

- :class:`ClassicalSegmenter` needs no weights: a colour model of the image border (k-means in
  Lab) seeds OpenCV's GrabCut at a reduced resolution. It suits the plain backgrounds that
  "a photo of a single ..." prompts give, and runs in the CPU worker pool.
- :class:`SAMSegmenter`: segment-anything with a box prompt, batched on the GPU.
- :class:`CLIPSegSegmenter`: CLIPSeg from transformers, prompted with the class name.

Segmenters are registered in :data:`SEGMENTERS`; ``uses_gpu`` tells the pipeline whether a
segmenter runs in the main process (GPU) or in the CPU worker pool. Heavy libraries are imported
only by the segmenters that need them.
"""
import logging
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.registry import Registry

from .hub import check_model_source, dtype_kwargs, resolve_device, torch_dtype

SEGMENTERS = Registry('bank segmenter')


# --------------------------------------------------------------------------------------------
# mask utilities
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# interface
# --------------------------------------------------------------------------------------------
class BaseSegmenter:
    """Interface of segmenters.

    Args:
        name (str, optional): Name recorded with each cut-out and used in file paths; unique
            within a build. Defaults to the class's :attr:`default_name`.
    """

    default_name = 'segmenter'
    #: Whether the segmenter runs a model on the GPU (then it runs in the main process).
    uses_gpu = False

    def __init__(self, name: Optional[str] = None):
        name = self.default_name if name is None else name
        if not isinstance(name, str) or not name.replace('_', '').replace('-', '').isalnum():
            raise ValueError(f'segmenter name must be letters, digits, "_" or "-", got {name!r}')
        self.name = name

    def check(self) -> None:
        """Fail early, before any work, on missing paths or bad settings."""

    def setup(self) -> None:
        """Load models (once per process, before the first :meth:`segment`)."""

    def segment(self, images: Sequence[np.ndarray], category: dict) -> list[np.ndarray]:
        """One bool (H, W) mask per BGR uint8 (H, W, 3) image of class ``category``."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Settings recorded in the bank's build info and in fingerprints."""
        return {'type': type(self).__name__, 'name': self.name}


@SEGMENTERS.register_module()
class ClassicalSegmenter(BaseSegmenter):
    """Border colour model + GrabCut, no weights.

    1. Downscale the image to ``work_side`` (longest side).
    2. Cluster the Lab colours of a border strip (k-means, ``bg_clusters`` centres): the
       background model. A pixel's distance to the nearest centre, over a threshold set from the
       spread of the border's own distances (at least ``min_distance``), marks probable
       foreground; far pixels are sure foreground, border pixels near the model sure background.
       Small clusters (an object touching the border) are not background.
    3. Refine with ``cv2.grabCut`` (seeded, so the result is reproducible), open/close,
       optionally fill holes, upscale the mask to the image size.

    An image whose background model marks (almost) nothing or (almost) everything gets an empty
    mask, later dropped by the filters as ``empty_mask``.

    Args:
        work_side (int): Longest side the image is segmented at. Defaults to 192.
        border (float): Width of the border strip, as a fraction of the shorter side.
            Defaults to 0.04.
        bg_clusters (int): Colour clusters of the background model. Defaults to 3.
        spread (float): Threshold in units of the border's robust distance spread.
            Defaults to 4.0.
        min_distance (float): Smallest Lab distance counted as foreground. Defaults to 10.0.
        min_cluster_share (float): Border colour clusters holding less than this share of the
            border are taken as objects touching the border, not background. Defaults to 0.15.
        fill_holes (bool): Fill holes of the mask (off: rings and handles keep their holes).
            Defaults to False.
        iterations (int): GrabCut iterations (0 keeps the colour-model mask). Defaults to 3.
        seed (int): Seed of GrabCut's k-means. Defaults to 0.
        name (str, optional): Defaults to ``'classical'``.
    """

    default_name = 'classical'

    def __init__(self,
                 work_side: int = 192,
                 border: float = 0.04,
                 bg_clusters: int = 3,
                 spread: float = 4.0,
                 min_distance: float = 10.0,
                 min_cluster_share: float = 0.15,
                 fill_holes: bool = False,
                 iterations: int = 3,
                 seed: int = 0,
                 name: Optional[str] = None):
        super().__init__(name)
        if not isinstance(work_side, int) or work_side < 32:
            raise ValueError(f'ClassicalSegmenter.work_side must be an int >= 32, got '
                             f'{work_side!r}')
        if not 0 < border < 0.5:
            raise ValueError(f'ClassicalSegmenter.border must be in (0, 0.5), got {border!r}')
        if not isinstance(bg_clusters, int) or bg_clusters < 1:
            raise ValueError(f'ClassicalSegmenter.bg_clusters must be an int >= 1, got '
                             f'{bg_clusters!r}')
        if not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f'ClassicalSegmenter.iterations must be an int >= 0, got '
                             f'{iterations!r}')
        self.work_side = work_side
        self.border = border
        self.bg_clusters = bg_clusters
        self.spread = float(spread)
        self.min_distance = float(min_distance)
        self.min_cluster_share = float(min_cluster_share)
        self.fill_holes = bool(fill_holes)
        self.iterations = iterations
        self.seed = seed

    def segment(self, images, category=None):
        return [self.segment_one(image) for image in images]

    def segment_one(self, image: np.ndarray) -> np.ndarray:
        """Segment one BGR uint8 image; returns a bool mask of its size."""
        h, w = image.shape[:2]
        scale = min(1.0, self.work_side / max(h, w))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32)
        b = max(2, int(round(self.border * min(sh, sw))))
        border = np.zeros((sh, sw), bool)
        border[:b], border[-b:], border[:, :b], border[:, -b:] = True, True, True, True
        samples = lab[border]
        k = min(self.bg_clusters, len(samples))
        cv2.setRNGSeed(self.seed)
        _, labels, centres = cv2.kmeans(
            samples, k, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 0.5), 1,
            cv2.KMEANS_PP_CENTERS)
        # An object touching the border forms a small cluster: not part of the background.
        share = np.bincount(labels.ravel(), minlength=k) / len(samples)
        centres = centres[share >= min(self.min_cluster_share, share.max())]
        dist = np.min(np.linalg.norm(lab[:, :, None, :] - centres[None, None], axis=-1), axis=-1)
        border_dist = dist[border]
        med = float(np.median(border_dist))
        mad = float(np.median(np.abs(border_dist - med))) * 1.4826
        thr = max(self.min_distance, med + self.spread * mad)
        probable = dist > thr
        frac = probable.mean()
        if frac < 0.002 or frac > 0.98:
            return np.zeros((h, w), bool)
        mask = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
        mask[probable] = cv2.GC_PR_FGD
        sure_fg = cv2.erode((dist > 2 * thr).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        mask[sure_fg] = cv2.GC_FGD
        mask[border & ~probable] = cv2.GC_BGD
        fg = probable
        if self.iterations > 0:
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.setRNGSeed(self.seed)
            try:
                cv2.grabCut(small, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
                fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
            except cv2.error:  # too few samples for a colour model: keep the colour mask
                fg = probable
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, kernel)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel) > 0
        if self.fill_holes:
            fg = fill_holes(fg)
        return resize_mask(fg, (h, w))

    def describe(self):
        return dict(
            type=type(self).__name__,
            name=self.name,
            work_side=self.work_side,
            border=self.border,
            bg_clusters=self.bg_clusters,
            spread=self.spread,
            min_distance=self.min_distance,
            min_cluster_share=self.min_cluster_share,
            fill_holes=self.fill_holes,
            iterations=self.iterations,
            seed=self.seed)


@SEGMENTERS.register_module()
class SAMSegmenter(BaseSegmenter):
    """segment-anything, prompted with a box over the whole image (minus a margin).

    The model is built with ``segment_anything.sam_model_registry[model_type](checkpoint=...)``;
    images are batched through ``Sam.forward`` on the GPU and the mask with the highest predicted
    IoU of the multimask output is kept.

    Args:
        checkpoint (str): Local SAM checkpoint (e.g. ``sam_vit_h_4b8939.pth``).
        model_type (str): Key of ``sam_model_registry``: ``'vit_h'``, ``'vit_l'``, ``'vit_b'``.
            Defaults to ``'vit_h'``.
        box_margin (float): Margin of the box prompt, as a fraction of each side.
            Defaults to 0.02.
        batch_size (int): Images per forward. Defaults to 8.
        device (str): Defaults to ``'auto'``.
        name (str, optional): Defaults to ``'sam'``.
    """

    default_name = 'sam'
    uses_gpu = True

    def __init__(self,
                 checkpoint: str,
                 model_type: str = 'vit_h',
                 box_margin: float = 0.02,
                 batch_size: int = 8,
                 device: str = 'auto',
                 name: Optional[str] = None):
        super().__init__(name)
        if not 0 <= box_margin < 0.5:
            raise ValueError(f'SAMSegmenter.box_margin must be in [0, 0.5), got {box_margin!r}')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'SAMSegmenter.batch_size must be an int >= 1, got {batch_size!r}')
        self.checkpoint = checkpoint
        self.model_type = model_type
        self.box_margin = box_margin
        self.batch_size = batch_size
        self.device = device
        self.local_rank = 0
        self.model = None

    def check(self) -> None:
        check_model_source(
            self.checkpoint, f'segmenter {self.name!r} checkpoint', allow_hub_id=False, kind='file')
        from segment_anything import sam_model_registry
        if self.model_type not in sam_model_registry:
            raise ValueError(f'SAMSegmenter.model_type must be one of '
                             f'{sorted(sam_model_registry)}, got {self.model_type!r}')

    def setup(self) -> None:
        if self.model is not None:
            return
        self.check()
        from segment_anything import sam_model_registry
        from segment_anything.utils.transforms import ResizeLongestSide
        self._device = resolve_device(self.device, self.local_rank)
        model = sam_model_registry[self.model_type](checkpoint=self.checkpoint)
        self.model = model.to(self._device).eval()
        self._transform = ResizeLongestSide(model.image_encoder.img_size)

    def segment(self, images, category=None):
        import torch
        self.setup()
        masks = []
        for start in range(0, len(images), self.batch_size):
            batch = []
            for image in images[start:start + self.batch_size]:
                h, w = image.shape[:2]
                rgb = self._transform.apply_image(np.ascontiguousarray(image[..., ::-1]))
                tensor = torch.as_tensor(rgb, device=self._device).permute(2, 0, 1).contiguous()
                mx, my = self.box_margin * w, self.box_margin * h
                box = torch.tensor([[mx, my, w - 1 - mx, h - 1 - my]],
                                   dtype=torch.float32,
                                   device=self._device)
                batch.append(
                    dict(
                        image=tensor,
                        original_size=(h, w),
                        boxes=self._transform.apply_boxes_torch(box, (h, w))))
            with torch.inference_mode():
                outputs = self.model(batch, multimask_output=True)
            for out in outputs:
                best = int(out['iou_predictions'][0].argmax())
                masks.append(out['masks'][0, best].cpu().numpy().astype(bool))
        return masks

    def describe(self):
        return dict(
            type=type(self).__name__,
            name=self.name,
            checkpoint=self.checkpoint,
            model_type=self.model_type,
            box_margin=self.box_margin)


@SEGMENTERS.register_module()
class CLIPSegSegmenter(BaseSegmenter):
    """CLIPSeg (transformers ``CLIPSegForImageSegmentation``), prompted with the class name.

    Args:
        model (str): Hub id or local path, e.g. ``'CIDAS/clipseg-rd64-refined'``.
        prompt (str): Text prompt template over ``{name}``. Defaults to ``'a {name}'``.
        threshold (float): Probability threshold of the mask. Defaults to 0.4.
        batch_size (int): Images per forward. Defaults to 16.
        dtype (str): Defaults to ``'float32'``.
        device (str): Defaults to ``'auto'``.
        name (str, optional): Defaults to ``'clipseg'``.
    """

    default_name = 'clipseg'
    uses_gpu = True

    def __init__(self,
                 model: str = 'CIDAS/clipseg-rd64-refined',
                 prompt: str = 'a {name}',
                 threshold: float = 0.4,
                 batch_size: int = 16,
                 dtype: str = 'float32',
                 device: str = 'auto',
                 name: Optional[str] = None):
        super().__init__(name)
        if not 0 < threshold < 1:
            raise ValueError(f'CLIPSegSegmenter.threshold must be in (0, 1), got {threshold!r}')
        if '{name}' not in prompt:
            raise ValueError(f'CLIPSegSegmenter.prompt must contain "{{name}}", got {prompt!r}')
        torch_dtype(dtype)
        self.model_path = model
        self.prompt = prompt
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.local_rank = 0
        self.model = None

    def check(self) -> None:
        check_model_source(self.model_path, f'segmenter {self.name!r} model', kind='dir')

    def setup(self) -> None:
        if self.model is not None:
            return
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor
        path = check_model_source(self.model_path, f'segmenter {self.name!r} model', kind='dir')
        self._device = resolve_device(self.device, self.local_rank)
        try:
            self.processor = CLIPSegProcessor.from_pretrained(path)
            model = CLIPSegForImageSegmentation.from_pretrained(
                path, **dtype_kwargs('transformers', torch_dtype(self.dtype)))
        except (OSError, ValueError) as e:
            raise OSError(f'segmenter {self.name!r}: cannot load CLIPSeg {path!r} '
                          f'({type(e).__name__}: {e})') from e
        self.model = model.to(self._device).eval()

    def segment(self, images, category):
        import torch
        from .prompts import display_name
        self.setup()
        text = self.prompt.format(name=display_name(category['name']))
        masks = []
        for start in range(0, len(images), self.batch_size):
            batch = [
                np.ascontiguousarray(im[..., ::-1]) for im in images[start:start + self.batch_size]
            ]
            inputs = self.processor(
                text=[text] * len(batch), images=batch, padding=True, return_tensors='pt')
            inputs = {k: v.to(self._device) for k, v in inputs.items()}
            inputs['pixel_values'] = inputs['pixel_values'].to(self.model.dtype)
            with torch.inference_mode():
                logits = self.model(**inputs).logits
            logits = logits.reshape(len(batch), *logits.shape[-2:]).float()
            probs = torch.sigmoid(logits).cpu().numpy()
            for prob, image in zip(probs, batch):
                h, w = image.shape[:2]
                prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
                masks.append(prob >= self.threshold)
        return masks

    def describe(self):
        return dict(
            type=type(self).__name__,
            name=self.name,
            model=self.model_path,
            prompt=self.prompt,
            threshold=self.threshold,
            dtype=self.dtype)


def build_segmenters(cfgs: Sequence[dict]) -> list[BaseSegmenter]:
    """Build the segmenters of a build; names must be unique.

    Raises:
        ValueError: an empty list, a config without ``type`` or a duplicate name.
    """
    if isinstance(cfgs, dict) or not cfgs:
        raise ValueError(f'segment.segmenters must be a non-empty list of dicts, got {cfgs!r}')
    segmenters = []
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ValueError(f'segment.segmenters[{i}] must be a dict with "type", got {cfg!r}')
        segmenters.append(SEGMENTERS.build(dict(cfg)))
    names = [s.name for s in segmenters]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f'segment.segmenters: duplicate names {dups!r}; give each a name=')
    if len(segmenters) > 1:
        print_log(
            f'segmenter ensemble {names}: each image keeps the cut-out with the best CLIP '
            'score (the first non-empty one when CLIP scoring is off)',
            logger='current',
            level=logging.INFO)
    return segmenters

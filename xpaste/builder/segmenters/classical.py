"""The classical segmenter: a border colour model seeding GrabCut, no weights."""
from typing import Optional

import cv2
import numpy as np

from xpaste.utils.checks import check_number
from .base import SEGMENTERS, BaseSegmenter
from .masks import fill_holes, resize_mask


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
        work_side = check_number('ClassicalSegmenter.work_side', work_side, 32, integer=True)
        check_number('ClassicalSegmenter.border', border, 0, 0.5, lo_open=True, hi_open=True)
        bg_clusters = check_number('ClassicalSegmenter.bg_clusters', bg_clusters, 1, integer=True)
        iterations = check_number('ClassicalSegmenter.iterations', iterations, 0, integer=True)
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


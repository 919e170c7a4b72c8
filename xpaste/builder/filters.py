"""Which cut-outs of a class go into the bank, and why the others do not.

:class:`InstanceFilter` decides per class, from the measurements the earlier stages saved (image
status, mask area ratio, connected-component ratio, CLIP scores, embeddings, perceptual hashes),
so it reruns in seconds with other thresholds. Every dropped cut-out gets the first reason of
:data:`DROP_REASONS` that applies:

======================  ================================================================
``black_image``         the generator gave a black image (safety checker, divergence)
``nan_image``           the generator gave NaN/inf pixels
``corrupt_image``       the image file could not be decoded
``empty_mask``          no segmenter found a foreground
``fragmented``          the largest connected component holds < ``min_component`` of the mask
``area_small``          mask area / image area < ``min_area``
``area_large``          mask area / image area > ``max_area``
``clip_score``          cut-out CLIP score < ``min(min_clip, class_max - tolerance)``
``real_similarity``     mean CLIP similarity to the class's real instances below the class's
                        threshold (``real_similarity``, off by default)
``duplicate``           near-duplicate of a kept cut-out with a higher score
======================  ================================================================
"""
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from xpaste.utils.checks import check_number

DROP_REASONS = ('black_image', 'nan_image', 'corrupt_image', 'empty_mask', 'fragmented',
                'area_small', 'area_large', 'clip_score', 'real_similarity', 'duplicate')
_STATUS_REASON = {
    'black': 'black_image',
    'nan': 'nan_image',
    'corrupt': 'corrupt_image',
    'missing': 'corrupt_image'
}


def perceptual_hash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash of a BGR (or gray) uint8 image.

    The 8x8 lowest frequencies of the DCT of the 32x32 gray image, thresholded at their median
    (DC excluded). Near-identical images differ in a few bits.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view('>u8')[0])


def hamming(a: int | np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between 64-bit hash(es) ``a`` and hashes ``b``."""
    xor = np.asarray(a, dtype=np.uint64) ^ np.asarray(b, dtype=np.uint64)
    if hasattr(np, 'bitwise_count'):
        return np.bitwise_count(xor).astype(np.int32)
    bits = np.unpackbits(np.atleast_1d(xor).view(np.uint8).reshape(-1, 8), axis=-1)
    return bits.sum(-1).astype(np.int32).reshape(np.shape(xor))


def greedy_dedup(order: Sequence[int], is_duplicate) -> list[int]:
    """Keep items in ``order``, dropping each item that duplicates an already kept one.

    Memory stays linear in the number of items (no pairwise matrix).

    Args:
        order (Sequence[int]): Candidate positions, best first.
        is_duplicate (callable): ``is_duplicate(i, kept) -> bool`` with ``kept`` the int array
            of positions kept so far (non-empty).

    Returns:
        list[int]: The kept positions, in ``order``.
    """
    kept: list[int] = []
    for i in order:
        if not kept or not is_duplicate(int(i), np.asarray(kept)):
            kept.append(int(i))
    return kept


@dataclass(frozen=True)
class RealSimilarity:
    """Settings of the filter by similarity to real instances (``filter.real_similarity``).

    DiverGen (CVPR 2024, official code ``filteration/``) embeds the training set's own
    instances of each class with CLIP (object on white, square crop) and keeps a generated
    instance when its mean cosine similarity to them, i.e. the dot product of its embedding
    with their mean embedding, reaches a threshold (0.7 in the released scripts). Here a
    class's threshold is ``min_cosine``, or the ``percentile`` of the same score of the class's
    real instances (each against the others), which adapts to how varied a class is. Classes
    with fewer than ``min_real`` usable real instances (``percentile``: fewer than 2) fall back
    to the text score alone.

    Args:
        min_cosine (float, optional): Absolute threshold (mean cosine, in [-1, 1]).
        percentile (float, optional): Per-class threshold: this percentile (0-100) of the real
            instances' own scores. Exactly one of ``min_cosine`` and ``percentile`` is set.
        max_per_class (int): Real instances embedded per class (a seeded random subset).
            Defaults to 50.
        min_real (int): Fewest real instances for a class to be filtered. Defaults to 1.
        min_area (float): Smallest annotation area (pixels) used. Defaults to 1024 (32 x 32:
            smaller crops are mostly blur at CLIP's input size).
        img_prefix (str): Folder the training images' paths are relative to (as
            ``tools/bank/from_annotations.py``: ``file_name`` or the path of ``coco_url``).
        ann_file (str, optional): The training annotations. Defaults to None
            (``categories.ann_file``).
        seed (int): Seed of the ``max_per_class`` subset. Defaults to 0.
    """

    min_cosine: Optional[float] = None
    percentile: Optional[float] = None
    max_per_class: int = 50
    min_real: int = 1
    min_area: float = 1024.0
    img_prefix: Optional[str] = None
    ann_file: Optional[str] = None
    seed: int = 0

    @classmethod
    def from_config(cls, cfg) -> Optional['RealSimilarity']:
        """Checked settings from a ``filter.real_similarity`` dict (None: off).

        Raises:
            ValueError: an unknown key or a bad value (the message names it).
        """
        if cfg is None or isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, dict):
            raise ValueError(f'filter.real_similarity must be None or a dict, got {cfg!r}')
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f'filter.real_similarity: unknown keys {unknown}; known: '
                             f'{sorted(known)}')
        out = cls(**cfg)
        if (out.min_cosine is None) == (out.percentile is None):
            raise ValueError('filter.real_similarity needs exactly one of min_cosine and '
                             f'percentile, got min_cosine={out.min_cosine!r}, '
                             f'percentile={out.percentile!r}')
        if out.min_cosine is not None and not -1 <= out.min_cosine <= 1:
            raise ValueError(f'filter.real_similarity.min_cosine must be in [-1, 1], got '
                             f'{out.min_cosine!r}')
        if out.percentile is not None and not 0 <= out.percentile <= 100:
            raise ValueError(f'filter.real_similarity.percentile must be in [0, 100], got '
                             f'{out.percentile!r}')
        for key in ('max_per_class', 'min_real'):
            check_number(f'filter.real_similarity.{key}', getattr(out, key), 1, integer=True)
        if not out.min_area >= 0:
            raise ValueError(f'filter.real_similarity.min_area must be >= 0, got '
                             f'{out.min_area!r}')
        if not out.img_prefix:
            raise ValueError('filter.real_similarity.img_prefix must name the folder of the '
                             'training images (their paths in the json are relative to it)')
        return out

    def class_threshold(self, count: int, real_scores: np.ndarray) -> Optional[float]:
        """The threshold of a class with ``count`` real instances scoring ``real_scores``
        (each against the others); None (no real filter for the class) when it has too few."""
        if count < self.min_real:
            return None
        if self.percentile is None:
            return float(self.min_cosine)
        if count < 2 or len(real_scores) == 0:
            return None
        return float(np.percentile(np.asarray(real_scores, np.float64), self.percentile))

    def describe(self) -> dict:
        return asdict(self)


class InstanceFilter:
    """Per-class filtering of cut-outs.

    Args:
        min_clip (float, optional): Absolute CLIP score threshold (X-Paste: 21 with ViT-L/14).
            None disables the score filter. Defaults to 21.0.
        tolerance (float, optional): Relative threshold: a cut-out scoring at least
            ``class_max - tolerance`` is kept even below ``min_clip`` (hard classes keep their
            best cut-outs). None disables it. Defaults to 1.0.
        min_area (float): Smallest mask area / image area. Defaults to 0.05.
        max_area (float): Largest mask area / image area. Defaults to 0.95.
        min_component (float): Smallest share of the mask in its largest connected component.
            Defaults to 0.0 (off).
        dedup (str, optional): Near-duplicate removal: ``'clip'`` (embedding cosine),
            ``'phash'`` (perceptual hash), ``'auto'`` (CLIP when scored, else the hash) or None.
            Defaults to ``'auto'``.
        dedup_cosine (float): Cosine similarity from which two cut-outs are duplicates.
            Defaults to 0.95.
        dedup_hamming (int): Hash distance up to which two cut-outs are duplicates.
            Defaults to 4.
        real_similarity (dict, optional): :class:`RealSimilarity` fields: drop cut-outs too
            unlike the class's real instances (``real_score`` below ``real_threshold``).
            Defaults to None (off).
    """

    def __init__(self,
                 min_clip: Optional[float] = 21.0,
                 tolerance: Optional[float] = 1.0,
                 min_area: float = 0.05,
                 max_area: float = 0.95,
                 min_component: float = 0.0,
                 dedup: Optional[str] = 'auto',
                 dedup_cosine: float = 0.95,
                 dedup_hamming: int = 4,
                 real_similarity: Optional[dict] = None):
        if not 0 <= min_area <= max_area <= 1:
            raise ValueError(f'filter needs 0 <= min_area <= max_area <= 1, got '
                             f'min_area={min_area!r}, max_area={max_area!r}')
        if not 0 <= min_component <= 1:
            raise ValueError(f'filter.min_component must be in [0, 1], got {min_component!r}')
        if dedup not in (None, 'auto', 'clip', 'phash'):
            raise ValueError(f"filter.dedup must be None, 'auto', 'clip' or 'phash', got "
                             f'{dedup!r}')
        if tolerance is not None and tolerance < 0:
            raise ValueError(f'filter.tolerance must be >= 0 or None, got {tolerance!r}')
        if not -1 <= dedup_cosine <= 1:
            raise ValueError(f'filter.dedup_cosine must be in [-1, 1], got {dedup_cosine!r}')
        check_number('filter.dedup_hamming', dedup_hamming, 0, 64, integer=True)
        self.min_clip = min_clip
        self.tolerance = tolerance
        self.min_area = float(min_area)
        self.max_area = float(max_area)
        self.min_component = float(min_component)
        self.dedup = dedup
        self.dedup_cosine = float(dedup_cosine)
        self.dedup_hamming = dedup_hamming
        self.real_similarity = RealSimilarity.from_config(real_similarity)

    def __call__(self,
                 status: Sequence[str],
                 area: np.ndarray,
                 component: np.ndarray,
                 clip_score: np.ndarray,
                 phash: np.ndarray,
                 embedding: Optional[np.ndarray] = None,
                 real_score: Optional[np.ndarray] = None,
                 real_threshold: Optional[float] = None) -> dict:
        """Decide for the cut-outs of one class.

        Args:
            status (Sequence[str]): Image status per cut-out (``'ok'`` or why not).
            area (np.ndarray): Mask area ratio per cut-out (0 for an empty mask).
            component (np.ndarray): Share of the mask in its largest component.
            clip_score (np.ndarray): Cut-out CLIP score, NaN when not scored.
            phash (np.ndarray): uint64 perceptual hash of the cut-out.
            embedding (np.ndarray, optional): Normalised CLIP embeddings ``(N, D)``.
            real_score (np.ndarray, optional): Mean cosine similarity of each cut-out to the
                class's real instances (NaN: unknown). Defaults to None.
            real_threshold (float, optional): The class's threshold on ``real_score``; None:
                no real filter for this class (off, or too few real instances).

        Returns:
            dict: ``reason`` (list of str, '' when kept), ``keep`` (bool array),
            ``threshold`` (score threshold used, None when off), ``class_max`` (best score of
            the candidates, None when not scored), ``dedup`` (method used), ``counts``
            ({reason: n, 'kept': n}).
        """
        n = len(status)
        area = np.asarray(area, np.float64)
        component = np.asarray(component, np.float64)
        clip_score = np.asarray(clip_score, np.float64)
        reason = np.array(
            [_STATUS_REASON.get(s, 'corrupt_image') if s != 'ok' else '' for s in status],
            dtype=object)
        open_ = reason == ''
        for name, bad in (('empty_mask', area
                           <= 0), ('fragmented', component
                                   < self.min_component), ('area_small', area
                                                           < self.min_area), ('area_large', area
                                                                              > self.max_area)):
            hit = open_ & bad
            reason[hit] = name
            open_ &= ~hit
        scored = open_ & np.isfinite(clip_score)
        threshold = class_max = None
        if scored.any():
            class_max = float(clip_score[scored].max())
            candidates = [
                t for t in (self.min_clip,
                            None if self.tolerance is None else class_max - self.tolerance)
                if t is not None
            ]
            if candidates:
                threshold = float(min(candidates))
                hit = scored & (clip_score < threshold)
                reason[hit] = 'clip_score'
                open_ &= ~hit
        if real_threshold is not None and real_score is not None:
            real_score = np.asarray(real_score, np.float64)
            hit = open_ & np.isfinite(real_score) & (real_score < real_threshold)
            reason[hit] = 'real_similarity'
            open_ &= ~hit
        method = self.dedup
        if method == 'auto':
            method = 'clip' if embedding is not None and len(embedding) == n and scored.any() \
                else 'phash'
        if method == 'clip' and (embedding is None or len(embedding) != n):
            raise ValueError("filter.dedup='clip' needs CLIP embeddings; the score stage was "
                             "skipped (no CLIP weights): use dedup='phash' or 'auto'")
        if method is not None and open_.sum() > 1:
            idx = np.flatnonzero(open_)
            key = np.where(np.isfinite(clip_score[idx]), -clip_score[idx], 0.0)
            order = idx[np.lexsort((idx, key))]  # best score first, then index
            if method == 'clip':
                emb = np.asarray(embedding, np.float32)

                def is_duplicate(i, kept):
                    return bool((emb[kept] @ emb[i] >= self.dedup_cosine).any())
            else:
                hashes = np.asarray(phash, np.uint64)

                def is_duplicate(i, kept):
                    return bool((hamming(hashes[i], hashes[kept]) <= self.dedup_hamming).any())

            keep = np.zeros(n, bool)
            keep[greedy_dedup(order, is_duplicate)] = True
            hit = open_ & ~keep
            reason[hit] = 'duplicate'
            open_ &= ~hit
        counts = {r: int((reason == r).sum()) for r in DROP_REASONS}
        counts['kept'] = int(open_.sum())
        return dict(
            reason=[str(r) for r in reason],
            keep=open_,
            threshold=threshold,
            class_max=class_max,
            dedup=method,
            counts=counts)

    def describe(self) -> dict:
        return dict(
            min_clip=self.min_clip,
            tolerance=self.tolerance,
            min_area=self.min_area,
            max_area=self.max_area,
            min_component=self.min_component,
            dedup=self.dedup,
            dedup_cosine=self.dedup_cosine,
            dedup_hamming=self.dedup_hamming,
            # only when on: filters without it keep their fingerprints
            **({} if self.real_similarity is None else
               dict(real_similarity=self.real_similarity.describe())))

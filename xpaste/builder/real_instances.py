"""The training set's own instances of each class, as CLIP embeddings, for the filter by
similarity to real instances (``filter.real_similarity``,
:class:`~xpaste.builder.filters.RealSimilarity`).

Per class, up to ``max_per_class`` annotations of the training json are selected (the same
selection as a bank built from annotations, :func:`~xpaste.builder.from_annotations.
select_annotations`), their masks decoded, each cut-out composited on white and square-cropped
exactly as generated cut-outs are for CLIP (:func:`~xpaste.builder.clip_scoring.prepare_cutout`),
and embedded by the build's CLIP model. What the filter needs of a class
(:class:`RealClassStats`: the mean embedding and each real instance's score against the others)
is computed once, when the class is first filtered, and cached in ``real/<class>.npz`` under the
work dir with the fingerprint of the settings and annotations behind it; a rerun of the filter
with another threshold reads the cache.
"""
import logging
import os
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from mmengine.logging import print_log

from xpaste.bank import load_annotations
from xpaste.utils.fileio import atomic_write_npz, read_npz
from .clip_scoring import prepare_cutout
from .dist import fingerprint, json_from_npz, json_in_npz
from .filters import RealSimilarity
from .from_annotations import image_relpath, segmentation_to_mask, select_annotations
from .layout import category_key


@dataclass
class RealClassStats:
    """What the filter needs of one class's real instances.

    Attributes:
        count (int): Real instances embedded.
        mean (np.ndarray): Their mean normalised CLIP embedding ``(D,)`` (not normalised: its
            dot product with a normalised embedding is the mean cosine similarity to them);
            empty without instances.
        scores (np.ndarray): Each real instance's mean cosine similarity to the others ``(n,)``
            (empty for fewer than two).
    """

    count: int
    mean: np.ndarray
    scores: np.ndarray

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray) -> 'RealClassStats':
        """Stats of normalised embeddings ``(n, D)`` of a class's real instances."""
        emb = np.asarray(embeddings, np.float64)
        n = len(emb)
        if n == 0:
            return cls(0, np.zeros(0, np.float32), np.zeros(0, np.float32))
        total = emb.sum(0)
        scores = np.zeros(0)
        if n >= 2:  # leave-one-out: without the instance's similarity to itself
            scores = (emb @ total - (emb * emb).sum(1)) / (n - 1)
        return cls(n, (total / n).astype(np.float32), scores.astype(np.float32))

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """Mean cosine similarity of normalised embeddings ``(N, D)`` to the real instances
        (NaN for every row when the class has none)."""
        embeddings = np.asarray(embeddings, np.float32)
        if self.count == 0 or embeddings.ndim != 2 or embeddings.shape[1] != len(self.mean):
            return np.full(len(embeddings), np.nan)
        return (embeddings @ self.mean).astype(np.float64)


class RealInstances:
    """The real instances of each class of a build, embedded on demand and cached.

    Args:
        settings (RealSimilarity): ``filter.real_similarity``.
        categories (list[dict]): The classes of the build (matched to the json by name).
        data (dict): The training annotations (parsed json).
        ann_file (str): Their path (recorded in fingerprints and messages).
        work_dir (str): The build's work dir (the cache is ``real/<class>.npz`` in it).
    """

    def __init__(self, settings: RealSimilarity, categories: list, data: dict, ann_file: str,
                 work_dir: str):
        self.settings = settings
        self.categories = categories
        self.ann_file = osp.abspath(ann_file)
        self.work_dir = work_dir
        self.img_prefix = osp.abspath(settings.img_prefix)
        images = {img['id']: img for img in data.get('images', [])}
        json_ids = {c['name']: c['id'] for c in data.get('categories', [])}
        by_class, _ = select_annotations(data, set(json_ids.values()), images,
                                         settings.min_area, settings.max_per_class,
                                         settings.seed)
        self._anns = []
        for cat in categories:
            anns = by_class.get(json_ids.get(cat['name']), [])
            self._anns.append([
                dict(id=a['id'], file=image_relpath(images[a['image_id']]),
                     height=int(images[a['image_id']]['height']),
                     width=int(images[a['image_id']]['width']), segmentation=a['segmentation'])
                for a in anns
            ])
        missing = [c['name'] for c, anns in zip(categories, self._anns) if not anns]
        if missing:
            print_log(
                f'filter.real_similarity: {len(missing)} of {len(categories)} classes have no '
                f'usable instance in {ann_file} (area >= {settings.min_area}); they are '
                f'filtered by the text score alone: {missing[:10]!r}',
                logger='current',
                level=logging.WARNING)

    @classmethod
    def from_config(cls, settings: RealSimilarity, categories: list, work_dir: str,
                    categories_file: Optional[str],
                    categories_data: Optional[dict]) -> 'RealInstances':
        """Check the settings' paths and read the annotations (``settings.ann_file``, or the
        build's category file, already parsed, when it is the same).

        Raises:
            ValueError: no annotation file is given.
            FileNotFoundError: the annotation file or the image folder does not exist.
        """
        ann_file = settings.ann_file or categories_file
        if not ann_file:
            raise ValueError('filter.real_similarity needs the training annotations: set '
                             'filter.real_similarity.ann_file or categories.ann_file')
        if not osp.isdir(settings.img_prefix):
            raise FileNotFoundError(f'filter.real_similarity.img_prefix is not a directory: '
                                    f'{settings.img_prefix!r}')
        same = categories_data is not None and categories_file is not None and osp.abspath(
            ann_file) == osp.abspath(categories_file)
        data = categories_data if same else load_annotations(ann_file)
        if not data.get('annotations'):
            raise ValueError(f'filter.real_similarity: {ann_file} has no annotations (it must be '
                             'the training set, e.g. lvis_v1_train.json)')
        return cls(settings, categories, data, ann_file, work_dir)

    def num_instances(self, cat: int) -> int:
        """Real instances selected for the class at position ``cat``."""
        return len(self._anns[cat])

    def path(self, cat: int) -> str:
        """The cache file of the class at position ``cat``."""
        return osp.join(self.work_dir, 'real', f'{category_key(self.categories[cat])}.npz')

    def fingerprint(self, cat: int, scorer) -> str:
        """Fingerprint of what makes the class's embeddings (not the thresholds)."""
        s = self.settings
        return fingerprint(scorer.describe(), self.ann_file, self.img_prefix, s.max_per_class,
                           s.min_area, s.seed, self.categories[cat]['name'],
                           [a['id'] for a in self._anns[cat]])

    def class_stats(self, cat: int, scorer) -> RealClassStats:
        """The stats of the class at position ``cat``: from the cache when it has the current
        fingerprint, else embedded now (CLIP ``scorer``) and cached."""
        path, fp = self.path(cat), self.fingerprint(cat, scorer)
        cached = read_npz(path) if osp.isfile(path) else None
        if cached is not None and json_from_npz(cached['meta']).get('fingerprint') == fp:
            return RealClassStats(int(cached['count']), cached['mean'], cached['scores'])
        stats = RealClassStats.from_embeddings(self._embed(cat, scorer))
        os.makedirs(osp.dirname(path), exist_ok=True)
        atomic_write_npz(
            path,
            meta=json_in_npz(dict(fingerprint=fp, category=self.categories[cat]['name'])),
            count=np.array(stats.count),
            mean=stats.mean,
            scores=stats.scores)
        return stats

    def _embed(self, cat: int, scorer) -> np.ndarray:
        """Normalised CLIP embeddings ``(n, D)`` of the class's usable real instances."""
        size, margin = scorer.input_size, scorer.cutout_margin
        inputs, unreadable = [], []
        image_of: dict[str, Optional[np.ndarray]] = {}
        for ann in self._anns[cat]:
            if ann['file'] not in image_of:
                image_of[ann['file']] = cv2.imread(osp.join(self.img_prefix, ann['file']),
                                                   cv2.IMREAD_COLOR)
            image = image_of[ann['file']]
            if image is None or image.shape[:2] != (ann['height'], ann['width']):
                unreadable.append(ann['file'])
                continue
            mask = segmentation_to_mask(ann['segmentation'], ann['height'], ann['width'])
            if mask is None or not mask.any():
                continue
            inputs.append(prepare_cutout(image, mask.astype(bool), size, margin))
        if unreadable:
            print_log(
                f'filter.real_similarity: class {self.categories[cat]["name"]!r}: '
                f'{len(unreadable)} instance images missing, unreadable or of another size '
                f'than in {self.ann_file} under {self.img_prefix}, e.g. {unreadable[:3]!r}',
                logger='current',
                level=logging.WARNING)
        if not inputs:
            return np.zeros((0, 0), np.float32)
        return scorer.encode(np.stack(inputs))

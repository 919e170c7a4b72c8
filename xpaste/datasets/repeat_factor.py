"""Repeat-factor sampling with stochastic rounding (LVIS; detectron2's
``RepeatFactorTrainingSampler``), as a data sampler.

mmdet's ``ClassBalancedDataset`` repeats an image ``ceil(r)`` times, every epoch the same.
The LVIS recipe of detectron2 (used by CenterNet2, Detic and X-Paste) repeats it
``floor(r) + Bernoulli(r - floor(r))`` times, drawn anew each epoch, so that on average an image
is seen exactly ``r`` times. Being a sampler, it also works under ``MultiImageMixDataset``
(copy-paste), whose mixed-in images are then drawn uniformly, as in the original code.
"""
import math
from typing import Iterator, List, Optional

import numpy as np
import torch
from mmdet.registry import DATA_SAMPLERS
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler


def repeat_factors(image_cat_ids: List[set], repeat_thr: float) -> np.ndarray:
    """Per-image repeat factors (LVIS, Gupta et al. 2019).

    For each category ``c`` with image frequency ``f_c`` (fraction of images holding it),
    ``r_c = max(1, sqrt(repeat_thr / f_c))``; an image's factor is the largest ``r_c`` of its
    categories (1 for an image without annotations).

    Args:
        image_cat_ids (list[set]): The categories of each image.
        repeat_thr (float): Frequency threshold ``t`` (LVIS: 1e-3).

    Returns:
        np.ndarray: float64 factors, one per image.
    """
    if repeat_thr <= 0:
        raise ValueError(f'repeat_thr must be > 0, got {repeat_thr}')
    num_images = max(len(image_cat_ids), 1)
    counts = {}
    for cats in image_cat_ids:
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
    cat_rep = {c: max(1.0, math.sqrt(repeat_thr / (n / num_images))) for c, n in counts.items()}
    return np.array([max((cat_rep[c] for c in cats), default=1.0) for cats in image_cat_ids],
                    dtype=np.float64)


def _category_sets(dataset) -> List[set]:
    """The category ids of each image of ``dataset`` (unwrapping ``.dataset`` wrappers such as
    ``MultiImageMixDataset`` until one has ``get_cat_ids``)."""
    inner = dataset
    while not hasattr(inner, 'get_cat_ids') and hasattr(inner, 'dataset'):
        inner = inner.dataset
    if not hasattr(inner, 'get_cat_ids'):
        raise TypeError(f'RepeatFactorSampler needs a dataset with get_cat_ids (e.g. '
                        f'LVISV1Dataset), got {type(dataset).__name__}')
    if hasattr(inner, 'full_init'):
        inner.full_init()
    if len(inner) != len(dataset):
        raise ValueError(f'RepeatFactorSampler: {type(dataset).__name__} has {len(dataset)} '
                         f'items but its inner {type(inner).__name__} has {len(inner)}; only '
                         f'wrappers that keep the indices can be sampled by repeat factor')
    return [set(inner.get_cat_ids(i)) for i in range(len(inner))]


@DATA_SAMPLERS.register_module()
class RepeatFactorSampler(Sampler):
    """Sample each image ``floor(r) + Bernoulli(frac(r))`` times per epoch (stochastic
    rounding of its repeat factor ``r``), shuffled, split across ranks.

    Each epoch's draw is a function of ``seed`` and the epoch (``set_epoch``), so all ranks
    agree and a resumed run replays the same epochs. Every rank gets the same number of
    indices (the epoch's list is padded by wrapping around).

    Args:
        dataset: The dataset (or a wrapper with ``.dataset`` that keeps its indices).
        repeat_thr (float): Frequency threshold. Defaults to 1e-3 (LVIS; X-Paste
            ``REPEAT_THRESHOLD``).
        shuffle (bool): Shuffle each epoch. Defaults to True.
        seed (int, optional): Random seed, shared by all ranks. Defaults to None (a seed
            synchronised across ranks).
    """

    def __init__(self, dataset, repeat_thr: float = 1e-3, shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.repeat_thr = repeat_thr
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.factors = torch.as_tensor(repeat_factors(_category_sets(dataset), repeat_thr))
        self.epoch = 0

    def epoch_indices(self, epoch: int) -> List[int]:
        """All ranks' indices of ``epoch`` (before the split)."""
        g = torch.Generator()
        g.manual_seed(self.seed + epoch)
        whole = torch.floor(self.factors)
        reps = whole + (torch.rand(len(self.factors), generator=g, dtype=torch.float64)
                        < self.factors - whole).double()
        indices = torch.repeat_interleave(torch.arange(len(self.factors)), reps.long())
        if self.shuffle:
            indices = indices[torch.randperm(len(indices), generator=g)]
        return indices.tolist()

    def _rank_indices(self) -> List[int]:
        indices = self.epoch_indices(self.epoch)
        total = math.ceil(len(indices) / self.world_size) * self.world_size
        indices += indices[:total - len(indices)]
        return indices[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._rank_indices())

    def __len__(self) -> int:
        return len(self._rank_indices())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

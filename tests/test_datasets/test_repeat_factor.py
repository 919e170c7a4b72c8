"""RepeatFactorSampler: LVIS repeat factors with stochastic rounding, per epoch."""
import math

import numpy as np
import pytest

from xpaste.datasets.repeat_factor import RepeatFactorSampler, repeat_factors


class _Dataset:
    """Images with given category sets (what the sampler reads)."""

    def __init__(self, cats):
        self.cats = cats

    def __len__(self):
        return len(self.cats)

    def get_cat_ids(self, i):
        return list(self.cats[i])


class _Wrapper:
    """A wrapper keeping the indices (as MultiImageMixDataset) without get_cat_ids."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)


def test_repeat_factors_by_hand():
    # 10 images: class 0 in all, class 1 in one, class 2 in two; t = 0.5
    cats = [{0}] * 7 + [{0, 1}, {0, 2}, {0, 2}]
    r = repeat_factors(cats, 0.5)
    assert r[:7].tolist() == [1.0] * 7  # f = 1 -> r = max(1, sqrt(0.5)) = 1
    assert r[7] == pytest.approx(math.sqrt(0.5 / 0.1))  # class 1: f = 0.1
    assert r[8] == pytest.approx(math.sqrt(0.5 / 0.2))  # class 2: f = 0.2
    assert repeat_factors([set()], 0.5).tolist() == [1.0]
    with pytest.raises(ValueError, match='repeat_thr'):
        repeat_factors(cats, 0)


def test_stochastic_rounding_averages_to_the_factor_and_changes_per_epoch():
    cats = [{0}] * 7 + [{0, 1}, {0, 2}, {0, 2}]
    sampler = RepeatFactorSampler(_Wrapper(_Dataset(cats)), repeat_thr=0.5, seed=3)
    counts = np.zeros(10)
    epochs = [sampler.epoch_indices(e) for e in range(400)]
    for idx in epochs:
        counts += np.bincount(idx, minlength=10)
        # each image appears floor(r) or ceil(r) times
        c = np.bincount(idx, minlength=10)
        assert c[7] in (2, 3) and c[8] in (1, 2) and (c[:7] == 1).all()
    expected = repeat_factors(cats, 0.5)
    assert np.allclose(counts / 400, expected, atol=0.08)
    assert len({tuple(e) for e in epochs[:10]}) > 1  # a new draw every epoch
    # the draw depends only on seed and epoch
    again = RepeatFactorSampler(_Dataset(cats), repeat_thr=0.5, seed=3)
    assert again.epoch_indices(5) == epochs[5]
    sampler.set_epoch(5)
    assert list(sampler) == epochs[5] and len(sampler) == len(epochs[5])


def test_ranks_get_equal_disjoint_shares(monkeypatch):
    cats = [{i % 3} for i in range(11)]
    shares = []
    for rank in range(2):
        monkeypatch.setattr('xpaste.datasets.repeat_factor.get_dist_info', lambda r=rank: (r, 2))
        sampler = RepeatFactorSampler(_Dataset(cats), repeat_thr=1e-3, seed=0)
        shares.append(list(sampler))
    full = RepeatFactorSampler(_Dataset(cats), repeat_thr=1e-3, seed=0).epoch_indices(0)
    assert len(full) == 11  # every class is frequent: each image once
    padded = full + full[:1]  # padded to a multiple of the 2 ranks by wrapping around
    assert shares == [padded[0::2], padded[1::2]]
    assert set(shares[0] + shares[1]) == set(range(11))


def test_dataset_without_categories_is_rejected():
    with pytest.raises(TypeError, match='get_cat_ids'):
        RepeatFactorSampler([1, 2, 3], seed=0)

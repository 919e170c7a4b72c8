import json
import math
import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
from mmdet.registry import DATASETS

from xpaste.bank import (BankReader, BankWriter, commit_part, empty_index,
                                 encode_bgra, finalize_bank, index_nbytes)
from xpaste.datasets import InstanceBank, build_instance_bank

CATS = [{'id': 1, 'name': 'common'}, {'id': 2, 'name': 'medium'}, {'id': 3, 'name': 'rare'},
        {'id': 4, 'name': 'empty'}]
COUNTS = {'common': 90, 'medium': 9, 'rare': 1}
N = 20000  # draws per distribution test; 4 sigma of a proportion is < 0.015


def crop(value, h=6, w=5):
    img = np.full((h, w, 4), value, np.uint8)
    img[..., 3] = 255
    return img


@pytest.fixture(scope='module')
def bank_root(tmp_path_factory):
    """An imbalanced bank: 90 'common', 9 'medium', 1 'rare', 0 'empty' (crop value = row)."""
    root = tmp_path_factory.mktemp('bank')
    names = [n for n, c in COUNTS.items() for _ in range(c)]
    order = np.random.default_rng(0).permutation(len(names))  # classes interleaved on disk
    with BankWriter(root, CATS, image_format='png') as w:
        for row, i in enumerate(order):
            w.add(crop(row % 250), names[i], clip_score=0.5 if row % 2 else 0.1)
    stats = {'format': 'xpaste-size-stats', 'version': 1, 'categories': {
        'common': {'count': 50, 'mean': 0.3, 'std': 0.1},
        'rare': {'count': 1, 'mean': 0.05, 'std': 0.0},
        'empty': {'count': 0, 'mean': None, 'std': None}}}
    finalize_bank(root, size_stats=stats)
    return root


def class_fractions(bank, ids):
    cats = bank.category_index(ids)
    return np.bincount(cats, minlength=len(CATS)) / len(ids)


def test_uniform_follows_instance_counts(bank_root):
    bank = InstanceBank(bank_root, sampling='uniform')
    frac = class_fractions(bank, bank.sample(N, np.random.default_rng(0)))
    np.testing.assert_allclose(frac, [0.9, 0.09, 0.01, 0], atol=0.015)
    np.testing.assert_allclose(bank.class_probabilities, [0.9, 0.09, 0.01, 0])


def test_class_balanced_is_uniform_over_nonempty_classes(bank_root):
    bank = InstanceBank(bank_root)  # class_balanced is the default
    ids = bank.sample(N, np.random.default_rng(0))
    assert ids.dtype == np.int64 and ids.shape == (N, )
    frac = class_fractions(bank, ids)
    np.testing.assert_allclose(frac, [1 / 3, 1 / 3, 1 / 3, 0], atol=0.015)
    # within a class every instance is drawn (the single 'rare' one included)
    common = np.flatnonzero(np.asarray(bank.reader.category) == 0)
    assert set(ids[bank.category_index(ids) == 0].tolist()) == set(common.tolist())
    assert bank.class_counts.tolist() == [90, 9, 1, 0]


def test_frequency_with_negative_power_favours_rare(bank_root):
    freq = {'common': 10000, 'medium': 100, 'rare': 1, 'empty': 5}
    bank = InstanceBank(bank_root, sampling='frequency', class_frequency=freq, freq_power=-0.5)
    w = np.array([10000, 100, 1])**-0.5
    np.testing.assert_allclose(bank.class_probabilities[:3], w / w.sum())
    frac = class_fractions(bank, bank.sample(N, np.random.default_rng(1)))
    np.testing.assert_allclose(frac[:3], w / w.sum(), atol=0.015)
    assert frac[2] > frac[1] > frac[0]
    flat = InstanceBank(bank_root, sampling='frequency', class_frequency=freq, freq_power=0)
    np.testing.assert_allclose(flat.class_probabilities, [1 / 3, 1 / 3, 1 / 3, 0])


def test_frequency_from_lvis_json_and_missing_classes(bank_root, tmp_path):
    ann = {'images': [], 'annotations': [], 'categories': [
        dict(id=1, name='common', image_count=400), dict(id=2, name='medium', image_count=100),
        dict(id=3, name='rare', image_count=4)]}
    path = tmp_path / 'lvis.json'
    path.write_text(json.dumps(ann))
    with pytest.warns(UserWarning, match=r"lacks a positive count for 1 bank categories .*'empty'"):
        bank = InstanceBank(bank_root, sampling='frequency', class_frequency=str(path),
                            freq_power=-1.0)
    w = 1 / np.array([400, 100, 4])
    np.testing.assert_allclose(bank.class_probabilities[:3], w / w.sum())
    with pytest.raises(ValueError, match='needs class_frequency'):
        InstanceBank(bank_root, sampling='frequency')
    with pytest.raises(ValueError, match=r"class_frequency\['rare'\] must be a count"):
        InstanceBank(bank_root, sampling='frequency', class_frequency={'rare': -1})


def test_category_subset_and_min_clip_score(bank_root):
    bank = InstanceBank(bank_root, categories=['rare', 'medium'])
    names = set(bank.category_name(bank.sample(2000, np.random.default_rng(0))))
    assert names == {'rare', 'medium'}
    assert bank.num_eligible == 10 and len(bank) == 100
    uni = InstanceBank(bank_root, sampling='uniform', categories=['medium'])
    assert set(uni.category_name(uni.sample(500, 0))) == {'medium'}
    with pytest.raises(ValueError, match=r"categories \['zebra'\] are not in the bank"):
        InstanceBank(bank_root, categories=['zebra'])
    with pytest.raises(ValueError, match='categories is empty'):
        InstanceBank(bank_root, categories=[])
    scored = InstanceBank(bank_root, sampling='uniform', min_clip_score=0.3)
    assert scored.num_eligible == 50
    ids = scored.sample(1000, np.random.default_rng(0))
    assert (np.asarray(scored.reader.clip_score)[ids] >= 0.3).all()
    none = InstanceBank(bank_root, categories=['empty'])
    assert none.sample(0, np.random.default_rng(0)).shape == (0, )
    with pytest.raises(RuntimeError, match='no instance to sample'):
        none.sample(1, np.random.default_rng(0))


@pytest.mark.parametrize('sampling', ['uniform', 'class_balanced', 'frequency'])
def test_same_seed_same_draw(bank_root, sampling):
    freq = {'common': 9, 'rare': 1, 'medium': 3, 'empty': 1}
    bank = InstanceBank(bank_root, sampling=sampling,
                        class_frequency=freq if sampling == 'frequency' else None)
    a = bank.sample(64, np.random.default_rng(42))
    b = pickle.loads(pickle.dumps(bank)).sample(64, np.random.default_rng(42))
    c = bank.sample(64, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_category_lookup_scalar_and_vector(bank_root):
    bank = InstanceBank(bank_root)
    cats = np.asarray(BankReader(bank_root).category)
    assert bank.category_index(5) == int(cats[5]) and isinstance(bank.category_index(5), int)
    np.testing.assert_array_equal(bank.category_index(np.arange(10)), cats[:10])
    assert bank.category_name(5) == CATS[cats[5]]['name']
    assert bank.category_name([0, 1]) == [CATS[cats[0]]['name'], CATS[cats[1]]['name']]
    assert bank.category_names == [c['name'] for c in CATS]
    assert bank.category_ids == [1, 2, 3, 4]


def test_load_and_lru_cache_bound(bank_root):
    bank = InstanceBank(bank_root, cache_size=3)
    first = bank.load(0)
    assert first.shape == (6, 5, 4) and first.dtype == np.uint8 and (first[..., 0] == 0).all()
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0, 0, 0] = 1  # the cached array cannot be corrupted in place
    for i in range(1, 5):
        bank.load(i)
    assert list(bank._cache) == [2, 3, 4]
    bank.load(2)  # hit: becomes most recent
    bank.load(7)
    assert list(bank._cache) == [4, 2, 7]
    assert bank.load(2) is bank.load(2)
    no_cache = InstanceBank(bank_root, cache_size=0)
    no_cache.load(1)
    assert len(no_cache._cache) == 0
    by_bytes = InstanceBank(bank_root, cache_bytes=2 * 6 * 5 * 4)
    for i in range(5):
        by_bytes.load(i)
    assert list(by_bytes._cache) == [3, 4] and by_bytes._cache_nbytes == 240
    with pytest.raises(IndexError):
        bank.load(100)


def test_undecodable_instance_warns_once_and_returns_none(tmp_path):
    with BankWriter(tmp_path, CATS, image_format='png') as w:
        for v in range(3):
            w.add(crop(v), 'common')
    finalize_bank(tmp_path)
    reader = BankReader(tmp_path)
    with open(reader.shard_path(1), 'r+b') as f:
        f.seek(int(reader.offset[1]))
        f.write(b'\xff' * int(reader.length[1]))
    bank = InstanceBank(tmp_path)
    with pytest.warns(UserWarning, match='skipping undecodable instance 1'):
        assert bank.load(1) is None
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert bank.load(1) is None  # no second warning
        assert bank.load(2)[0, 0, 0] == 2


def test_lazy_open_and_small_pickles(bank_root):
    bank = InstanceBank(bank_root)
    assert bank._reader is None  # construction reads the manifest only
    before = pickle.dumps(bank)
    bank.sample(10, np.random.default_rng(0))
    for i in range(20):
        bank.load(i)
    assert bank._reader is not None and len(bank._cache) == 20
    after = pickle.dumps(bank)
    assert len(before) < 4000 and len(after) < 4000
    clone = pickle.loads(after)
    assert clone._reader is None and len(clone._cache) == 0
    np.testing.assert_array_equal(clone.load(3), bank.load(3))
    np.testing.assert_array_equal(clone.sample(5, np.random.default_rng(9)),
                                  bank.sample(5, np.random.default_rng(9)))


def test_registry_and_builder(bank_root):
    built = DATASETS.build(dict(type='InstanceBank', root=str(bank_root), sampling='uniform'))
    assert isinstance(built, InstanceBank) and built.sampling == 'uniform'
    assert build_instance_bank(dict(root=str(bank_root))).sampling == 'class_balanced'
    assert build_instance_bank(str(bank_root)).root == built.root
    assert build_instance_bank(built) is built
    with pytest.raises(TypeError, match='got int'):
        build_instance_bank(3)


def test_size_prior(bank_root):
    bank = InstanceBank(bank_root)  # statistics from the manifest
    assert bank.size_prior('common') == pytest.approx((0.3, 0.1))
    fb_std = (0.5 - 0.05) / math.sqrt(12)
    assert bank.size_prior('rare') == pytest.approx((0.05, fb_std))  # one sample: fallback std
    assert bank.size_prior('empty') == pytest.approx((0.275, fb_std))
    assert bank.size_prior('not-in-bank') == pytest.approx((0.275, fb_std))
    own = {'format': 'xpaste-size-stats', 'version': 1,
           'categories': {'medium': {'count': 3, 'mean': 0.2, 'std': 0.02}}}
    custom = InstanceBank(bank_root, size_stats=own, size_fallback=(0.1, 0.3))
    assert custom.size_prior('medium') == pytest.approx((0.2, 0.02))
    assert custom.size_prior('common') == pytest.approx((0.2, 0.2 / math.sqrt(12)))


@pytest.mark.parametrize('kwargs, match', [
    (dict(sampling='random'), 'sampling must be one of'),
    (dict(size_fallback=(0.5, 0.1)), 'size_fallback'),
    (dict(cache_size=-1), 'cache_size'),
    (dict(freq_power=float('nan')), 'freq_power'),
    (dict(min_clip_score='high'), 'min_clip_score'),
])
def test_argument_validation(bank_root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        InstanceBank(bank_root, **kwargs)


def test_sample_argument_validation(bank_root):
    bank = InstanceBank(bank_root)
    with pytest.raises(ValueError, match='n must be a non-negative int'):
        bank.sample(-1, np.random.default_rng(0))
    np.testing.assert_array_equal(bank.sample(4, 7), bank.sample(4, np.random.default_rng(7)))


def test_1_2m_instance_bank_memory(tmp_path):
    """A 1.2M-row bank (all rows share one stored crop) costs <= 80 B/instance of index and
    <= 100 MB of Python-heap memory to open and sample from."""
    n = 1_200_000
    blob = encode_bgra(crop(9), 'png')
    part = tmp_path / 'parts' / 'part-00000'
    part.mkdir(parents=True)
    (part / 'shard-00000.bin').write_bytes(blob)
    cols = empty_index(n)
    cols.pop('part')
    cols['category'][:] = np.random.default_rng(0).integers(0, 1203, n)
    cols['length'][:] = len(blob)
    cols['height'][:], cols['width'][:] = 6, 5
    cats = [{'id': i + 1, 'name': f'c{i}'} for i in range(1203)]
    commit_part(tmp_path, 'part-00000', cats, cols, [{'file': 'shard-00000.bin',
                                                      'bytes': len(blob)}], image_format='png')
    finalize_bank(tmp_path)
    tracemalloc.start()
    try:
        bank = InstanceBank(tmp_path, cache_size=16)
        ids = bank.sample(4096, np.random.default_rng(0))
        img = bank.load(int(ids[0]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert img.shape == (6, 5, 4)
    per_instance = index_nbytes(bank.reader.columns) / len(bank)
    assert len(bank) == n and per_instance <= 80
    assert peak <= 100 * 2**20, f'peak {peak / 2**20:.1f} MB'
    assert len(pickle.dumps(bank)) < 200_000  # 1203 category names travel, not the index


def test_mask_area_reads_the_index(tmp_path):
    img = crop(5, 8, 9)
    img[:3, :, 3] = 100  # below the mask threshold
    img[3, :, 3] = 127
    img[3, :4, 3] = 128  # exactly at it
    with BankWriter(tmp_path, CATS, image_format='png') as w:
        w.add(img, 'common', crop=False)
        w.add(crop(7), 'rare')
    finalize_bank(tmp_path)
    bank = InstanceBank(tmp_path)
    assert bank.mask_area(0) == 4 * 9 + 4
    assert bank.mask_area(1) == 6 * 5
    assert isinstance(bank.mask_area(np.int64(0)), int)
    assert bank.mask_area(0) == int(np.count_nonzero(bank.load(0)[..., 3] >= 128))


def test_restrict_intersects_with_the_constructor_categories(bank_root):
    bank = InstanceBank(bank_root, categories=['rare', 'medium'])
    assert bank.restrict(['common', 'medium']) is bank
    assert bank.categories == ['medium'] and bank.num_eligible == 9
    assert set(bank.category_name(bank.sample(200, 0))) == {'medium'}
    with pytest.raises(ValueError, match='leaves no category'):
        InstanceBank(bank_root, categories=['rare']).restrict(['common'])
    with pytest.raises(ValueError, match=r"\['zebra'\] are not in the bank"):
        InstanceBank(bank_root).restrict(['zebra'])
    # an opened bank rebuilds its sampler
    opened = InstanceBank(bank_root)
    assert opened.num_eligible == 100
    opened.restrict(['rare'])
    assert opened.num_eligible == 1 and opened.class_counts.tolist() == [0, 0, 1, 0]


def test_category_values_out_of_range_are_named_at_open(tmp_path):
    with BankWriter(tmp_path, CATS, image_format='png') as w:
        for v in range(3):
            w.add(crop(v), 'common')
    finalize_bank(tmp_path)
    path = tmp_path / 'index' / 'category.npy'
    cats = np.load(path)
    cats[1] = 999  # an index that belongs to a bank with more categories
    np.save(path, cats)
    bank = InstanceBank(tmp_path)
    with pytest.raises(ValueError, match=r'category\.npy: 1 rows .* row 1: 999'):
        bank.sample(1, np.random.default_rng(0))
    assert bank._reader is None  # not left half open


def test_min_clip_score_on_unscored_bank_warns_with_count(tmp_path):
    with BankWriter(tmp_path, CATS, image_format='png') as w:
        for v in range(3):
            w.add(crop(v), 'common')  # no clip_score: NaN, as from_annotations writes
        w.add(crop(9), 'rare', clip_score=0.9)
    finalize_bank(tmp_path)
    bank = InstanceBank(tmp_path, min_clip_score=0.2)
    with pytest.warns(UserWarning, match='excludes 3 of 4 instances that have no CLIP score'):
        assert bank.num_eligible == 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        InstanceBank(tmp_path).num_eligible  # no threshold: no warning
        assert bank.num_eligible == 1  # once per open


def test_path_like_root_and_stats(bank_root, tmp_path):
    from pathlib import Path
    stats = tmp_path / 'stats.json'
    stats.write_text(json.dumps({'format': 'xpaste-size-stats', 'version': 1, 'categories': {
        'medium': {'count': 3, 'mean': 0.2, 'std': 0.02}}}))
    bank = build_instance_bank(dict(root=Path(bank_root), size_stats=stats, sampling='uniform'))
    assert bank.size_prior('medium') == pytest.approx((0.2, 0.02))
    assert bank.root == str(bank_root) and len(bank) == 100

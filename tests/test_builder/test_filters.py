import cv2
import numpy as np
import pytest

from xpaste.builder.filters import (DROP_REASONS, InstanceFilter, greedy_dedup, hamming,
                                 perceptual_hash)


def table(n, **over):
    base = dict(status=['ok'] * n, area=np.full(n, 0.3), component=np.ones(n),
                clip_score=np.full(n, np.nan), phash=np.arange(n, dtype=np.uint64) * 0x0F0F0F,
                embedding=None)
    base.update(over)
    return base


def run(filt, **kw):
    return filt(kw['status'], kw['area'], kw['component'], kw['clip_score'], kw['phash'],
                kw['embedding'])


def test_reasons_in_order_and_counts():
    f = InstanceFilter(min_clip=None, tolerance=None, min_area=0.1, max_area=0.9,
                       min_component=0.8, dedup=None)
    t = table(7, status=['black', 'nan', 'corrupt', 'ok', 'ok', 'ok', 'ok'],
              area=np.array([0.3, 0.3, 0.3, 0.0, 0.05, 0.95, 0.5]),
              component=np.array([1, 1, 1, 1, 1, 1, 0.5]))
    out = run(f, **t)
    assert out['reason'] == ['black_image', 'nan_image', 'corrupt_image', 'empty_mask',
                             'area_small', 'area_large', 'fragmented']
    assert out['counts']['kept'] == 0
    assert sum(out['counts'].values()) == 7
    assert set(out['counts']) == set(DROP_REASONS) | {'kept'}
    assert out['threshold'] is None and out['class_max'] is None


def test_clip_threshold_is_absolute_or_relative():
    f = InstanceFilter(min_clip=21.0, tolerance=1.0, dedup=None)
    # a hard class: best score 19.5 -> threshold min(21, 18.5) = 18.5
    out = run(f, **table(4, clip_score=np.array([19.5, 18.6, 18.4, 10.0])))
    assert out['threshold'] == pytest.approx(18.5)
    assert out['reason'] == ['', '', 'clip_score', 'clip_score']
    # an easy class: best 30 -> threshold 21
    out = run(f, **table(3, clip_score=np.array([30.0, 21.5, 20.9])))
    assert out['threshold'] == pytest.approx(21.0) and out['class_max'] == pytest.approx(30.0)
    assert out['reason'] == ['', '', 'clip_score']
    # the class max is taken over cut-outs that passed the other filters
    out = run(f, **table(2, clip_score=np.array([40.0, 22.0]), area=np.array([0.99, 0.3])))
    assert out['class_max'] == pytest.approx(22.0) and out['reason'] == ['area_large', '']
    # absolute only
    out = run(InstanceFilter(min_clip=21.0, tolerance=None, dedup=None),
              **table(2, clip_score=np.array([19.5, 18.0])))
    assert out['reason'] == ['clip_score', 'clip_score']


def test_dedup_by_clip_keeps_best_score():
    emb = np.array([[1, 0], [0.999, 0.045], [0, 1]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    f = InstanceFilter(min_clip=0.0, tolerance=None, dedup='auto', dedup_cosine=0.95)
    out = run(f, **table(3, clip_score=np.array([22.0, 25.0, 23.0]), embedding=emb))
    assert out['dedup'] == 'clip'
    assert out['reason'] == ['duplicate', '', '']


def test_dedup_by_phash_without_scores():
    hashes = np.array([0b1111, 0b1110, 0xFFFF0000], np.uint64)
    out = run(InstanceFilter(dedup='auto', dedup_hamming=1), **table(3, phash=hashes))
    assert out['dedup'] == 'phash'
    assert out['reason'] == ['', 'duplicate', '']  # without scores the lower index wins
    with pytest.raises(ValueError, match="dedup='clip' needs CLIP embeddings"):
        run(InstanceFilter(dedup='clip'), **table(3, phash=hashes))


def test_perceptual_hash_sees_near_duplicates():
    rng = np.random.default_rng(0)
    img = np.full((64, 64, 3), 255, np.uint8)
    cv2.circle(img, (30, 34), 20, (0, 0, 200), -1)
    noisy = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    other = np.full((64, 64, 3), 255, np.uint8)
    cv2.rectangle(other, (5, 5), (30, 60), (200, 0, 0), -1)
    h, hn, ho = perceptual_hash(img), perceptual_hash(noisy), perceptual_hash(other)
    assert hamming(h, np.array([hn]))[0] <= 4
    assert hamming(h, np.array([ho]))[0] > 10


def test_greedy_dedup():
    kept = greedy_dedup([2, 0, 1], lambda i, kept: (abs(kept - i) <= 1).any())
    assert kept == [2, 0]


@pytest.mark.parametrize('kwargs, match', [
    (dict(min_area=0.5, max_area=0.4), 'min_area=0.5'),
    (dict(dedup='md5'), "got 'md5'"),
    (dict(tolerance=-1), 'got -1'),
    (dict(dedup_hamming=65), 'got 65'),
])
def test_filter_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InstanceFilter(**kwargs)

"""XPaste: bank options (paths, category restrictions), pasted flags, float images, photometric
matching."""
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from paste_helpers import (check_invariants, exact_paste_kwargs, half_cover_bank, make_results,
                           textured_crop, write_bank)

from xpaste.datasets.instance_bank import InstanceBank
from xpaste.datasets.transforms import XPaste
from xpaste.datasets.transforms.paste_geometry import luminance_stats, match_luminance

THREE = [{'id': 1, 'name': 'cat'}, {'id': 2, 'name': 'dog'}, {'id': 3, 'name': 'emu'}]


@pytest.fixture
def bank_three(tmp_path):
    """cat, dog, emu: two instances each."""
    items = [(textured_crop(20, 20, seed=i), THREE[i % 3]['name']) for i in range(6)]
    return write_bank(tmp_path / 'bank3', items, categories=THREE)


def pasted_labels(t, seeds=range(4)):
    labels = set()
    for seed in seeds:
        np.random.seed(seed)
        out = t(make_results(np.zeros((0, 4))))
        labels |= set(out['gt_bboxes_labels'][out['gt_pasted_flags']].tolist())
    return labels


# ------------------------------------------------------------------------------------ bank
def test_ignore_unknown_keeps_the_bank_categories_restriction(bank_three):
    # 'emu' is unknown to the dataset; the bank config itself samples only 'cat'
    cfg = dict(type='InstanceBank', root=bank_three, categories=['cat'])
    t = XPaste(cfg, classes=('cat', 'dog'), ignore_unknown=True, num_pastes=6,
               **exact_paste_kwargs())
    assert t.bank.categories == ['cat']
    assert pasted_labels(t) == {0}
    # without a restriction every known category is sampled
    t = XPaste(bank_three, classes=('cat', 'dog'), ignore_unknown=True, num_pastes=6,
               **exact_paste_kwargs())
    assert t.bank.categories == ['cat', 'dog'] and pasted_labels(t) == {0, 1}
    # a restriction to unknown categories only leaves nothing to paste: an error, not silence
    cfg = dict(type='InstanceBank', root=bank_three, categories=['emu'])
    with pytest.raises(ValueError, match='leaves no category'):
        XPaste(cfg, classes=('cat', 'dog'), ignore_unknown=True)
    with pytest.raises(ValueError, match='none of the 3 categories'):
        XPaste(bank_three, classes=('bird', ), ignore_unknown=True)


def test_ignore_unknown_builds_the_bank_once(bank_three, monkeypatch):
    import xpaste.datasets.instance_bank as ib
    reads = []
    real = ib.read_manifest
    monkeypatch.setattr(ib, 'read_manifest', lambda root: reads.append(root) or real(root))
    XPaste(bank_three, classes=('cat', 'dog'), ignore_unknown=True)
    assert len(reads) == 1


@pytest.mark.parametrize('form', ['path', 'dict'])
def test_path_like_bank_everywhere(bank_three, tmp_path, form):
    root = Path(bank_three)
    bank = root if form == 'path' else dict(type='InstanceBank', root=root)
    t = XPaste(bank, classes=('cat', 'dog', 'emu'), sampling='uniform', num_pastes=2)
    assert t.bank.sampling == 'uniform'
    t = XPaste(bank, classes=('cat', 'dog'), ignore_unknown=True, sampling='uniform',
               num_pastes=4, **exact_paste_kwargs())
    assert t.bank.categories == ['cat', 'dog'] and pasted_labels(t) <= {0, 1}
    ann = tmp_path / 'classes.json'
    ann.write_text(json.dumps({'images': [], 'annotations': [], 'categories': [
        {'id': 1, 'name': 'cat'}, {'id': 2, 'name': 'dog'}, {'id': 3, 'name': 'emu'}]}))
    t = XPaste(bank, classes=ann, num_pastes=2)
    assert t.classes == ('cat', 'dog', 'emu') and 'classes.json' in repr(t)


def test_out_of_range_bank_categories_name_the_index_file(bank_three):
    path = Path(bank_three) / 'index' / 'category.npy'
    cats = np.load(path)
    cats[0] = 999
    np.save(path, cats)
    t = XPaste(bank_three, classes=('cat', 'dog', 'emu'), num_pastes=3)
    with pytest.raises(ValueError, match=r'category\.npy.*999'):
        t(make_results(np.zeros((0, 4))))


def test_min_clip_score_on_unscored_bank_warns(bank_three):
    t = XPaste(dict(type='InstanceBank', root=bank_three, min_clip_score=0.1),
               classes=('cat', 'dog', 'emu'), num_pastes=3)
    with pytest.warns(UserWarning, match='excludes 6 of 6 instances that have no CLIP score'):
        out = t(make_results([(1, 1, 9, 9)]))
    assert out['gt_pasted_flags'].tolist() == [False]


# ------------------------------------------------------------------------------------ flags
def test_pasted_flags_always_present(tmp_path, bank_three):
    empty = write_bank(tmp_path / 'empty', [], categories=THREE)
    cases = [
        XPaste(bank_three, classes=('cat', 'dog', 'emu'), prob=0.0),  # prob misses
        XPaste(bank_three, classes=('cat', 'dog', 'emu'), num_pastes=0),  # zero pastes
        XPaste(empty, classes=('cat', 'dog', 'emu')),  # nothing to sample
    ]
    for t in cases:
        out = t(make_results([(10, 10, 30, 30), (40, 40, 60, 60)]))
        flags = out['gt_pasted_flags']
        assert isinstance(flags, np.ndarray) and flags.dtype == bool
        assert flags.tolist() == [False, False]
        out = t(make_results(np.zeros((0, 4))))
        assert out['gt_pasted_flags'].shape == (0, )
        del out['gt_bboxes']  # e.g. a test-time pipeline
        out.pop('gt_pasted_flags')
        assert t(out)['gt_pasted_flags'].shape == (0, )
    # flags of an earlier paste step are kept, and extended by a step that pastes
    results = make_results([(10, 10, 30, 30)])
    results['gt_pasted_flags'] = np.array([True])
    assert cases[0](results)['gt_pasted_flags'].tolist() == [True]
    t = XPaste(bank_three, classes=('cat', 'dog', 'emu'), num_pastes=1, **exact_paste_kwargs())
    out = t(results)
    assert out['gt_pasted_flags'].all() and len(out['gt_pasted_flags']) == len(out['gt_bboxes'])


def test_untouched_originals_keep_their_input_boxes(tmp_path):
    root = half_cover_bank(tmp_path)  # the paste covers the left half of the image
    t = XPaste(root, classes=('cat', 'dog'), num_pastes=1, **exact_paste_kwargs())
    results = make_results([(30, 20, 70, 60), (60, 70, 90, 90)])
    results['gt_masks'].masks[1, 75:, :] = 0  # input box (60, 70, 90, 90) is not tight
    out = t(results)
    np.testing.assert_array_equal(out['gt_bboxes'].numpy()[1], (60, 70, 90, 90))  # untouched
    np.testing.assert_array_equal(out['gt_bboxes'].numpy()[0], (50, 20, 70, 60))  # touched
    check_invariants(out, 100, 100, originals_tight=False)


# ------------------------------------------------------------------------------------ float
def test_poisson_blend_on_float_image(tmp_path):
    root = half_cover_bank(tmp_path)
    t = XPaste(root, classes=('cat', 'dog'), num_pastes=1, **exact_paste_kwargs(blend='poisson'))
    rng = np.random.default_rng(0)
    img = (rng.integers(0, 255, (100, 100, 3)) + 0.25).astype(np.float32)
    out = t(make_results([(60, 60, 90, 90)], img=img.copy()))
    assert out['img'].dtype == np.float32
    np.testing.assert_array_equal(out['img'][:, 50:], img[:, 50:])  # fractions kept outside
    assert not np.array_equal(out['img'][:, :50], img[:, :50])
    inside = out['img'][:, :50]
    assert (inside == np.rint(inside)).all() and inside.min() >= 0 and inside.max() <= 255
    # the same geometry as a uint8 image
    np.random.seed(0)
    ref = t(make_results([(60, 60, 90, 90)], img=np.rint(img).astype(np.uint8)))
    np.testing.assert_array_equal(out['gt_masks'].masks, ref['gt_masks'].masks)


# ------------------------------------------------------------------------------------ photometric
def test_match_luminance_moves_mean_and_std_towards_the_background():
    rng = np.random.default_rng(0)
    bgr = rng.integers(180, 250, (20, 30, 3), dtype=np.uint8)  # bright, low contrast
    mask = np.zeros((20, 30), np.uint8)
    cv2.ellipse(mask, (15, 10), (13, 8), 0, 0, 360, 1, -1)
    window = rng.integers(0, 120, (20, 30, 3)).astype(np.uint8)  # dark, more contrast
    m_i, s_i = luminance_stats(bgr, mask)
    m_b, s_b = luminance_stats(window)
    assert match_luminance(bgr, mask, window, 0.0) is bgr
    half = luminance_stats(match_luminance(bgr, mask, window, 0.5), mask)
    full = luminance_stats(match_luminance(bgr, mask, window, 1.0), mask)
    assert abs(full[0] - m_b) < 1.0 and abs(full[1] - s_b) < 1.0
    assert full[0] < half[0] < m_i
    assert s_i < half[1] < full[1]
    # float windows (0..255) match the same way
    fwin = luminance_stats(match_luminance(bgr, mask, window.astype(np.float32), 1.0), mask)
    assert fwin == pytest.approx(full)


def test_photometric_match_option(tmp_path):
    crop = textured_crop(30, 40, seed=3)
    crop[..., :3] = np.clip(crop[..., :3].astype(int) // 4 + 200, 0, 255)  # bright instance
    root = write_bank(tmp_path / 'bank', [(crop, 'cat')], [{'id': 1, 'name': 'cat'}])
    img = np.random.default_rng(1).integers(0, 60, (80, 90, 3)).astype(np.uint8)  # dark image

    def pasted_mean(**kwargs):
        t = XPaste(root, classes=('cat', ), num_pastes=1, **exact_paste_kwargs(**kwargs))
        np.random.seed(0)
        out = t(make_results(np.zeros((0, 4)), 80, 90, img=img.copy()))
        mask = out['gt_masks'].masks[0]
        return luminance_stats(out['img'], mask)[0], out

    off, out_off = pasted_mean()
    on, out_on = pasted_mean(photometric_match=dict(strength=(1.0, 1.0), prob=1.0))
    never, _ = pasted_mean(photometric_match=dict(strength=(1.0, 1.0), prob=0.0))
    assert never == off
    background = luminance_stats(img)[0]
    assert on < off and abs(on - background) < 0.1 * (off - background)
    # geometry and every other draw stay the same
    np.testing.assert_array_equal(out_on['gt_masks'].masks, out_off['gt_masks'].masks)
    t = XPaste(root, classes=('cat', ), photometric_match=dict(strength=(0.2, 0.6)))
    assert t.photometric_match == dict(strength=(0.2, 0.6), prob=0.5)
    assert "photometric_match={'strength': (0.2, 0.6), 'prob': 0.5}" in repr(t)
    assert XPaste(root, classes=('cat', )).photometric_match is None


def test_built_bank_is_not_modified(bank_three):
    bank = InstanceBank(bank_three)
    with pytest.raises(ValueError, match='ignore_unknown'):
        XPaste(bank, classes=('cat', 'dog'), ignore_unknown=True)
    assert bank.categories is None
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        XPaste(bank, classes=('cat', 'dog', 'emu'))

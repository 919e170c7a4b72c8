"""XPaste: occlusion, labels, geometry and pipeline invariants on tiny banks written to tmp_path."""
import copy
import json
import os.path as osp
from functools import partial

import cv2
import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from xpaste.bank import SIZE_STATS_FORMAT, SIZE_STATS_VERSION
from xpaste.bank import BankWriter, finalize_bank
from xpaste.datasets.instance_bank import InstanceBank
from xpaste.datasets.transforms import XPaste, resolve_class_names

CATEGORIES = [{'id': 1, 'name': 'cat'}, {'id': 2, 'name': 'dog'}]


# ------------------------------------------------------------------------------------ helpers
def write_bank(root, items, categories=CATEGORIES, image_format='png'):
    """Write ``[(bgra, category_name), ...]`` as a finalized bank at ``root``."""
    writer = BankWriter(str(root), categories=categories, image_format=image_format)
    for bgra, name in items:
        writer.add(bgra, name, crop=False)
    writer.close()
    finalize_bank(str(root))
    return str(root)


def textured_crop(h, w, seed=0, shape='ellipse'):
    """A BGRA crop: random texture, opaque inside an ellipse (or everywhere), transparent out."""
    rng = np.random.default_rng(seed)
    bgra = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    if shape == 'ellipse':
        cv2.ellipse(alpha, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360,
                    255, -1)
    else:
        alpha[:] = 255
    bgra[..., 3] = alpha
    return bgra


def box_masks(boxes, h, w):
    """Filled-rectangle BitmapMasks for integer boxes (x0, y0, x1, y1): tight by construction."""
    masks = np.zeros((len(boxes), h, w), np.uint8)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        m[y0:y1, x0:x1] = 1
    return BitmapMasks(masks, h, w)


def make_results(boxes, h=100, w=100, labels=None, with_mask=True, img=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    results = dict(
        img=np.zeros((h, w, 3), np.uint8) if img is None else img,
        gt_bboxes=HorizontalBoxes(boxes),
        gt_bboxes_labels=np.zeros(n, np.int64) if labels is None else np.asarray(labels),
        gt_ignore_flags=np.zeros(n, bool))
    results['img_shape'] = (h, w)
    if with_mask:
        results['gt_masks'] = box_masks(boxes.astype(int), h, w)
    return results


def tight_box(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def exact_paste_kwargs(**kwargs):
    """Options that paste the stored crop pixel for pixel (no resize, flip, rotation, jitter)."""
    cfg = dict(
        size_mode='original',
        aspect_jitter=0.0,
        flip=False,
        rotation=0.0,
        color_jitter=0.0,
        blend='hard',
        min_visible_size=1)
    cfg.update(kwargs)
    return cfg


def check_invariants(out, h, w, originals_tight=True):
    """Dtypes, lengths, tight boxes, non-empty masks, pasted masks disjoint from the others.

    ``originals_tight=False`` checks tight boxes of pasted instances only (instances no paste
    touches keep their input boxes, which need not be tight, e.g. LVIS polygons).
    """
    boxes = out['gt_bboxes']
    arr = boxes.numpy() if isinstance(boxes, HorizontalBoxes) else boxes
    n = len(arr)
    assert arr.dtype == np.float32
    assert out['gt_bboxes_labels'].dtype == np.int64 and len(out['gt_bboxes_labels']) == n
    assert out['gt_ignore_flags'].dtype == bool and len(out['gt_ignore_flags']) == n
    assert out['gt_pasted_flags'].dtype == bool and len(out['gt_pasted_flags']) == n
    masks = out['gt_masks']
    assert isinstance(masks, BitmapMasks) and masks.masks.dtype == np.uint8
    assert masks.masks.shape == (n, h, w) and (masks.height, masks.width) == (h, w)
    flags = out['gt_pasted_flags']
    for k in range(n):
        assert masks.masks[k].any(), f'instance {k} has an empty mask'
        if originals_tight or flags[k]:
            np.testing.assert_array_equal(arr[k], tight_box(masks.masks[k]))
    for k in np.flatnonzero(flags):
        others = np.delete(masks.masks, k, axis=0).any(0)
        assert not (others & masks.masks[k].astype(bool)).any()


@pytest.fixture
def bank_two(tmp_path):
    """Two categories, three textured ellipses each (20-40 px)."""
    items = [(textured_crop(20 + 4 * i, 24 + 3 * i, seed=i), 'cat' if i % 2 else 'dog')
             for i in range(6)]
    return write_bank(tmp_path / 'bank', items)


def half_cover_bank(tmp_path, h=100, w=100):
    """One instance the size of the image, opaque exactly on its left half (x < w // 2).

    Pasted at its original size it can only land at (0, 0): the paste covers the left half.
    """
    bgra = textured_crop(h, w, seed=7, shape='full')
    bgra[:, w // 2:, 3] = 0
    return write_bank(tmp_path / 'half', [(bgra, 'dog')])


# ------------------------------------------------------------------------------------ tests
def test_partial_and_full_occlusion(tmp_path):
    root = half_cover_bank(tmp_path)
    t = XPaste(root, classes=('cat', 'dog'), num_pastes=1, **exact_paste_kwargs())
    boxes = [
        (30, 20, 70, 60),  # right part survives (20x40 = 800 px > 300): kept, shrinks
        (10, 70, 40, 90),  # fully covered: dropped
        (45, 0, 58, 20),  # 8x20 = 160 px left but box moves 5 px <= 10: kept (box rule)
        (20, 92, 60, 97),  # 10x5 = 50 px left and box moves 30 px: dropped
        (60, 70, 90, 90),  # untouched
    ]
    out = t(make_results(boxes, labels=[0, 0, 0, 0, 0]))
    check_invariants(out, 100, 100)
    np.testing.assert_array_equal(
        out['gt_bboxes'].numpy(),
        np.array([(50, 20, 70, 60), (50, 0, 58, 20), (60, 70, 90, 90), (0, 0, 50, 100)],
                 np.float32))
    assert out['gt_pasted_flags'].tolist() == [False, False, False, True]
    assert out['gt_bboxes_labels'].tolist() == [0, 0, 0, 1]
    assert out['gt_masks'].masks[0].sum() == 20 * 40
    assert out['gt_masks'].masks[3].sum() == 50 * 100


def test_box_only_pipeline(tmp_path):
    root = half_cover_bank(tmp_path)
    t = XPaste(root, classes=('cat', 'dog'), num_pastes=1, **exact_paste_kwargs())
    boxes = [(30.5, 20.25, 70, 60), (10, 70, 40, 90), (45, 0, 58, 20), (20, 92, 60, 97)]
    results = make_results(boxes, with_mask=False)
    out = t(results)
    assert 'gt_masks' not in out
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [(50, 20.25, 70, 60), (50, 0, 58, 20),
                                                          (0, 0, 50, 100)])
    assert out['gt_pasted_flags'].tolist() == [False, False, True]
    assert out['gt_bboxes'].numpy().dtype == np.float32


def test_polygon_masks_are_converted(tmp_path):
    root = half_cover_bank(tmp_path)
    t = XPaste(root, classes=('cat', 'dog'), num_pastes=1, **exact_paste_kwargs())
    results = make_results([(30, 20, 70, 60), (10, 70, 40, 90)])
    polys = [[np.array([30, 20, 70, 20, 70, 60, 30, 60], float)],
             [np.array([10, 70, 40, 70, 40, 90, 10, 90], float)]]
    results['gt_masks'] = PolygonMasks(polys, 100, 100)
    out = t(results)
    assert isinstance(out['gt_masks'], BitmapMasks)
    assert len(out['gt_masks']) == 2  # the second instance is fully covered
    assert out['gt_pasted_flags'].tolist() == [False, True]
    check_invariants(out, 100, 100)


def test_pasted_pixels_equal_bank_pixels(tmp_path):
    crop = textured_crop(30, 40, seed=3)
    crop[5, 5:8, 3] = 100  # soft alpha below the mask threshold: never copied by 'hard'
    root = write_bank(tmp_path / 'bank', [(crop, 'cat')], CATEGORIES[:1])
    t = XPaste(root, classes=('cat', ), num_pastes=1, **exact_paste_kwargs())
    img = np.full((80, 90, 3), 17, np.uint8)
    out = t(make_results(np.zeros((0, 4)), 80, 90, img=img.copy()))
    stored = InstanceBank(root).load(0)
    alpha = stored[..., 3] >= 128
    (mask, ) = out['gt_masks'].masks
    x0, y0, x1, y1 = out['gt_bboxes'].numpy()[0].astype(int)
    ay, ax = np.nonzero(alpha)
    oy, ox = y0 - ay.min(), x0 - ax.min()  # placement of the crop's top-left corner
    window = out['img'][oy:oy + 30, ox:ox + 40]
    np.testing.assert_array_equal(window[alpha], stored[..., :3][alpha])
    np.testing.assert_array_equal(window[~alpha], 17)
    np.testing.assert_array_equal(mask[oy:oy + 30, ox:ox + 40].astype(bool), alpha)
    assert mask.sum() == alpha.sum()
    assert out['gt_pasted_flags'].tolist() == [True]


def test_instance_larger_than_image(tmp_path):
    root = write_bank(tmp_path / 'bank', [(textured_crop(150, 160, shape='full'), 'cat')],
                      CATEGORIES[:1])
    t = XPaste(root, classes=('cat', ), num_pastes=1, **exact_paste_kwargs())
    out = t(make_results([(10, 10, 30, 30)], h=60, w=70))
    check_invariants(out, 60, 70)
    assert out['gt_pasted_flags'].tolist() == [True]
    np.testing.assert_array_equal(out['gt_bboxes'].numpy(), [(0, 0, 70, 60)])
    assert out['gt_masks'].masks[0].all()


def test_all_transparent_instance_is_skipped(tmp_path):
    clear = textured_crop(20, 20)
    clear[..., 3] = 0
    faint = textured_crop(20, 20)
    faint[..., 3] = np.minimum(faint[..., 3], 100)  # visible but below the mask threshold
    root = write_bank(tmp_path / 'bank', [(clear, 'cat'), (faint, 'cat')], CATEGORIES[:1])
    t = XPaste(root, classes=('cat', ), num_pastes=5, **exact_paste_kwargs())
    results = make_results([(10, 10, 30, 30)])
    img_before = results['img'].copy()
    out = t(results)
    assert len(out['gt_bboxes']) == 1 and 'gt_pasted_flags' not in out
    np.testing.assert_array_equal(out['img'], img_before)


def test_undecodable_instance_is_skipped(tmp_path):
    root = write_bank(tmp_path / 'bank', [(textured_crop(20, 20), 'cat')], CATEGORIES[:1])
    reader = InstanceBank(root).reader
    offset, length = int(reader.offset[0]), int(reader.length[0])
    with open(reader.shard_path(0), 'r+b') as f:  # destroy the stored bytes
        f.seek(offset)
        f.write(b'\0' * length)
    t = XPaste(root, classes=('cat', ), num_pastes=3, **exact_paste_kwargs())
    results = make_results([(10, 10, 30, 30)])
    with pytest.warns(UserWarning, match='undecodable'):
        out = t(results)
    assert len(out['gt_bboxes']) == 1 and 'gt_pasted_flags' not in out


def test_empty_bank_and_prob_zero(tmp_path, bank_two):
    root = write_bank(tmp_path / 'empty', [])
    t = XPaste(root, classes=('cat', 'dog'))
    results = make_results([(10, 10, 30, 30)])
    masks = results['gt_masks']
    out = t(results)
    assert out['gt_masks'] is masks and len(out['gt_bboxes']) == 1
    assert 'gt_pasted_flags' not in out

    t = XPaste(bank_two, classes=('cat', 'dog'), prob=0.0, num_pastes=5)
    results = make_results([(10, 10, 30, 30)])
    img = results['img']
    out = t(results)
    assert out['img'] is img and len(out['gt_bboxes']) == 1 and 'gt_pasted_flags' not in out
    # zero pastes is a no-op too
    out = XPaste(bank_two, classes=('cat', 'dog'), num_pastes=0)(make_results([(1, 1, 9, 9)]))
    assert 'gt_pasted_flags' not in out


def test_image_without_instances(bank_two):
    t = XPaste(
        bank_two,
        classes=('cat', 'dog'),
        num_pastes=6,
        size_mode='range',
        size_range=(0.1, 0.2),
        min_visible_size=1)
    out = t(make_results(np.zeros((0, 4)), 64, 64))
    n = len(out['gt_bboxes'])
    assert n >= 1 and out['gt_pasted_flags'].all()
    check_invariants(out, 64, 64)
    assert not out['gt_ignore_flags'].any()


def test_labels_map_by_name(tmp_path):
    root = write_bank(tmp_path / 'bank', [(textured_crop(20, 20, seed=i), 'cat') for i in range(3)])
    t = XPaste(root, classes=('bird', 'dog', 'cat'), num_pastes=3, **exact_paste_kwargs())
    out = t(make_results(np.zeros((0, 4))))
    assert len(out['gt_bboxes_labels']) >= 1 and set(out['gt_bboxes_labels'].tolist()) == {2}
    # category_map renames bank categories
    t = XPaste(
        root,
        classes=('bird', 'feline'),
        num_pastes=3,
        category_map={
            'cat': 'feline',
            'dog': 'bird'
        },
        **exact_paste_kwargs())
    out = t(make_results(np.zeros((0, 4))))
    assert set(out['gt_bboxes_labels'].tolist()) == {1}


def test_mismatched_names(tmp_path):
    items = [(textured_crop(20, 20, seed=0), 'cat'), (textured_crop(20, 20, seed=1), 'dog')]
    root = write_bank(tmp_path / 'bank', items)
    with pytest.raises(ValueError, match=r"\['dog'\]"):
        XPaste(root, classes=('cat', 'bird'))
    with pytest.raises(ValueError, match='zebra'):
        XPaste(root, classes=('cat', 'dog'), category_map={'zebra': 'cat'})
    t = XPaste(
        root, classes=('cat', 'bird'), ignore_unknown=True, num_pastes=8, **exact_paste_kwargs())
    assert t.bank.category_names == ['cat', 'dog'] and t.bank.categories == ['cat']
    out = t(make_results(np.zeros((0, 4))))
    assert len(out['gt_bboxes_labels']) and (out['gt_bboxes_labels'] == 0).all()
    with pytest.raises(ValueError, match='ignore_unknown'):
        XPaste(InstanceBank(root), classes=('cat', ), ignore_unknown=True)


def test_determinism_under_seed(bank_two):
    t = XPaste(
        bank_two,
        classes=('cat', 'dog'),
        num_pastes=(2, 8),
        rotation=30,
        color_jitter=0.3,
        blend=['hard', 'alpha', 'gaussian', 'poisson'],
        size_mode='range',
        size_range=(0.1, 0.4))

    def run(seed):
        np.random.seed(seed)
        img = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
        return t(make_results([(5, 5, 40, 40), (50, 50, 90, 80)], 96, 96, img=img))

    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a['img'], b['img'])
    np.testing.assert_array_equal(a['gt_masks'].masks, b['gt_masks'].masks)
    np.testing.assert_array_equal(a['gt_bboxes'].numpy(), b['gt_bboxes'].numpy())
    assert not np.array_equal(a['img'], c['img'])


def test_geometry_does_not_depend_on_blend_mode(bank_two):
    outs = {}
    for mode in ('hard', 'alpha', 'gaussian', 'poisson'):
        t = XPaste(
            bank_two,
            classes=('cat', 'dog'),
            num_pastes=4,
            blend=mode,
            rotation=20,
            size_mode='range',
            size_range=(0.15, 0.3))
        np.random.seed(3)
        img = np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8)
        outs[mode] = t(make_results([(10, 10, 50, 50)], 80, 80, img=img))
        check_invariants(outs[mode], 80, 80)
    ref = outs['hard']
    for mode, out in outs.items():
        np.testing.assert_array_equal(out['gt_masks'].masks, ref['gt_masks'].masks)
        if mode != 'hard':
            assert not np.array_equal(out['img'], ref['img']), mode


def test_random_invariants_and_ndarray_boxes(bank_two):
    t = XPaste(
        bank_two,
        classes=('cat', 'dog'),
        num_pastes=(5, 15),
        rotation=45,
        aspect_jitter=0.3,
        color_jitter=0.5,
        size_mode='range',
        size_range=(0.05, 0.5),
        blend=['hard', 'gaussian'],
        min_visible_size=2)
    rng = np.random.default_rng(0)
    for seed in range(8):
        np.random.seed(seed)
        xy = rng.integers(0, 60, (6, 2))
        wh = rng.integers(3, 40, (6, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, 100)], 1)
        results = make_results(boxes, labels=rng.integers(0, 2, 6))
        results['gt_bboxes'] = results['gt_bboxes'].numpy()
        if seed % 2:  # flipped views with negative strides, as RandomFlip leaves them
            results['gt_masks'].masks = np.flip(results['gt_masks'].masks, 2)
            results['gt_bboxes'] = np.stack(
                [100 - boxes[:, 2], boxes[:, 1], 100 - boxes[:, 0], boxes[:, 3]],
                1).astype(np.float32)
            results['img'] = np.flip(np.arange(30000, dtype=np.uint8).reshape(100, 100, 3), 1)
        n_in = len(boxes)
        out = t(results)
        assert isinstance(out['gt_bboxes'], np.ndarray)
        out['gt_bboxes'] = HorizontalBoxes(out['gt_bboxes'])
        check_invariants(out, 100, 100)
        assert (~out['gt_pasted_flags']).sum() <= n_in


def test_float_image(tmp_path):
    root = half_cover_bank(tmp_path)
    t = XPaste(root, classes=('cat', 'dog'), num_pastes=1, **exact_paste_kwargs())
    img = np.full((100, 100, 3), 0.5, np.float32)
    out = t(make_results([(60, 60, 90, 90)], img=img))
    stored = InstanceBank(root).load(0)
    assert out['img'].dtype == np.float32
    np.testing.assert_array_equal(out['img'][:, :50], stored[:, :50, :3].astype(np.float32))
    assert (out['img'][:, 50:] == 0.5).all()


def test_size_models(tmp_path):
    crop = textured_crop(40, 40, shape='full')
    root = write_bank(tmp_path / 'bank', [(crop, 'cat')], CATEGORIES[:1])
    t = XPaste(
        root,
        classes=('cat', ),
        num_pastes=1,
        size_mode='range',
        size_range=(0.2, 0.2),
        aspect_jitter=0.0,
        flip=False)
    out = t(make_results(np.zeros((0, 4)), 100, 200))
    x0, y0, x1, y1 = out['gt_bboxes'].numpy()[0]
    side = 0.2 * np.sqrt(100 * 200)  # sqrt(area) = 0.2 * sqrt(H * W)
    assert abs((x1 - x0) - side) <= 1 and abs((y1 - y0) - side) <= 1
    # clipped to max_size_ratio * shorter side
    t = XPaste(
        root,
        classes=('cat', ),
        num_pastes=1,
        size_mode='range',
        size_range=(0.9, 0.9),
        aspect_jitter=0.0,
        flip=False,
        max_size_ratio=0.5)
    out = t(make_results(np.zeros((0, 4)), 100, 200))
    x0, y0, x1, y1 = out['gt_bboxes'].numpy()[0]
    assert abs((x1 - x0) - 50) <= 1 and abs((y1 - y0) - 50) <= 1
    # class statistics: a class with mean 0.1 and no spread
    stats = {
        'format': SIZE_STATS_FORMAT,
        'version': SIZE_STATS_VERSION,
        'categories': {
            'cat': {
                'count': 5,
                'mean': 0.1,
                'std': 0.0
            }
        }
    }
    t = XPaste(
        dict(type='InstanceBank', root=root, size_stats=stats),
        classes=('cat', ),
        num_pastes=1,
        aspect_jitter=0.0)
    out = t(make_results(np.zeros((0, 4)), 100, 200))
    x0, y0, x1, y1 = out['gt_bboxes'].numpy()[0]
    side = max(0.1 * np.sqrt(100 * 200), 10)
    assert abs((x1 - x0) - side) <= 1 and abs((y1 - y0) - side) <= 1


def test_sampling_override(bank_two):
    t = XPaste(dict(type='InstanceBank', root=bank_two), classes=('cat', 'dog'), sampling='uniform')
    assert t.bank.sampling == 'uniform'
    with pytest.raises(TypeError, match='sampling'):
        XPaste(InstanceBank(bank_two), classes=('cat', 'dog'), sampling='uniform')


@pytest.mark.parametrize('kwargs, match', [
    (dict(prob=1.5), '1.5'),
    (dict(num_pastes=(5, 5)), r'\(5, 5\)'),
    (dict(num_pastes=-1), '-1'),
    (dict(blend='soft'), 'soft'),
    (dict(blend=['hard', 'blur']), 'blur'),
    (dict(size_mode='area'), 'area'),
    (dict(size_range=(0.5, 0.1)), r'\(0.5, 0.1\)'),
    (dict(aspect_jitter=1.0), '1.0'),
    (dict(rotation=-5), '-5'),
    (dict(mask_occluded_thr=1.5), '1.5'),
    (dict(classes='NoSuchDataset'), 'NoSuchDataset'),
    (dict(classes=('cat', 'cat', 'dog')), 'cat'),
    (dict(paste_flag_key=''), "''"),
])
def test_invalid_arguments(bank_two, kwargs, match):
    cfg = dict(bank=bank_two, classes=('cat', 'dog'))
    cfg.update(kwargs)
    with pytest.raises((ValueError, TypeError, KeyError), match=match):
        XPaste(**cfg)


def test_resolve_class_names_and_repr(bank_two):
    lvis = resolve_class_names('LVISV1Dataset')
    assert len(lvis) == 1203 and lvis[0] == 'aerosol_can'
    assert resolve_class_names({'classes': ('a', 'b')}) == ('a', 'b')
    t = XPaste(bank_two, classes={'classes': ('cat', 'dog')}, rotation=10)
    text = repr(t)
    for arg in ('bank=', 'classes=', 'prob=', 'num_pastes=', 'sampling=', 'size_mode=',
                'size_range=', 'min_size=', 'max_size_ratio=', 'aspect_jitter=', 'flip=',
                'rotation=10.0', 'color_jitter=', 'blend=', 'blend_sigma=', 'box_occluded_thr=',
                'mask_occluded_thr=', 'min_visible_size=', 'category_map=', 'ignore_unknown=',
                'paste_flag_key='):
        assert arg in text, arg


def test_registered_and_built_from_config(bank_two):
    from mmdet.registry import TRANSFORMS
    t = TRANSFORMS.build(
        dict(
            type='XPaste',
            bank=dict(type='InstanceBank', root=bank_two),
            classes=['cat', 'dog'],
            num_pastes=2))
    assert isinstance(t, XPaste) and len(t.bank) == 6


# ------------------------------------------------------------------------------------ dataloader
def make_tiny_lvis(root, classes, num_images=6, size=(64, 80)):
    """LVIS-format json + JPEG images; annotations use only the first class."""
    rng = np.random.default_rng(0)
    (root / 'train2017').mkdir(parents=True)
    images, anns = [], []
    h, w = size
    for i in range(1, num_images + 1):
        name = f'{i:012d}.jpg'
        cv2.imwrite(str(root / 'train2017' / name), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        images.append(
            dict(
                id=i,
                height=h,
                width=w,
                neg_category_ids=[],
                not_exhaustive_category_ids=[],
                coco_url=f'http://images.cocodataset.org/train2017/{name}'))
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        anns.append(
            dict(
                id=i,
                image_id=i,
                category_id=1,
                bbox=[x, y, 16, 14],
                area=16 * 14,
                segmentation=[[x, y, x + 16, y, x + 16, y + 14, x, y + 14]]))
    cats = [dict(id=i + 1, name=n, frequency='r', image_count=1) for i, n in enumerate(classes)]
    path = root / 'lvis_v1_train.json'
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    return str(path)


@pytest.mark.timeout(300)
def test_dataloader_workers_lvis_class_balanced(tmp_path, bank_two):
    from mmengine.dataset import pseudo_collate, worker_init_fn
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS

    import xpaste.datasets  # noqa: F401  (registers XPaste and InstanceBank)
    init_default_scope('mmdet')  # ClassBalancedDataset builds the inner dataset by scope

    classes = ('bird', 'cat', 'dog')  # the json annotates only 'bird'; the bank holds cat, dog
    ann_file = make_tiny_lvis(tmp_path / 'lvis', classes)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(96, 96), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(
            type='XPaste',
            bank=dict(type='InstanceBank', root=bank_two),
            classes=classes,
            num_pastes=(1, 4),
            size_mode='range',
            size_range=(0.1, 0.3),
            min_visible_size=2),
    ]
    cfg = dict(
        type='ClassBalancedDataset',
        oversample_thr=1e-3,
        dataset=dict(
            type='LVISV1Dataset',
            data_root=str(tmp_path / 'lvis'),
            ann_file=osp.basename(ann_file),
            data_prefix=dict(img=''),
            metainfo=dict(classes=classes),
            pipeline=pipeline))

    def run():
        dataset = DATASETS.build(copy.deepcopy(cfg))
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=2,
            num_workers=2,
            collate_fn=pseudo_collate,
            shuffle=False,
            worker_init_fn=partial(worker_init_fn, num_workers=2, rank=0, seed=123))
        return [s for batch in loader for s in _unbatch(batch)]

    first, second = run(), run()
    assert len(first) == 6
    pasted_labels = set()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a['img'], b['img'])
        np.testing.assert_array_equal(a['gt_bboxes_labels'], b['gt_bboxes_labels'])
        flags = a['gt_pasted_flags']
        assert flags.any()
        assert (a['gt_bboxes_labels'][~flags] == 0).all()
        pasted_labels |= set(a['gt_bboxes_labels'][flags].tolist())
        h, w = a['img'].shape[:2]
        check_invariants(a, h, w, originals_tight=False)
    assert pasted_labels <= {1, 2} and pasted_labels


def _unbatch(batch):
    keys = ('img', 'gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_masks',
            'gt_pasted_flags')
    return [{k: batch[k][i] for k in keys} for i in range(len(batch['img']))]


# ------------------------------------------------------------------------------------ tools
def load_tool(name):
    import importlib.util
    path = osp.join(osp.dirname(__file__), '..', '..', '..', 'tools', 'analysis', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_tool_runs_small(tmp_path, capsys):
    bench = load_tool('benchmark_paste')
    out = bench.main([
        '--size', '128', '--num-instances', '3', '--num-pastes', '2', '--repeats', '1',
        '--bank-size', '4', '--index-instances', '3000', '--json', '--work-dir',
        str(tmp_path)
    ])
    printed = json.loads(capsys.readouterr().out)  # stdout holds exactly one JSON object
    for key in ('ratio_warm', 'ratio_cold', 'index_bytes_per_instance', 'copypaste_ms',
                'xpaste_warm_ms', 'xpaste_cold_ms', 'xpaste_warm_ms_by_pastes'):
        assert key in printed and key in out
    assert printed['index_instances'] == 3000
    assert printed['index_bytes_per_instance'] <= 80
    assert 1 <= printed['xpaste_pasted_kept_in_check'] <= 2


def test_browse_tool_writes_samples(tmp_path, bank_two):
    browse = load_tool('browse_pasted')
    classes = ('bird', 'cat', 'dog')
    ann_file = make_tiny_lvis(tmp_path / 'lvis', classes, num_images=3)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(
            type='XPaste',
            bank=bank_two,
            classes=list(classes),
            num_pastes=3,
            size_mode='range',
            size_range=(0.15, 0.3)),
        dict(type='PackDetInputs'),
    ]
    cfg = dict(
        default_scope='mmdet',
        custom_imports=dict(imports=['xpaste.datasets'], allow_failed_imports=False),
        train_dataloader=dict(
            dataset=dict(
                type='ClassBalancedDataset',
                oversample_thr=1e-3,
                dataset=dict(
                    type='LVISV1Dataset',
                    data_root=str(tmp_path / 'lvis'),
                    ann_file=osp.basename(ann_file),
                    data_prefix=dict(img=''),
                    metainfo=dict(classes=classes),
                    pipeline=pipeline))),
        visualizer=dict(type='DetLocalVisualizer'))
    cfg_file = tmp_path / 'browse_cfg.py'
    cfg_file.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()))
    files = browse.main([str(cfg_file), '--output-dir', str(tmp_path / 'vis'), '--num', '2'])
    assert len(files) == 2
    for f in files:
        img = cv2.imread(f)
        assert img is not None and img.shape == (64, 80, 3)


def test_bank_that_does_not_exist_yet_opens_on_first_use(tmp_path):
    """A config may name a bank before it is built: the pipeline builds, the first call opens it."""
    root = tmp_path / 'later'
    t = XPaste(dict(type='InstanceBank', root=str(root)), classes=('cat', 'bird'), num_pastes=4,
               **exact_paste_kwargs())
    assert t._bank is None
    items = [(textured_crop(20, 20, seed=0), 'cat'), (textured_crop(20, 20, seed=1), 'dog')]
    write_bank(root, items)
    with pytest.raises(ValueError, match=r"\['dog'\]"):
        t(make_results(np.zeros((0, 4))))


def test_classes_from_annotation_json(tmp_path):
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps({
        'images': [], 'annotations': [],
        'categories': [{'id': 2, 'name': 'dog'}, {'id': 1, 'name': 'cat'}]}))
    assert resolve_class_names(str(ann)) == ('cat', 'dog')  # id order, as the dataset labels
    items = [(textured_crop(20, 20, seed=0), 'cat'), (textured_crop(20, 20, seed=1), 'dog')]
    root = write_bank(tmp_path / 'bank', items)
    t = XPaste(root, classes=str(ann), num_pastes=8, **exact_paste_kwargs())
    out = t(make_results(np.zeros((0, 4))))
    assert set(out['gt_bboxes_labels'].tolist()) <= {0, 1} and len(out['gt_bboxes_labels']) > 0
    with pytest.raises(FileNotFoundError, match='missing.json'):
        XPaste(root, classes=str(tmp_path / 'missing.json')).classes

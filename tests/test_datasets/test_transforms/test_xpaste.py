"""XPaste: occlusion, labels, geometry and invariants on tiny banks written to tmp_path."""
import json

import numpy as np
import pytest
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from paste_helpers import (CATEGORIES, check_invariants, exact_paste_kwargs, half_cover_bank,
                           make_results, textured_crop, write_bank)

from xpaste.bank import SIZE_STATS_FORMAT, SIZE_STATS_VERSION
from xpaste.datasets.instance_bank import InstanceBank
from xpaste.datasets.transforms import XPaste, resolve_class_names


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
    assert len(out['gt_bboxes']) == 1 and out['gt_pasted_flags'].tolist() == [False]
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
    assert len(out['gt_bboxes']) == 1 and out['gt_pasted_flags'].tolist() == [False]


def test_empty_bank_and_prob_zero(tmp_path, bank_two):
    root = write_bank(tmp_path / 'empty', [])
    t = XPaste(root, classes=('cat', 'dog'))
    results = make_results([(10, 10, 30, 30)])
    masks = results['gt_masks']
    out = t(results)
    assert out['gt_masks'] is masks and len(out['gt_bboxes']) == 1
    assert out['gt_pasted_flags'].dtype == bool and out['gt_pasted_flags'].tolist() == [False]

    t = XPaste(bank_two, classes=('cat', 'dog'), prob=0.0, num_pastes=5)
    results = make_results([(10, 10, 30, 30)])
    img = results['img']
    out = t(results)
    assert out['img'] is img and len(out['gt_bboxes']) == 1
    assert out['gt_pasted_flags'].tolist() == [False]
    # zero pastes is a no-op too
    out = XPaste(bank_two, classes=('cat', 'dog'), num_pastes=0)(make_results([(1, 1, 9, 9)]))
    assert out['gt_pasted_flags'].tolist() == [False]


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
    (dict(flip=1), 'flip'),
    (dict(photometric_match=dict(strength=(0.5, 1.5))), r'strength .*\(0.5, 1.5\)'),
    (dict(photometric_match=dict(prob=2)), 'photometric_match.prob'),
    (dict(photometric_match=dict(gain=2)), 'gain'),
    (dict(photometric_match=True), 'True'),
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
                'paste_flag_key=', 'photometric_match='):
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

import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from xpaste.builder.from_annotations import (build_bank_from_annotations, image_relpath,
                                          segmentation_to_mask)
from xpaste.bank import BankReader

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COLOURS = {'red': (0, 0, 255), 'green': (0, 255, 0), 'blue': (255, 0, 0)}


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'tool_{name}',
                                                  osp.join(REPO, 'tools', 'bank', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rect_poly(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def make_dataset(root, layout='coco'):
    """Three drawn images (one missing on disk) and a COCO/LVIS json describing them.

    Image 1: red rectangle (polygon), green circle (compressed RLE), a crowd and a tiny box.
    Image 2: blue rectangle (uncompressed RLE) and another red rectangle.
    Image 3: listed in the json, absent on disk.
    """
    h, w = 60, 80
    sub = 'train2017' if layout == 'lvis' else ''
    os.makedirs(osp.join(root, 'img', sub), exist_ok=True)
    img1 = np.full((h, w, 3), 128, np.uint8)
    cv2.rectangle(img1, (5, 10), (24, 39), COLOURS['red'], -1)  # 20 x 30
    cv2.circle(img1, (55, 30), 12, COLOURS['green'], -1)
    img2 = np.full((h, w, 3), 128, np.uint8)
    cv2.rectangle(img2, (30, 5), (69, 24), COLOURS['blue'], -1)  # 40 x 20
    cv2.rectangle(img2, (2, 30), (21, 57), COLOURS['red'], -1)  # 20 x 28
    cv2.imwrite(osp.join(root, 'img', sub, '000001.png'), img1)
    cv2.imwrite(osp.join(root, 'img', sub, '000002.png'), img2)
    circle = np.zeros((h, w), np.uint8)
    cv2.circle(circle, (55, 30), 12, 1, -1)
    rle = mask_utils.encode(np.asfortranarray(circle))
    rle['counts'] = rle['counts'].decode('ascii')
    blue = np.zeros((h, w), np.uint8)
    blue[5:25, 30:70] = 1
    flat = blue.flatten(order='F')
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))  # run boundaries
    counts = np.diff(np.concatenate([[0], change])).tolist()
    uncompressed = {'size': [h, w], 'counts': counts}
    assert mask_utils.decode(mask_utils.frPyObjects(uncompressed, h, w)).sum() == 800

    def image(i):
        info = dict(id=i, width=w, height=h)
        if layout == 'lvis':
            info['coco_url'] = f'http://images.cocodataset.org/train2017/00000{i}.png'
        else:
            info['file_name'] = f'00000{i}.png'
        return info

    def ann(i, img, cat, segm, area, **kw):
        return dict(id=i, image_id=img, category_id=cat, segmentation=segm, area=area,
                    bbox=[0, 0, 1, 1], **kw)

    data = {
        'images': [image(1), image(2), image(3)],
        'categories': [dict(id=1, name='red', frequency='f'), dict(id=2, name='green'),
                       dict(id=3, name='blue')],
        'annotations': [
            ann(10, 1, 1, rect_poly(5, 10, 20, 30), 20 * 30.0),
            ann(11, 1, 2, rle, float(circle.sum())),
            ann(12, 1, 1, rect_poly(0, 0, 60, 50), 3000.0, iscrowd=1),
            ann(13, 1, 3, rect_poly(70, 50, 4, 4), 16.0),  # tiny
            ann(20, 2, 3, uncompressed, 800.0),
            ann(21, 2, 1, rect_poly(2, 30, 20, 28), 20 * 28.0),
            ann(30, 3, 1, rect_poly(0, 0, 10, 10), 100.0),  # image missing on disk
        ],
    }
    ann_file = osp.join(root, 'ann.json')
    with open(ann_file, 'w') as f:
        json.dump(data, f)
    return ann_file, osp.join(root, 'img')


@pytest.mark.parametrize('layout', ['coco', 'lvis'])
def test_cli_builds_bank_from_annotations(tmp_path, layout):
    ann_file, prefix = make_dataset(tmp_path, layout)
    out = tmp_path / 'bank'
    tool = load_tool('from_annotations')
    with pytest.warns(UserWarning, match=r'1 image\(s\) missing'):
        summary = tool.main([ann_file, prefix, str(out), '--min-area', '64', '--image-format',
                             'png', '--no-progress'])
    assert summary['num_instances'] == 4 and summary['num_images'] == 2
    assert summary['skipped'] == {'crowd': 1, 'small': 1, 'missing_image': 1}
    r = BankReader(out)
    assert [c['name'] for c in r.categories] == ['red', 'green', 'blue']
    assert r.categories[0]['frequency'] == 'f'
    expect = [('red', (30, 20)), ('green', (25, 25)), ('blue', (20, 40)), ('red', (28, 20))]
    sub = 'train2017/' if layout == 'lvis' else ''
    for i, (name, shape) in enumerate(expect):
        rec = r.record(i)
        crop = r.decode(i)
        assert rec['category_name'] == name and crop.shape[:2] == shape
        fg = crop[..., 3] > 0
        assert (crop[..., :3][fg] == COLOURS[name]).all()  # only the object's own pixels
        assert rec['segmenter_name'] == 'annotation' and rec['seed'] == -1
        assert rec['source'] == f'{sub}00000{1 if i < 2 else 2}.png'
    assert (r.decode(0)[..., 3] == 255).all()  # a rectangle fills its tight box
    stats = r.manifest['size_stats']['categories']
    assert stats['red']['count'] == 3  # crowd excluded; the missing image's one counts
    assert stats['blue']['count'] == 2
    assert r.manifest['build']['source'] == 'annotations'
    assert r.manifest['build']['args']['min_area'] == 64


def test_rerun_subset_and_max_per_class_are_deterministic(tmp_path):
    ann_file, prefix = make_dataset(tmp_path)
    out = tmp_path / 'bank'
    kw = dict(categories=['red', 'blue'], max_per_class=1, seed=3, progress=False,
              image_format='png')
    with pytest.warns(UserWarning):
        first = build_bank_from_annotations(ann_file, prefix, out, **kw)
    rows1 = [BankReader(out).record(i) for i in range(first['num_instances'])]
    with pytest.warns(UserWarning):
        second = build_bank_from_annotations(ann_file, prefix, out, **kw)
    rows2 = [BankReader(out).record(i) for i in range(second['num_instances'])]
    np.testing.assert_equal(rows1, rows2)
    assert len(rows1) <= 2
    assert {r['category_name'] for r in rows1} <= {'red', 'blue'}
    assert [c['name'] for c in BankReader(out).categories] == ['red', 'blue']
    assert first['skipped']['max_per_class'] == 2  # 3 red candidates, 1 kept


def test_errors(tmp_path):
    ann_file, prefix = make_dataset(tmp_path)
    with pytest.raises(ValueError, match=r"unknown categories \['zebra'\]"):
        build_bank_from_annotations(ann_file, prefix, tmp_path / 'b', categories=['zebra'])
    with pytest.raises(FileNotFoundError, match='image prefix folder not found'):
        build_bank_from_annotations(ann_file, tmp_path / 'nope', tmp_path / 'b')
    with pytest.raises(ValueError, match='max_per_class'):
        build_bank_from_annotations(ann_file, prefix, tmp_path / 'b', max_per_class=0)


def test_helpers():
    assert image_relpath({'file_name': 'x.jpg', 'coco_url': 'http://images.cocodataset.org/'
                          'train2017/y.jpg'}) == 'x.jpg'
    assert image_relpath({'coco_url': 'http://images.cocodataset.org/val2017/y.jpg'}) == \
        'val2017/y.jpg'
    with pytest.raises(ValueError, match='neither'):
        image_relpath({'id': 4})
    assert segmentation_to_mask([[1, 2, 3, 4]], 10, 10) is None  # degenerate polygon
    m = segmentation_to_mask(rect_poly(2, 2, 4, 4), 10, 10)
    assert m.dtype == np.uint8 and m.sum() > 0

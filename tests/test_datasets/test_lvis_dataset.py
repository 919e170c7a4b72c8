import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from xpaste.datasets import LVISV1JsonDataset  # registers everything
from xpaste.datasets.lvis import AnnotationError, check_lvis_annotations


def _load(root, split='train'):
    return json.loads((root / 'annotations' / f'lvis_v1_{split}.json').read_text())


def test_dataset_takes_class_names_from_json(tiny_toy_lvis):
    data = _load(tiny_toy_lvis)
    ds = LVISV1JsonDataset(data_root=str(tiny_toy_lvis), ann_file='annotations/lvis_v1_train.json',
                           data_prefix=dict(img=''), pipeline=[])
    names = tuple(c['name'] for c in sorted(data['categories'], key=lambda c: c['id']))
    assert ds.metainfo['classes'] == names
    assert len(ds) == len(data['images'])
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == \
        len(data['annotations'])
    info = ds.get_data_info(0)
    assert info['img_path'].startswith(str(tiny_toy_lvis))
    assert 'train2017' in info['img_path']


def test_dataset_rejects_wrong_metainfo(tiny_toy_lvis):
    with pytest.raises(ValueError, match='do not match'):
        LVISV1JsonDataset(data_root=str(tiny_toy_lvis),
                          ann_file='annotations/lvis_v1_train.json',
                          metainfo=dict(classes=('a', 'b')), pipeline=[])


def test_missing_files_are_named(tiny_toy_lvis, tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.json'):
        LVISV1JsonDataset(data_root=str(tiny_toy_lvis), ann_file='annotations/nope.json',
                          pipeline=[])
    with pytest.raises(FileNotFoundError, match='no_such_dir'):
        LVISV1JsonDataset(data_root=str(tiny_toy_lvis), ann_file='annotations/lvis_v1_train.json',
                          data_prefix=dict(img='no_such_dir'), pipeline=[])


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d['annotations'][0].pop('bbox'), r"annotations\[0\].*missing.*bbox"),
    (lambda d: d['images'][0].pop('height'), r"images\[0\].*missing.*height"),
    (lambda d: d['annotations'][0].update(category_id=999), 'category_id=999'),
    (lambda d: d['annotations'][0].update(image_id=-7), 'image_id=-7'),
    (lambda d: d.pop('categories'), "'categories'"),
])
def test_bad_annotation_files(tiny_toy_lvis, tmp_path, mutate, message):
    data = _load(tiny_toy_lvis)
    mutate(data)
    with pytest.raises(AnnotationError, match=message) as err:
        check_lvis_annotations(data, 'bad.json')
    assert 'bad.json' in str(err.value)


def test_eval_fields_are_checked_on_request(tiny_toy_lvis):
    data = _load(tiny_toy_lvis, 'val')
    check_lvis_annotations(data, 'val.json', for_evaluation=True)
    data['categories'][0].pop('frequency')
    with pytest.raises(AnnotationError, match='frequency'):
        check_lvis_annotations(data, 'val.json', for_evaluation=True)


def _predictions(data, cat_ids, mode):
    """Ground truth of each image as predictions ('gt'), the same boxes with the wrong classes
    ('wrong'), or the right classes at places where nothing is ('nothing')."""
    by_img = {}
    for ann in data['annotations']:
        by_img.setdefault(ann['image_id'], []).append(ann)
    samples = []
    for img in data['images']:
        anns = by_img.get(img['id'], [])
        h, w = img['height'], img['width']
        boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                           a['bbox'][1] + a['bbox'][3]] for a in anns], np.float32).reshape(-1, 4)
        if mode == 'nothing':
            anns = [dict(a, segmentation=[[0, 0, 3, 0, 3, 3, 0, 3]]) for a in anns]
            boxes[:] = [0, 0, 3, 3]
        labels = np.array([cat_ids.index(a['category_id']) for a in anns], np.int64)
        if mode == 'wrong':
            labels = (labels + 1) % len(cat_ids)
        masks = np.stack([mask_util.decode(mask_util.merge(
            mask_util.frPyObjects(a['segmentation'], h, w))) for a in anns]).astype(bool) \
            if anns else np.zeros((0, h, w), bool)
        pred = dict(bboxes=torch.from_numpy(boxes), scores=torch.ones(len(anns)),
                    labels=torch.from_numpy(labels), masks=torch.from_numpy(masks))
        samples.append(dict(img_id=img['id'], ori_shape=(h, w), pred_instances=pred))
    return samples


@pytest.mark.parametrize('mode, expected', [('gt', 1.0), ('wrong', 0.0), ('nothing', 0.0)])
def test_lvis_metric_on_known_predictions(tiny_toy_lvis, tmp_path, mode, expected):
    from mmdet.evaluation import LVISMetric
    ann_file = str(tiny_toy_lvis / 'annotations' / 'lvis_v1_val.json')
    data = _load(tiny_toy_lvis, 'val')
    cat_ids = sorted(c['id'] for c in data['categories'])
    metric = LVISMetric(ann_file=ann_file, metric=['bbox', 'segm'],
                        outfile_prefix=str(tmp_path / 'res'))
    metric.dataset_meta = dict(classes=tuple(c['name'] for c in sorted(
        data['categories'], key=lambda c: c['id'])))
    metric.process({}, _predictions(data, cat_ids, mode))
    results = metric.evaluate(len(data['images']))
    for key in ('lvis/bbox_AP', 'lvis/segm_AP'):
        assert results[key] == pytest.approx(expected, abs=1e-3), (key, results)
    if mode == 'gt':
        for key in ('lvis/bbox_APf', 'lvis/segm_APc'):
            assert results[key] in (pytest.approx(1.0, abs=1e-3), -1.0)

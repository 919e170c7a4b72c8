"""XPaste inside mmdet datasets and dataloader workers, and the tools that run it."""
import copy
import json
import os.path as osp
from functools import partial

import cv2
import numpy as np
import pytest
import torch
from paste_helpers import check_invariants


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


def class_balanced_lvis(ann_file, classes, pipeline):
    """An LVISV1Dataset config on ``ann_file`` (images beside it) in a ClassBalancedDataset."""
    return dict(
        type='ClassBalancedDataset',
        oversample_thr=1e-3,
        dataset=dict(
            type='LVISV1Dataset',
            data_root=osp.dirname(ann_file),
            ann_file=osp.basename(ann_file),
            data_prefix=dict(img=''),
            metainfo=dict(classes=classes),
            pipeline=pipeline))


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
    cfg = class_balanced_lvis(ann_file, classes, pipeline)

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
        train_dataloader=dict(dataset=class_balanced_lvis(ann_file, classes, pipeline)),
        visualizer=dict(type='DetLocalVisualizer'))
    cfg_file = tmp_path / 'browse_cfg.py'
    cfg_file.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()))
    files = browse.main([str(cfg_file), '--output-dir', str(tmp_path / 'vis'), '--num', '2'])
    assert len(files) == 2
    for f in files:
        img = cv2.imread(f)
        assert img is not None and img.shape == (64, 80, 3)

"""Write augmented training samples with their boxes, masks and labels drawn, pasted ones marked.

Builds the train dataset of an mmdet config (``train_dataloader.dataset``, through dataset
wrappers such as ``ClassBalancedDataset``), runs its pipeline without ``PackDetInputs`` and draws
each sample with mmdet's ``DetLocalVisualizer``. Instances added by ``XPaste`` get a ``*`` after
their class name and a white dashed box.

Example::

    python tools/analysis/browse_pasted.py configs/xpaste/CONFIG.py --output-dir vis --num 20
"""
import argparse
import os
import os.path as osp

import mmcv
import numpy as np
import torch
from mmengine.config import ConfigDict, DictAction
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from tqdm import tqdm

from xpaste.utils.config import load_config

PACK_TYPES = ('PackDetInputs', 'mmdet.PackDetInputs')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw training samples after XPaste')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--output-dir', required=True, help='folder for the drawn images')
    parser.add_argument('--num', type=int, default=20, help='number of samples to write')
    parser.add_argument(
        '--shuffle',
        action='store_true',
        help='draw random dataset indices instead of the first ones')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the augmentations (and of --shuffle)')
    parser.add_argument(
        '--flag-key',
        default='gt_pasted_flags',
        help='results key of the pasted-instance flags (XPaste paste_flag_key)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value')
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f'--num must be >= 1, got {args.num}')
    return args


def strip_packing(dataset_cfg) -> int:
    """Remove ``PackDetInputs`` from every pipeline inside a (wrapped) dataset config in place.

    Args:
        dataset_cfg (dict): ``train_dataloader.dataset``; wrappers are followed through their
            ``dataset``/``datasets`` fields.

    Returns:
        int: Number of pipelines changed.
    """
    changed = 0
    if isinstance(dataset_cfg, (list, tuple)):
        return sum(strip_packing(d) for d in dataset_cfg)
    if not isinstance(dataset_cfg, dict):
        return 0
    if isinstance(dataset_cfg.get('pipeline'), (list, tuple)):
        pipeline = [
            t for t in dataset_cfg['pipeline']
            if not (isinstance(t, dict) and t.get('type') in PACK_TYPES)
        ]
        changed += len(pipeline) != len(dataset_cfg['pipeline'])
        dataset_cfg['pipeline'] = pipeline
    for key in ('dataset', 'datasets'):
        if key in dataset_cfg:
            changed += strip_packing(dataset_cfg[key])
    return changed


def to_data_sample(results: dict, classes, flag_key: str):
    """A ``DetDataSample`` holding the instances of an unpacked results dict."""
    from mmdet.structures import DetDataSample
    boxes = results.get('gt_bboxes')
    boxes = boxes.numpy() if hasattr(boxes, 'numpy') else np.asarray(boxes)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(results.get('gt_bboxes_labels', np.zeros(len(boxes))), np.int64)
    pasted = np.asarray(results.get(flag_key, np.zeros(len(boxes), bool)), bool)
    names = [
        (classes[int(lb)] if classes is not None and 0 <= lb < len(classes) else f'class {int(lb)}')
        + ('*' if p else '') for lb, p in zip(labels, pasted)
    ]
    inst = InstanceData()
    inst.bboxes = torch.from_numpy(boxes)
    inst.labels = torch.from_numpy(labels)
    inst.label_names = names
    masks = results.get('gt_masks')
    if masks is not None and len(masks) == len(boxes):
        inst.masks = masks.to_ndarray().astype(bool)
    sample = DetDataSample()
    sample.gt_instances = inst
    return sample, pasted


def browse(cfg,
           output_dir: str,
           num: int,
           shuffle: bool = False,
           seed: int = 0,
           flag_key: str = 'gt_pasted_flags') -> list:
    """Draw ``num`` augmented samples of ``cfg``'s train dataset into ``output_dir``.

    Returns:
        list[str]: The written files.
    """
    from mmdet.registry import DATASETS, VISUALIZERS

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    import xpaste.datasets  # noqa: F401  (registers XPaste and InstanceBank)
    dataset_cfg = ConfigDict(cfg.train_dataloader.dataset).to_dict()
    strip_packing(dataset_cfg)
    dataset = DATASETS.build(dataset_cfg)
    vis_cfg = cfg.get('visualizer') or dict(type='DetLocalVisualizer')
    vis_cfg = dict(vis_cfg, name='browse_pasted', vis_backends=None, save_dir=None)
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    classes = dataset.metainfo.get('classes')

    rng = np.random.default_rng(seed)
    n = min(num, len(dataset))
    indices = rng.choice(len(dataset), n, replace=False) if shuffle else np.arange(n)
    np.random.seed(seed)
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for i, idx in enumerate(tqdm(indices, desc='browse')):
        results = dataset[int(idx)]
        if 'inputs' in results:
            raise RuntimeError('the pipeline still packs its output; remove PackDetInputs')
        img = np.ascontiguousarray(results['img'])
        img = mmcv.bgr2rgb(np.clip(img, 0, 255).astype(np.uint8))
        sample, pasted = to_data_sample(results, classes, flag_key)
        name = osp.splitext(osp.basename(results.get('img_path', f'{int(idx)}')))[0]
        visualizer.add_datasample(name, img, sample, draw_pred=False, show=False)
        drawn = visualizer.get_image()
        if pasted.any():
            visualizer.set_image(drawn)
            visualizer.draw_bboxes(
                sample.gt_instances.bboxes[torch.from_numpy(pasted)],
                edge_colors='white',
                line_styles='--',
                line_widths=2)
            drawn = visualizer.get_image()
        out_file = osp.join(output_dir, f'{i:05d}_{name}.jpg')
        mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        written.append(out_file)
    return written


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    files = browse(cfg, args.output_dir, args.num, args.shuffle, args.seed, args.flag_key)
    print(f'wrote {len(files)} images to {args.output_dir}')
    return files


if __name__ == '__main__':
    main()

"""Every detection config loads, and its model and pipelines build (no data needed); no config
edits a pipeline by position."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

import xpaste.datasets  # noqa: F401  (registers the project's modules)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DETECTION_CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and osp.sep + 'bank' + osp.sep not in p)


ALL_CONFIG_FILES = sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
# A step addressed by its position (`train_pipeline[-2] = ...`, `pipeline.insert(-1, ...)`,
# `steps.pop(3)`) silently lands elsewhere when a base pipeline changes; configs name their steps
# (`pre_paste`, `paste_steps`, `post_paste`: configs/_base_/datasets/toy-lvis_instance.py).
POSITIONAL_EDIT = re.compile(
    r'(?:pipeline|steps|paste)\w*\s*'  # a pipeline, or a named part of one
    r'(?:\[[\s\d:+-]*\d[\s\d:+-]*\]|\.(?:insert|pop)\s*\()')  # [2], [-2], [:-1]; .insert( .pop(


def _pipelines(cfg):
    def find(node):
        if isinstance(node, dict):
            if 'pipeline' in node:
                yield node['pipeline']
            for value in node.values():
                yield from find(value)
        elif isinstance(node, list):
            for value in node:
                yield from find(value)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        yield from find(cfg.get(key, {}))


def test_there_are_configs():
    assert len(DETECTION_CONFIGS) >= 1


@pytest.mark.parametrize('path', DETECTION_CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds(path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    pipelines = list(_pipelines(cfg))
    assert pipelines, f'{path} declares no pipeline'
    for pipeline in pipelines:
        assert len(Compose(pipeline).transforms) == len(pipeline)


# one config per way of building the training pipeline (formatting a config takes seconds)
DUMPED_CONFIGS = [
    'configs/toy/mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py',
    'configs/xpaste/toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-copypaste-1k_toy-lvis.py',
    'configs/xpaste/lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-2x_lvis-v1.py',
    'configs/xpaste/lvis/cascade-mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-both-2x_lvis-v1.py',
    'configs/xpaste/ablations/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-freq-2x_lvis-v1.py',
]


@pytest.mark.parametrize('path', DUMPED_CONFIGS)
def test_config_dumps_and_reloads(path, tmp_path):
    """What mmdet's print_config.py prints and what a work_dir keeps (``cfg.dump``) is the same
    config."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert 'PackDetInputs' in cfg.pretty_text
    dumped = tmp_path / osp.basename(path)
    cfg.dump(str(dumped))
    assert Config.fromfile(str(dumped)).to_dict() == cfg.to_dict()


# The families on configs/xpaste/_base_/lvis-v1_8xb2-sample1e-3-ms-2x.py (24 epochs).
LVIS_2X_CONFIGS = [p for p in DETECTION_CONFIGS if osp.relpath(p, ROOT).startswith(
    (osp.join('configs', 'xpaste', 'lvis', ''), osp.join('configs', 'xpaste', 'ablations', '')))]


def test_there_are_lvis_2x_configs():
    assert len(LVIS_2X_CONFIGS) >= 20


@pytest.mark.parametrize('path', LVIS_2X_CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_lvis_configs_evaluate_once_at_the_end(path):
    """A full LVIS evaluation takes long: once, after the last epoch (mmengine's
    EpochBasedTrainLoop also evaluates at the last epoch whatever val_interval is)."""
    cfg = Config.fromfile(path)
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == 24
    assert cfg.train_cfg.val_interval == cfg.val_interval == cfg.train_cfg.max_epochs


def positional_edits(text: str) -> list:
    """``(line number, line)`` of every line of a config's source that addresses a list item by
    position (comments ignored)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split('#', 1)[0]
        if POSITIONAL_EDIT.search(code):
            found.append((number, line.strip()))
    return found


@pytest.mark.parametrize('line', [
    'train_pipeline[-2] = xpaste',
    'train_pipeline.insert(-1, xpaste)',
    'steps = _base_.train_pipeline[:-1]',
    'pipeline[3].prob = 0.5',
    'train_pipeline.pop(-2)',
    'x = _base_.train_pipeline[-1]',
])
def test_positional_edit_is_recognised(line):
    assert positional_edits(line) == [(1, line)]


@pytest.mark.parametrize('line', [
    'paste_steps = [xpaste]  # not train_pipeline[-2] = xpaste',
    'train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]',
    "scales=[(1333, 640), (1333, 800)]",
    "paste_steps = [xpaste, xpaste_retrieved]",
    "bbox_head=[dict(head, num_classes=num_classes) for head in _base_.model.roi_head.bbox_head]",
])
def test_named_edit_is_not_flagged(line):
    assert positional_edits(line) == []


def test_no_config_edits_a_list_by_position():
    offenders = []
    for path in ALL_CONFIG_FILES:
        with open(path, encoding='utf-8') as f:
            offenders += [f'{osp.relpath(path, ROOT)}:{n}: {line}'
                          for n, line in positional_edits(f.read())]
    assert not offenders, ('configs addressing list items by position (name the step instead: '
                           'set paste_steps and rebuild the pipeline from pre_paste/post_paste):\n'
                           + '\n'.join(offenders))

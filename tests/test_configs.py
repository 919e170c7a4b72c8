"""Every detection config loads, and its model and pipelines build (no data needed)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

import xpaste.datasets  # noqa: F401  (registers the project's modules)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DETECTION_CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and osp.sep + 'bank' + osp.sep not in p)


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

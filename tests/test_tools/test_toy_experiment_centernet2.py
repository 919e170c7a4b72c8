"""tools/experiments/toy_experiment.py --detector centernet2: the CenterNet2 toy configs."""
import argparse
import json
import os.path as osp

import pytest
from mmengine.config import Config, DictAction

from tools.experiments import toy_experiment as exp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CENTERNET2 = exp.DETECTORS['centernet2']


def test_world_options_set_the_class_count_of_every_cascade_stage(tiny_toy_lvis, tmp_path):
    config = CENTERNET2['xpaste']
    opts = exp.world_options(config, str(tiny_toy_lvis), str(tmp_path / 'banks'), train=True)
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
    with open(osp.join(tiny_toy_lvis, 'annotations', 'lvis_v1_train.json')) as f:
        num_classes = len(json.load(f)['categories'])
    heads = cfg.model.roi_head.bbox_head
    assert len(heads) == 3 and all(h.num_classes == num_classes for h in heads)
    assert cfg.model.roi_head.mask_head.num_classes == num_classes
    paste = [s for s in cfg.train_dataloader.dataset.dataset.pipeline if s.type == 'XPaste']
    assert len(paste) == 1 and paste[0].bank.root.startswith(str(tmp_path / 'banks'))


def test_dry_run_plans_the_centernet2_variants(tiny_toy_lvis, tmp_path, capsys):
    assert exp.main(['--detector', 'centernet2', '--dry-run', '--data-root',
                     str(tiny_toy_lvis), '--banks-root', str(tmp_path / 'banks'),
                     '--work-dir', str(tmp_path / 'work'), '--seeds', '0',
                     '--iters', '10']) is None
    out = capsys.readouterr().out
    for variant in ('baseline', 'xpaste'):
        assert f'[todo] train {variant} seed 0' in out
    assert 'centernet2_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py' in out
    assert 'copypaste' not in out.replace('xpaste-copypaste', '')


def test_default_work_dir_and_unknown_variants():
    args = exp.parse_args(['--detector', 'centernet2'])
    assert args.work_dir == osp.join('work_dirs/toy_experiment', 'centernet2')
    assert args.variants == ['baseline', 'xpaste']
    with pytest.raises(SystemExit):
        exp.parse_args(['--detector', 'centernet2', '--variants', 'baseline', 'copypaste'])

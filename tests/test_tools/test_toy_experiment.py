"""tools/experiments/toy_experiment.py: its overrides reach the right pipeline steps, and a dry
run plans every step without running one."""
import argparse
import json
import os.path as osp

import pytest
from mmengine.config import Config, DictAction

from tools.experiments import toy_experiment as exp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _merged(config, options):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *options]).cfg_options)
    return cfg


@pytest.mark.parametrize('variant', list(exp.VARIANTS))
def test_world_options_reach_every_paste_step_and_nothing_else(variant, tiny_toy_lvis,
                                                               tmp_path):
    config = exp.VARIANTS[variant]
    banks = str(tmp_path / 'banks')
    before = Config.fromfile(osp.join(ROOT, config)).train_dataloader.dataset.dataset.pipeline
    after = _merged(config, exp.world_options(config, str(tiny_toy_lvis), banks, train=True))
    pipeline = after.train_dataloader.dataset.dataset.pipeline
    assert [s.type for s in pipeline] == [s.type for s in before]
    with open(osp.join(tiny_toy_lvis, 'annotations', 'lvis_v1_train.json')) as f:
        num_classes = len(json.load(f)['categories'])
    assert after.model.roi_head.bbox_head.num_classes == num_classes
    assert after.train_dataloader.dataset.dataset.data_root == f'{tiny_toy_lvis}/'
    for old, new in zip(before, pipeline):
        if new.type == 'XPaste':
            assert new.classes == osp.join(tiny_toy_lvis, 'annotations', 'lvis_v1_train.json')
            assert new.bank.root == osp.join(banks, osp.basename(old.bank.root))
        else:
            assert new == old
    assert sum(s.type == 'XPaste' for s in pipeline) == {
        'baseline': 0, 'copypaste': 1, 'xpaste': 1, 'xpaste-copypaste': 2}[variant]


def test_dry_run_plans_every_variant_and_seed_without_running(tiny_toy_lvis, tmp_path, capsys):
    work = tmp_path / 'work'
    assert exp.main(['--dry-run', '--work-dir', str(work), '--data-root', str(tiny_toy_lvis),
                     '--banks-root', str(tmp_path / 'banks'), '--seeds', '0', '1',
                     '--iters', '10']) is None
    out = capsys.readouterr().out
    # the world exists; two banks, and a training and a test per variant and seed remain
    assert out.splitlines()[-1] == f'{2 + 4 * 2 * 2} of {1 + 2 + 4 * 2 * 2} steps to run'
    for variant in exp.VARIANTS:
        for seed in (0, 1):
            assert f'[todo] train {variant} seed {seed}' in out
            assert f'[todo] test {variant} seed {seed}' in out
    assert 'train_cfg.max_iters=10' in out and 'randomness.seed=1' in out
    assert not work.exists()  # nothing ran

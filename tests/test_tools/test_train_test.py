"""tools/train.py and tools/test.py through main(argv): train -> checkpoint -> resume -> test."""
import glob
import json
import os.path as osp

import pytest

from tests.run_options import tiny_run_options
from tools import test as test_tool
from tools import train as train_tool

CONFIG = 'configs/toy/mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py'


def tiny_options(root, num_classes, max_iters):
    """Config overrides that make the toy config run a few iterations on the tiny world."""
    return tiny_run_options(root, num_classes, max_iters)


def _num_classes(root):
    with open(osp.join(root, 'annotations', 'lvis_v1_train.json')) as f:
        return len(json.load(f)['categories'])


@pytest.mark.slow
def test_train_resume_test(tiny_toy_lvis, tmp_path):
    root = str(tiny_toy_lvis)
    ncls = _num_classes(root)
    work_dir = str(tmp_path / 'work')
    runner = train_tool.main([CONFIG, '--work-dir', work_dir, '--cfg-options',
                              *tiny_options(root, ncls, 4)])
    assert runner.iter == 4
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))

    # resume from the latest checkpoint and go on to iteration 6
    runner = train_tool.main([CONFIG, '--work-dir', work_dir, '--resume', '--cfg-options',
                              *tiny_options(root, ncls, 6)])
    assert runner.iter == 6
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))

    test_dir = str(tmp_path / 'test')
    metrics = test_tool.main([CONFIG, osp.join(work_dir, 'iter_6.pth'), '--work-dir', test_dir,
                              '--show-dir', 'drawn', '--cfg-options', *tiny_options(root, ncls, 6)])
    for key in ('lvis/bbox_AP', 'lvis/bbox_APr', 'lvis/bbox_APc', 'lvis/bbox_APf',
                'lvis/segm_AP', 'lvis/segm_APr'):
        assert key in metrics
        assert -1.0 <= metrics[key] <= 1.0
    # --show-dir: one drawing per val image in <work_dir>/<timestamp>/drawn
    with open(osp.join(root, 'annotations', 'lvis_v1_val.json')) as f:
        val_images = {osp.basename(im['coco_url']) for im in json.load(f)['images']}
    drawn = glob.glob(osp.join(test_dir, '*', 'drawn', '*'))
    assert {osp.basename(p) for p in drawn} == val_images


def test_missing_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        train_tool.main([str(tmp_path / 'no_such_config.py')])


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        test_tool.main([CONFIG, str(tmp_path / 'missing.pth')])


def test_resume_from_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='gone.pth'):
        train_tool.main([CONFIG, '--resume', str(tmp_path / 'gone.pth')])


def _existing_checkpoint(tmp_path):
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    return str(ckpt)


def test_tta_is_refused_with_the_reason(tmp_path):
    with pytest.raises(NotImplementedError, match='--tta.*not supported for instance segmentation'):
        test_tool.main([CONFIG, _existing_checkpoint(tmp_path), '--tta'])


@pytest.mark.parametrize('argv, expected', [
    (['--show-dir', 'drawn'], dict(draw=True, test_out_dir='drawn')),
    (['--show'], dict(draw=True, show=True, wait_time=2)),
    (['--show', '--wait-time', '0.5', '--show-dir', 'drawn'],
     dict(draw=True, show=True, wait_time=0.5, test_out_dir='drawn')),
])
def test_show_options_turn_on_the_visualization_hook(tmp_path, argv, expected):
    args = test_tool.parse_args([CONFIG, _existing_checkpoint(tmp_path), *argv])
    hook = test_tool.build_test_config(args).default_hooks.visualization
    assert {key: hook.get(key) for key in expected} == expected
    if '--show' not in argv:
        assert not hook.get('show', False)


def test_without_show_options_nothing_is_drawn(tmp_path):
    args = test_tool.parse_args([CONFIG, _existing_checkpoint(tmp_path)])
    hook = test_tool.build_test_config(args).default_hooks.visualization
    assert not hook.get('draw', False) and not hook.get('show', False)


def test_show_without_visualization_hook_is_named(tmp_path):
    with pytest.raises(RuntimeError, match='default_hooks.visualization'):
        test_tool.main([CONFIG, _existing_checkpoint(tmp_path), '--show-dir', 'drawn',
                        '--cfg-options', 'default_hooks.visualization=None'])

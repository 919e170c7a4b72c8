"""The CenterNet2 configs: the official recipe's values, the rows, the model end to end."""
import copy
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from tests.run_options import tiny_run_options

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CN2 = osp.join(ROOT, 'configs', 'xpaste', 'centernet2')
R50 = osp.join(CN2, 'centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-90k_lvis-v1.py')
R50_LONG = osp.join(CN2, 'centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-ema-180k_lvis-v1.py')
SWIN = osp.join(CN2, 'centernet2_swin-l-in22k_fpn_8xb2-sample1e-3-lsj896-ema-180k_lvis-v1.py')
TOY = osp.join(ROOT, 'configs', 'toy', 'centernet2_r18-slim_fpn_1xb4-1k_toy-lvis.py')
MIM_TOOLS = osp.join(osp.dirname(__import__('mmdet').__file__), '.mim', 'tools')
SCP_TYPES = ('CopyPasteAnySize', )
# top-level variables that only feed the paste steps
HELPERS = ('copypaste', 'paste_steps', 'train_pipeline')


def _load(path):
    return Config.fromfile(path)


def _types(steps):
    return [s['type'] for s in steps]


def test_r50_recipe_has_the_official_values():
    cfg = _load(R50)
    loader = cfg.train_dataloader
    assert loader.batch_size == 8 and loader.sampler == dict(type='RepeatFactorSampler',
                                                             repeat_thr=1e-3)
    inner = loader.dataset.dataset.pipeline
    resize = next(s for s in inner if s['type'] == 'RandomResize')
    crop = next(s for s in inner if s['type'] == 'RandomCrop')
    assert resize['scale'] == (640, 640) and resize['ratio_range'] == (0.1, 2.0)
    assert crop['crop_size'] == (640, 640)
    assert _types(loader.dataset.pipeline) == ['RandomFlip', 'PackDetInputs']
    assert next(s for s in cfg.test_pipeline if s['type'] == 'Resize')['scale'] == (640, 640)
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper'
    assert opt.optimizer == dict(type='AdamW', lr=2e-4, weight_decay=1e-4)
    assert opt.clip_grad == dict(type='value', clip_value=1.0)
    assert cfg.train_cfg.max_iters == 90000
    warm, cos = cfg.param_scheduler
    assert (warm.type, warm.start_factor, warm.end) == ('LinearLR', 1e-4, 10000)
    assert (cos.type, cos.T_max, cos.eta_min, cos.begin) == ('CosineAnnealingLR', 90000, 0.0, 0)
    model = cfg.model
    assert model.backbone.init_cfg.checkpoint == 'checkpoints/resnet50_miil_21k.pth'
    assert model.neck.num_outs == 5 and model.rpn_head.strides == (8, 16, 32, 64, 128)
    assert model.train_cfg.rpn_proposal.max_per_img == 2000
    assert model.test_cfg.rpn.max_per_img == 256
    assert model.test_cfg.rcnn.max_per_img == 300 and model.test_cfg.rcnn.score_thr == 0.02
    heads = model.roi_head.bbox_head
    assert len(heads) == 3 and all(h.reg_class_agnostic for h in heads)
    assert all(h.loss_cls.type == 'FederatedLoss' and h.loss_cls.num_sample_cats == 50
               and h.loss_cls.freq_weight_power == 0.5 for h in heads)
    ious = [stage.assigner.pos_iou_thr for stage in model.train_cfg.rcnn]
    assert ious == [0.6, 0.7, 0.8]
    assert model.roi_head.mask_head.class_agnostic and model.roi_head.mult_proposal_score
    assert 'custom_hooks' not in cfg or not cfg.custom_hooks


def test_long_and_swin_settings():
    long = _load(R50_LONG)
    assert long.train_cfg.max_iters == 180000 and long.optim_wrapper.optimizer.lr == 1e-4
    assert long.param_scheduler[1].T_max == 180000
    ema = long.custom_hooks[0]
    assert ema.type == 'EMAHook' and ema.momentum == pytest.approx(0.001)
    swin = _load(SWIN)
    assert swin.model.backbone.type == 'SwinTransformer'
    assert swin.model.backbone.init_cfg.checkpoint.endswith(
        'swin_large_patch4_window12_384_22k.pth')
    assert swin.model.neck.in_channels == [384, 768, 1536]
    assert swin.train_dataloader.batch_size == 2 and swin.auto_scale_lr.base_batch_size == 16
    inner = swin.train_dataloader.dataset.dataset.pipeline
    assert next(s for s in inner if s['type'] == 'RandomCrop')['crop_size'] == (896, 896)
    assert swin.train_cfg.max_iters == 180000 and swin.custom_hooks[0].type == 'EMAHook'


def _strip_scp(cfg):
    out = {k: copy.deepcopy(v) for k, v in cfg.to_dict().items() if k not in HELPERS}
    pipe = out['train_dataloader']['dataset']['pipeline']
    pipe[:] = [s for s in pipe if s['type'] not in SCP_TYPES]
    return out


def _innermost(dataset):
    """The dataset a chain of dataset wrappers ends with."""
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset


def _unwrap_mix(cfg):
    """A row that wraps its baseline's training set in a MultiImageMixDataset for the copy-paste
    (the LVIS Mask R-CNN / Cascade rows), as its baseline would read: the mix wrapper removed, its
    pipeline appended to the innermost dataset's, ``load_pipeline`` put back in front of
    ``pre_paste`` and the copy-paste module dropped from ``custom_imports``."""
    out = copy.deepcopy(cfg)
    mix = out['train_dataloader']['dataset']
    assert mix['type'] == 'MultiImageMixDataset'
    assert set(mix) == {'type', 'dataset', 'pipeline'}, f'mix wrapper with more keys: {set(mix)}'
    innermost = _innermost(mix['dataset'])
    innermost['pipeline'] = innermost['pipeline'] + mix['pipeline']
    out['train_dataloader']['dataset'] = mix['dataset']
    out['pre_paste'] = out.pop('load_pipeline') + out['pre_paste']
    imports = out['custom_imports']['imports']
    imports[:] = [m for m in imports if m != 'xpaste.datasets.copy_paste']
    return out


def _strip_scp_lvis(cfg):
    out = {k: copy.deepcopy(v) for k, v in cfg.to_dict().items() if k not in HELPERS}
    if out['train_dataloader']['dataset']['type'] == 'MultiImageMixDataset':
        out = _unwrap_mix(out)
    innermost = _innermost(out['train_dataloader']['dataset'])
    innermost['pipeline'] = [s for s in innermost['pipeline'] if s['type'] not in SCP_TYPES]
    return out


def _diff(a, b, path=''):
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in set(a) | set(b)
                for d in (_diff(a.get(k), b.get(k), f'{path}.{k}') if k in a and k in b
                          else [f'{path}.{k}: only in one'])]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f'{path}[{i}]')]
    return [] if a == b else [f'{path}: {a!r} != {b!r}']


SCP_ROWS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', 'xpaste', '*', '*-scp-*.py'))
                  if '-xpaste' not in osp.basename(p))


# the Mask R-CNN / Cascade LVIS rows: their baselines have no MultiImageMixDataset
LVIS_SCP_ROWS = [p for p in SCP_ROWS if osp.basename(osp.dirname(p)) == 'lvis']


def _strip_for(path):
    return _strip_scp_lvis if path in LVIS_SCP_ROWS else _strip_scp


@pytest.mark.parametrize('path', SCP_ROWS, ids=osp.basename)
def test_copy_paste_rows_differ_from_their_baseline_only_by_the_copy_paste_step(path):
    baseline = path.replace('-scp-', '-')
    row, base = _load(path), _load(baseline)
    assert _types(row.train_dataloader.dataset.pipeline) == [
        'RandomFlip', 'CopyPasteAnySize', 'PackDetInputs']
    strip = _strip_for(path)
    assert _diff(strip(row), strip(base)) == []


def test_copy_paste_check_can_fail():
    row = _load(SCP_ROWS[0])
    row.train_dataloader.dataset.dataset.pipeline[2]['ratio_range'] = (0.5, 1.5)
    assert _diff(_strip_scp(row), _strip_scp(_load(SCP_ROWS[0].replace('-scp-', '-'))))


def test_lvis_copy_paste_check_can_fail():
    path = LVIS_SCP_ROWS[0]
    base = _strip_scp_lvis(_load(path.replace('-scp-', '-')))
    row = _load(path)
    resize = next(s for s in row.load_pipeline if s['type'] == 'RandomChoiceResize')
    resize['scales'] = [(1333, 800)]
    assert _diff(_strip_scp_lvis(row), base)
    row = _load(path)  # repeat-factor sampling dropped
    row.train_dataloader.dataset.dataset = row.train_dataloader.dataset.dataset.dataset
    assert _diff(_strip_scp_lvis(row), base)


@pytest.mark.parametrize('path', LVIS_SCP_ROWS, ids=osp.basename)
def test_lvis_copy_paste_rows_keep_repeat_factor_sampling(path):
    mix = _load(path).train_dataloader.dataset
    assert mix.type == 'MultiImageMixDataset'
    assert mix.dataset.type == 'ClassBalancedDataset' and mix.dataset.oversample_thr == 1e-3
    assert _types(mix.dataset.dataset.pipeline) == [
        'LoadImageFromFile', 'LoadAnnotations', 'RandomChoiceResize']


def test_lvis_has_copy_paste_rows():
    names = {osp.basename(p) for p in glob.glob(osp.join(ROOT, 'configs', 'xpaste', 'lvis',
                                                         '*.py'))}
    for det in ('mask-rcnn', 'cascade-mask-rcnn'):
        for row in ('scp-', 'scp-xpaste-'):
            assert f'{det}_r50_fpn_8xb2-sample1e-3-ms-{row}2x_lvis-v1.py' in names


def test_there_are_all_rows():
    names = {osp.basename(p) for p in glob.glob(osp.join(CN2, '*.py'))}
    for prefix in ('centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-',
                   'centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-ema-',
                   'centernet2_swin-l-in22k_fpn_8xb2-sample1e-3-lsj896-ema-'):
        sched = '90k' if prefix.endswith('lsj640-') else '180k'
        for row in ('', 'xpaste-', 'xpaste-retrieved-', 'scp-', 'scp-xpaste-'):
            assert f'{prefix}{row}{sched}_lvis-v1.py' in names


def _toy_model_cfg(**backbone):
    cfg = _load(TOY)
    cfg.model.backbone.update(backbone)
    return cfg.model


def test_missing_pretrained_weights_stop_with_where_to_put_them(tmp_path):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model_cfg = _toy_model_cfg(init_cfg=dict(type='Pretrained',
                                             checkpoint=str(tmp_path / 'r50_21k.pth')))
    model_cfg.pretrained_hint = 'Download it from HERE.'
    model = MODELS.build(model_cfg)
    with pytest.raises(FileNotFoundError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'model.backbone.init_cfg.checkpoint' in msg and 'r50_21k.pth' in msg
    assert 'Download it from HERE.' in msg


def _random_batch(num_classes, size=320):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    return demo_mm_inputs(2, [[3, size, size]] * 2, num_items=[4, 2], num_classes=num_classes,
                          with_mask=True)


@pytest.mark.slow
def test_lvis_r50_config_runs_loss_and_predict(tmp_path):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = _load(R50)
    freq = tmp_path / 'cat_info.json'
    freq.write_text(json.dumps([dict(id=i + 1, name=str(i), image_count=i % 50 + 1)
                                for i in range(1203)]))
    cfg.model.backbone.init_cfg = None  # no checkpoint here
    for head in cfg.model.roi_head.bbox_head:
        head.loss_cls.class_freq_file = str(freq)
    model = MODELS.build(cfg.model)
    model.init_weights()
    packed = _random_batch(1203)
    data = model.data_preprocessor(packed, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and {'rpn_loss_hm_pos', 's2.loss_cls', 'loss_mask'} <= set(
        losses)
    total.backward()
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        results = model.predict(data['inputs'], data['data_samples'])
    for res in results:
        inst = res.pred_instances
        assert len(inst) <= 300 and inst.masks.shape[1:] == (320, 320)
        assert ((inst.scores >= 0.02) & (inst.scores <= 1)).all()
        assert ((inst.labels >= 0) & (inst.labels < 1203)).all()


def _tiny_options(root, num_classes, max_iters):
    heads = [f'model.roi_head.bbox_head.{i}' for i in range(3)]
    return tiny_run_options(root, num_classes, max_iters, bbox_heads=heads)


@pytest.mark.slow
def test_toy_config_trains_resumes_and_tests(tiny_toy_lvis, tmp_path):
    sys.path.insert(0, ROOT)
    from tools import test as test_tool
    from tools import train as train_tool
    root = str(tiny_toy_lvis)
    with open(osp.join(root, 'annotations', 'lvis_v1_train.json')) as f:
        ncls = len(json.load(f)['categories'])
    work = str(tmp_path / 'work')
    runner = train_tool.main([TOY, '--work-dir', work, '--cfg-options',
                              *_tiny_options(root, ncls, 2)])
    assert runner.iter == 2 and osp.isfile(osp.join(work, 'iter_2.pth'))
    runner = train_tool.main([TOY, '--work-dir', work, '--resume', '--cfg-options',
                              *_tiny_options(root, ncls, 4)])
    assert runner.iter == 4 and osp.isfile(osp.join(work, 'iter_4.pth'))
    metrics = test_tool.main([TOY, osp.join(work, 'iter_4.pth'), '--work-dir',
                              str(tmp_path / 'test'), '--cfg-options',
                              *_tiny_options(root, ncls, 4)])
    for key in ('lvis/bbox_AP', 'lvis/bbox_APr', 'lvis/segm_AP', 'lvis/segm_APf'):
        assert -1.0 <= metrics[key] <= 1.0


def _run_mim_tool(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, osp.join(MIM_TOOLS, script), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not osp.isdir(MIM_TOOLS), reason="mmdet's tools are not installed")
def test_mmdet_print_config_accepts_the_configs():
    proc = _run_mim_tool('misc/print_config.py', osp.relpath(SWIN, ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'CenterNet2RoIHead' in proc.stdout and 'SwinTransformer' in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not osp.isdir(MIM_TOOLS), reason="mmdet's tools are not installed")
def test_mmdet_browse_dataset_runs_the_copy_paste_pipeline(tiny_toy_lvis, tmp_path):
    # the LVIS scp row's training data (MultiImageMixDataset + CopyPasteAnySize), pointed at
    # the tiny toy world
    root = str(tiny_toy_lvis)
    out = tmp_path / 'browse'
    proc = _run_mim_tool(
        'analysis_tools/browse_dataset.py', osp.relpath(SCP_ROWS[0], ROOT), '--not-show',
        '--output-dir', str(out), '--cfg-options',
        'train_dataloader.dataset.dataset.type=LVISV1JsonDataset',
        f'train_dataloader.dataset.dataset.data_root={root}/')
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(osp.join(root, 'annotations', 'lvis_v1_train.json')) as f:
        num_images = len(json.load(f)['images'])
    assert 0 < len(list(out.iterdir())) <= num_images

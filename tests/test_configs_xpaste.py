"""Every paste config differs from its baseline only by its paste step(s) and the bank they name.

A paste config (one whose training pipeline holds an ``XPaste`` step) in ``configs/xpaste/`` or
``configs/toy/`` declares its baseline by name: removing the paste tag (``-xpaste``,
``-copypaste``, and the ablation tags after them) from the augmentation part of the name gives
the baseline's file name, e.g. ``..._8xb2-sample1e-3-ms-xpaste-n5-2x_lvis-v1.py`` ->
``..._8xb2-sample1e-3-ms-2x_lvis-v1.py``. The two configs, as dicts, must be equal once the
paste steps are removed from the training pipelines and the top-level variables that only feed
them (``bank*``, ``xpaste*``, ``copypaste*``, ``paste*``, ``num_pastes``) are dropped. The
baseline itself must hold no paste step, and the paste steps must sit after ``RandomFlip``,
right before ``PackDetInputs``.
"""
import copy
import functools
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIRS = ('configs/xpaste', 'configs/toy')
PASTE_TYPES = ('XPaste', 'mmdet.XPaste')
# Top-level variables of a paste config that only feed its paste step(s).
HELPER_VAR = re.compile(r'^(bank|xpaste|copypaste|paste|num_pastes)')
# `-xpaste[-tag...]` or `-copypaste[-tag...]` just before the schedule (`-2x_`, `-1k_`, `-12e_`).
PASTE_TAG = re.compile(r'-(?:xpaste|copypaste)(?:-[0-9a-z]+)*?(?=-\d+[xke]_)')


def _all_configs() -> list:
    paths = []
    for folder in CONFIG_DIRS:
        paths += glob.glob(osp.join(ROOT, folder, '**', '*.py'), recursive=True)
    return sorted(p for p in paths if '_base_' not in osp.relpath(p, ROOT).split(osp.sep))


ALL_CONFIGS = _all_configs()


@functools.lru_cache(maxsize=None)
def _load(path: str) -> dict:
    return Config.fromfile(path).to_dict()


def baseline_name(name: str):
    """File name of the baseline of the paste config ``name``, or None if it has no paste tag."""
    base, n = PASTE_TAG.subn('', name, count=1)
    return base if n else None


def _is_paste(step) -> bool:
    return isinstance(step, dict) and step.get('type') in PASTE_TYPES


def _pipelines(node, path=''):
    """``(path, list)`` of every ``pipeline`` list under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f'{path}.{key}' if path else key
            if key == 'pipeline' and isinstance(value, list):
                yield sub, value
            yield from _pipelines(value, sub)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _pipelines(value, f'{path}[{i}]')


def train_pipelines(cfg: dict) -> list:
    """The training pipelines of a config dict: ``(path, steps)`` pairs."""
    return list(_pipelines(cfg.get('train_dataloader', {}), 'train_dataloader'))


def has_paste_step(cfg: dict) -> bool:
    return any(_is_paste(s) for _, steps in train_pipelines(cfg) for s in steps)


def _drop_redundant_scope(node, scope):
    """Remove ``_scope_`` entries equal to the scope already in effect (mmengine marks the dicts
    of an ``mmdet::`` base file with ``_scope_='mmdet'``, so a pipeline taken from
    ``_base_.train_pipeline`` carries marks that the same steps nested in a scoped dataset
    lack; they build identically)."""
    if isinstance(node, dict):
        if node.get('_scope_') == scope:
            del node['_scope_']
        inner = node.get('_scope_', scope)
        for value in node.values():
            _drop_redundant_scope(value, inner)
    elif isinstance(node, list):
        for value in node:
            _drop_redundant_scope(value, scope)


def strip_paste(cfg: dict) -> dict:
    """A copy of ``cfg`` without paste steps (in every pipeline and ``train_pipeline``), without
    the top-level helper variables of the paste step and without redundant ``_scope_`` marks."""
    out = {k: copy.deepcopy(v) for k, v in cfg.items() if not HELPER_VAR.match(k)}
    _drop_redundant_scope(out, out.get('default_scope'))
    for _, steps in _pipelines(out):
        steps[:] = [s for s in steps if not _is_paste(s)]
    if isinstance(out.get('train_pipeline'), list):
        out['train_pipeline'] = [s for s in out['train_pipeline'] if not _is_paste(s)]
    return out


def config_diff(a, b, path: str = '') -> list:
    """Paths (``'train_cfg.max_iters'``, ``'model.roi_head.bbox_head[1]'``) where ``a`` and
    ``b`` differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f'{path}.{key}' if path else str(key)
            if key not in a or key not in b:
                where = 'variant' if key in a else 'baseline'
                diffs.append(f'{sub}: only in the {where}')
            else:
                diffs += config_diff(a[key], b[key], sub)
        return diffs
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        diffs = []
        for i, (x, y) in enumerate(zip(a, b)):
            diffs += config_diff(x, y, f'{path}[{i}]')
        return diffs
    return [] if a == b else [f'{path}: {a!r} (variant) != {b!r} (baseline)']


def placement_problems(cfg: dict) -> list:
    """Training pipelines whose paste steps are not one run after ``RandomFlip``, right before
    ``PackDetInputs``."""
    problems = []
    for path, steps in train_pipelines(cfg):
        idx = [i for i, s in enumerate(steps) if _is_paste(s)]
        if not idx:
            continue
        types = [s.get('type') for s in steps]
        first, last = idx[0], idx[-1]
        if idx != list(range(first, last + 1)):
            problems.append(f'{path}: paste steps are not consecutive: {types}')
        if last != len(steps) - 2 or types[-1] != 'PackDetInputs':
            problems.append(f'{path}: the paste steps must come right before PackDetInputs '
                            f'(the last step): {types}')
        if 'RandomFlip' not in types[:first]:
            problems.append(f'{path}: the paste steps must come after RandomFlip: {types}')
    return problems


def compare_to_baseline(variant: dict, baseline: dict) -> list:
    """Every reason why ``variant`` is not ``baseline`` plus paste steps (empty: it is)."""
    problems = []
    if not has_paste_step(variant):
        problems.append('the variant has no paste step in its training pipeline')
    if has_paste_step(baseline):
        problems.append('the baseline has a paste step in its training pipeline')
    problems += placement_problems(variant)
    problems += config_diff(strip_paste(variant), strip_paste(baseline))
    return problems


# Chosen by name (configs load lazily, per test); test_name_and_paste_steps_agree fails for a
# config whose name and pipeline disagree.
PASTE_CONFIGS = [p for p in ALL_CONFIGS if baseline_name(osp.basename(p)) is not None]


def _find_baseline(path: str) -> str:
    name = baseline_name(osp.basename(path))
    found = [p for p in ALL_CONFIGS if osp.basename(p) == name]
    assert len(found) == 1, (f'baseline {name!r} of {osp.relpath(path, ROOT)}: expected one file '
                             f'in {CONFIG_DIRS}, found {[osp.relpath(p, ROOT) for p in found]}')
    return found[0]


def _rel(path):
    return osp.relpath(path, ROOT)


def test_there_are_paste_configs():
    # the Mask R-CNN and Cascade rows, the ablations and the toy variants
    assert len(PASTE_CONFIGS) >= 20, [_rel(p) for p in PASTE_CONFIGS]
    assert any('/toy/' in p for p in PASTE_CONFIGS)
    assert any('/ablations/' in p for p in PASTE_CONFIGS)


@pytest.mark.parametrize('path', PASTE_CONFIGS, ids=_rel)
def test_paste_config_differs_from_baseline_only_by_paste_steps(path):
    base = _find_baseline(path)
    problems = compare_to_baseline(_load(path), _load(base))
    assert not problems, (f'{_rel(path)} vs its baseline {_rel(base)}:\n  '
                          + '\n  '.join(problems))


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_rel)
def test_name_and_paste_steps_agree(path):
    """A config named as a paste variant has a paste step; one named as a baseline has none."""
    tagged = baseline_name(osp.basename(path)) is not None
    assert tagged == has_paste_step(_load(path)), (
        f'{_rel(path)}: name {"has" if tagged else "has no"} paste tag but the training pipeline '
        f'{"has no" if tagged else "has a"} paste step')


@pytest.mark.parametrize('name, expected', [
    ('mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py',
     'mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-2x_lvis-v1.py'),
    ('mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-n5-2x_lvis-v1.py',
     'mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-2x_lvis-v1.py'),
    ('cascade-mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-copypaste-2x_lvis-v1.py',
     'cascade-mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-2x_lvis-v1.py'),
    ('mask-rcnn_r18-slim_fpn_1xb4-xpaste-copypaste-1k_toy-lvis.py',
     'mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py'),
    ('mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-2x_lvis-v1.py', None),
    ('mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py', None),
])
def test_baseline_name(name, expected):
    assert baseline_name(name) == expected


# ---------------------------------------------------------------- the check can fail
TOY = osp.join(ROOT, 'configs', 'toy')
TOY_BASELINE = osp.join(TOY, 'mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py')
TOY_XPASTE = osp.join(TOY, 'mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py')


def _inner_pipeline(cfg):
    return cfg['train_dataloader']['dataset']['dataset']['pipeline']


def _set_flip_prob(cfg):
    next(s for s in _inner_pipeline(cfg) if s['type'] == 'RandomFlip')['prob'] = 0.3


def _set_iters(cfg):
    cfg['train_cfg']['max_iters'] = 2000


def _set_depth(cfg):
    cfg['model']['backbone']['depth'] = 34


def _set_oversample(cfg):
    cfg['train_dataloader']['dataset']['oversample_thr'] = 0.0


def _set_sampler(cfg):
    cfg['train_dataloader']['sampler'] = dict(type='InfiniteSampler', shuffle=True)


def _set_lr(cfg):
    cfg['optim_wrapper']['optimizer']['lr'] = 0.04


def _add_hook(cfg):
    cfg['custom_hooks'] = [dict(type='EMAHook')]


def _set_seed(cfg):
    cfg['randomness'] = dict(seed=1)


def _set_outer_train_pipeline(cfg):
    cfg['train_pipeline'] = cfg['train_pipeline'][:-1]  # drops PackDetInputs


@pytest.mark.parametrize('mutate, where', [
    (_set_flip_prob, 'RandomFlip'),
    (_set_iters, 'train_cfg.max_iters'),
    (_set_depth, 'model.backbone.depth'),
    (_set_oversample, 'train_dataloader.dataset.oversample_thr'),
    (_set_sampler, 'train_dataloader.sampler'),
    (_set_lr, 'optim_wrapper.optimizer.lr'),
    (_add_hook, 'custom_hooks'),
    (_set_seed, 'randomness'),
    (_set_outer_train_pipeline, 'train_pipeline'),
])
def test_check_catches_a_change_besides_the_paste_step(mutate, where):
    variant, baseline = copy.deepcopy(_load(TOY_XPASTE)), _load(TOY_BASELINE)
    assert compare_to_baseline(variant, baseline) == []
    mutate(variant)
    problems = compare_to_baseline(variant, baseline)
    assert problems, f'changing {where} went unnoticed'
    pipeline = _inner_pipeline(variant)
    target = where if where != 'RandomFlip' else (
        f'train_dataloader.dataset.dataset.pipeline[{[s["type"] for s in pipeline].index(where)}]')
    assert any(p.startswith(target) for p in problems), problems


def test_check_ignores_the_paste_step_and_its_bank():
    variant, baseline = copy.deepcopy(_load(TOY_XPASTE)), _load(TOY_BASELINE)
    step = next(s for s in _inner_pipeline(variant) if _is_paste(s))
    step['bank']['root'] = 'data/banks/elsewhere'
    step['num_pastes'] = (0, 3)
    variant['bank_root'] = 'data/banks/elsewhere'
    assert compare_to_baseline(variant, baseline) == []


def test_check_catches_a_paste_step_in_the_baseline():
    # the original code's baseline silently pasted
    variant, baseline = _load(TOY_XPASTE), _load(TOY_XPASTE)
    problems = compare_to_baseline(variant, baseline)
    assert 'the baseline has a paste step in its training pipeline' in problems


def test_check_catches_a_misplaced_paste_step():
    variant, baseline = copy.deepcopy(_load(TOY_XPASTE)), _load(TOY_BASELINE)
    pipeline = _inner_pipeline(variant)
    step = pipeline.pop(-2)
    pipeline.insert(1, step)  # before LoadAnnotations/Resize/RandomFlip
    problems = compare_to_baseline(variant, baseline)
    assert any('after RandomFlip' in p for p in problems), problems
    pipeline.pop(1)
    pipeline.append(step)  # after PackDetInputs
    problems = compare_to_baseline(variant, baseline)
    assert any('right before PackDetInputs' in p for p in problems), problems


def test_check_catches_a_new_top_level_variable_with_another_name():
    variant, baseline = copy.deepcopy(_load(TOY_XPASTE)), _load(TOY_BASELINE)
    variant['oversample_thr'] = 0.5  # a shared variable changed
    variant['extra_lr'] = 0.1  # a new variable not named as a paste helper
    problems = compare_to_baseline(variant, baseline)
    assert any(p.startswith('oversample_thr') for p in problems), problems
    assert any(p.startswith('extra_lr: only in the variant') for p in problems), problems

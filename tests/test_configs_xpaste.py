"""Every paste config is its baseline plus its paste step(s), and differs from its reference row
by exactly the options it names.

Two checks, both built on :func:`compare_to_baseline` / :func:`compare_to_reference`
(``tests/config_diff.py``):

1. **Baseline** (every paste config, i.e. one whose training pipeline holds an ``XPaste`` step, in
   ``configs/xpaste/`` and ``configs/toy/``): the config names its baseline: removing the paste
   tag (``-xpaste``, ``-copypaste``, and the ablation tags after them) from the augmentation part
   of the name gives the baseline's file name, e.g.
   ``..._8xb2-sample1e-3-ms-xpaste-n5-2x_lvis-v1.py`` -> ``..._8xb2-sample1e-3-ms-2x_lvis-v1.py``.
   The two configs, as dicts, must be equal once the paste steps are removed from the *training*
   pipelines and the top-level variables that only feed them (``bank*``, ``xpaste*``,
   ``copypaste*``, ``paste*``, ``num_pastes``) are dropped. The val/test pipelines are compared as
   they are and may hold no paste step (nor may anything else outside the training pipeline);
   the baseline holds no paste step at all; the paste steps sit after ``RandomFlip``, right
   before ``PackDetInputs``.
2. **Reference** (the table :data:`REFERENCES`): a config derived from another paste config (an
   ablation from its X-Paste row, the copy-paste/retrieved/both rows from the X-Paste row) or from
   a shared paste step (an X-Paste row from ``configs/xpaste/_base_/xpaste_lvis-v1.py``) must equal
   it outside the paste steps and, inside them, differ in exactly the dotted keys the table names
   (``'paste[0].blend'``): every named key differs, nothing else does. A family of configs whose
   rows are "baseline + paste step(s)" is covered by adding its rows to the table and its folder
   to :data:`COVERED_DIRS`.
"""
import copy
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import pytest

from tests.config_diff import (ALL_CONFIGS, CONFIG_DIRS, ROOT, _drop_redundant_scope, _is_paste,
                               _load, baseline_name, compare_to_baseline, compare_to_reference,
                               has_paste_step, load, paste_steps, train_pipelines)


# ------------------------------------------------------------------ the table of references
@dataclass(frozen=True)
class Reference:
    """What a paste config derives from.

    Args:
        config (str): the reference config, relative to the repository root.
        allowed (tuple): dotted keys into the paste steps (``'paste[0].num_pastes'``) that
            differ from the reference; nothing else may. Defaults to ().
        step_map (tuple, optional): for each paste step of the config, the reference step it
            derives from. Defaults to None (the same steps).
        steps_from (str, optional): a file (a shared step, or another row) whose top-level
            ``xpaste`` is the reference's one paste step, when ``config`` is a baseline without
            one. Defaults to None.
    """
    config: str
    allowed: tuple = ()
    step_map: Optional[tuple] = None
    steps_from: Optional[str] = None

    def reference_steps(self):
        return None if self.steps_from is None else [load(self.steps_from)['xpaste']]


MRCNN = 'mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-{}2x_lvis-v1.py'
CASCADE = 'cascade-' + MRCNN
TOY = 'mask-rcnn_r18-slim_fpn_1xb4-{}1k_toy-lvis.py'
LVIS_STEP = 'configs/xpaste/_base_/xpaste_lvis-v1.py'
TWO_BANKS = ('paste[0].num_pastes', 'paste[1].num_pastes', 'paste[1].bank.root')


def _lvis(name, tag=''):
    return 'configs/xpaste/lvis/' + name.format(tag)


def _ablation(tag):
    return 'configs/xpaste/ablations/' + MRCNN.format(f'xpaste-{tag}-')


def _toy_ablation(tag):
    return 'configs/xpaste/toy/' + TOY.format(f'xpaste-{tag}-')


def _lvis_rows(name) -> dict:
    xpaste = _lvis(name, 'xpaste-')
    return {
        # the baseline plus the shared X-Paste step, unchanged
        xpaste: Reference(_lvis(name), steps_from=LVIS_STEP),
        # the same step on another bank
        _lvis(name, 'copypaste-'): Reference(xpaste, ('paste[0].bank.root',)),
        _lvis(name, 'xpaste-retrieved-'): Reference(xpaste, ('paste[0].bank.root',)),
        # two copies of the step, half the pastes each, the second on the retrieved bank
        _lvis(name, 'xpaste-both-'): Reference(xpaste, TWO_BANKS, step_map=(0, 0)),
        # Copy-Paste from another image (not an X-Paste step) plus the shared step, unchanged
        _lvis(name, 'scp-xpaste-'): Reference(_lvis(name, 'scp-'), steps_from=LVIS_STEP),
    }


# config -> what it derives from and the only options of its paste steps that differ
REFERENCES = {
    **_lvis_rows(MRCNN),
    **_lvis_rows(CASCADE),
    # ablations of the Mask R-CNN X-Paste row: one option each
    **{_ablation(tag): Reference(_lvis(MRCNN, 'xpaste-'), ('paste[0].num_pastes',))
       for tag in ('n5', 'n10', 'n40')},
    **{_ablation(tag): Reference(_lvis(MRCNN, 'xpaste-'), ('paste[0].blend',))
       for tag in ('hard', 'alpha', 'poisson')},
    **{_ablation(tag): Reference(_lvis(MRCNN, 'xpaste-'), ('paste[0].bank.root',))
       for tag in ('clip0', 'clip18', 'clip24', 'sam', 'clipseg', 'ensemble')},
    _ablation('uniform'): Reference(_lvis(MRCNN, 'xpaste-'), ('paste[0].bank.sampling',)),
    _ablation('freq'): Reference(
        _lvis(MRCNN, 'xpaste-'),
        ('paste[0].bank.sampling', 'paste[0].bank.freq_power', 'paste[0].bank.class_frequency')),
    # the toy world
    'configs/toy/' + TOY.format('copypaste-'): Reference(
        'configs/toy/' + TOY.format('xpaste-'), ('paste[0].bank.root',)),
    'configs/xpaste/toy/' + TOY.format('xpaste-copypaste-'): Reference(
        'configs/toy/' + TOY.format('xpaste-'), TWO_BANKS, step_map=(0, 0)),
    # ablations of the toy X-Paste row (tools/experiments/toy_experiment.py --ablations)
    **{_toy_ablation(tag): Reference('configs/toy/' + TOY.format('xpaste-'),
                                     ('paste[0].num_pastes',))
       for tag in ('n5', 'n20', 'n40')},
    _toy_ablation('uniform'): Reference('configs/toy/' + TOY.format('xpaste-'),
                                        ('paste[0].bank.sampling',)),
    **{_toy_ablation(tag): Reference('configs/toy/' + TOY.format('xpaste-'),
                                     ('paste[0].bank.root',))
       for tag in ('nofilter', 'clip50', 'clip80', 'ensemble')},
    # CenterNet2 on the toy world: its baseline plus the toy Mask R-CNN X-Paste step, unchanged
    'configs/toy/centernet2_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py': Reference(
        'configs/toy/centernet2_r18-slim_fpn_1xb4-1k_toy-lvis.py',
        steps_from='configs/toy/' + TOY.format('xpaste-')),
    # bank quality and diversity: each a bank built with one builder option
    # (configs/bank/lvis_{routed,mixed}.py, lvis_sd15_{prompts,sam-bg,mmdet,ensemble4,real}.py)
    **{_ablation(tag): Reference(_lvis(MRCNN, 'xpaste-'), ('paste[0].bank.root',))
       for tag in ('routed', 'mixed', 'prompts', 'sambg', 'mmdet', 'ensemble4', 'real')},
    # photometric matching of pasted instances (off in the reference row)
    _ablation('photo'): Reference(_lvis(MRCNN, 'xpaste-'), ('paste[0].photometric_match',)),
}
# Folders whose every paste config must have an entry in REFERENCES (except the one row per
# family that defines its step in place: the toy X-Paste config).
COVERED_DIRS = ('configs/xpaste/lvis', 'configs/xpaste/ablations', 'configs/xpaste/toy',
                'configs/toy')
DEFINES_ITS_STEP = ('configs/toy/' + TOY.format('xpaste-'), )

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


@pytest.mark.parametrize('path', sorted(REFERENCES))
def test_paste_config_differs_from_its_reference_by_the_named_options(path):
    ref = REFERENCES[path]
    problems = compare_to_reference(load(path), load(ref.config), ref.allowed, ref.step_map,
                                    ref.reference_steps())
    assert not problems, (f'{path} vs its reference {ref.config} (may change only '
                          f'{list(ref.allowed)}):\n  ' + '\n  '.join(problems))


def test_reference_table_covers_its_folders():
    paths = [_rel(p) for p in PASTE_CONFIGS]
    covered = [p for p in paths if osp.dirname(p) in COVERED_DIRS]
    missing = [p for p in covered if p not in REFERENCES and p not in DEFINES_ITS_STEP]
    assert not missing, f'paste configs without an entry in REFERENCES: {missing}'
    unknown = [p for p in list(REFERENCES) + [r.config for r in REFERENCES.values()]
               if not osp.isfile(osp.join(ROOT, p))]
    assert not unknown, f'REFERENCES names missing configs: {unknown}'


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_rel)
def test_name_and_paste_steps_agree(path):
    """A config named as a paste variant has a paste step; one named as a baseline has none."""
    tagged = baseline_name(osp.basename(path)) is not None
    assert tagged == has_paste_step(_load(path)), (
        f'{_rel(path)}: name {"has" if tagged else "has no"} paste tag but the training pipeline '
        f'{"has no" if tagged else "has a"} paste step')


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_rel)
def test_training_pipeline_is_built_from_its_named_parts(path):
    """``train_pipeline`` and the dataloader's last-stage pipeline (the one ending with
    ``PackDetInputs``; a MultiImageMixDataset's inner loading pipeline is another) are
    ``pre_paste + paste_steps + post_paste``: a config that changes ``paste_steps`` (or a step in
    it) re-applies it."""
    cfg = copy.deepcopy(_load(path))
    _drop_redundant_scope(cfg, cfg.get('default_scope'))
    assert {'pre_paste', 'paste_steps', 'post_paste'} <= set(cfg), (
        f'{_rel(path)}: its base defines no pre_paste/paste_steps/post_paste')
    expected = [*cfg['pre_paste'], *cfg['paste_steps'], *cfg['post_paste']]
    assert cfg['train_pipeline'] == expected, f'{_rel(path)}: train_pipeline is not rebuilt'
    last_stage = [(where, steps) for where, steps in train_pipelines(cfg)
                  if steps and steps[-1].get('type') == 'PackDetInputs']
    assert len(last_stage) == 1, f'{_rel(path)}: expected one training pipeline ending with ' \
        f'PackDetInputs, found {[where for where, _ in last_stage]}'
    where, steps = last_stage[0]
    assert steps == expected, f'{_rel(path)}: {where} is not rebuilt from paste_steps'


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


# ---------------------------------------------------------------- the checks can fail
TOY_BASELINE = osp.join(ROOT, 'configs', 'toy', TOY.format(''))
TOY_XPASTE = osp.join(ROOT, 'configs', 'toy', TOY.format('xpaste-'))
TOY_COPYPASTE = osp.join(ROOT, 'configs', 'toy', TOY.format('copypaste-'))
TOY_TWO_BANKS = osp.join(ROOT, 'configs', 'xpaste', 'toy', TOY.format('xpaste-copypaste-'))


def _inner_pipeline(cfg):
    return cfg['train_dataloader']['dataset']['dataset']['pipeline']


def _val_pipeline(cfg):
    return cfg['val_dataloader']['dataset']['pipeline']


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


def _set_val_resize(cfg):
    next(s for s in _val_pipeline(cfg) if s['type'] == 'Resize')['scale'] = (512, 512)


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
    (_set_val_resize, 'val_dataloader.dataset.pipeline[1].scale'),
])
def test_check_catches_a_change_besides_the_paste_step(mutate, where):
    variant, baseline = copy.deepcopy(_load(TOY_XPASTE)), _load(TOY_BASELINE)
    assert compare_to_baseline(variant, baseline) == []
    mutate(variant)
    for problems in (compare_to_baseline(variant, baseline),
                     compare_to_reference(variant, _load(TOY_XPASTE))):
        assert problems, f'changing {where} went unnoticed'
        types = [s['type'] for s in _inner_pipeline(variant)]
        target = where if where != 'RandomFlip' else (
            f'train_dataloader.dataset.dataset.pipeline[{types.index(where)}]')
        assert any(p.startswith(target) for p in problems), problems


def test_baseline_check_ignores_the_paste_step_and_its_bank():
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


@pytest.mark.parametrize('where', ['variant', 'baseline'])
def test_check_catches_a_paste_step_in_a_test_pipeline(where):
    variant, baseline = copy.deepcopy(_load(TOY_XPASTE)), copy.deepcopy(_load(TOY_BASELINE))
    step = copy.deepcopy(paste_steps(variant)[0])
    for cfg in (variant, baseline) if where == 'baseline' else (variant, ):
        for key in ('val_dataloader', 'test_dataloader'):
            cfg[key]['dataset']['pipeline'].insert(-1, copy.deepcopy(step))
    problems = compare_to_baseline(variant, baseline)
    # in both configs the same: the pipelines agree, yet the paste step is reported
    assert any(p.startswith('val_dataloader.dataset.pipeline[3]: a paste step outside')
               for p in problems), problems
    assert any('test_dataloader.dataset.pipeline[3]: a paste step outside' in p
               for p in problems), problems


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


def _copypaste_vs_xpaste(variant, allowed=('paste[0].bank.root', )):
    return compare_to_reference(variant, _load(TOY_XPASTE), allowed)


def test_reference_check_passes_the_toy_copy_paste_config():
    assert _copypaste_vs_xpaste(_load(TOY_COPYPASTE)) == []


@pytest.mark.parametrize('key, value', [
    ('prob', 0.0),  # a paste step that never pastes
    ('num_pastes', (0, 2)),
    ('blend', 'hard'),
    ('mask_occluded_thr', 300),
])
def test_reference_check_catches_another_paste_option(key, value):
    variant = copy.deepcopy(_load(TOY_COPYPASTE))
    paste_steps(variant)[0][key] = value
    problems = _copypaste_vs_xpaste(variant)
    assert any(p.startswith(f'paste[0].{key}') and 'not one of the changes' in p
               for p in problems), problems
    # the baseline check alone lets it through
    assert compare_to_baseline(variant, _load(TOY_BASELINE)) == []


def test_reference_check_catches_the_named_option_unchanged():
    problems = _copypaste_vs_xpaste(_load(TOY_COPYPASTE), ('paste[0].bank.root', 'paste[0].blend'))
    assert problems == [
        "paste[0].blend: expected to differ from the reference, but it is the same"], problems


def test_reference_check_catches_a_missing_or_extra_step():
    variant = copy.deepcopy(_load(TOY_TWO_BANKS))
    ref = REFERENCES['configs/xpaste/toy/' + TOY.format('xpaste-copypaste-')]
    assert compare_to_reference(variant, _load(TOY_XPASTE), ref.allowed, ref.step_map) == []
    _inner_pipeline(variant).pop(-2)  # the second bank's step
    problems = compare_to_reference(variant, _load(TOY_XPASTE), ref.allowed, ref.step_map)
    assert any('1 paste step(s), expected 2' in p for p in problems), problems


def test_reference_check_catches_a_row_that_changes_the_shared_step():
    row = _lvis(MRCNN, 'xpaste-')
    ref = REFERENCES[row]
    variant, baseline = copy.deepcopy(load(row)), load(ref.config)
    shared_step = ref.reference_steps()
    assert compare_to_reference(variant, baseline, reference_steps=shared_step) == []
    paste_steps(variant)[0]['prob'] = 0.0
    problems = compare_to_reference(variant, baseline, reference_steps=shared_step)
    assert any(p.startswith('paste[0].prob: only in the variant') for p in problems), problems

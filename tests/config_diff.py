"""Config comparison for the config-diff tests (tests/test_configs_xpaste.py): load configs as
dicts, find and strip their paste steps, and list how a paste config differs from its baseline
or reference row.
"""
import copy
import functools
import glob
import os.path as osp
import re
from typing import Optional, Sequence

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIRS = ('configs/xpaste', 'configs/toy')
PASTE_TYPES = ('XPaste', 'mmdet.XPaste')
# Top-level variables of a paste config that only feed its paste step(s).
HELPER_VAR = re.compile(r'^(bank|xpaste|copypaste|paste|num_pastes)')
# `-xpaste[-tag...]` or `-copypaste[-tag...]` just before the schedule (`-2x_`, `-1k_`, `-12e_`).
PASTE_TAG = re.compile(r'-(?:xpaste|copypaste)(?:-[0-9a-z]+)*?(?=-\d+[xke]_)')
# Where a paste step belongs: the training pipelines (and the variables that build them).
TRAIN_KEYS = ('train_dataloader', 'train_pipeline')


def _all_configs() -> list:
    paths = []
    for folder in CONFIG_DIRS:
        paths += glob.glob(osp.join(ROOT, folder, '**', '*.py'), recursive=True)
    return sorted(p for p in paths if '_base_' not in osp.relpath(p, ROOT).split(osp.sep))


ALL_CONFIGS = _all_configs()


@functools.lru_cache(maxsize=None)
def _load(path: str) -> dict:
    return Config.fromfile(path).to_dict()


def load(rel_path: str) -> dict:
    """A config (path relative to the repository root) as a dict; cached, do not modify."""
    return _load(osp.join(ROOT, rel_path))


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


def paste_steps(cfg: dict) -> list:
    """The paste steps of a config's training pipelines, in order."""
    return [s for _, steps in train_pipelines(cfg) for s in steps if _is_paste(s)]


def _paste_paths(node, path=''):
    """Paths of every paste step under ``node``."""
    if _is_paste(node):
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _paste_paths(value, f'{path}.{key}' if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paste_paths(value, f'{path}[{i}]')


def misplaced_paste_steps(cfg: dict) -> list:
    """Paste steps outside the training pipelines (val/test pipelines, evaluators, hooks...),
    other than in the top-level variables that define them."""
    return [
        f'{path}: a paste step outside the training pipeline'
        for key, value in cfg.items() if key not in TRAIN_KEYS and not HELPER_VAR.match(key)
        for path in _paste_paths(value, key)]


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
    """A copy of ``cfg`` without the paste steps of its training pipelines (``train_dataloader``
    and ``train_pipeline``), without the top-level helper variables of the paste step and
    without redundant ``_scope_`` marks. Val/test pipelines are left as they are."""
    out = {k: copy.deepcopy(v) for k, v in cfg.items() if not HELPER_VAR.match(k)}
    _drop_redundant_scope(out, out.get('default_scope'))
    for _, steps in _pipelines(out.get('train_dataloader', {})):
        steps[:] = [s for s in steps if not _is_paste(s)]
    if isinstance(out.get('train_pipeline'), list):
        out['train_pipeline'] = [s for s in out['train_pipeline'] if not _is_paste(s)]
    return out


def _diffs(a, b, path: str = '') -> list:
    """``(path, message)`` of every place where ``a`` (variant) and ``b`` (reference) differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f'{path}.{key}' if path else str(key)
            if key not in a or key not in b:
                where = 'variant' if key in a else 'reference'
                diffs.append((sub, f'{sub}: only in the {where}'))
            else:
                diffs += _diffs(a[key], b[key], sub)
        return diffs
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        diffs = []
        for i, (x, y) in enumerate(zip(a, b)):
            diffs += _diffs(x, y, f'{path}[{i}]')
        return diffs
    return [] if a == b else [(path, f'{path}: {a!r} (variant) != {b!r} (reference)')]


def config_diff(a, b, path: str = '') -> list:
    """Paths (``'train_cfg.max_iters'``, ``'model.roi_head.bbox_head[1]'``) where ``a`` and
    ``b`` differ, with both values."""
    return [message for _, message in _diffs(a, b, path)]


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


def compare_outside_paste(variant: dict, reference: dict) -> list:
    """Every difference between two configs outside the paste steps of their training
    pipelines, and every paste step of either outside a training pipeline."""
    problems = misplaced_paste_steps(variant)
    problems += [f'reference {p}' for p in misplaced_paste_steps(reference)]
    problems += config_diff(strip_paste(variant), strip_paste(reference))
    return problems


def compare_to_baseline(variant: dict, baseline: dict) -> list:
    """Every reason why ``variant`` is not ``baseline`` plus paste steps (empty: it is). The
    paste steps' arguments are free here (:func:`compare_to_reference` checks them)."""
    problems = []
    if not has_paste_step(variant):
        problems.append('the variant has no paste step in its training pipeline')
    if has_paste_step(baseline):
        problems.append('the baseline has a paste step in its training pipeline')
    problems += placement_problems(variant)
    problems += compare_outside_paste(variant, baseline)
    return problems


def _matches(path: str, key: str) -> bool:
    """Whether the diff at ``path`` lies at or under the dotted ``key``."""
    return path == key or path.startswith((key + '.', key + '['))


def compare_paste_steps(steps: list, reference_steps: list, allowed: Sequence[str] = (),
                        step_map: Optional[Sequence[int]] = None, scope=None) -> list:
    """Every reason why ``steps`` are not ``reference_steps`` with exactly the ``allowed`` keys
    changed (empty: they are).

    Args:
        steps (list): the variant's paste steps (dicts), in pipeline order.
        reference_steps (list): the paste steps it derives from.
        allowed (Sequence[str]): dotted keys into the steps, ``'paste[0].bank.root'``, that must
            differ (a key only one side has counts as differing); any other difference is a
            problem. Defaults to ().
        step_map (Sequence[int], optional): for each variant step, the index of the reference
            step it is compared with (``(0, 0)``: two steps, both derived from the reference's
            only step). Defaults to None: step ``i`` with reference step ``i``, same count.
        scope (str, optional): the default scope; ``_scope_`` marks equal to it are ignored.
    """
    if step_map is None:
        step_map = list(range(len(reference_steps)))
    if len(steps) != len(step_map):
        return [f'paste: {len(steps)} paste step(s), expected {len(step_map)} '
                f'(one per entry of step_map {list(step_map)})']
    if any(not 0 <= j < len(reference_steps) for j in step_map):
        return [f'paste: step_map {list(step_map)} names a step the reference lacks '
                f'(it has {len(reference_steps)})']
    variant = copy.deepcopy(list(steps))
    reference = [copy.deepcopy(reference_steps[j]) for j in step_map]
    _drop_redundant_scope(variant, scope)
    _drop_redundant_scope(reference, scope)
    diffs = _diffs(variant, reference, 'paste')
    problems = [f'{message} (not one of the changes this config may make: {list(allowed)})'
                for path, message in diffs if not any(_matches(path, key) for key in allowed)]
    problems += [f'{key}: expected to differ from the reference, but it is the same'
                 for key in allowed if not any(_matches(path, key) for path, _ in diffs)]
    return problems


def compare_to_reference(variant: dict, reference: dict, allowed: Sequence[str] = (),
                         step_map: Optional[Sequence[int]] = None,
                         reference_steps: Optional[list] = None) -> list:
    """Every reason why ``variant`` is not ``reference`` with exactly the ``allowed`` options of
    its paste steps changed (empty: it is).

    Args:
        variant (dict): the config checked.
        reference (dict): the config it derives from: another paste config, or (with
            ``reference_steps``) the baseline.
        allowed (Sequence[str]): see :func:`compare_paste_steps`. Defaults to ().
        step_map (Sequence[int], optional): see :func:`compare_paste_steps`. Defaults to None.
        reference_steps (list, optional): the reference paste steps when they are not
            ``reference``'s own (a row against its baseline and a shared step). Defaults to None.
    """
    if reference_steps is None:
        reference_steps = paste_steps(reference)
    problems = placement_problems(variant)
    if not has_paste_step(variant):
        problems.append('the variant has no paste step in its training pipeline')
    if not reference_steps:
        problems.append('the reference has no paste step to compare with')
    problems += compare_outside_paste(variant, reference)
    problems += compare_paste_steps(paste_steps(variant), reference_steps, allowed, step_map,
                                    variant.get('default_scope'))
    return problems

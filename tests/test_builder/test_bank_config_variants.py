"""Each bank-quality bank config differs from its reference by its one option only (the
training ablations in configs/xpaste/ablations/ point at these banks; tests/test_configs_xpaste.py
checks those)."""
import os.path as osp

import pytest
from mmengine.config import Config

from xpaste.builder.defaults import merge_defaults

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# bank config -> (its reference, the dotted options that differ; nothing else may)
VARIANTS = {
    'lvis_routed.py': ('lvis_sd15.py', ('source', )),
    'lvis_mixed.py': ('lvis_sd15.py', ('source', )),
    'lvis_sd15_prompts.py': ('lvis_sd15.py', ('prompts.templates', 'prompts.attributes',
                                              'prompts.max_prompts', 'prompts.order')),
    'lvis_sd15_sam-bg.py': ('lvis_sd15_sam.py', ('segment.segmenters[0].prompt_mode',
                                                 'segment.segmenters[0].border_points',
                                                 'segment.segmenters[0].border_margin')),
    'lvis_sd15_mmdet.py': ('lvis_sd15.py', ('segment.segmenters[0]', )),
    'lvis_sd15_ensemble4.py': ('lvis_sd15_ensemble.py', ('segment.segmenters', )),
    'lvis_sd15_real.py': ('lvis_sd15.py', ('filter.real_similarity', )),
}


def load(name):
    cfg = merge_defaults(Config.fromfile(osp.join(ROOT, 'configs', 'bank', name)).to_dict())
    return {k: v for k, v in cfg.items() if not k.startswith('_')}


def diffs(a, b, path=''):
    """Dotted paths where ``a`` and ``b`` differ (a list of another length differs as a
    whole)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in (diffs(a[k], b[k], f'{path}.{k}' if path else k)
                          if k in a and k in b else [f'{path}.{k}' if path else k])]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diffs(x, y, f'{path}[{i}]')]
    return [] if a == b else [path]


def under(path, key):
    return path == key or path.startswith((key + '.', key + '['))


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_bank_variant_differs_by_its_option_only(name):
    reference, allowed = VARIANTS[name]
    found = diffs(load(name), load(reference))
    extra = [p for p in found if not any(under(p, key) for key in allowed)]
    assert not extra, f'{name} vs {reference}: also differs at {extra}'
    unchanged = [key for key in allowed if not any(under(p, key) for p in found)]
    assert not unchanged, f'{name} vs {reference}: {unchanged} expected to differ'


def test_the_check_catches_another_difference():
    variant, reference = load('lvis_sd15_real.py'), load('lvis_sd15.py')
    variant['filter']['min_clip'] = 20.0
    assert diffs(variant, reference) == ['filter.min_clip', 'filter.real_similarity']

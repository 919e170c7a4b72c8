import importlib.util
import json
import os.path as osp

import numpy as np
import pytest

from xpaste.bank.stats import (class_frequency, compute_size_stats, load_size_stats,
                               save_size_stats)
from xpaste.bank import BankWriter, finalize_bank, read_manifest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'tool_{name}',
                                                  osp.join(REPO, 'tools', 'bank', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ann(id, image_id, cat, area, **kw):
    return dict(id=id, image_id=image_id, category_id=cat, area=area, bbox=[0, 0, 1, 1], **kw)


@pytest.fixture
def coco():
    """Images of 100x100 and 200x50 px; areas chosen so sqrt(area ratio) are round numbers."""
    return {
        'images': [dict(id=1, width=100, height=100, file_name='a.jpg'),
                   dict(id=2, width=200, height=50, file_name='b.jpg')],
        'categories': [dict(id=3, name='cup'), dict(id=5, name='dog'), dict(id=8, name='yak')],
        'annotations': [
            ann(1, 1, 3, 100.0),  # sqrt(100 / 1e4) = 0.1
            ann(2, 2, 3, 400.0),  # sqrt(400 / 1e4) = 0.2
            ann(3, 1, 3, 2500.0, iscrowd=1),  # crowd: ignored
            ann(4, 1, 5, 900.0),  # 0.3
            ann(5, 1, 5, 0.0),  # zero area: ignored
            ann(6, 1, 5, 3600.0),  # dog again in image 1 -> 0.6
        ],
    }


def test_size_stats_values(coco):
    stats = compute_size_stats(coco)
    cup, dog, yak = (stats['categories'][n] for n in ('cup', 'dog', 'yak'))
    assert cup == {'id': 3, 'count': 2, 'mean': pytest.approx(0.15), 'std': pytest.approx(0.05)}
    assert dog['count'] == 2 and dog['mean'] == pytest.approx(0.45)
    assert dog['std'] == pytest.approx(0.15)
    assert yak == {'id': 8, 'count': 0, 'mean': None, 'std': None}
    assert stats['num_annotations'] == 4 and stats['all']['count'] == 4
    assert stats['all']['mean'] == pytest.approx(np.mean([0.1, 0.2, 0.3, 0.6]))
    with_crowd = compute_size_stats(coco, skip_crowd=False)['categories']['cup']
    assert with_crowd['count'] == 3 and with_crowd['mean'] == pytest.approx(0.8 / 3)


def test_size_stats_subset_and_errors(coco):
    stats = compute_size_stats(coco, categories=['dog'])
    assert list(stats['categories']) == ['dog']
    with pytest.raises(ValueError, match=r"unknown categories \['zebra'\]"):
        compute_size_stats(coco, categories=['zebra'])
    del coco['annotations'][0]['area']
    with pytest.raises(ValueError, match=r'annotations\[0\] \(id 1\) has no "area"'):
        compute_size_stats(coco)


def test_size_stats_save_load_roundtrip(tmp_path, coco):
    stats = compute_size_stats(coco)
    path = tmp_path / 'sizes.json'
    save_size_stats(stats, path)
    assert load_size_stats(str(path)) == json.loads(json.dumps(stats))
    assert load_size_stats(stats) == stats
    (tmp_path / 'bad.json').write_text(json.dumps({'format': 'other'}))
    with pytest.raises(ValueError, match=r"bad\.json: field \"format\" must be"):
        load_size_stats(str(tmp_path / 'bad.json'))
    with pytest.raises(FileNotFoundError, match='size statistics file not found'):
        load_size_stats(str(tmp_path / 'missing.json'))


def test_class_frequency_lvis_and_coco(coco):
    # COCO layout: distinct images per class (two dog annotations in image 1 count once)
    assert class_frequency(coco) == {'cup': 2, 'dog': 1, 'yak': 0}
    for c, n in zip(coco['categories'], (10, 20, 30)):
        c['image_count'] = n  # LVIS layout
    assert class_frequency(coco) == {'cup': 10, 'dog': 20, 'yak': 30}
    assert class_frequency(coco, categories=['yak']) == {'yak': 30}


def test_stats_tool_writes_file_and_bank_manifest(tmp_path, coco):
    ann_file = tmp_path / 'ann.json'
    ann_file.write_text(json.dumps(coco))
    bank = tmp_path / 'bank'
    with BankWriter(bank, coco['categories'], image_format='png') as w:
        w.add(np.full((4, 4, 4), 255, np.uint8), 'cup')
    finalize_bank(bank, build_info={'k': 1})
    tool = load_tool('stats')
    out = tmp_path / 'sizes.json'
    stats = tool.main([str(ann_file), '--out', str(out), '--bank', str(bank)])
    assert load_size_stats(str(out))['categories']['cup']['count'] == 2
    man = read_manifest(bank)
    assert man['size_stats']['categories']['dog']['mean'] == pytest.approx(0.45)
    assert man['size_stats'] == json.loads(json.dumps(stats))
    assert man['build'] == {'k': 1} and man['num_instances'] == 1

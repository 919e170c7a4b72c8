import json
import os.path as osp

import numpy as np
import pytest

from tools.toy import count_defects, eval_clip, train_clip
from xpaste.builder.clip_scoring import ClipScorer, prepare_cutout
from xpaste.toy import toy_categories
from xpaste.toy.clip import (TOY_CLIP_CFG, TOY_CLIP_NAME, ToyClipSettings, annotated_instances,
                             register_model_config, rendered_instances, settings_digest,
                             write_model_config)
from xpaste.toy.gap import WRONG_DEFECTS

TINY_TRAIN = ['--steps', '3', '--batch-size', '8', '--renders-per-class', '1', '--min-classes', '8']


@pytest.fixture(scope='module')
def toy_clip(tiny_toy_lvis, tmp_path_factory):
    """A toy CLIP trained for 3 steps on the tiny world: (output folder, train_clip result)."""
    out = str(tmp_path_factory.mktemp('toy_clip'))
    ann = str(tiny_toy_lvis / 'annotations' / 'lvis_v1_train.json')
    info = train_clip.main(['--train-ann', ann, '--out', out] + TINY_TRAIN)
    return out, ann, info


def test_train_clip_writes_a_checkpoint_the_scorer_loads(toy_clip, tiny_toy_lvis):
    out, _, info = toy_clip
    assert not info['cached'] and info['data']['train_instances'] > 0
    assert info['data']['rendered'] == info['data']['classes'] == 320
    checkpoint = osp.join(out, f'{TOY_CLIP_NAME}.safetensors')
    model_config = osp.join(out, f'{TOY_CLIP_NAME}.json')
    assert info['checkpoint'] == checkpoint and osp.isfile(checkpoint)
    with open(model_config) as f:
        assert json.load(f) == json.loads(json.dumps(TOY_CLIP_CFG))
    scorer = ClipScorer(
        model=TOY_CLIP_NAME,
        pretrained=checkpoint,
        model_config=model_config,
        device='cpu',
        precision='fp32',
        batch_size=4)
    scorer.setup()
    assert scorer.input_size == TOY_CLIP_CFG['vision_cfg']['image_size']
    assert scorer.describe()['model_config'] == model_config
    val = str(tiny_toy_lvis / 'annotations' / 'lvis_v1_val.json')
    inputs = np.stack([
        prepare_cutout(image, mask, scorer.input_size)
        for _, (image, mask, _) in zip(range(6), annotated_instances(val))
    ])
    emb = scorer.encode(inputs)
    assert emb.shape == (6, TOY_CLIP_CFG['embed_dim']) and emb.dtype == np.float32
    assert np.isfinite(emb).all() and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    scores = scorer.scores(emb, {'name': toy_categories(1)[0].name})
    assert scores.shape == (6, ) and np.isfinite(scores).all() and (np.abs(scores) <= 100).all()


def test_train_clip_is_cached_and_deterministic(toy_clip):
    out, ann, info = toy_clip
    checkpoint = info['checkpoint']
    with open(checkpoint, 'rb') as f:
        first = f.read()
    again = train_clip.main(['--train-ann', ann, '--out', out] + TINY_TRAIN)
    assert again['cached'] and again['digest'] == info['digest']
    forced = train_clip.main(['--train-ann', ann, '--out', out, '--force'] + TINY_TRAIN)
    assert not forced['cached']
    with open(checkpoint, 'rb') as f:
        assert f.read() == first  # same seed, same weights
    other = train_clip.main(['--train-ann', ann, '--out', out, '--seed', '1'] + TINY_TRAIN)
    assert not other['cached'] and other['digest'] != info['digest']
    with open(checkpoint, 'rb') as f:
        assert f.read() != first


def test_eval_clip_prints_one_json_object(toy_clip, tiny_toy_lvis, capfd):
    out, _, _ = toy_clip
    val = str(tiny_toy_lvis / 'annotations' / 'lvis_v1_val.json')
    capfd.readouterr()
    result = eval_clip.main([
        '--clip-dir', out, '--val-ann', val, '--gap-images-per-class', '3', '--gap-size', '96',
        '--json'
    ])
    stdout = capfd.readouterr().out
    assert stdout.count('\n') == 1 and json.loads(stdout) == json.loads(json.dumps(result))
    assert 0 <= result['zero_shot_top1'] <= 1 and result['val_instances'] > 0
    assert result['gap_images'] == 3 * result['classes']
    assert sum(d['images'] for d in result['per_defect'].values()) == result['gap_images']


def test_settings_and_digest():
    with pytest.raises(ValueError, match='ToyClipSettings.steps must lie in \\[1, inf\\), got 0'):
        ToyClipSettings(steps=0)
    with pytest.raises(ValueError, match='ToyClipSettings.lr must lie in \\(0, inf\\), got 0'):
        ToyClipSettings(lr=0)
    a = settings_digest(settings=ToyClipSettings(), data='x')
    assert a == settings_digest(settings=ToyClipSettings(), data='x')
    assert a != settings_digest(settings=ToyClipSettings(seed=1), data='x')
    assert a != settings_digest(settings=ToyClipSettings(), data='y')


def test_model_config_registration(tmp_path):
    path = write_model_config(str(tmp_path), name='xpaste-toy-clip-test')
    assert register_model_config(path) == 'xpaste-toy-clip-test'
    with pytest.raises(FileNotFoundError, match='train_clip.py'):
        register_model_config(str(tmp_path / 'missing.json'))
    wrong = ClipScorer(model='ViT-B-32', pretrained=path, model_config=path, device='cpu')
    with pytest.raises(ValueError, match="set score.model='xpaste-toy-clip-test'"):
        wrong.check()


def test_instances_of_a_split(tiny_toy_lvis):
    ann = tiny_toy_lvis / 'annotations' / 'lvis_v1_train.json'
    with open(ann) as f:
        data = json.load(f)
    items = list(annotated_instances(str(ann)))
    assert len(items) == len(data['annotations'])
    names = {c['name'] for c in data['categories']}
    for image, mask, name in items[:10]:
        assert name in names and mask.shape == image.shape[:2] and mask.any()
    rendered = list(rendered_instances(toy_categories(3), per_class=2, size=64))
    assert [n for _, _, n in rendered] == [c.name for c in toy_categories(3) for _ in range(2)]
    assert not np.array_equal(rendered[0][0], rendered[1][0])


@pytest.mark.slow
def test_gapped_bank_build_with_the_toy_clip(toy_clip, tmp_path):
    from mmengine.config import Config

    from xpaste.bank import BankReader
    from xpaste.builder.pipeline import BankBuilder
    from xpaste.toy.gap import parse_gap_tag
    out, ann, info = toy_clip
    cfg = Config.fromfile('configs/bank/toy_gap.py')
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work'),
        'categories.ann_file': ann,
        'images_per_class': 6,
        'chunk_size': 3,
        'source.size': 96,
        'score.pretrained': info['checkpoint'],
        'score.model_config': info['model_config'],
        'segment.segmenters': [dict(type='ClassicalSegmenter', work_side=64)],
        'write.max_side': 64,
        'write.size_stats': False,
        'report.thumb_side': 32,
        'workers': dict(type=None),
        'progress': False,
    })
    BankBuilder(cfg.to_dict()).run(['all'])
    nofilter = Config.fromfile('configs/bank/toy_gap_nofilter.py')
    cfg.filter = nofilter.filter
    cfg.bank_dir = str(tmp_path / 'bank_nofilter')
    BankBuilder(cfg.to_dict()).run(['filter', 'write'])

    def defects(bank):
        with BankReader(bank) as reader:
            rows = [reader.record(i) for i in range(len(reader))]
        assert rows and all(np.isfinite(r['clip_score']) for r in rows)
        return sorted(parse_gap_tag(r['prompt'])[0] for r in rows)

    filtered = defects(str(tmp_path / 'work' / 'bank'))
    unfiltered = defects(str(tmp_path / 'bank_nofilter'))
    assert len(unfiltered) > len(filtered) and set(filtered) <= set(unfiltered)
    counts = count_defects.main([str(tmp_path / 'bank_nofilter')])[str(tmp_path / 'bank_nofilter')]
    assert counts['instances'] == len(unfiltered)
    assert counts['defects'] == {k: unfiltered.count(k) for k in set(unfiltered)}
    wrong = sum(k in WRONG_DEFECTS for k in unfiltered)
    assert counts['wrong_fraction'] == pytest.approx(wrong / len(unfiltered))
    with open(tmp_path / 'work' / 'bank' / 'manifest.json') as f:
        build = json.load(f)['build']
    assert build['source']['gap']['defects']['wrong_class'] == 0.12
    assert build['scorer']['model_config'] == info['model_config']

"""The filter by similarity to real instances: settings, the filter's decision, the real
instances' embeddings (cached once in the work dir), and a whole build on the toy world with a
tiny random-weight CLIP."""
import glob
import json
import os.path as osp

import numpy as np
import pytest

from xpaste.builder.filters import DROP_REASONS, InstanceFilter, RealSimilarity
from xpaste.builder.real_instances import RealClassStats, RealInstances

PREFIX = dict(img_prefix='.')


# ---------------------------------------------------------------------------------- settings
@pytest.mark.parametrize('cfg, match', [
    (dict(PREFIX), 'exactly one of min_cosine and percentile'),
    (dict(PREFIX, min_cosine=0.5, percentile=5), 'exactly one'),
    (dict(PREFIX, min_cosine=1.5), r'min_cosine must be in \[-1, 1\], got 1.5'),
    (dict(PREFIX, percentile=101), r'percentile must be in \[0, 100\], got 101'),
    (dict(PREFIX, min_cosine=0.5, max_per_class=0), r'real_similarity.max_per_class must lie in \[1, inf\), got 0'),
    (dict(min_cosine=0.5), 'img_prefix must name the folder'),
    (dict(PREFIX, min_cosine=0.5, threshold=1), r"unknown keys \['threshold'\]"),
    ('on', 'must be None or a dict'),
])
def test_settings_are_checked(cfg, match):
    with pytest.raises(ValueError, match=match):
        RealSimilarity.from_config(cfg)


def test_class_threshold():
    absolute = RealSimilarity.from_config(dict(PREFIX, min_cosine=0.6, min_real=2))
    assert absolute.class_threshold(2, np.array([0.1, 0.2])) == 0.6
    assert absolute.class_threshold(1, np.zeros(0)) is None  # too few: text score only
    pct = RealSimilarity.from_config(dict(PREFIX, percentile=50))
    assert pct.class_threshold(3, np.array([0.2, 0.4, 0.9])) == pytest.approx(0.4)
    assert pct.class_threshold(1, np.zeros(0)) is None  # no spread to take a percentile of
    assert RealSimilarity.from_config(None) is None


def test_real_class_stats():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(5, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    stats = RealClassStats.from_embeddings(emb)
    assert stats.count == 5
    gen = rng.normal(size=(3, 8))
    gen /= np.linalg.norm(gen, axis=1, keepdims=True)
    # the mean cosine similarity to the real instances (DiverGen's score)
    assert np.allclose(stats.score(gen), (gen @ emb.T).mean(1), atol=1e-6)
    # each real instance against the others
    loo = [np.mean([emb[i] @ emb[j] for j in range(5) if j != i]) for i in range(5)]
    assert np.allclose(stats.scores, loo, atol=1e-6)
    empty = RealClassStats.from_embeddings(np.zeros((0, 0)))
    assert empty.count == 0 and np.isnan(empty.score(gen)).all()
    assert len(RealClassStats.from_embeddings(emb[:1]).scores) == 0


# ------------------------------------------------------------------------------- the filter
def test_filter_drops_cut_outs_unlike_the_real_instances():
    filt = InstanceFilter(min_clip=21.0, tolerance=None, dedup=None,
                          real_similarity=dict(PREFIX, min_cosine=0.5))
    n = 5
    result = filt(['ok'] * 4 + ['black'], np.full(n, 0.3), np.ones(n),
                  np.array([25.0, 20.0, 25.0, 25.0, np.nan]), np.zeros(n, np.uint64),
                  real_score=np.array([0.2, 0.2, 0.7, np.nan, 0.1]), real_threshold=0.5)
    # the CLIP text score first, then the real similarity; NaN (unknown) is not dropped
    assert result['reason'] == ['real_similarity', 'clip_score', '', '', 'black_image']
    assert result['counts']['real_similarity'] == 1 and result['counts']['kept'] == 2
    # a class without a threshold (no real instances): the text score alone
    result = filt(['ok'] * 2, np.full(2, 0.3), np.ones(2), np.array([25.0, 25.0]),
                  np.zeros(2, np.uint64), real_score=np.array([0.1, 0.1]), real_threshold=None)
    assert result['reason'] == ['', '']
    assert 'real_similarity' in DROP_REASONS
    assert filt.describe()['real_similarity']['min_cosine'] == 0.5
    assert 'real_similarity' not in InstanceFilter().describe()  # off: fingerprints unchanged


# -------------------------------------------------------------------- on the toy LVIS world
@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    from xpaste.testing.random_models import TINY_OPEN_CLIP, save_tiny_open_clip
    path = save_tiny_open_clip(str(tmp_path_factory.mktemp('clip') / 'tiny_clip.pt'))
    return dict(model=TINY_OPEN_CLIP, pretrained=path, device='cpu', precision='fp32',
                batch_size=16)


def toy_files(root):
    ann = osp.join(str(root), 'annotations', 'lvis_v1_train.json')
    return ann, json.load(open(ann))


def test_real_instances_are_embedded_once_and_cached(tiny_toy_lvis, tiny_clip, tmp_path,
                                                     monkeypatch):
    from xpaste.builder.clip_scoring import ClipScorer
    ann_file, data = toy_files(tiny_toy_lvis)
    cats = sorted(data['categories'], key=lambda c: c['id'])
    counts = {c['id']: 0 for c in cats}
    for a in data['annotations']:
        counts[a['category_id']] += 1
    settings = RealSimilarity.from_config(dict(img_prefix=str(tiny_toy_lvis), min_cosine=0.0,
                                               max_per_class=3, min_area=0))
    real = RealInstances(settings, cats, data, ann_file, str(tmp_path))
    scorer = ClipScorer(**tiny_clip)
    pos = max(range(len(cats)), key=lambda i: counts[cats[i]['id']])
    assert real.num_instances(pos) == 3  # capped at max_per_class
    stats = real.class_stats(pos, scorer)
    assert stats.count == 3 and stats.mean.shape == (32, ) and len(stats.scores) == 3
    assert osp.isfile(real.path(pos))

    def no_embedding(*args):
        raise AssertionError('the real instances must come from the cache')

    monkeypatch.setattr(RealInstances, '_embed', no_embedding)
    again = real.class_stats(pos, scorer)
    assert np.array_equal(again.mean, stats.mean) and np.array_equal(again.scores, stats.scores)
    # another selection of real instances is another fingerprint: embedded again
    other = RealInstances(RealSimilarity.from_config(dict(settings.describe(), max_per_class=2)),
                          cats, data, ann_file, str(tmp_path))
    with pytest.raises(AssertionError, match='from the cache'):
        other.class_stats(pos, scorer)


def test_build_filters_by_similarity_to_real_instances(tiny_toy_lvis, tiny_clip, tmp_path,
                                                       monkeypatch):
    from xpaste.builder.pipeline import BankBuilder
    ann_file, data = toy_files(tiny_toy_lvis)
    names = [c['name'] for c in sorted(data['categories'], key=lambda c: c['id'])][:3]
    # the real annotations lack the second class: it falls back to the text score
    no_second = dict(data, annotations=[
        a for a in data['annotations']
        if a['category_id'] != next(c['id'] for c in data['categories'] if c['name'] == names[1])
    ])
    real_ann = tmp_path / 'train_without_one_class.json'
    real_ann.write_text(json.dumps(no_second))
    work = tmp_path / 'work'
    cfg = dict(
        work_dir=str(work), categories=dict(ann_file=ann_file, include=names),
        images_per_class=4, chunk_size=4, source=dict(type='ToySource', size=64),
        segment=dict(segmenters=[dict(type='ClassicalSegmenter', work_side=64)]),
        score=tiny_clip,
        filter=dict(min_clip=None, tolerance=None, min_area=0.0, max_area=1.0, dedup=None,
                    real_similarity=dict(min_cosine=1.0, max_per_class=4, min_area=0,
                                         img_prefix=str(tiny_toy_lvis), ann_file=str(real_ann))),
        write=dict(max_side=64, size_stats=False), report=dict(thumb_side=32),
        workers=dict(type=None), progress=False)
    BankBuilder(cfg).run('all')

    def filter_out(name):
        path, = glob.glob(str(work / 'filter' / f'*-{name}.json'))
        return json.load(open(path))

    # min_cosine=1: every cut-out of a class with real instances is unlike them
    for name in (names[0], names[2]):
        rec = filter_out(name)
        assert rec['real']['count'] > 0 and rec['real']['threshold'] == 1.0
        ok = [i for i in rec['items'] if i['area'] > 0]
        assert ok and all(i['reason'] == 'real_similarity' and i['real_score'] < 1 for i in ok)
    fallback = filter_out(names[1])
    assert fallback['real'] == dict(count=0, threshold=None)
    assert any(not i['reason'] for i in fallback['items'])
    assert 'real_similarity' in (work / 'report' / 'index.html').read_text()
    caches = glob.glob(str(work / 'real' / '*.npz'))
    assert len(caches) == 3
    # the filter alone again with another threshold: the real embeddings come from the cache
    monkeypatch.setattr(RealInstances, '_embed', lambda *a: pytest.fail('embedded again'))
    cfg['filter']['real_similarity']['min_cosine'] = -1.0
    BankBuilder(cfg).run(['filter'])
    assert not any(i['reason'] == 'real_similarity' for n in names
                   for i in filter_out(n)['items'])


def test_real_filter_needs_clip_and_the_images(tiny_toy_lvis, tmp_path):
    from xpaste.builder.pipeline import BankBuilder
    ann_file, _ = toy_files(tiny_toy_lvis)
    cfg = dict(work_dir=str(tmp_path), categories=dict(ann_file=ann_file), score=None,
               filter=dict(real_similarity=dict(min_cosine=0.5, img_prefix=str(tiny_toy_lvis))),
               progress=False)
    with pytest.raises(ValueError, match='needs CLIP scoring'):
        BankBuilder(cfg)

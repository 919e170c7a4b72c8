"""Composite sources: per-class routing (RoutedSource) and several generators per class
(MixedSource), and how the generator of each image reaches the bank and the report."""
import glob
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from xpaste.bank import BankReader
from xpaste.builder.multi_source import MixedSource, RoutedSource
from xpaste.builder.pipeline import BankBuilder
from xpaste.builder.sources import FolderSource, ToySource, build_source, derive_seed
from xpaste.toy import toy_categories

TOY = toy_categories(4, seed=0)
CATS = [dict(id=i + 1, name=c.name, frequency='rcff'[i]) for i, c in enumerate(TOY)]


def toy(size, name=None):
    cfg = dict(type='ToySource', size=size)
    return cfg if name is None else dict(cfg, name=name)


def request(cat, n, start=0):
    indices = list(range(start, start + n))
    return (cat, indices, [f'p{i}' for i in indices], [derive_seed(0, cat['id'], i)
                                                       for i in indices])


# ------------------------------------------------------------------------------- MixedSource
def test_mixed_source_draws_each_image_from_its_seed():
    source = build_source(dict(type='MixedSource', sources=[toy(32, 'small'), toy(48, 'large')],
                               weights=[1, 3]))
    assert isinstance(source, MixedSource) and source.names == ['small', 'large']
    items = source.generate(*request(CATS[0], 200))
    assert [i.index for i in items] == list(range(200))  # request order
    assert all(i.prompt == f'p{i.index}' for i in items)
    shape = {'small': (32, 32, 3), 'large': (48, 48, 3)}
    assert all(i.image.shape == shape[i.generator] for i in items)
    share = np.mean([i.generator == 'large' for i in items])
    assert 0.65 < share < 0.85  # weights 1:3
    # the same image whatever the batching: alone, or inside other requests
    again = source.generate_many([request(CATS[1], 3), request(CATS[0], 5, start=10)])[1]
    for a, b in zip(again, items[10:15]):
        assert a.generator == b.generator and np.array_equal(a.image, b.image)
    # each generator gets the image's seed: the same image as that generator alone
    alone = ToySource(size=48).generate(*request(CATS[0], 1, start=items[0].index))[0]
    if items[0].generator == 'large':
        assert np.array_equal(alone.image, items[0].image)


def test_mixed_source_weights_zero_and_describe():
    source = MixedSource([toy(32), toy(48, 'big')], weights=[0, 1])
    assert source.names == ['toy', 'big']  # default name: the type without 'Source'
    assert {i.generator for i in source.generate(*request(CATS[0], 20))} == {'big'}
    desc = source.describe()
    assert desc['type'] == 'MixedSource' and desc['weights'] == [0.0, 1.0]
    assert [s['name'] for s in desc['sources']] == ['toy', 'big']
    assert desc['sources'][1]['size'] == 48


@pytest.mark.parametrize('kwargs, match', [
    (dict(sources=[]), 'non-empty list'),
    (dict(sources=[toy(32), toy(48)]), r"share the names \['toy'\]"),
    (dict(sources=[toy(32, 'a'), toy(48, 'b')], weights=[1]), 'must be 2 numbers'),
    (dict(sources=[toy(32, 'a'), toy(48, 'b')], weights=[0, 0]), 'positive sum'),
    (dict(sources=[toy(32, 'a b')]), "name must be letters"),
])
def test_mixed_source_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixedSource(**kwargs)


def test_mixed_source_takes_generators_only(tmp_path):
    with pytest.raises(ValueError, match="'folder' .*FolderSource.* mix generators only"):
        MixedSource([toy(32), dict(type='FolderSource', root=str(tmp_path))])


# ------------------------------------------------------------------------------ RoutedSource
def routed(tmp_path, **kw):
    return RoutedSource(
        routes=[dict(frequency='r', source=toy(32), name='gen'),
                dict(classes=[CATS[1]['name']], source=toy(48), name='named'),
                dict(frequency=('f', ), source=dict(type='FolderSource', root=str(tmp_path)))],
        **kw)


def test_routed_source_routes_by_frequency_and_name(tmp_path):
    source = routed(tmp_path, default=toy(40))
    assert source.names == ['gen', 'named', 'folder', 'default']
    assert [source.route(c) for c in CATS] == [0, 1, 2, 2]
    assert source.route(dict(id=9, name='other', frequency='c')) == 3  # the default
    assert isinstance(source.child_of(CATS[3]), FolderSource)
    out = source.generate_many([request(CATS[1], 2), request(CATS[0], 3)])
    assert [[i.generator for i in items] for items in out] == [['named'] * 2, ['gen'] * 3]
    assert out[1][0].image.shape == (32, 32, 3) and out[0][0].image.shape == (48, 48, 3)
    assert source.generative and not source.uses_gpu
    desc = source.describe()
    assert [r['name'] for r in desc['routes']] == ['gen', 'named', 'folder']
    assert desc['routes'][0]['frequency'] == 'r' and desc['default']['size'] == 40


def test_routed_source_reports_unrouted_classes_before_any_work(tmp_path):
    source = routed(tmp_path)
    with pytest.raises(ValueError, match=r"1 classes match no route .*'other'.* default="):
        source.check_categories(CATS + [dict(id=9, name='other', frequency='c')])
    no_freq = [dict(id=9, name='x'), dict(id=10, name='y')]
    with pytest.raises(ValueError, match='2 of them have no LVIS "frequency"'):
        source.check_categories(no_freq)
    source.check_categories(CATS)  # every class routed: no error


@pytest.mark.parametrize('routes, match', [
    ([dict(source=toy(32))], 'exactly one of frequency= and classes='),
    ([dict(frequency='r', classes=['a'], source=toy(32))], 'exactly one'),
    ([dict(frequency='x', source=toy(32))], r"frequency must be one or more of \('r', 'c', 'f'\)"),
    ([dict(classes='zebra', source=toy(32))], 'non-empty list of class names'),
    ([dict(frequency='r')], r'must be dict\(source=...'),
])
def test_routed_source_validates(routes, match):
    with pytest.raises(ValueError, match=match):
        RoutedSource(routes)


# ------------------------------------------------------------------ through a whole build
@pytest.fixture
def cat_json(tmp_path):
    path = tmp_path / 'cats.json'
    cats = [dict(c.to_lvis(), id=i + 1) for i, c in enumerate(TOY[:3])]
    for cat, freq in zip(cats, 'rcf'):
        cat['frequency'] = freq
    path.write_text(json.dumps({'categories': cats, 'images': [], 'annotations': []}))
    return str(path), cats


def small_build(work_dir, ann, source, images=6):
    cfg = dict(
        work_dir=str(work_dir), categories=dict(ann_file=ann), images_per_class=images,
        chunk_size=4, source=source,
        segment=dict(segmenters=[dict(type='ClassicalSegmenter', work_side=64)]), score=None,
        filter=dict(min_area=0.0, max_area=1.0, dedup=None),
        write=dict(max_side=64, size_stats=False),
        report=dict(thumb_side=32, max_kept=2, max_dropped=2), workers=dict(type=None),
        progress=False)
    BankBuilder(cfg).run('all')
    with BankReader(str(work_dir / 'bank')) as reader:
        return [reader.record(i) for i in range(len(reader))]


def test_mixed_build_records_the_generator_everywhere(cat_json, tmp_path):
    ann, cats = cat_json
    rows = small_build(tmp_path, ann, dict(type='MixedSource',
                                           sources=[toy(64, 'small'), toy(96, 'large')]))
    gens = {}
    for path in glob.glob(str(tmp_path / 'gen' / '*' / '*.json')):
        for item in json.load(open(path))['items']:
            gens[(path, item['index'])] = item['generator']
    assert set(gens.values()) == {'small', 'large'}
    # bank rows: '<generator>:<image file>', the generator that made the image
    assert rows and all(r['source'].split(':', 1)[0] in ('small', 'large') for r in rows)
    for r in rows:
        gen, file = r['source'].split(':', 1)
        image = cv2.imread(str(tmp_path / file))
        assert image.shape[0] == {'small': 64, 'large': 96}[gen]
    # filter output and report: per generator
    filt = json.load(open(glob.glob(str(tmp_path / 'filter' / '*.json'))[0]))
    assert {i['generator'] for i in filt['items']} <= {'small', 'large'}
    summaries = [json.load(open(p)) for p in glob.glob(str(tmp_path / 'report' / 'classes' /
                                                           '*.json'))]
    total = sum(g['images'] for s in summaries for g in s['generators'].values())
    assert total == 3 * 6
    assert sum(g['kept'] for s in summaries for g in s['generators'].values()) == len(rows)
    index = (tmp_path / 'report' / 'index.html').read_text()
    assert 'Per generator' in index and '>small<' in index and '>large<' in index


def test_routed_build_with_images_from_a_folder(cat_json, tmp_path):
    ann, cats = cat_json
    folder = tmp_path / 'retrieved' / cats[2]['name']
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        image = np.full((80, 80, 3), 235, np.uint8)
        cv2.circle(image, (40, 40), 20 + i, tuple(int(v) for v in rng.integers(0, 120, 3)), -1)
        cv2.imwrite(str(folder / f'{i}.png'), image)
    source = dict(type='RoutedSource', routes=[
        dict(frequency=('r', 'c'), source=toy(64), name='gen'),
        dict(frequency='f', source=dict(type='FolderSource', root=str(tmp_path / 'retrieved')),
             name='web')])
    rows = small_build(tmp_path / 'work', ann, source)
    by_class = {}
    for r in rows:
        by_class.setdefault(r['category_name'], set()).add(r['source'].split(':', 1)[0])
    assert by_class[cats[0]['name']] == {'gen'} and by_class[cats[2]['name']] == {'web'}
    web = [r for r in rows if r['source'].startswith('web:')]
    assert 0 < len(web) <= 3 and all(osp.isabs(r['source'].split(':', 1)[1]) for r in web)
    assert all(r['seed'] == -1 and r['prompt'] == '' for r in web)  # folder images: no prompt


def test_routed_build_fails_before_any_work_on_an_unrouted_class(cat_json, tmp_path):
    ann, _ = cat_json
    with pytest.raises(ValueError, match='1 classes match no route'):
        small_build(tmp_path / 'work', ann, dict(type='RoutedSource',
                                                 routes=[dict(frequency=('r', 'c'),
                                                              source=toy(64))]))
    assert not (tmp_path / 'work' / 'gen').exists()


def test_report_counts_and_histograms_per_generator(tmp_path):
    from xpaste.builder.report import write_class_report, write_index

    def item(index, generator, reason='', score=25.0):
        return dict(index=index, chunk='c00000', pos=index, status='ok', message='', file='x',
                    height=8, width=8, prompt='p', seed=index, segmenter='classical',
                    generator=generator, area=0.3, component=1.0, clip_score=score,
                    image_score=20.0, reason=reason)

    items = [item(0, 'sd15'), item(1, 'sd15', 'clip_score', 15.0), item(2, 'sd21', score=30.0),
             item(3, 'sd21', 'duplicate', 29.0), item(4, 'sd21', score=None)]
    rec = dict(items=items, counts={'kept': 3, 'clip_score': 1, 'duplicate': 1}, threshold=21.0,
               class_max=30.0, dedup='clip')
    summary = write_class_report(str(tmp_path), '00001-a', dict(id=1, name='a'), rec,
                                 lambda i: (None, None), dict(thumb_side=16))
    gens = summary['generators']
    assert gens['sd15']['images'] == 2 and gens['sd15']['kept'] == 1
    assert gens['sd15']['dropped'] == {'clip_score': 1}
    assert gens['sd21']['images'] == 3 and gens['sd21']['kept'] == 2
    assert gens['sd21']['scores_kept'] == [30.0] and gens['sd21']['scores_dropped'] == [29.0]
    assert (tmp_path / 'hist' / '00001-a_gen.png').is_file()
    page = (tmp_path / 'classes' / '00001-a.html').read_text()
    assert 'Per generator' in page and '00001-a_gen.png' in page
    index = open(write_index(str(tmp_path), [summary, dict(summary, key='00002-b')],
                             dict(bins=5))).read()
    assert (tmp_path / 'hist' / 'all_generators.png').is_file()
    assert '<td class="name">sd21</td><td>6</td><td>4</td>' in index  # both classes added up
    # a single source: no per-generator part
    plain = write_class_report(str(tmp_path), '00003-c', dict(id=3, name='c'),
                               dict(rec, items=[dict(i, generator='') for i in items]),
                               lambda i: (None, None), dict(thumb_side=16))
    assert 'generators' not in plain

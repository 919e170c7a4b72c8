import builtins
import copy
import glob
import hashlib
import json
import logging
import os
import os.path as osp
import shutil
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.logging import MMLogger

from xpaste.bank import BankReader, BankWriter
from xpaste.builder import finisher, stream
from xpaste.builder.defaults import merge_defaults, recorded_options
from xpaste.builder.layout import Chunk, category_key
from xpaste.builder.pipeline import BankBuilder
from xpaste.builder.segmenters import ClassicalSegmenter
from xpaste.builder.sources import ToySource
from xpaste.toy import render_single_instance, toy_categories

NUM_CLASSES = 4


@pytest.fixture(scope='module')
def toy_json(tmp_path_factory):
    cats = [c.to_lvis() for c in toy_categories(NUM_CLASSES, seed=0)]
    path = tmp_path_factory.mktemp('cats') / 'toy_categories.json'
    path.write_text(json.dumps({'categories': cats, 'images': [], 'annotations': []}))
    return str(path)


def deep_update(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict) and k != 'source':
            deep_update(base[k], v)
        else:
            base[k] = v
    return base


def make_cfg(work_dir, ann, **over):
    cfg = dict(
        work_dir=str(work_dir), categories=dict(ann_file=ann), images_per_class=6, chunk_size=3,
        source=dict(type='ToySource', size=96),
        segment=dict(segmenters=[dict(type='ClassicalSegmenter', work_side=64)]), score=None,
        filter=dict(dedup='auto', dedup_hamming=2),
        write=dict(max_side=64, size_stats=False),
        report=dict(thumb_side=48, max_kept=4, max_dropped=4), workers=dict(type=None),
        progress=False)
    return deep_update(cfg, copy.deepcopy(over))


def bank_rows(bank_dir):
    """Every row of a bank with its decoded pixels hashed."""
    with BankReader(bank_dir) as reader:
        rows = []
        for i in range(len(reader)):
            rec = reader.record(i)
            rec['pixels'] = hashlib.sha1(reader.decode(i).tobytes()).hexdigest()
            rows.append({k: None if isinstance(v, float) and np.isnan(v) else v
                         for k, v in rec.items()})
    return rows


def build(cfg, stages='all', **kw):
    return BankBuilder(cfg, **kw).run(stages)


@pytest.fixture(scope='module')
def reference(toy_json, tmp_path_factory):
    """An uninterrupted one-rank build."""
    work_dir = tmp_path_factory.mktemp('reference')
    build(make_cfg(work_dir, toy_json))
    return work_dir, bank_rows(str(work_dir / 'bank'))


def test_reference_build(reference, toy_json):
    work_dir, rows = reference
    assert len(rows) > NUM_CLASSES * 6 * 0.8
    assert {r['category_name'] for r in rows} == {
        c['name'] for c in json.load(open(toy_json))['categories']}
    assert all(r['segmenter_name'] == 'classical' and r['clip_score'] is None for r in rows)
    first = rows[0]
    assert first['source'].startswith('images/') and first['prompt'].startswith('a photo of')
    assert first['seed'] >= 0 and max(first['height'], first['width']) <= 64
    # no row twice
    assert len({(r['category'], r['source']) for r in rows}) == len(rows)
    manifest = json.load(open(work_dir / 'bank' / 'manifest.json'))
    build_info = manifest['build']
    assert build_info['source']['type'] == 'ToySource' and build_info['seed'] == 0
    assert 'numpy' in build_info['package_versions'] and build_info['config_hash']
    assert build_info['filter']['min_area'] == 0.05
    filt = json.load(open(glob.glob(str(work_dir / 'filter' / '*.json'))[0]))
    assert sum(filt['counts'].values()) == 6 and filt['dedup'] == 'phash'


def test_rerun_skips_done_work(reference, toy_json, monkeypatch):
    work_dir, rows = reference

    def no_generate(*args, **kwargs):
        raise AssertionError('nothing should be generated again')

    monkeypatch.setattr(ToySource, 'generate', no_generate)
    summary = build(make_cfg(work_dir, toy_json))
    assert summary['stream']['chunks'] == 0 and summary['stream']['skipped'] == 8
    assert summary['filter']['classes'] == 0 and summary['write']['classes'] == 0
    assert bank_rows(str(work_dir / 'bank')) == rows


def test_killed_run_resumes_to_the_same_bank(reference, toy_json, tmp_path, monkeypatch):
    _, rows = reference
    calls = []
    original = ToySource.generate

    def dies_on_fourth_chunk(self, *args):
        calls.append(args[1])
        if len(calls) == 4:
            raise KeyboardInterrupt('killed')
        return original(self, *args)

    monkeypatch.setattr(ToySource, 'generate', dies_on_fourth_chunk)
    cfg = make_cfg(tmp_path, toy_json)
    with pytest.raises(KeyboardInterrupt):
        build(cfg)
    assert len(glob.glob(str(tmp_path / 'gen' / '*' / '*.json'))) == 3
    # class 0 was written on the way, and marked done at once
    assert len(glob.glob(str(tmp_path / 'write' / '*.json'))) == 1
    # leftovers of a killed atomic write are ignored
    leftover = tmp_path / 'gen' / category_key(json.load(open(toy_json))['categories'][1])
    leftover.mkdir(parents=True, exist_ok=True)
    (leftover / '.c00001.json.tmp-999').write_text('{"trunc')
    calls.clear()
    monkeypatch.setattr(ToySource, 'generate', lambda self, *a: calls.append(a[1]) or original(
        self, *a))
    written = []
    real_job = finisher.write_class_job
    monkeypatch.setattr(finisher, 'write_class_job', lambda job: written.append(job.part) or
                        real_job(job))
    build(cfg)
    assert len(calls) == 5  # only the chunks that were not done
    assert len(written) == NUM_CLASSES - 1  # only the classes that were not written
    assert bank_rows(str(tmp_path / 'bank')) == rows


def test_killed_write_resumes_to_the_same_bank(reference, toy_json, tmp_path, monkeypatch):
    _, rows = reference
    cfg = make_cfg(tmp_path, toy_json)
    build(cfg, ['generate', 'segment', 'score', 'filter'])
    added = []
    original = BankWriter.add

    def dies_after_eight(self, *args, **kwargs):
        if len(added) == 8:
            raise KeyboardInterrupt('killed')
        added.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BankWriter, 'add', dies_after_eight)
    with pytest.raises(KeyboardInterrupt):
        build(cfg, ['write'])
    monkeypatch.setattr(BankWriter, 'add', original)
    assert not osp.exists(tmp_path / 'bank' / 'manifest.json')
    build(cfg, ['write'])
    assert bank_rows(str(tmp_path / 'bank')) == rows


def test_lost_or_damaged_outputs_are_redone(reference, toy_json, tmp_path):
    _, rows = reference
    cfg = make_cfg(tmp_path, toy_json)
    build(cfg)
    os.remove(sorted(glob.glob(str(tmp_path / 'images' / '*' / '*.png')))[4])
    seg = sorted(glob.glob(str(tmp_path / 'seg' / 'classical' / '*' / '*.npz')))[-1]
    with open(seg, 'wb') as f:
        f.write(b'garbage')
    summary = build(cfg)
    assert summary['stream']['chunks'] == 2  # the chunk missing an image, the damaged one
    assert bank_rows(str(tmp_path / 'bank')) == rows


def test_two_ranks_give_the_same_bank(reference, toy_json, tmp_path, monkeypatch):
    """Ranks run one after the other, stage by stage, through the command line."""
    from tools.bank.build import main
    _, rows = reference
    cfg_path = tmp_path / 'toy_cfg.py'
    cfg = make_cfg(tmp_path / 'work', toy_json)
    cfg_path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()))
    for stage in ('generate', 'segment', 'filter', 'write', 'report'):
        for rank in (1, 0):
            monkeypatch.setenv('RANK', str(rank))
            monkeypatch.setenv('WORLD_SIZE', '2')
            main([str(cfg_path), '--stage', stage, '--cfg-options', 'dist.wait_timeout=0'])
    gens = glob.glob(str(tmp_path / 'work' / 'gen' / '*' / '*.json'))
    assert len(gens) == 8
    assert bank_rows(str(tmp_path / 'work' / 'bank')) == rows
    assert osp.isfile(tmp_path / 'work' / 'report' / 'index.html')


def test_rank_waits_for_other_ranks_outputs(toy_json, tmp_path):
    """8 chunks on 3 ranks: class 2's chunks are on ranks 1 and 2; rank 2 filters it."""
    cfg = make_cfg(tmp_path, toy_json)
    builder = BankBuilder(cfg, rank=2, world_size=3)
    plan = builder.ctx.plan
    assert [c.cat for c in plan.my_chunks()] == [2, 3, 3]
    assert plan.my_classes() == [2, 3]
    assert not plan.is_local(2) and plan.is_local(3)
    assert [BankBuilder(cfg, rank=r, world_size=3).ctx.plan.my_classes()
            for r in (0, 1)] == [[0], [1]]
    cfg['dist'] = dict(wait_timeout=0.2, poll_interval=0.05)
    with pytest.raises(TimeoutError, match=r'2 chunk outputs needed by the filter stage missing '
                       r'after waiting 0 s: gen output of 00003-[a-z_]+/c00000, classical'):
        build(cfg, ['generate', 'segment', 'score', 'filter'], rank=2, world_size=3)
    filter_stage = builder.stages['filter']
    assert osp.isfile(filter_stage.path(3))  # class 3 was filtered as soon as it was done
    assert not osp.isfile(filter_stage.path(2))


def test_filter_reruns_alone_from_saved_outputs(reference, toy_json, tmp_path, monkeypatch):
    from tools.bank.build import main
    cfg = make_cfg(tmp_path, toy_json)
    build(cfg)
    kept_before = len(bank_rows(str(tmp_path / 'bank')))
    saved = sorted(glob.glob(str(tmp_path / 'seg' / '**' / '*.npz'), recursive=True) +
                   glob.glob(str(tmp_path / 'gen' / '*' / '*.json')))
    mtimes = [os.stat(p).st_mtime_ns for p in saved]
    monkeypatch.setattr(ToySource, 'generate', lambda *a: pytest.fail('regenerated'))
    cfg_path = tmp_path / 'cfg.py'
    cfg_path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()))
    main([str(cfg_path), '--stage', 'filter', '--cfg-options', 'filter.min_area=0.3'])
    counts = [json.load(open(p))['counts'] for p in glob.glob(str(tmp_path / 'filter' / '*'))]
    assert sum(c['area_small'] for c in counts) > 0
    assert [os.stat(p).st_mtime_ns for p in saved] == mtimes
    assert len(bank_rows(str(tmp_path / 'bank'))) == kept_before  # write not rerun yet
    main([str(cfg_path), '--stage', 'all', '--cfg-options', 'filter.min_area=0.3'])
    assert len(bank_rows(str(tmp_path / 'bank'))) == sum(c['kept'] for c in counts)


def test_process_pool_gives_the_same_bank(reference, toy_json, tmp_path):
    _, rows = reference
    cfg = make_cfg(tmp_path, toy_json,
                   workers=dict(type='process', num_workers=2, max_pending=2))
    summary = build(cfg, ['generate', 'segment', 'score', 'filter', 'write'])
    assert summary['stream']['images'] == NUM_CLASSES * 6
    assert bank_rows(str(tmp_path / 'bank')) == rows


def test_stage_needs_earlier_stage(toy_json, tmp_path):
    with pytest.raises(FileNotFoundError, match='run --stage generate first'):
        build(make_cfg(tmp_path, toy_json), ['segment'])
    with pytest.raises(FileNotFoundError, match='run --stage filter first'):
        build(make_cfg(tmp_path, toy_json), ['write'])


def test_missing_model_path_fails_before_any_work(toy_json, tmp_path):
    cfg = make_cfg(tmp_path, toy_json, source=dict(type='DiffusersSource',
                                                   model='/no/such/stable-diffusion'))
    with pytest.raises(FileNotFoundError, match="'/no/such/stable-diffusion'"):
        BankBuilder(cfg)
    assert not osp.exists(tmp_path / 'gen')
    with pytest.raises(ValueError, match="unknown bank build option 'filters'"):
        merge_defaults(dict(filters=dict()))


def test_folder_source_with_corrupt_image_and_empty_class(toy_json, tmp_path):
    cats = json.load(open(toy_json))['categories']
    import cv2
    for c, cat in enumerate(toy_categories(NUM_CLASSES, seed=0)[:2]):
        folder = tmp_path / 'images_in' / cat.name
        folder.mkdir(parents=True)
        for i in range(3):
            image, _ = render_single_instance(cat, np.random.default_rng([c, i]), size=96)
            cv2.imwrite(str(folder / f'{i:03d}.jpg'), image)
    (tmp_path / 'images_in' / cats[0]['name'] / '001.jpg').write_bytes(b'\x00garbage')
    cfg = make_cfg(tmp_path / 'work', toy_json, images_per_class=None,
                   source=dict(type='FolderSource', root=str(tmp_path / 'images_in')))
    build(cfg)
    rows = bank_rows(str(tmp_path / 'work' / 'bank'))
    assert {r['category_name'] for r in rows} == {cats[0]['name'], cats[1]['name']}
    assert all(r['seed'] == -1 and r['prompt'] == '' for r in rows)
    assert all(r['source'].startswith(str(tmp_path / 'images_in')) for r in rows)
    first = json.load(open(tmp_path / 'work' / 'filter' / f'{category_key(cats[0])}.json'))
    assert first['counts']['corrupt_image'] == 1
    bad = [i for i in first['items'] if i['reason'] == 'corrupt_image'][0]
    assert '001.jpg' in bad['message']
    index = (tmp_path / 'work' / 'report' / 'index.html').read_text()
    assert '2 classes have no instance in the bank' in index


class FlakyPipe:
    """A text-to-image pipeline stand-in: toy images, of every 3 images of a batch the second
    has a NaN and the third is black."""

    def __call__(self, prompt, generator, **kwargs):
        cat = toy_categories(1, seed=0)[0]
        images = []
        for g in generator:
            image, _ = render_single_instance(cat, np.random.default_rng(g.initial_seed()), 96)
            images.append(image[..., ::-1].astype(np.float32) / 255)
        images = np.stack(images)
        images[1::3, 5, 5] = np.nan
        images[2::3] = 0
        return SimpleNamespace(images=images, nsfw_content_detected=None)

    def to(self, *a, **k):
        return self

    def set_progress_bar_config(self, **k):
        pass


def test_generator_nan_and_black_images_are_dropped_and_counted(toy_json, tmp_path):
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect()
    MMLogger.get_current_instance().addHandler(handler)
    try:
        cfg = make_cfg(tmp_path, toy_json, images_per_class=3, categories=dict(max_classes=2),
                       source=dict(type='DiffusersSource', model='fake/sd', pipeline=FlakyPipe(),
                                   device='cpu'))
        build(cfg)
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    counts = [json.load(open(p))['counts'] for p in glob.glob(str(tmp_path / 'filter' / '*'))]
    assert [c['nan_image'] for c in counts] == [1, 1]
    assert [c['black_image'] for c in counts] == [1, 1]
    assert len(bank_rows(str(tmp_path / 'bank'))) == 2
    assert sum('NaN/inf pixels' in r for r in records) == 2
    assert sum('black image' in r for r in records) == 2
    assert sum('CLIP scoring skipped' in r for r in records) == 1


def test_images_made_in_the_main_process_stay_there(toy_json, tmp_path, monkeypatch):
    """GPU source and GPU segmenter: the workers get the images to save and send none back;
    the segment stage alone gets them from the workers."""
    monkeypatch.setattr(ClassicalSegmenter, 'uses_gpu', True)  # runs in the main process
    calls = []
    real_job = stream.cpu_chunk_job

    def recording(job):
        result = real_job(job)
        calls.append((job.items is not None, result.images is not None))
        return result

    monkeypatch.setattr(stream, 'cpu_chunk_job', recording)
    cfg = make_cfg(tmp_path, toy_json, images_per_class=3, categories=dict(max_classes=2),
                   source=dict(type='DiffusersSource', model='fake/sd', pipeline=FlakyPipe(),
                               device='cpu'))
    build(cfg, ['generate', 'segment', 'score', 'filter', 'write'])
    assert calls == [(True, False)] * 2
    assert len(glob.glob(str(tmp_path / 'seg' / 'classical' / '*' / '*.npz'))) == 2
    assert len(bank_rows(str(tmp_path / 'bank'))) == 2
    shutil.rmtree(tmp_path / 'seg')
    calls.clear()
    build(cfg, ['segment'])
    assert calls == [(False, True)] * 2


class Links(HTMLParser):

    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ('src', 'href')]


def test_report_links_resolve(reference):
    work_dir, _ = reference
    pages = [work_dir / 'report' / 'index.html'] + sorted(
        (work_dir / 'report' / 'classes').glob('*.html'))
    assert len(pages) == NUM_CLASSES + 1
    for page in pages:
        parser = Links()
        parser.feed(page.read_text())
        assert parser.links
        for link in parser.links:
            assert not osp.isabs(link) and osp.isfile(osp.join(page.parent, link)), link
    assert len(glob.glob(str(work_dir / 'report' / 'hist' / '*.png'))) == NUM_CLASSES + 1


def test_category_file_is_parsed_once(toy_json, tmp_path, monkeypatch):
    """Categories and size statistics come from one parse of the annotation file."""
    data = json.load(open(toy_json))
    data['images'] = [dict(id=1, width=100, height=50, file_name='a.jpg')]
    data['annotations'] = [
        dict(id=i + 1, image_id=1, category_id=c['id'], bbox=[0, 0, 10, 20], area=200.0)
        for i, c in enumerate(data['categories'])
    ]
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(data))
    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if str(file) == str(ann):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', counting_open)
    build(make_cfg(tmp_path / 'work', str(ann), images_per_class=3,
                   write=dict(size_stats=True)), ['generate', 'segment', 'filter', 'write'])
    monkeypatch.undo()
    assert len(opened) == 1
    stats = json.load(open(tmp_path / 'work' / 'bank' / 'manifest.json'))['size_stats']
    assert stats['source'] == 'ann.json' and stats['num_annotations'] == NUM_CLASSES
    assert stats['categories'][data['categories'][0]['name']]['mean'] == pytest.approx(0.2)


def test_filter_reads_no_masks(toy_json, tmp_path, monkeypatch):
    """The filter reads the per-image scalars of the segment outputs, not their masks."""
    cfg = make_cfg(tmp_path, toy_json)
    build(cfg, ['generate', 'segment', 'score'])
    read = []
    original = np.lib.npyio.NpzFile.__getitem__

    def recording(self, key):
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, '__getitem__', recording)
    assert build(cfg, ['filter'])['filter']['classes'] == NUM_CLASSES
    assert {'meta', 'area', 'component', 'phash'} <= set(read)
    assert not [key for key in read if key.startswith('mask_')]


def test_chunks_cover_each_class(toy_json, tmp_path):
    builder = BankBuilder(make_cfg(tmp_path, toy_json, images_per_class=7, chunk_size=3))
    chunks = builder.ctx.plan.chunks
    assert chunks[:3] == [Chunk(0, 0, 0, 3), Chunk(0, 1, 3, 6), Chunk(0, 2, 6, 7)]
    assert sum(len(c) for c in chunks) == 7 * NUM_CLASSES


def configured_as(desc, value) -> bool:
    """Whether a described setting has the configured ``value``: a dict, the keys the config
    gives (the component may fill in the others), recursively; a nested component config (a
    dict with ``type``), the keys it describes, as at the top level; a list, element by
    element."""
    if isinstance(value, dict):
        if not isinstance(desc, dict):
            return False
        keys = [k for k in value if k in desc] if 'type' in value else list(value)
        return all(k in desc and configured_as(desc[k], value[k]) for k in keys)
    if isinstance(value, (list, tuple)) and isinstance(desc, (list, tuple)):
        return len(desc) == len(value) and all(configured_as(d, v) for d, v in zip(desc, value))
    return desc == value


def assert_configured(component, cfg):
    """The settings of ``cfg`` that ``component`` describes have the config's values (a dict
    setting: the keys the config gives; the component may fill in the others)."""
    desc = component.describe()
    shared = [k for k in cfg if k in desc and k != 'type']
    for key in shared:
        assert configured_as(desc[key], cfg[key]), (key, desc[key], cfg[key])
    return shared


@pytest.mark.parametrize('config', sorted(glob.glob('configs/bank/*.py')))
def test_bank_configs_build_their_components(config):
    from mmengine.config import Config

    from xpaste.builder.clip_scoring import ClipScorer
    from xpaste.builder.filters import InstanceFilter
    from xpaste.builder.segmenters import SEGMENTERS, build_segmenters
    from xpaste.builder.sources import build_source
    cfg = merge_defaults(Config.fromfile(config).to_dict())
    source = build_source(cfg['source'])
    assert type(source).__name__ == source.describe()['type'] == cfg['source']['type']
    assert assert_configured(source, cfg['source'])  # e.g. model, steps, size or root
    seg_cfgs = cfg['segment']['segmenters']
    segmenters = build_segmenters(seg_cfgs)
    assert [type(s).__name__ for s in segmenters] == [c['type'] for c in seg_cfgs]
    assert [s.name for s in segmenters] == [
        c.get('name', SEGMENTERS.get(c['type']).default_name) for c in seg_cfgs]
    for seg, seg_cfg in zip(segmenters, seg_cfgs):
        assert_configured(seg, seg_cfg)
    instance_filter = InstanceFilter(**cfg['filter'])
    # every threshold as configured (options still off are not described, as a bank records;
    # a dict option may be described with its defaults filled in)
    desc, configured = instance_filter.describe(), recorded_options(cfg)['filter']
    assert set(desc) == set(configured) and configured_as(desc, configured)
    if cfg['score'] is not None:
        scorer = ClipScorer(**cfg['score'])
        assert {'model', 'pretrained'} <= set(assert_configured(scorer, cfg['score']))


@pytest.mark.slow
def test_pipeline_with_tiny_real_models(toy_json, tmp_path):
    """Diffusers generator, classical + SAM ensemble and CLIP scoring, all loaded from disk
    through the real loading code, through the command line."""
    from tools.bank.build import main

    from xpaste.testing.random_models import (TINY_OPEN_CLIP, TINY_SAM_TYPE, save_sd_pipeline,
                                           save_tiny_open_clip, save_tiny_sam)
    cfg = make_cfg(
        tmp_path / 'work', toy_json, images_per_class=4, chunk_size=2,
        categories=dict(max_classes=2),
        source=dict(type='DiffusersSource', model=save_sd_pipeline(str(tmp_path / 'sd')),
                    dtype='float32', num_inference_steps=2, height=32, width=32, batch_size=3,
                    device='cpu'),
        segment=dict(segmenters=[
            dict(type='BenchmarkSegmenter', work_side=32),
            dict(type='SAMSegmenter', checkpoint=save_tiny_sam(str(tmp_path / 'sam.pth')),
                 model_type=TINY_SAM_TYPE, device='cpu')]),
        score=dict(model=TINY_OPEN_CLIP, pretrained=save_tiny_open_clip(str(tmp_path / 'c.pt')),
                   device='cpu', precision='fp32'),
        filter=dict(min_clip=None, tolerance=None, min_area=0.0, max_area=1.0))
    # a config registers extra components with custom_imports, as in mmdet
    cfg['custom_imports'] = dict(imports=['xpaste.testing.benchmark'], allow_failed_imports=False)
    cfg_path = tmp_path / 'cfg.py'
    cfg_path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()))
    main([str(cfg_path)])
    assert len(glob.glob(str(tmp_path / 'work' / 'score' / '*' / '*.npz'))) == 4
    rows = bank_rows(str(tmp_path / 'work' / 'bank'))
    assert rows and all(r['clip_score'] is not None and r['image_score'] is not None
                        for r in rows)
    assert {r['segmenter_name'] for r in rows} <= {'classical', 'sam'}
    filt = json.load(open(glob.glob(str(tmp_path / 'work' / 'filter' / '*.json'))[0]))
    assert filt['dedup'] == 'clip' and filt['class_max'] is not None
    manifest = json.load(open(tmp_path / 'work' / 'bank' / 'manifest.json'))
    assert [s['type'] for s in manifest['build']['segmenters']] == ['BenchmarkSegmenter',
                                                                     'SAMSegmenter']
    assert manifest['build']['scorer']['model'] == TINY_OPEN_CLIP

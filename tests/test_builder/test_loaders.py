"""Model loading settings (dtypes, devices), option names of every config section, and
category names."""
import numpy as np
import pytest

from xpaste.builder.segmenters import SAMSegmenter


@pytest.fixture(scope='module')
def tiny_sam(tmp_path_factory):
    from xpaste.testing.random_models import TINY_SAM_TYPE, save_tiny_sam
    return save_tiny_sam(str(tmp_path_factory.mktemp('sam') / 'sam_tiny.pth')), TINY_SAM_TYPE


def test_sam_runs_its_image_encoder_in_bfloat16(tiny_sam):
    import torch
    ckpt, model_type = tiny_sam
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(2)]
    kw = dict(checkpoint=ckpt, model_type=model_type, device='cpu')
    seg = SAMSegmenter(dtype='bfloat16', **kw)
    masks = seg.segment(images, {'name': 'x'})
    assert seg.model.image_encoder.patch_embed.proj.weight.dtype == torch.bfloat16
    assert seg.model.mask_decoder.iou_prediction_head.layers[0].weight.dtype == torch.float32
    assert [m.shape for m in masks] == [(40, 48)] * 2 and masks[0].dtype == bool
    with torch.inference_mode():  # the embeddings reach the decoder as float32
        embedding = seg.model.image_encoder(torch.zeros(1, 3, 64, 64))
    assert embedding.dtype == torch.float32
    assert seg.describe()['dtype'] == 'bfloat16'
    points = SAMSegmenter(dtype='bfloat16', prompt_mode='border_points', **kw)
    assert [m.shape for m in points.segment(images, {'name': 'x'})] == [(40, 48)] * 2
    full = SAMSegmenter(**kw)
    full.segment(images[:1], {'name': 'x'})
    assert full.model.image_encoder.patch_embed.proj.weight.dtype == torch.float32
    assert 'dtype' not in full.describe()  # float32 builds keep their fingerprints
    with pytest.raises(ValueError, match="got 'float8'"):
        SAMSegmenter(checkpoint=ckpt, dtype='float8')


def test_sam_float16_falls_back_to_float32_on_cpu(tiny_sam, log_messages):
    import torch
    ckpt, model_type = tiny_sam
    seg = SAMSegmenter(
        checkpoint=ckpt, model_type=model_type, device='cpu', dtype='float16', name='sam_half')
    seg.setup()
    assert seg.model.image_encoder.patch_embed.proj.weight.dtype == torch.float32
    assert any(m.startswith("segmenter 'sam_half': dtype float16 on the CPU") for m in log_messages)


def build_context(tmp_path, **overrides):
    from xpaste.builder.context import BuildContext
    cfg = dict(
        work_dir=str(tmp_path / 'work'),
        categories=dict(names=['red_plain_star']),
        images_per_class=1,
        source=dict(type='ToySource', size=32),
        progress=False)
    cfg.update(overrides)
    return BuildContext.from_config(cfg, rank=0, world_size=1)


@pytest.mark.parametrize('override, message', [
    (dict(filter=dict(min_clipp=20)),
     r"^filter: unknown option 'min_clipp' \(known: min_clip, tolerance, min_area, .*\); did "
     r"you mean 'min_clip'\?$"),
    (dict(source=dict(type='ToySource', sise=32)),
     r"^source: unknown option 'sise' \(known: type, size, gap\); did you mean 'size'\?$"),
    (dict(
        segment=dict(segmenters=[
            dict(type='ClassicalSegmenter'),
            dict(type='ClassicalSegmenter', name='b', work_sid=64)
        ])),
     r"^segment\.segmenters\[1\]: unknown option 'work_sid' \(known: type, .*work_side.*\)"),
    (dict(segment=dict(largest=False)), r"^segment: unknown option 'largest' \(known: "
     r'segmenters, largest_component\); did you mean'),
    (dict(score=dict(model='ViT-B-32', pretraind='openai')),
     r"^score: unknown option 'pretraind' .*did you mean 'pretrained'"),
    (dict(categories=dict(names=['a'], max_class=1)), r"^categories: unknown option 'max_class'"),
    (dict(prompts=dict(template=['a {name}'])), r"^prompts: unknown option 'template' "),
    (dict(write=dict(qualty=90, shards=2)), r"^write: unknown options 'qualty', 'shards' "
     r"\(known: image_format, quality, .*\); did you mean 'quality'"),
    (dict(report=dict(thumb=64)), r"^report: unknown option 'thumb' "),
    (dict(workers=dict(num_worker=2)), r"^workers: unknown option 'num_worker' "),
    (dict(dist=dict(poll=1.0)), r"^dist: unknown option 'poll' "),
    (dict(generate=dict(format='png')), r"^generate: unknown option 'format' "),
])
def test_unknown_options_name_their_section(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        build_context(tmp_path, **override)


def test_options_of_nested_sources_and_shipped_configs(tmp_path):
    import glob

    from mmengine import Config

    from xpaste.builder.defaults import merge_defaults
    from xpaste.builder.options import check_options
    mixed = dict(
        type='MixedSource',
        sources=[dict(type='ToySource', name='a'),
                 dict(type='ToySource', name='b', sise=32)])
    with pytest.raises(ValueError, match=r"^source\.sources\[1\]: unknown option 'sise'"):
        check_options(merge_defaults(dict(source=mixed)))
    mixed['sources'][1].pop('sise')
    check_options(merge_defaults(dict(source=mixed)))  # entries may carry a name
    configs = sorted(glob.glob('configs/bank/*.py'))
    assert configs
    for path in configs:  # every shipped config uses known options only
        check_options(merge_defaults(Config.fromfile(path).to_dict()))
    assert build_context(tmp_path).filter is not None  # the defaults pass


def test_category_names_are_normalised(tmp_path):
    import json

    from xpaste.builder.prompts import load_categories, read_category_file
    cats = load_categories(
        names=['zebra ', '  aerosol   can', 'yak'], include=['zebra'], exclude=None)
    assert [c['name'] for c in cats] == ['zebra']
    assert [c['name'] for c in load_categories(names=['a  b '])] == ['a b']
    with pytest.raises(
            ValueError,
            match=r"category names 'zebra' and 'zebra ' are the same "
            r"class 'zebra' once whitespace is normalised"):
        load_categories(names=['zebra', 'zebra '])
    path = tmp_path / 'cats.json'
    path.write_text(
        json.dumps(dict(categories=[dict(id=1, name='red_star '),
                                    dict(id=2, name='yak')])))
    data = read_category_file(str(path))  # the same parse gives the size statistics
    assert [c['name'] for c in data['categories']] == ['red_star', 'yak']
    assert [c['name'] for c in load_categories(str(path), data=data)] == ['red_star', 'yak']
    path.write_text(json.dumps(dict(categories=[dict(id=1, name='yak'), dict(id=2, name=' yak')])))
    with pytest.raises(ValueError, match=r"cats.json: category names 'yak' and ' yak'"):
        read_category_file(str(path))
    with pytest.raises(ValueError, match='non-empty "name"'):
        load_categories(names=['   '])


def test_configs_name_hub_ids_that_resolve():
    import glob

    from mmengine import Config
    cfg = Config.fromfile('configs/bank/lvis_sd15.py')
    # runwayml/stable-diffusion-v1-5 was taken down; SD 1.5 lives on under this id
    assert cfg.source['model'] == 'stable-diffusion-v1-5/stable-diffusion-v1-5'
    files = glob.glob('configs/**/*.py', recursive=True) + glob.glob('docs/*.md') + ['README.md']
    assert not [f for f in files if 'runwayml/' in open(f).read()]

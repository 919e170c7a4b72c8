from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from xpaste.builder.diffusers_source import (DiffusersSource, array_item, images_to_uint8,
                                             tensor_items)
from xpaste.builder.sources import (DEFAULT_BLACK_MAX, FolderSource, SourceItem, ToySource,
                                    build_source, check_image, derive_seed, read_image)
from xpaste.toy import toy_categories

CAT = {'id': 1, 'name': 'red_plain_star'}


def test_derive_seed():
    assert derive_seed(0, 5, 3) == derive_seed(0, 5, 3)
    seeds = {derive_seed(0, c, i) for c in range(1, 20) for i in range(50)}
    assert len(seeds) == 19 * 50
    assert derive_seed(1, 5, 3) != derive_seed(0, 5, 3)
    assert 0 <= derive_seed(2**40, 5, 3) < 2**31


def test_toy_source():
    name = toy_categories(4, seed=0)[3].name
    source = build_source(dict(type='ToySource', size=64))
    source.check_categories([{'id': 4, 'name': name}])
    a = source.generate({'id': 4, 'name': name}, [0, 1], ['p0', 'p1'], [11, 12])
    b = source.generate({'id': 4, 'name': name}, [1], ['p1'], [12])
    assert [i.index for i in a] == [0, 1] and a[1].prompt == 'p1' and a[1].seed == 12
    assert a[0].image.shape == (64, 64, 3) and a[0].image.dtype == np.uint8
    assert np.array_equal(a[1].image, b[0].image)  # the seed alone decides the image
    assert not np.array_equal(a[0].image, a[1].image)
    with pytest.raises(ValueError, match="'zebra' is not a toy category"):
        source.check_categories([{'id': 1, 'name': 'zebra'}])
    with pytest.raises(ValueError, match=r'ToySource.size must lie in \[16, inf\), got 4'):
        ToySource(size=4)


def test_folder_source(tmp_path):
    (tmp_path / 'zebra').mkdir()
    (tmp_path / 'aerosol can').mkdir()  # a folder named with spaces is found too
    for i in range(3):
        cv2.imwrite(str(tmp_path / 'zebra' / f'{i}.png'), np.full((40, 80, 3), 50 * i, np.uint8))
    (tmp_path / 'zebra' / '1.png').write_bytes(b'not an image')
    (tmp_path / 'zebra' / 'notes.txt').write_text('ignored')
    cv2.imwrite(str(tmp_path / 'aerosol can' / 'a.jpg'), np.zeros((10, 10, 3), np.uint8))
    source = FolderSource(str(tmp_path), max_side=32)
    source.check()
    zebra = {'id': 2, 'name': 'zebra'}
    assert source.num_images(zebra, None) == 3
    assert source.num_images(zebra, 2) == 2
    assert source.num_images({'id': 1, 'name': 'aerosol_can'}, None) == 1
    assert source.num_images({'id': 3, 'name': 'yak'}, None) == 0  # no folder: no images
    items = source.generate(zebra, [0, 1, 2], [''] * 3, [-1] * 3)
    assert [i.status for i in items] == ['ok', 'corrupt', 'ok']
    assert '1.png' in items[1].message and items[1].image is None
    assert items[0].image.shape == (16, 32, 3)  # downscaled to max_side
    assert items[2].file.endswith('2.png')
    with pytest.raises(FileNotFoundError, match='not a directory'):
        FolderSource(str(tmp_path / 'nope')).check()
    assert read_image(str(tmp_path / 'zebra' / 'notes.txt')) is None
    assert read_image(str(tmp_path / 'missing.png')) is None


def test_check_image():
    ok = check_image(SourceItem(0, image=np.full((8, 8, 3), 100, np.uint8)))
    assert ok.status == 'ok'
    black = check_image(SourceItem(1, image=np.full((8, 8, 3), 3, np.uint8)))
    assert black.status == 'black' and black.image is None and 'black image' in black.message


class FakePipe:
    """Stands for a diffusers pipeline: returns given float images (NHWC numpy for
    output_type='np', NCHW tensors for 'pt', as diffusers does), and records the calls."""

    def __init__(self, images, nsfw=None):
        self.images, self.nsfw, self.calls = images, nsfw, []

    def __call__(self, prompt, generator, **kwargs):
        self.calls.append(
            dict(prompt=prompt, seeds=[g.initial_seed() for g in generator], **kwargs))
        n = len(prompt)
        images = self.images[:n]
        if kwargs.get('output_type') == 'pt':
            images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        return SimpleNamespace(
            images=images,
            nsfw_content_detected=(self.nsfw[:n] if self.nsfw is not None else None))

    def to(self, *args, **kwargs):
        return self

    def set_progress_bar_config(self, **kwargs):
        pass


@pytest.mark.parametrize('postprocess,output_type', [('host', 'np'), ('device', 'pt')])
def test_diffusers_source_reports_nan_and_black_images(postprocess, output_type):
    good = np.full((16, 16, 3), 0.5, np.float32)
    nan = good.copy()
    nan[3, 3, 1] = np.nan
    black = np.zeros_like(good)
    pipe = FakePipe(np.stack([good, nan, black, good]), nsfw=[False, False, False, True])
    source = DiffusersSource(
        model='fake/model',
        pipeline=pipe,
        device='cpu',
        batch_size=4,
        negative_prompt='blurry',
        num_inference_steps=3,
        postprocess=postprocess)
    source.check()  # a given pipeline needs no model path
    items = source.generate(CAT, [0, 1, 2, 3], ['p'] * 4, [7, 8, 9, 10])
    assert [i.status for i in items] == ['ok', 'nan', 'black', 'black']
    assert items[0].image.dtype == np.uint8 and items[0].image[0, 0].tolist() == [128] * 3
    assert "NaN/inf pixels (model 'fake/model'" in items[1].message
    assert 'safety checker' in items[3].message
    call = pipe.calls[0]
    assert call['seeds'] == [7, 8, 9, 10] and call['negative_prompt'] == ['blurry'] * 4
    assert call['num_inference_steps'] == 3 and call['output_type'] == output_type


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_device_uint8_conversion_equals_the_host_path(dtype):
    """uint8 conversion, NaN and black checks on a tensor (postprocess='device') give what the
    host path gives on diffusers' numpy output of the same tensor, bit for bit."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((7, 3, 24, 20), dtype=np.float32))
    # values on the rounding boundaries: k / 255 and (k + 0.5) / 255
    x[0, 0, 0, :8] = torch.tensor([0.0, 1.0, 0.5, 127.5 / 255, 128 / 255, 0.5 / 255, 254.5 / 255,
                                   1 / 255])
    x[1, 1, 5, 5] = float('nan')
    x[2] = 8.4 / 255  # black: rounds to 8
    x[3] = 9 / 255  # not black
    x[4, 2, 3, 3] = float('inf')
    x = x.to(dtype)
    host = x.permute(0, 2, 3, 1).float().numpy()  # what diffusers' output_type='np' returns
    bgr, finite, peak = images_to_uint8(x)
    assert bgr.dtype == torch.uint8 and bgr.shape == (7, 24, 20, 3) and bgr.is_contiguous()
    assert finite.tolist() == [bool(np.isfinite(h).all()) for h in host]
    meta = [(i, 'p', i, False) for i in range(len(host))]
    expected = [array_item(h, m, DEFAULT_BLACK_MAX, 'nan!') for h, m in zip(host, meta)]
    got = tensor_items(x, meta, DEFAULT_BLACK_MAX, 'nan!')
    assert [g.status for g in got] == [e.status for e in expected] == [
        'ok', 'nan', 'black', 'ok', 'nan', 'ok', 'ok']
    assert [g.message for g in got] == [e.message for e in expected]
    for g, e, p in zip(got, expected, peak.tolist()):
        if e.status == 'ok':
            assert np.array_equal(g.image, e.image) and int(e.image.max()) == p
            assert np.array_equal(g.device_image.numpy(), e.image)


def test_diffusers_source_checks_paths_before_loading(tmp_path):
    with pytest.raises(FileNotFoundError, match="model path does not exist: '/no/such/sd15'"):
        DiffusersSource(model='/no/such/sd15').check()
    with pytest.raises(FileNotFoundError, match='source.vae.path.*no_vae'):
        DiffusersSource(
            model=str(tmp_path), vae=dict(type='AutoencoderTiny',
                                          path=str(tmp_path / 'no_vae'))).check()
    with pytest.raises(ValueError, match='multiple of 8, got 100'):
        DiffusersSource(model='x/y', height=100)


@pytest.fixture(scope='module')
def tiny_sd(tmp_path_factory):
    from xpaste.testing.random_models import save_sd_pipeline
    return save_sd_pipeline(str(tmp_path_factory.mktemp('sd') / 'tiny-sd'), arch='tiny')


def test_diffusers_source_loads_a_saved_pipeline(tiny_sd):
    cat = {'id': 3, 'name': 'zebra'}
    kw = dict(
        model=tiny_sd,
        dtype='float16',
        num_inference_steps=2,
        device='cpu',
        height=32,
        width=32,
        scheduler='EulerDiscreteScheduler')
    source = DiffusersSource(batch_size=2, **kw)
    source.check()
    items = source.generate(cat, [0, 1, 2], ['a zebra'] * 3, [1, 2, 3])
    assert type(source.pipe.scheduler).__name__ == 'EulerDiscreteScheduler'
    assert [i.image.shape for i in items] == [(32, 32, 3)] * 3
    # one seed per image: the batch an image is in does not change it
    alone = DiffusersSource(batch_size=1, **kw).generate(cat, [2], ['a zebra'], [3])
    np.testing.assert_allclose(alone[0].image.astype(int), items[2].image.astype(int), atol=2)
    assert not np.array_equal(items[0].image, items[1].image)


@pytest.fixture(scope='module')
def tiny_single_file(tmp_path_factory):
    """A tiny SD pipeline saved as original-layout single files (safetensors and ckpt), with a
    weightless diffusers config folder; returns (pipeline, folder)."""
    from xpaste.testing.random_models import save_sd_single_file
    root = tmp_path_factory.mktemp('single')
    pipe = save_sd_single_file(
        str(root / 'tiny-sd.safetensors'), seed=3, config_dir=str(root / 'config'))
    save_sd_single_file(str(root / 'tiny-sd.ckpt'), seed=3)
    return pipe, root


@pytest.mark.parametrize('name', ['tiny-sd.safetensors', 'tiny-sd.ckpt'])
def test_diffusers_source_loads_a_single_file_checkpoint(tiny_single_file, name):
    import torch
    pipe, root = tiny_single_file
    config = root / 'config'
    assert not list(config.rglob('*.safetensors')) and not list(config.rglob('*.bin'))
    source = DiffusersSource(
        model=str(root / name),
        config=str(config),
        dtype='float32',
        num_inference_steps=2,
        device='cpu',
        height=32,
        width=32,
        safety_checker=False)
    source.check()
    items = source.generate(CAT, [0, 1], ['a star'] * 2, [1, 2])
    assert type(source.pipe).__name__ == 'StableDiffusionPipeline'  # config's _class_name
    assert [i.status for i in items] == ['ok', 'ok'] and items[0].image.shape == (32, 32, 3)
    for part in ('unet', 'vae', 'text_encoder'):  # every weight comes from the file
        saved, loaded = getattr(pipe, part).state_dict(), getattr(source.pipe, part).state_dict()
        assert saved.keys() == loaded.keys()
        assert all(torch.equal(saved[k], loaded[k].reshape(saved[k].shape)) for k in saved)
    assert source.describe()['config'] == str(config)


def test_diffusers_source_single_file_settings(tiny_single_file, tmp_path, monkeypatch):
    import diffusers
    _, root = tiny_single_file
    ckpt = str(root / 'tiny-sd.safetensors')
    (tmp_path / 'weights.txt').write_text('x')
    with pytest.raises(ValueError, match=r"'.*weights.txt' is a file but not a single-file"):
        DiffusersSource(model=str(tmp_path / 'weights.txt')).check()
    with pytest.raises(ValueError, match='source.config is only used for a single-file'):
        DiffusersSource(model=str(tmp_path), config=str(root / 'config')).check()
    with pytest.raises(FileNotFoundError, match='source.config: model path does not exist'):
        DiffusersSource(model=ckpt, config=str(tmp_path / 'no_config')).check()
    with pytest.raises(FileNotFoundError, match='source.original_config.*v1-inference.yaml'):
        DiffusersSource(model=ckpt, original_config='v1-inference.yaml').check()
    with pytest.raises(ValueError, match="source.pipeline_class: diffusers has no class 'SDXL'"):
        DiffusersSource(model=ckpt, pipeline_class='SDXL').check()
    # the configured class loads the file, with the options passed through
    calls = []

    def fake_from_single_file(path, **kwargs):
        calls.append((path, kwargs))
        raise OSError('stop here')

    monkeypatch.setattr(diffusers.StableDiffusionXLPipeline, 'from_single_file',
                        fake_from_single_file)
    source = DiffusersSource(
        model=ckpt,
        pipeline_class='StableDiffusionXLPipeline',
        config=str(root / 'config'),
        device='cpu')
    with pytest.raises(
            OSError,
            match=r"source.model: cannot load '.*tiny-sd.safetensors' "
            r'\(OSError: stop here\)'):
        source.setup()
    path, kwargs = calls[0]
    assert path == ckpt and kwargs['config'] == str(root / 'config')
    assert kwargs['safety_checker'] is None  # not part of a single file: said in a warning


def test_diffusers_source_relative_org_name(tiny_sd, tmp_path, monkeypatch):
    import shutil

    import diffusers
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_sd, tmp_path / 'models' / 'sd15')
    source = DiffusersSource(
        model='models/sd15',
        dtype='float32',
        num_inference_steps=1,
        device='cpu',
        height=32,
        width=32)
    source.check()  # an existing relative folder is a path, not a hub id
    source.setup()
    assert type(source.pipe).__name__ == 'StableDiffusionPipeline'
    requested = []

    def fake_from_pretrained(name, **kwargs):
        requested.append(name)
        raise OSError(f'{name} is not a valid model identifier on the hub')

    monkeypatch.setattr(diffusers.AutoPipelineForText2Image, 'from_pretrained',
                        fake_from_pretrained)
    source = DiffusersSource(model='models/sd14', device='cpu')
    source.check()  # no such folder: a hub id
    with pytest.raises(
            OSError,
            match=r"'models/sd14' was taken as a hub id because no local "
            r"directory '.*models/sd14' exists"):
        source.setup()
    assert requested == ['models/sd14']


def test_diffusers_source_compiles_the_vae_decoder_when_asked():
    from xpaste.testing.random_models import build_sd_pipeline
    pipe = build_sd_pipeline('tiny')
    DiffusersSource(model='fake/sd', pipeline=pipe, device='cpu').setup()
    assert not hasattr(pipe.vae.decoder, '_orig_mod')
    source = DiffusersSource(model='fake/sd', pipeline=pipe, device='cpu', compile_vae=True)
    source.setup()
    assert hasattr(pipe.vae.decoder, '_orig_mod')  # compiled lazily, at its first call
    assert 'compile_vae' not in source.describe() and 'postprocess' not in source.describe()
    with pytest.raises(ValueError, match="postprocess must be one of .*got 'gpu'"):
        DiffusersSource(model='fake/sd', postprocess='gpu')

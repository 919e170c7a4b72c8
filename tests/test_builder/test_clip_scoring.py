import json

import numpy as np
import pytest

from xpaste.builder.clip_scoring import ClipScorer, build_scorer, prepare_cutout, prepare_whole


@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    from xpaste.testing.random_models import TINY_OPEN_CLIP, save_tiny_open_clip
    root = tmp_path_factory.mktemp('clip')
    return TINY_OPEN_CLIP, save_tiny_open_clip(
        str(root / 'a.pt'), seed=0), save_tiny_open_clip(
            str(root / 'b.pt'), seed=1)


def test_prepare_inputs():
    image = np.zeros((60, 100, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    whole = prepare_whole(image, 32)
    assert whole.shape == (32, 32, 3) and whole[0, 0].tolist() == [0, 0, 255]  # RGB
    mask = np.zeros((60, 100), bool)
    mask[10:20, 40:80] = True
    cut = prepare_cutout(image, mask, 32)
    assert cut.shape == (32, 32, 3)
    assert cut[0, 0].tolist() == [255, 255, 255]  # padded with white
    assert cut[16, 16].tolist() == [0, 0, 255]


def test_scorer_loads_the_checkpoint(tiny_clip):
    name, ckpt_a, ckpt_b = tiny_clip
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    embs = []
    for ckpt in (ckpt_a, ckpt_a, ckpt_b):
        scorer = ClipScorer(model=name, pretrained=ckpt, device='cpu', batch_size=2)
        scorer.setup()
        assert scorer.input_size == 32
        embs.append(scorer.encode(inputs))
    assert embs[0].shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(embs[0], axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(embs[0], embs[1], atol=1e-6)  # same weights, same embeddings
    assert not np.allclose(embs[0], embs[2])  # other checkpoint, other embeddings
    scores = scorer.scores(embs[2], {'name': 'aerosol_can'})
    assert scores.shape == (3, ) and np.all(np.abs(scores) <= 100)
    assert 'aerosol_can' in scorer._text_cache


def test_scorer_errors(tiny_clip, tmp_path):
    name, ckpt, _ = tiny_clip
    with pytest.raises(FileNotFoundError, match='score.pretrained.*missing.pt'):
        ClipScorer(model=name, pretrained=str(tmp_path / 'missing.pt')).check()
    with pytest.raises(ValueError, match="no model 'ViT-Q-99'"):
        ClipScorer(model='ViT-Q-99', pretrained=ckpt).check()
    with pytest.raises(ValueError, match='must be a list of strings containing'):
        ClipScorer(text_templates=['a photo'])


def test_build_scorer_skips_without_weights_with_one_line(log_messages):
    assert build_scorer(dict(model='ViT-L-14', pretrained=None)) is None
    assert build_scorer(None) is None
    skipped = [r for r in log_messages if 'CLIP scoring skipped' in r]
    assert len(skipped) == 2 and 'no CLIP weights configured' in skipped[0]
    assert build_scorer(dict(model='ViT-L-14', pretrained='openai')) is not None


@pytest.mark.parametrize('safetensors', [True, False])
def test_local_dir_model_needs_no_pretrained_tag(tiny_clip, tmp_path, safetensors):
    from xpaste.testing.random_models import save_tiny_open_clip_dir
    name, ckpt, _ = tiny_clip  # seed 0
    folder = save_tiny_open_clip_dir(str(tmp_path / 'clip'), seed=0, safetensors=safetensors)
    scorer = build_scorer(dict(model=f'local-dir:{folder}', pretrained=None, device='cpu'))
    assert scorer is not None and scorer.enabled  # not skipped: the folder has the weights
    scorer.check()
    scorer.setup()
    inputs = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    reference = ClipScorer(model=name, pretrained=ckpt, device='cpu')
    np.testing.assert_allclose(scorer.encode(inputs), reference.encode(inputs), atol=1e-5)
    assert scorer.scores(scorer.encode(inputs), {'name': 'zebra'}).shape == (2, )
    assert ClipScorer(model='hf-hub:org/clip', pretrained=None).enabled


def test_local_dir_model_errors(tmp_path):
    with pytest.raises(
            FileNotFoundError, match=r'score.model \(local-dir:\): model path does '
            r'not exist'):
        ClipScorer(model=f'local-dir:{tmp_path}/missing', pretrained=None).check()
    with pytest.raises(FileNotFoundError, match='no open_clip_config.json in'):
        ClipScorer(model=f'local-dir:{tmp_path}', pretrained=None).check()
    from xpaste.testing.random_models import TINY_OPEN_CLIP_CFG
    (tmp_path / 'open_clip_config.json').write_text(json.dumps(dict(model_cfg=TINY_OPEN_CLIP_CFG)))
    with pytest.raises(
            OSError,
            match=r"score: cannot load open_clip 'local-dir:.*' "
            r'\(RuntimeError: Required pretrained weights'):
        ClipScorer(model=f'local-dir:{tmp_path}', pretrained=None, device='cpu').setup()

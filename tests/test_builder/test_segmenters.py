import numpy as np
import pytest

from xpaste.builder.segmenters import (CLIPSegSegmenter, ClassicalSegmenter, SAMSegmenter,
                                    build_segmenters, cutout_on_white, fill_holes,
                                    largest_component, mask_box, pack_mask, resize_mask,
                                    unpack_mask)
from xpaste.toy import render_single_instance, toy_categories


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_classical_segmenter_on_toy_images():
    seg = ClassicalSegmenter(work_side=128)
    scores = []
    for i, cat in enumerate(toy_categories(12, seed=0)):
        image, gt = render_single_instance(cat, np.random.default_rng([i, 1]), size=160)
        mask = seg.segment([image], {'name': cat.name})[0]
        assert mask.dtype == bool and mask.shape == gt.shape
        scores.append(iou(mask, gt))
    assert np.mean(scores) > 0.9
    assert min(scores) > 0.6


def test_classical_segmenter_is_deterministic_and_empty_on_blank():
    cat = toy_categories(3, seed=0)[2]
    image, _ = render_single_instance(cat, np.random.default_rng(5), size=128)
    seg = ClassicalSegmenter()
    a = seg.segment_one(image)
    seg.segment_one(np.ascontiguousarray(image[::-1]))  # another image in between
    assert np.array_equal(a, seg.segment_one(image))
    blank = np.full((100, 120, 3), 230, np.uint8)
    assert not seg.segment_one(blank).any()


def test_classical_segmenter_validates():
    with pytest.raises(ValueError, match=r'work_side must lie in \[32, inf\), got 8'):
        ClassicalSegmenter(work_side=8)
    with pytest.raises(ValueError, match=r'border must lie in \(0, 0.5\), got 0.7'):
        ClassicalSegmenter(border=0.7)
    with pytest.raises(ValueError, match="got 'a b'"):
        ClassicalSegmenter(name='a b')


def test_mask_utilities():
    mask = np.zeros((20, 30), bool)
    mask[2:12, 2:12] = True
    mask[15:17, 20:22] = True
    big, share = largest_component(mask)
    assert big.sum() == 100 and share == pytest.approx(100 / 104)
    assert largest_component(np.zeros((4, 4), bool))[1] == 0.0
    ring = np.zeros((20, 20), bool)
    ring[4:16, 4:16] = True
    ring[8:12, 8:12] = False
    assert fill_holes(ring).sum() == 144
    assert mask_box(mask) == (2, 2, 20, 15)
    assert np.array_equal(unpack_mask(pack_mask(mask), mask.shape), mask)
    assert resize_mask(mask, (40, 60)).sum() == pytest.approx(4 * mask.sum(), rel=0.1)
    image = np.zeros((20, 30, 3), np.uint8)
    crop = cutout_on_white(image, big, margin=0.1, square=True)
    assert crop.shape == (12, 12, 3)
    assert (crop[0] == 255).all() and (crop[6, 6] == 0).all()


def test_sam_segmenter_with_a_tiny_checkpoint(tmp_path):
    from xpaste.testing.random_models import TINY_SAM_TYPE, save_tiny_sam
    ckpt = save_tiny_sam(str(tmp_path / 'sam_tiny.pth'))
    seg = SAMSegmenter(checkpoint=ckpt, model_type=TINY_SAM_TYPE, device='cpu', batch_size=2)
    seg.check()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40 + 8 * i, 50, 3), dtype=np.uint8) for i in range(3)]
    masks = seg.segment(images, {'name': 'x'})
    assert [m.shape for m in masks] == [im.shape[:2] for im in images]
    assert all(m.dtype == bool for m in masks)
    with pytest.raises(FileNotFoundError, match='model path does not exist.*missing.pth'):
        SAMSegmenter(checkpoint=str(tmp_path / 'missing.pth')).check()
    with pytest.raises(ValueError, match="model_type must be one of .*got 'vit_x'"):
        SAMSegmenter(checkpoint=ckpt, model_type='vit_x').check()


def test_clipseg_segmenter_with_a_tiny_model(tmp_path):
    from xpaste.testing.random_models import save_tiny_clipseg
    path = save_tiny_clipseg(str(tmp_path / 'clipseg'))
    seg = CLIPSegSegmenter(model=path, device='cpu', batch_size=2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 50 + 6 * i, 3), dtype=np.uint8) for i in range(3)]
    masks = seg.segment(images, {'name': 'aerosol_can'})
    assert [m.shape for m in masks] == [im.shape[:2] for im in images]
    with pytest.raises(FileNotFoundError, match='no/clipseg'):
        CLIPSegSegmenter(model='./no/clipseg').check()


def mean_iou(masks_a, masks_b):
    return float(np.mean([iou(a, b) if (a | b).any() else 1.0 for a, b in zip(masks_a, masks_b)]))


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_sam_batches_equal_one_by_one(tmp_path, dtype):
    """SAM's image encoder at batch 4 (images of several sizes) gives the masks of batch 1:
    equal in float32, within a tolerance in bfloat16 (batched matmuls round differently)."""
    from xpaste.testing.random_models import TINY_SAM_TYPE, build_tiny_sam, save_tiny_sam
    ckpt = save_tiny_sam(str(tmp_path / 'sam_tiny.pth'))
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (48 + 8 * (i % 3), 64, 3), dtype=np.uint8) for i in range(6)]
    masks = {}
    for batch in (1, 4):
        seg = SAMSegmenter(checkpoint=ckpt, model_type=TINY_SAM_TYPE, device='cpu',
                           batch_size=batch, dtype=dtype)
        masks[batch] = seg.segment(images, {'name': 'x'})
    if dtype == 'float32':
        assert all(np.array_equal(a, b) for a, b in zip(masks[1], masks[4]))
    else:
        assert mean_iou(masks[1], masks[4]) >= 0.95
    # a prebuilt model (benchmarks) gives the checkpoint's masks
    built = SAMSegmenter(checkpoint='random', model_type=TINY_SAM_TYPE, device='cpu',
                         batch_size=4, dtype=dtype, built_model=build_tiny_sam(ckpt))
    built.check()  # no checkpoint file needed
    assert mean_iou(built.segment(images, {'name': 'x'}), masks[4]) >= 0.99


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_clipseg_batches_equal_one_by_one(tmp_path, dtype):
    from xpaste.testing.random_models import save_tiny_clipseg
    path = save_tiny_clipseg(str(tmp_path / 'clipseg'))
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, (40, 50 + 6 * (i % 2), 3), dtype=np.uint8) for i in range(5)]
    masks = {}
    for batch in (1, 4):
        seg = CLIPSegSegmenter(model=path, device='cpu', batch_size=batch, dtype=dtype,
                               threshold=0.5)
        masks[batch] = seg.segment(images, {'name': 'aerosol_can'})
    assert [m.shape for m in masks[4]] == [im.shape[:2] for im in images]
    assert mean_iou(masks[1], masks[4]) >= (0.999 if dtype == 'float32' else 0.95)


def test_build_segmenters():
    segs = build_segmenters([dict(type='ClassicalSegmenter'),
                             dict(type='ClassicalSegmenter', work_side=96, name='small')])
    assert [s.name for s in segs] == ['classical', 'small']
    with pytest.raises(ValueError, match=r"duplicate names \['classical'\]"):
        build_segmenters([dict(type='ClassicalSegmenter')] * 2)
    with pytest.raises(ValueError, match='non-empty list'):
        build_segmenters([])

import numpy as np
import pytest

from xpaste.toy import (TOY_SHAPES, TOY_TEXTURES, ToyCategory, draw_instance,
                        render_single_instance, sample_pose)


def _all_looks():
    return [
        ToyCategory(id=1, shape=s, colour=c, texture=t) for s in TOY_SHAPES
        for c, t in zip(('red', 'yellow', 'blue', 'cyan'), TOY_TEXTURES)
    ]


@pytest.mark.parametrize('category', _all_looks(), ids=lambda c: c.name)
def test_render_single_instance_coverage_and_contrast(category):
    rng = np.random.default_rng(0)
    for _ in range(5):
        image, mask = render_single_instance(category, rng, size=128)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert mask.shape == (128, 128) and mask.dtype == bool
        assert 0.2 <= mask.mean() <= 0.7
        # centred-ish: the mask's centroid is in the middle half of the image
        ys, xs = np.nonzero(mask)
        assert 32 <= ys.mean() <= 96 and 32 <= xs.mean() <= 96
        background = np.median(image[~mask], axis=0)
        difference = np.abs(image[mask].astype(float) - background).sum(axis=1)
        assert difference.mean() > 80 and (difference > 25).mean() > 0.9
        # the background is plain and light
        assert image[~mask].std(axis=0).max() < 12 and background.mean() > 180


def test_render_single_instance_is_deterministic_and_varied():
    category = ToyCategory(id=1, shape='heart', colour='green', texture='dots')
    a = render_single_instance(category, np.random.default_rng(5), size=96)
    b = render_single_instance(category, np.random.default_rng(5), size=96)
    c = render_single_instance(category, np.random.default_rng(6), size=96)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize('size', [16, 64.0, True])
def test_render_single_instance_validates_size(size):
    category = ToyCategory(id=1, shape='circle', colour='red', texture='solid')
    with pytest.raises(ValueError, match='size'):
        render_single_instance(category, np.random.default_rng(0), size=size)


@pytest.mark.parametrize('shape', TOY_SHAPES)
def test_draw_instance_is_tight_and_scales(shape):
    category = ToyCategory(id=1, shape=shape, colour='orange', texture='checker')
    pose = sample_pose(np.random.default_rng(1))
    bgr, mask = draw_instance(category, 60, pose=pose)
    assert mask.dtype == bool and bgr.shape == mask.shape + (3, )
    assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    assert not bgr[~mask].any() and bgr[mask].any()
    # longer unrotated side is the extent: the rotated canvas is between ~0.6x and 1.5x of it
    assert 30 <= max(mask.shape) <= 90
    _, big = draw_instance(category, 120, pose=pose)
    assert 3.0 < big.sum() / mask.sum() < 5.0  # area grows with extent squared


def test_draw_instance_validates():
    category = ToyCategory(id=1, shape='ring', colour='pink', texture='solid')
    with pytest.raises(ValueError, match='extent'):
        draw_instance(category, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match='rng or pose'):
        draw_instance(category, 40)


def test_ring_has_a_hole_and_textures_differ():
    rng = np.random.default_rng(0)
    pose = sample_pose(rng)
    _, ring = draw_instance(
        ToyCategory(id=1, shape='ring', colour='red', texture='solid'), 80, pose=pose)
    h, w = ring.shape
    assert not ring[h // 2, w // 2]
    solid, mask = draw_instance(
        ToyCategory(id=1, shape='square', colour='red', texture='solid'), 80, pose=pose)
    striped, _ = draw_instance(
        ToyCategory(id=1, shape='square', colour='red', texture='stripes'), 80, pose=pose)
    # light secondary colour on a good part of the striped object only
    assert (np.abs(striped.astype(int) - solid.astype(int)).sum(axis=2)[mask] > 100).mean() > 0.3

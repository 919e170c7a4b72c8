"""Blend modes: in-place compositing of a patch into a window of a larger image."""
import numpy as np
import pytest

from xpaste.datasets.transforms.blend import BLEND_MODES, blend_into


def disc_alpha(size=31, radius=10):
    yy, xx = np.mgrid[:size, :size] - size // 2
    return ((xx**2 + yy**2) <= radius**2).astype(np.uint8) * 255


def test_hard_writes_only_the_mask_into_the_view():
    img = np.full((50, 60, 3), 7, np.uint8)
    src = np.random.default_rng(0).integers(0, 256, (31, 31, 3), dtype=np.uint8)
    alpha = disc_alpha()
    alpha[0, 0] = 127  # below the mask threshold
    view = img[10:41, 20:51]
    out = blend_into(view, src, alpha, 'hard')
    assert out is view
    inside = alpha >= 128
    np.testing.assert_array_equal(img[10:41, 20:51][inside], src[inside])
    np.testing.assert_array_equal(img[10:41, 20:51][~inside], 7)
    outside = np.ones(img.shape[:2], bool)
    outside[10:41, 20:51] = False
    assert (img[outside] == 7).all()


def test_alpha_weights():
    dst = np.full((2, 3, 3), 100, np.uint8)
    src = np.full((2, 3, 3), 200, np.uint8)
    alpha = np.array([[0, 255, 128], [64, 192, 255]], np.uint8)
    blend_into(dst, src, alpha, 'alpha')
    expected = 100 + 100 * alpha.astype(float) / 255.0
    np.testing.assert_allclose(dst[..., 0], expected, atol=1)


def test_gaussian_feathers_the_outline_only():
    dst = np.zeros((61, 61, 3), np.uint8)
    src = np.full((61, 61, 3), 200, np.uint8)
    alpha = disc_alpha(61, 20)
    blend_into(dst, src, alpha, 'gaussian', sigma=2.0)
    assert abs(int(dst[30, 30, 0]) - 200) <= 1  # deep inside: the source
    assert dst[0, 0, 0] == 0  # far outside: the destination
    edge = dst[30, 30 + 20, 0]  # on the outline: in between
    assert 30 < edge < 170


def test_poisson_keeps_surroundings_and_source_gradients():
    size = 45
    yy, xx = np.mgrid[:size, :size] - size // 2
    bump = 50 + 100 * np.exp(-(xx**2 + yy**2) / (2 * 6.0**2))
    src = np.repeat(bump[..., None], 3, 2).astype(np.uint8)
    alpha = np.zeros((size, size), np.uint8)
    alpha[2:-2, 2:-2] = 255
    img = np.full((80, 80, 3), 100, np.uint8)
    blend_into(img[10:10 + size, 20:20 + size], src, alpha, 'poisson')
    center = int(img[10 + size // 2, 20 + size // 2, 0])
    # the bump is kept relative to the seamless boundary (100): centre ~ 100 + (150 - 50)
    assert center > 170, center
    mask = np.zeros((80, 80), bool)
    mask[12:10 + size - 2, 22:20 + size - 2] = True
    assert (img[~mask] == 100).all()


def test_poisson_on_float32_and_tiny_masks():
    rng = np.random.default_rng(0)
    dst = (rng.integers(0, 200, (12, 12, 3)) + 0.5).astype(np.float32)
    before = dst.copy()
    alpha = np.zeros((12, 12), np.uint8)
    alpha[3:9, 3:9] = 255
    src = rng.integers(0, 256, (12, 12, 3)).astype(np.float32)
    out = blend_into(dst, src, alpha, 'poisson')
    assert out is dst and dst.dtype == np.float32
    inside = alpha >= 128
    np.testing.assert_array_equal(dst[~inside], before[~inside])  # float values kept outside
    ref = np.rint(before).astype(np.uint8)  # what a uint8 image gets
    blend_into(ref, src.astype(np.uint8), alpha, 'poisson')
    np.testing.assert_array_equal(dst[inside], ref[inside])
    assert not np.array_equal(dst[inside], before[inside])
    with pytest.raises(TypeError, match='uint8 or float32'):
        blend_into(
            np.zeros((5, 5, 3), np.float64), np.zeros((5, 5, 3), np.float64),
            np.full((5, 5), 255, np.uint8), 'poisson')
    dst = np.zeros((5, 5, 3), np.uint8)
    alpha = np.zeros((5, 5), np.uint8)
    alpha[2, 2] = 255
    blend_into(dst, np.full((5, 5, 3), 9, np.uint8), alpha, 'poisson')
    assert (dst[alpha == 0] == 0).all()


@pytest.mark.parametrize('mode', BLEND_MODES)
def test_transparent_patch_is_a_no_op(mode):
    dst = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    before = dst.copy()
    blend_into(dst, np.zeros_like(dst), np.zeros((20, 20), np.uint8), mode)
    np.testing.assert_array_equal(dst, before)


def test_errors():
    dst = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="'soft'"):
        blend_into(dst, dst.copy(), np.zeros((4, 4), np.uint8), 'soft')
    with pytest.raises(ValueError, match=r'\(3, 4\)'):
        blend_into(dst, dst.copy(), np.zeros((3, 4), np.uint8))
    with pytest.raises(TypeError, match='float32'):
        blend_into(dst, dst.copy(), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match='sigma'):
        blend_into(dst, dst.copy(), np.zeros((4, 4), np.uint8), 'gaussian', sigma=0)

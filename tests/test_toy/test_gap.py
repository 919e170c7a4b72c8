import cv2
import numpy as np
import pytest

from xpaste.builder.filters import hamming, perceptual_hash
from xpaste.builder.sources import ToySource, build_source, derive_seed
from xpaste.toy import TOY_COLOURS, ToyCategory, max_toy_categories, toy_categories
from xpaste.toy.gap import (DEFAULT_DEFECTS, DEFECTS, WRONG_DEFECTS, GapSettings, draw_defect,
                            gap_tag, parse_gap_tag, render_gapped_instance)

CAT = ToyCategory(id=1, shape='star', colour='blue', texture='stripes')
WORLD = toy_categories(max_toy_categories(), seed=0)


def _only(kind: str, **kwargs) -> GapSettings:
    """Settings where every image has defect ``kind``."""
    return GapSettings(defects={k: float(k == kind) for k in DEFECTS}, **kwargs)


@pytest.mark.parametrize('defects', [DEFAULT_DEFECTS, dict(wrong_class=0.3, empty=0.2, black=0)])
def test_defect_fractions_match_settings(defects):
    settings = GapSettings(defects=defects)
    n = 4000
    kinds = np.array(
        [draw_defect(derive_seed(s, 7, i), settings) for s in range(4) for i in range(n // 4)])
    for kind, p in settings.defects.items():
        # 4 binomial standard deviations
        tolerance = 4 * np.sqrt(p * (1 - p) / n) + 1e-9
        assert abs((kinds == kind).mean() - p) <= tolerance, (kind, (kinds == kind).mean(), p)
    wrong = np.isin(kinds, WRONG_DEFECTS).mean()
    assert abs(wrong - settings.wrong_fraction) <= 4 * np.sqrt(0.25 / n)
    assert settings.defects['black'] == 0 or (kinds == 'black').any()


def test_rendered_defects_follow_the_draw_and_are_tagged():
    settings = GapSettings()
    counts = {}
    for i in range(120):
        seed = derive_seed(3, CAT.id, i)
        out = render_gapped_instance(CAT, seed, settings, size=64, world=WORLD)
        assert out.defect == draw_defect(seed, settings)
        assert out.image.shape == (64, 64, 3) and out.image.dtype == np.uint8
        assert out.mask.shape == (64, 64) and out.mask.dtype == bool
        assert parse_gap_tag(f'a photo of a single {CAT.name} {out.tag}') == (out.defect, out.drawn)
        counts[out.defect] = counts.get(out.defect, 0) + 1
    assert counts.get('none', 0) > 40 and len(counts) >= 5


def test_same_seed_same_image_and_seeds_differ():
    a = render_gapped_instance(CAT, 11, size=96)
    b = render_gapped_instance(CAT, 11, size=96)
    c = render_gapped_instance(CAT, 12, size=96)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert (a.defect, a.drawn, a.background) == (b.defect, b.drawn, b.background)
    assert not np.array_equal(a.image, c.image)


def _object_hue(out) -> float:
    hsv = cv2.cvtColor(out.image, cv2.COLOR_BGR2HSV_FULL).astype(np.float64)
    inner = cv2.erode(out.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    saturated = inner & (hsv[..., 1] > 100)  # the base colour, not the light texture
    angles = hsv[..., 0][saturated] * 2 * np.pi / 256
    return float(np.degrees(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())) % 360)


def _hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def test_wrong_class_images_draw_another_class():
    settings = _only('wrong_class', confusable=1.0, blur=0.0, colour_cast=0.0)
    colour_swaps = 0
    for i in range(40):
        out = render_gapped_instance(CAT, 1000 + i, settings, size=128, world=WORLD)
        assert out.defect == 'wrong_class' and out.mask.sum() > 100
        drawn = ToyCategory.from_name(out.drawn[0])
        assert drawn.name != CAT.name
        differ = [
            drawn.shape != CAT.shape, drawn.colour != CAT.colour, drawn.texture != CAT.texture
        ]
        assert sum(differ) == 1  # confusable=1: one attribute swapped
        if drawn.colour != CAT.colour:
            # the pixels show the drawn colour, not the requested one
            hue = _object_hue(out)
            assert _hue_distance(hue, drawn.hue) < _hue_distance(hue, CAT.hue)
            colour_swaps += 1
    assert colour_swaps >= 5
    any_class = _only('wrong_class', confusable=0.0)
    drawn = {render_gapped_instance(CAT, i, any_class, 64, WORLD).drawn[0] for i in range(30)}
    assert CAT.name not in drawn and len(drawn) > 20


def test_other_defects_show_what_they_say():
    black = render_gapped_instance(CAT, 0, _only('black'), 64, WORLD)
    assert not black.image.any() and not black.mask.any() and black.drawn == ()
    empty = render_gapped_instance(CAT, 0, _only('empty'), 64, WORLD)
    assert empty.image.max() > 8 and not empty.mask.any() and empty.drawn == ()
    for seed in range(10):
        two = render_gapped_instance(CAT, seed, _only('two_objects'), 96, WORLD)
        assert len(two.drawn) == 2 and two.drawn[0] == CAT.name and two.mask.any()
        cut = render_gapped_instance(CAT, seed, _only('truncated'), 96, WORLD)
        edge = np.concatenate([cut.mask[0], cut.mask[-1], cut.mask[:, 0], cut.mask[:, -1]])
        assert cut.drawn == (CAT.name, ) and edge.any()  # cut by the border


def test_duplicates_repeat_a_class_mode():
    settings = _only('duplicate', duplicate_modes=1)
    images = [render_gapped_instance(CAT, s, settings, 128, WORLD).image for s in range(3)]
    hashes = np.array([perceptual_hash(im) for im in images], np.uint64)
    assert (hamming(hashes[0], hashes[1:]) <= 4).all()
    assert not np.array_equal(images[0], images[1])  # own noise
    other = render_gapped_instance(
        ToyCategory(id=2, shape='ring', colour='red', texture='dots'), 0, settings, 128, WORLD)
    assert hamming(hashes[0], np.array([perceptual_hash(other.image)], np.uint64))[0] > 4


def test_gap_tags():
    assert gap_tag('none', ['red_plain_star']) == '[gap: none drew=red_plain_star]'
    assert parse_gap_tag('p [gap: two_objects drew=a_b_c+d_e_f]') == ('two_objects', ('a_b_c',
                                                                                      'd_e_f'))
    assert parse_gap_tag('p [gap: empty drew=-]') == ('empty', ())
    assert parse_gap_tag('a photo of a single red plain star') is None
    assert parse_gap_tag('') is None


@pytest.mark.parametrize('kwargs, match', [
    (dict(defects=dict(wrong_class=0.6, empty=0.5)), 'sum to at most 1'),
    (dict(defects=dict(wrong_colour=0.1)), "unknown keys \\['wrong_colour'\\]"),
    (dict(defects=dict(empty=1.5)), 'defects.empty must lie in \\[0, 1\\], got 1.5'),
    (dict(backgrounds=dict(plain=0, cluttered=0, textured=0)), 'positive weight'),
    (dict(coverage=(0.5, 0.1)), 'coverage must be \\(low, high\\) with low <= high'),
    (dict(hue_shift=30), 'hue_shift must lie in \\[0, 13.0\\], got 30'),
    (dict(duplicate_modes=0), 'duplicate_modes must lie in \\[1, inf\\), got 0'),
    (dict(blur=True), 'GapSettings.blur must be a finite number, got True'),
])
def test_settings_validate(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GapSettings(**kwargs)


def test_settings_from_config():
    assert GapSettings.from_config('default') == GapSettings()
    assert GapSettings.from_config({}) == GapSettings()
    s = GapSettings.from_config(dict(defects=dict(wrong_class=0.2), coverage=[0.1, 0.5]))
    assert s.defects['wrong_class'] == 0.2 and s.defects['empty'] == DEFAULT_DEFECTS['empty']
    assert s.coverage == (0.1, 0.5) and s.to_dict()['coverage'] == [0.1, 0.5]
    with pytest.raises(ValueError, match="gap has unknown keys \\['blurr'\\]"):
        GapSettings.from_config(dict(blurr=0.1))
    with pytest.raises(ValueError, match='gap must be None'):
        GapSettings.from_config(3)


def test_toy_source_with_gap_tags_prompts():
    name = toy_categories(4, seed=0)[2].name
    category = {'id': 3, 'name': name}
    source = build_source(dict(type='ToySource', size=64, gap=dict()))
    seeds = [derive_seed(0, 3, i) for i in range(12)]
    items = source.generate(category, list(range(12)), ['p'] * 12, seeds)
    again = source.generate(category, [5], ['p'], [seeds[5]])
    settings = GapSettings()
    for item, seed in zip(items, seeds):
        defect, drawn = parse_gap_tag(item.prompt)
        assert item.prompt.startswith('p [gap: ') and defect == draw_defect(seed, settings)
        assert item.image.shape == (64, 64, 3)
        assert (name in drawn) == (defect in ('none', 'duplicate', 'two_objects', 'truncated'))
    assert np.array_equal(items[5].image, again[0].image) and items[5].prompt == again[0].prompt
    info = source.describe()
    assert info['gap']['defects'] == DEFAULT_DEFECTS and info['size'] == 64
    # without a gap: the oracle, untagged, and no gap in the build info
    oracle = ToySource(size=64)
    assert 'gap' not in oracle.describe()
    assert oracle.generate(category, [0], ['p'], [seeds[0]])[0].prompt == 'p'
    with pytest.raises(ValueError, match='size must be >= 32 with a gap, got 16'):
        ToySource(size=16, gap='default')


def test_colour_hues_are_far_apart_for_the_hue_gap():
    # GapSettings.hue_shift + the dataset's +-6 must stay under half the closest hue gap
    hues = sorted(TOY_COLOURS.values())
    closest = min(b - a for a, b in zip(hues, hues[1:] + [hues[0] + 360]))
    assert GapSettings().hue_shift + 6 < closest / 2

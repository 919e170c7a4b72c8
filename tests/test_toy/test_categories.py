import itertools

import pytest

from xpaste.toy import (TOY_COLOURS, TOY_SHAPES, TOY_TEXTURES, ToyCategory, max_toy_categories,
                        toy_categories)


def _attributes(category):
    return category.shape, category.colour, category.texture


@pytest.mark.parametrize('num_classes', [12, 30])
def test_categories_are_distinct_and_balanced(num_classes):
    categories = toy_categories(num_classes, seed=0)
    assert [c.id for c in categories] == list(range(1, num_classes + 1))
    assert len({c.name for c in categories}) == num_classes
    for a, b in itertools.combinations(categories, 2):
        differing = sum(x != y for x, y in zip(_attributes(a), _attributes(b)))
        assert differing >= 2, (a.name, b.name)
    shapes = [c.shape for c in categories]
    counts = [shapes.count(s) for s in TOY_SHAPES]
    assert max(counts) - min(counts) <= 1


def test_categories_prefix_and_seed():
    assert toy_categories(30, seed=3)[:12] == toy_categories(12, seed=3)
    assert toy_categories(30, seed=3) == toy_categories(30, seed=3)
    assert toy_categories(30, seed=3) != toy_categories(30, seed=4)


def test_lvis_record_and_name_round_trip():
    category = ToyCategory(id=7, shape='star', colour='red', texture='stripes', size=0.25)
    assert category.name == 'red_striped_star'
    record = category.to_lvis()
    assert record['id'] == 7 and record['name'] == 'red_striped_star'
    assert record['synonyms'][0] == 'red_striped_star'
    assert record['synset'] == 'red_striped_star.n.01'
    assert 'red' in record['def'] and 'star' in record['def']
    back = ToyCategory.from_name(category.name, id=7, size=0.25)
    assert back == category
    for c in toy_categories(40, seed=1):
        assert ToyCategory.from_name(c.name, id=c.id, size=c.size) == c


@pytest.mark.parametrize('name', ['red_star', 'red_striped_blob', 'teal_plain_star', 3])
def test_from_name_rejects_unknown(name):
    with pytest.raises(ValueError, match='not a toy category name'):
        ToyCategory.from_name(name)


@pytest.mark.parametrize('num_classes', [0, max_toy_categories() + 1, 2.5, True])
def test_toy_categories_validates_count(num_classes):
    with pytest.raises(ValueError, match=repr(num_classes).replace('.', r'\.')):
        toy_categories(num_classes)


def test_category_validates_fields():
    with pytest.raises(ValueError, match="'hexagram'"):
        ToyCategory(id=1, shape='hexagram', colour='red', texture='solid')
    with pytest.raises(ValueError, match='0'):
        ToyCategory(id=0, shape='star', colour='red', texture='solid')
    assert len(TOY_COLOURS) * len(TOY_TEXTURES) * len(TOY_SHAPES) == max_toy_categories()

import json

import pytest

from xpaste.builder.prompts import (PromptBank, display_name, expand_templates, load_categories,
                                 load_prompt_file)

CATS = [
    {'id': 3, 'name': 'bow_(weapon)', 'synonyms': ['bow_(weapon)', 'longbow'],
     'def': 'a weapon for shooting arrows'},
    {'id': 1, 'name': 'aerosol_can', 'synonyms': ['aerosol_can', 'spray_can'], 'def': ''},
    {'id': 2, 'name': 'zebra'},
]


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / 'cats.json'
    path.write_text(json.dumps({'categories': CATS, 'images': [], 'annotations': []}))
    return str(path)


def test_load_categories(ann_file):
    cats = load_categories(ann_file)
    assert [c['id'] for c in cats] == [1, 2, 3]  # sorted by id
    assert cats[1]['synonyms'] == [] and cats[1]['def'] == ''
    assert [c['name'] for c in load_categories(ann_file, include=['zebra'])] == ['zebra']
    assert [c['id'] for c in load_categories(ann_file, exclude=['zebra'])] == [1, 3]
    assert len(load_categories(ann_file, max_classes=2)) == 2
    assert [c['name'] for c in load_categories(names=['a', 'b'])] == ['a', 'b']


def test_load_categories_errors(ann_file, tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.json'):
        load_categories(str(tmp_path / 'missing.json'))
    with pytest.raises(ValueError, match=r"include names classes not in .*\['zebraa'\]"):
        load_categories(ann_file, include=['zebraa'])
    with pytest.raises(ValueError, match='exactly one'):
        load_categories(ann_file, names=['a'])
    dup = tmp_path / 'dup.json'
    dup.write_text(json.dumps({'categories': [{'id': 1, 'name': 'a'}, {'id': 1, 'name': 'b'}]}))
    with pytest.raises(ValueError, match=r'duplicate category ids \[1\]'):
        load_categories(str(dup))
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'categories': [{'id': '1', 'name': 'a'}]}))
    with pytest.raises(ValueError, match=r'categories\[0\] needs an int "id"'):
        load_categories(str(bad))


def test_expand_templates():
    bow = CATS[0]
    assert display_name(bow['name']) == 'bow (weapon)'
    prompts = expand_templates(bow, ['a photo of a single {name}', 'a photo of a {synonym}',
                                     '{name}, {definition}'])
    assert prompts == ['a photo of a single bow (weapon)', 'a photo of a bow (weapon)',
                       'a photo of a longbow', 'bow (weapon), a weapon for shooting arrows']
    # no definition: the template using it is skipped; duplicates are removed
    assert expand_templates(CATS[2], ['{name}', '{synonym}', '{name}, {definition}']) == ['zebra']
    with pytest.raises(ValueError, match=r"unknown fields \['nmae'\]"):
        expand_templates(bow, ['a {nmae}'])


def test_prompt_bank_and_prompt_file(tmp_path):
    prompt_file = tmp_path / 'prompts.json'
    prompt_file.write_text(json.dumps({'zebra': ['a zebra on grass', 'a zebra, studio photo'],
                                       'unicorn': 'a unicorn'}))
    cats = [dict(c, synonyms=c.get('synonyms', []), **{'def': c.get('def', '')}) for c in CATS]
    bank = PromptBank(cats, ['a photo of a single {name}'], prompt_file=str(prompt_file))
    assert bank.prompts('zebra') == ['a zebra on grass', 'a zebra, studio photo']
    assert [bank.prompt('zebra', i) for i in range(3)] == [
        'a zebra on grass', 'a zebra, studio photo', 'a zebra on grass']
    assert bank.prompts('aerosol_can') == ['a photo of a single aerosol can']


def test_prompt_file_errors(tmp_path):
    bad = tmp_path / 'p.json'
    bad.write_text(json.dumps({'zebra': []}))
    with pytest.raises(ValueError, match="'zebra' must map to a non-empty list"):
        load_prompt_file(str(bad))
    bad.write_text('[1, 2]')
    with pytest.raises(ValueError, match='must be a json object'):
        load_prompt_file(str(bad))
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_prompt_file(str(tmp_path / 'nope.json'))

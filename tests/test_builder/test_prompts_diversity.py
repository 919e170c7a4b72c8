"""Prompt diversity: attribute lists, caps, seeded order, user prompt files (json and text)."""
import json

import pytest

from xpaste.builder.defaults import BUILD_DEFAULTS
from xpaste.builder.prompts import PromptBank, expand_templates, load_prompt_file

BOW = {'id': 3, 'name': 'bow_(weapon)', 'synonyms': ['bow_(weapon)', 'longbow'],
       'def': 'a weapon for shooting arrows'}
ZEBRA = {'id': 2, 'name': 'zebra', 'synonyms': [], 'def': ''}
ATTRS = dict(view=['', 'from above'], colour=['red', 'blue'])


def test_default_prompts_are_unchanged():
    # the default options give X-Paste's single prompt, as before the diversity options
    bank = PromptBank([BOW, ZEBRA], **BUILD_DEFAULTS['prompts'])
    assert bank.prompts('bow_(weapon)') == ['a photo of a single bow (weapon)']
    assert [bank.prompt('zebra', i) for i in range(3)] == ['a photo of a single zebra'] * 3


def test_attributes_expand_every_combination():
    prompts = expand_templates(BOW, ['a {colour} {synonym}, {view}', 'a {name}'], ATTRS)
    assert prompts == [
        'a red bow (weapon)', 'a red bow (weapon), from above', 'a red longbow',
        'a red longbow, from above', 'a blue bow (weapon)', 'a blue bow (weapon), from above',
        'a blue longbow', 'a blue longbow, from above', 'a bow (weapon)']
    # a template may use the definition with attributes; no definition: skipped
    assert expand_templates(ZEBRA, ['{name}, {definition}, {view}', '{name} {view}'],
                            ATTRS) == ['zebra', 'zebra from above']
    with pytest.raises(ValueError, match=r"unknown fields \['light'\]; known: .*'view'"):
        expand_templates(BOW, ['a {name} in {light}'], ATTRS)
    with pytest.raises(ValueError, match="'name' must be an identifier other than"):
        expand_templates(BOW, ['{name}'], dict(name=['x']))
    with pytest.raises(ValueError, match=r'attributes.view must be a non-empty list'):
        expand_templates(BOW, ['{name}'], dict(view='from above'))


def test_cap_and_seeded_order():
    templates = ['a {colour} {synonym}, {view}']
    full = PromptBank([BOW], templates, attributes=ATTRS).prompts('bow_(weapon)')
    assert len(full) == 8
    capped = PromptBank([BOW], templates, attributes=ATTRS, max_prompts=3).prompts('bow_(weapon)')
    assert capped == full[:3]  # 'product': the first ones
    shuffled = PromptBank([BOW, ZEBRA], templates, attributes=ATTRS, order='shuffle', seed=0)
    again = PromptBank([BOW], templates, attributes=ATTRS, order='shuffle', seed=0)
    other_seed = PromptBank([BOW], templates, attributes=ATTRS, order='shuffle', seed=1)
    bow = shuffled.prompts('bow_(weapon)')
    assert sorted(bow) == sorted(full) and bow != full  # a permutation of the same prompts
    assert again.prompts('bow_(weapon)') == bow  # seeded: the same in another process/run
    assert other_seed.prompts('bow_(weapon)') != bow
    # deterministic per-image choice: image i gets prompt i mod n, used in turn
    assert [shuffled.prompt('bow_(weapon)', i) for i in range(10)] == bow + bow[:2]
    capped = PromptBank([BOW], templates, attributes=ATTRS, order='shuffle', max_prompts=4)
    assert capped.prompts('bow_(weapon)') == bow[:4]


@pytest.mark.parametrize('kwargs, match', [
    (dict(max_prompts=0), r'prompts.max_prompts must lie in \[1, inf\), got 0'),
    (dict(order='random'), r"order must be one of \('product', 'shuffle'\), got 'random'"),
    (dict(prompt_file_mode='append'), "prompt_file_mode must be one of"),
])
def test_prompt_bank_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PromptBank([BOW], ['{name}'], **kwargs)


def test_text_prompt_file_formats(tmp_path):
    path = tmp_path / 'prompts.txt'
    path.write_text('# curated prompts\n'
                    'zebra\ta zebra grazing: at dawn\n'
                    '\n'
                    'zebra: a zebra, studio photo\n'
                    'Bow (weapon): a longbow on a wall\n')
    assert load_prompt_file(str(path)) == {
        'zebra': ['a zebra grazing: at dawn', 'a zebra, studio photo'],
        'Bow (weapon)': ['a longbow on a wall']}
    # names match the categories loosely (display form, any case)
    bank = PromptBank([BOW, ZEBRA], ['a photo of a single {name}'], prompt_file=str(path))
    assert bank.prompts('bow_(weapon)') == ['a longbow on a wall']
    bad = tmp_path / 'bad.txt'
    bad.write_text('zebra\n')
    with pytest.raises(ValueError, match=r"line 1: expected \"name<TAB>prompt\""):
        load_prompt_file(str(bad))


def test_prompt_file_adds_to_the_templates(tmp_path):
    path = tmp_path / 'prompts.json'
    path.write_text(json.dumps({'zebra': ['a zebra on grass', 'a photo of a single zebra']}))
    add = PromptBank([BOW, ZEBRA], ['a photo of a single {name}'], prompt_file=str(path),
                     prompt_file_mode='add')
    assert add.prompts('zebra') == ['a zebra on grass', 'a photo of a single zebra']  # deduped
    assert add.prompts('bow_(weapon)') == ['a photo of a single bow (weapon)']
    replace = PromptBank([ZEBRA], ['{name} {view}'], prompt_file=str(path), attributes=ATTRS)
    assert replace.prompts('zebra') == ['a zebra on grass', 'a photo of a single zebra']


def test_prompts_reach_the_images(tmp_path):
    """A build records each image's prompt (image i: prompt i mod n of its class), and the
    prompt options are part of the generated images' fingerprints."""
    import glob

    from xpaste.builder.pipeline import BankBuilder
    from xpaste.toy import toy_categories
    cats = [c.to_lvis() for c in toy_categories(2, seed=0)]
    ann = tmp_path / 'cats.json'
    ann.write_text(json.dumps({'categories': cats, 'images': [], 'annotations': []}))
    base = dict(work_dir=str(tmp_path / 'w'), categories=dict(ann_file=str(ann)), score=None,
                images_per_class=5, chunk_size=3, source=dict(type='ToySource', size=32),
                workers=dict(type=None), progress=False)
    diverse = dict(base, prompts=dict(templates=['a photo of a single {name}, {view}'],
                                      attributes=ATTRS, order='shuffle'))
    builder = BankBuilder(diverse)
    assert builder.ctx.layout.fps.generate != BankBuilder(base).ctx.layout.fps.generate
    builder.run(['generate'])
    bank = builder.ctx.prompts
    for cat in cats:
        records = [item for path in sorted(glob.glob(str(tmp_path / 'w' / 'gen' / f'*{cat["name"]}'
                                                         / '*.json')))
                   for item in json.load(open(path))['items']]
        assert [r['index'] for r in records] == list(range(5))
        assert [r['prompt'] for r in records] == [bank.prompt(cat['name'], i) for i in range(5)]
        assert len(set(r['prompt'] for r in records)) == 2  # both views used

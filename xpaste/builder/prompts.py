"""Categories and text prompts of a bank build.

Categories come from any LVIS/COCO-format json (``categories`` with ``id`` and ``name``; LVIS adds
``synonyms``, ``def`` and ``frequency``). Prompts are templates over the category's name, synonyms
and definition, and optionally over lists of attributes (colours, views, settings...); a per-class
prompt file given by the user replaces the templates for the classes it names, or adds to them.

Template fields:

- ``{name}``: the category name, underscores as spaces (``aerosol_can`` -> ``aerosol can``).
- ``{synonym}``: one prompt per synonym (LVIS ``synonyms``; the name itself when there are none).
- ``{definition}``: the LVIS ``def``; a template using it is skipped for a class without one.
- ``{<attribute>}``: one prompt per value of that attribute list (``attributes``, e.g.
  ``dict(colour=['red', 'blue'], view=['from above', 'from the side'])``).

A template makes every combination of the fields it uses (templates x synonyms x attribute
values); ``max_prompts`` caps the prompts of a class and ``order='shuffle'`` mixes them with a
seeded, per-class permutation (so that a cap or a small ``images_per_class`` still sees every
template and attribute). Image ``i`` of a class gets prompt ``i mod n`` of its list: the choice is
deterministic and recorded with the image. Prompt diversity is one of DiverGen's levers (CVPR
2024, "prompt diversity": more prompts per class, each used for fewer images).
"""
import itertools
import json
import logging
import os.path as osp
import string
from typing import Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from xpaste.utils.checks import check_choice, check_number

# "a photo of a single {name}" is the X-Paste generation prompt; the others add variety.
DEFAULT_TEMPLATES = (
    'a photo of a single {name}',
    'a photo of a single {synonym}',
    'a photo of a single {name}, {definition}',
)
TEMPLATE_FIELDS = ('name', 'synonym', 'definition')
#: How the prompts of a class are ordered: as the templates expand, or seeded-shuffled.
PROMPT_ORDERS = ('product', 'shuffle')
#: What a prompt file does to the classes it names.
PROMPT_FILE_MODES = ('replace', 'add')


def display_name(name: str) -> str:
    """A category name as text: underscores become spaces, e.g. ``'bow_(weapon)'`` ->
    ``'bow (weapon)'``."""
    return ' '.join(name.replace('_', ' ').split())


def normalize_category_names(cats: list, source: str) -> None:
    """Strip the category names of ``cats`` and collapse their inner whitespace, in place
    (``'zebra '`` and ``'zebra'`` are one class).

    Raises:
        ValueError: two spellings that become the same name (the message names both).
    """
    spelling = {}
    for cat in cats:
        if isinstance(cat, dict) and isinstance(cat.get('name'), str):
            name = ' '.join(cat['name'].split())
            if spelling.setdefault(name, cat['name']) != cat['name']:
                raise ValueError(f'{source}: category names {spelling[name]!r} and '
                                 f'{cat["name"]!r} are the same class {name!r} once whitespace '
                                 'is normalised; rename or merge them')
            cat['name'] = name


def read_category_file(ann_file: str) -> dict:
    """Parse an LVIS/COCO-format json with a ``categories`` list (the whole file: a build reads
    its categories and its size statistics from this one parse); category names are normalised
    (:func:`normalize_category_names`).

    Raises:
        FileNotFoundError: ``ann_file`` does not exist.
        ValueError: the json is not an object with a ``categories`` list.
    """
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'category file not found: {ann_file!r}')
    with open(ann_file) as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get('categories'), list):
        raise ValueError(f'{ann_file}: expected a json object with a "categories" list')
    normalize_category_names(data['categories'], ann_file)
    return data


def load_categories(ann_file: Optional[str] = None,
                    names: Optional[Sequence[str]] = None,
                    include: Optional[Sequence[str]] = None,
                    exclude: Optional[Sequence[str]] = None,
                    max_classes: Optional[int] = None,
                    data: Optional[dict] = None) -> list[dict]:
    """Load the categories of a build, sorted by id.

    Args:
        ann_file (str, optional): An LVIS/COCO-format json with a ``categories`` list.
        names (Sequence[str], optional): Category names instead of a json (ids 1..n in order).
            Exactly one of ``ann_file`` and ``names`` must be given.
        include (Sequence[str], optional): Keep only these names. Defaults to all.
        exclude (Sequence[str], optional): Drop these names. Defaults to none.
        max_classes (int, optional): Keep the first ``max_classes`` (by id) after filtering.
        data (dict, optional): ``ann_file`` already parsed (:func:`read_category_file`); read
            from ``ann_file`` when None. Defaults to None.

    Returns:
        list[dict]: ``{'id', 'name', 'synonyms', 'def', ...}`` per category (other fields of the
        json, e.g. LVIS ``frequency``, are kept); names (and ``include``/``exclude``) stripped,
        inner whitespace collapsed.

    Raises:
        FileNotFoundError: ``ann_file`` does not exist.
        ValueError: a malformed category, duplicate ids/names, or unknown names in ``include`` or
            ``exclude`` (the message names them).
    """
    if (ann_file is None) == (names is None):
        raise ValueError('give exactly one of ann_file and names, got '
                         f'ann_file={ann_file!r}, names={names!r}')
    if ann_file is not None:
        cats = (read_category_file(ann_file) if data is None else data)['categories']
        source = ann_file
    else:
        cats = [{'id': i + 1, 'name': str(n)} for i, n in enumerate(names)]
        source = 'names'
    result = []
    for i, cat in enumerate(cats):
        if not isinstance(cat, dict) or not isinstance(cat.get('id'), int) or not isinstance(
                cat.get('name'), str) or not cat['name'].strip():
            raise ValueError(f'{source}: categories[{i}] needs an int "id" and a non-empty '
                             f'"name", got {cat!r}')
        cat = dict(cat)
        cat.setdefault('synonyms', [])
        cat.setdefault('def', '')
        result.append(cat)
    normalize_category_names(result, source)
    include, exclude = ([' '.join(str(n).split()) for n in s] if s else s
                        for s in (include, exclude))
    for key in ('id', 'name'):
        values = [c[key] for c in result]
        dups = sorted({v for v in values if values.count(v) > 1}, key=str)
        if dups:
            raise ValueError(f'{source}: duplicate category {key}s {dups[:5]!r}')
    result.sort(key=lambda c: c['id'])
    known = {c['name'] for c in result}
    for arg, selection in (('include', include), ('exclude', exclude)):
        unknown = sorted(set(selection or ()) - known)
        if unknown:
            raise ValueError(f'categories.{arg} names classes not in {source}: {unknown[:10]!r}')
    if include is not None:
        result = [c for c in result if c['name'] in set(include)]
    if exclude:
        result = [c for c in result if c['name'] not in set(exclude)]
    if max_classes is not None:
        if max_classes < 1:
            raise ValueError(f'categories.max_classes must be >= 1, got {max_classes!r}')
        result = result[:max_classes]
    return result


def _template_fields(template: str) -> list[str]:
    """The fields a template uses, in order of first use."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    return list(dict.fromkeys(fields))


def check_attributes(attributes: Optional[dict]) -> dict:
    """Check ``attributes`` (``{field: [value, ...]}``) and return it as a dict of lists.

    Raises:
        ValueError: not a dict of non-empty lists of strings, or a field that is not an
            identifier or that shadows a built-in template field.
    """
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise ValueError(f'prompts.attributes must be a dict {{field: [values]}}, got '
                         f'{attributes!r}')
    out = {}
    for key, values in attributes.items():
        if not isinstance(key, str) or not key.isidentifier() or key in TEMPLATE_FIELDS:
            raise ValueError(f'prompts.attributes: {key!r} must be an identifier other than '
                             f'{list(TEMPLATE_FIELDS)!r}')
        if isinstance(values, str) or not values or not all(isinstance(v, str) for v in values):
            raise ValueError(f'prompts.attributes.{key} must be a non-empty list of strings '
                             f'(\'\' for "none"), got {values!r}')
        out[key] = list(values)
    return out


def check_templates(templates: Sequence[str], attributes: Optional[dict] = None) -> None:
    """Raise ``ValueError`` for an empty list or a template with an unknown field (one of
    :data:`TEMPLATE_FIELDS` or a key of ``attributes``)."""
    if isinstance(templates, str) or not templates:
        raise ValueError(f'prompt templates must be a non-empty list of strings, got '
                         f'{templates!r}')
    known = [*TEMPLATE_FIELDS, *(attributes or {})]
    for template in templates:
        unknown = set(_template_fields(template)) - set(known)
        if unknown:
            raise ValueError(f'prompt template {template!r} uses unknown fields '
                             f'{sorted(unknown)!r}; known: {known!r}')


def expand_templates(category: dict,
                     templates: Sequence[str] = DEFAULT_TEMPLATES,
                     attributes: Optional[dict] = None) -> list[str]:
    """All prompts of ``templates`` for ``category``, deduplicated, in template order.

    Each template gives one prompt per combination of the values of the fields it uses
    (synonyms, attribute values), the first field varying slowest.

    Args:
        category (dict): ``name`` and optionally ``synonyms`` and ``def``.
        templates (Sequence[str]): Templates over ``{name}``, ``{synonym}``, ``{definition}``
            and the keys of ``attributes``. Defaults to :data:`DEFAULT_TEMPLATES`.
        attributes (dict, optional): ``{field: [value, ...]}`` lists a template may use.
            Defaults to None.
    """
    attributes = check_attributes(attributes)
    check_templates(templates, attributes)
    name = display_name(category['name'])
    synonyms = [display_name(s) for s in category.get('synonyms') or []] or [name]
    definition = (category.get('def') or '').strip().rstrip('.')
    values = dict(attributes, name=[name], synonym=synonyms, definition=[definition])
    prompts = []
    for template in templates:
        if '{definition}' in template and not definition:
            continue
        fields = _template_fields(template)
        tidy = any(f in attributes for f in fields)  # an empty value leaves double spaces
        for combo in itertools.product(*(values[f] for f in fields)):
            prompt = template.format(**dict(zip(fields, combo)))
            if tidy:
                prompt = ' '.join(prompt.split()).replace(' ,', ',').replace(',,', ',').strip(' ,')
            prompts.append(prompt)
    return list(dict.fromkeys(prompts))


def load_prompt_file(path: str) -> dict[str, list[str]]:
    """Read per-class prompts.

    Two formats:

    - json (a ``.json`` file, or text starting with ``{``): an object
      ``{category name: [prompt, ...] or prompt}``;
    - text: one prompt per line, ``name<TAB>prompt`` or ``name: prompt``; blank lines and
      lines starting with ``#`` are skipped; a class's lines are kept in order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a json object of strings / lists of strings, or a text line without a
            name (the message names the key or the line).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'prompt file not found: {path!r}')
    with open(path, encoding='utf-8') as f:
        text = f.read()
    if path.lower().endswith('.json') or text.lstrip().startswith('{'):
        return _parse_prompt_json(text, path)
    return _parse_prompt_lines(text, path)


def _parse_prompt_json(text: str, path: str) -> dict[str, list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f'prompt file {path!r} is not valid json: {e}')
    if not isinstance(data, dict):
        raise ValueError(f'prompt file {path!r} must be a json object {{name: [prompts]}}, '
                         f'got {type(data).__name__}')
    result = {}
    for name, prompts in data.items():
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts or not all(
                isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError(f'prompt file {path!r}: {name!r} must map to a non-empty list of '
                             f'non-empty strings, got {prompts!r}')
        result[name] = list(prompts)
    return result


def _parse_prompt_lines(text: str, path: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        sep = '\t' if '\t' in line else ':'
        name, _, prompt = line.partition(sep)
        name, prompt = name.strip(), prompt.strip()
        if sep not in line or not name or not prompt:
            raise ValueError(f'prompt file {path!r} line {number}: expected "name<TAB>prompt" '
                             f'or "name: prompt", got {line!r}')
        result.setdefault(name, []).append(prompt)
    return result


def match_prompt_file(overrides: dict, categories: Sequence[dict]) -> tuple[dict, list]:
    """The prompt file's entries by category name: a name matches exactly, else by its
    display form, case-insensitive (``'Aerosol can'`` -> ``aerosol_can``).

    Returns:
        tuple[dict, list]: ``{category name: prompts}`` and the file's names that match no
        category.
    """
    names = {c['name'] for c in categories}
    loose = {display_name(c['name']).lower(): c['name'] for c in categories}
    matched, unknown = {}, []
    for key, prompts in overrides.items():
        name = key if key in names else loose.get(display_name(key).lower())
        if name is None:
            unknown.append(key)
        else:
            matched.setdefault(name, []).extend(prompts)
    return matched, sorted(unknown)


class PromptBank:
    """The prompts of every class of a build.

    Image ``i`` of a class gets prompt ``i % len(prompts)``, so prompts are used in turn and the
    prompt of an image does not depend on how the work is split.

    Args:
        categories (list[dict]): From :func:`load_categories`.
        templates (Sequence[str]): Defaults to :data:`DEFAULT_TEMPLATES`.
        prompt_file (str, optional): Per-class prompts (see :func:`load_prompt_file`).
            Defaults to None.
        attributes (dict, optional): ``{field: [value, ...]}`` lists the templates may use
            (``{colour}``, ``{view}``, ``{setting}``...). Defaults to None.
        max_prompts (int, optional): At most this many prompts per class (after ordering).
            Defaults to None (all).
        order (str): ``'product'`` (as the templates expand) or ``'shuffle'`` (a seeded
            permutation per class). Defaults to ``'product'``.
        prompt_file_mode (str): ``'replace'``: the file's prompts replace the templates for
            the classes it names; ``'add'``: they come first, before the templates' prompts.
            Defaults to ``'replace'``.
        seed (int): Seed of ``'shuffle'`` (with the class id). Defaults to 0.
    """

    def __init__(self,
                 categories: list[dict],
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 prompt_file: Optional[str] = None,
                 attributes: Optional[dict] = None,
                 max_prompts: Optional[int] = None,
                 order: str = 'product',
                 prompt_file_mode: str = 'replace',
                 seed: int = 0):
        templates = list(templates)
        attributes = check_attributes(attributes)
        check_templates(templates, attributes)
        max_prompts = check_number('prompts.max_prompts', max_prompts, 1, integer=True,
                                   allow_none=True)
        check_choice('prompts.order', order, PROMPT_ORDERS)
        check_choice('prompts.prompt_file_mode', prompt_file_mode, PROMPT_FILE_MODES)
        overrides = load_prompt_file(prompt_file) if prompt_file else {}
        overrides, unknown = match_prompt_file(overrides, categories)
        if unknown:
            print_log(
                f'prompt file {prompt_file!r} names {len(unknown)} classes that are not '
                f'built (ignored): {unknown[:10]!r}',
                logger='current',
                level=logging.WARNING)
        self.templates = templates
        self.prompt_file = prompt_file
        self.attributes = attributes
        self.max_prompts = max_prompts
        self.order = order
        self.prompt_file_mode = prompt_file_mode
        self.seed = int(seed)
        self._prompts = {}
        for cat in categories:
            given = overrides.get(cat['name'], [])
            if given and prompt_file_mode == 'replace':
                prompts = list(given)
            else:
                prompts = list(dict.fromkeys(given + expand_templates(cat, templates, attributes)))
            self._prompts[cat['name']] = self._arrange(prompts, cat['id'])

    def _arrange(self, prompts: list, category_id: int) -> list:
        """Order (``order``) and cap (``max_prompts``) one class's prompts."""
        if self.order == 'shuffle':
            seq = np.random.SeedSequence([self.seed & 0xFFFFFFFF, int(category_id), 0x70726F])
            perm = np.random.default_rng(seq).permutation(len(prompts))
            prompts = [prompts[i] for i in perm]
        return prompts[:self.max_prompts] if self.max_prompts else prompts

    def prompts(self, name: str) -> list[str]:
        """All prompts of class ``name``."""
        return self._prompts[name]

    def prompt(self, name: str, index: int) -> str:
        """The prompt of image ``index`` of class ``name``."""
        prompts = self._prompts[name]
        return prompts[index % len(prompts)]

    def to_dict(self) -> dict:
        """Every class's prompts (recorded in fingerprints and the bank's build info)."""
        return dict(self._prompts)

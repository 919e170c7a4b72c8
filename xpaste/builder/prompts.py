"""Categories and text prompts of a bank build.

Categories come from any LVIS/COCO-format json (``categories`` with ``id`` and ``name``; LVIS adds
``synonyms`` and ``def``). Prompts are templates over the category's name, synonyms and
definition; a per-class prompt file given by the user replaces the templates for the classes it
names.

Template fields:

- ``{name}``: the category name, underscores as spaces (``aerosol_can`` -> ``aerosol can``).
- ``{synonym}``: one prompt per synonym (LVIS ``synonyms``; the name itself when there are none).
- ``{definition}``: the LVIS ``def``; a template using it is skipped for a class without one.
"""
import json
import logging
import os.path as osp
import string
from typing import Optional, Sequence

from mmengine.logging import print_log

# "a photo of a single {name}" is the X-Paste generation prompt; the others add variety.
DEFAULT_TEMPLATES = (
    'a photo of a single {name}',
    'a photo of a single {synonym}',
    'a photo of a single {name}, {definition}',
)
TEMPLATE_FIELDS = ('name', 'synonym', 'definition')


def display_name(name: str) -> str:
    """A category name as text: underscores become spaces, e.g. ``'bow_(weapon)'`` ->
    ``'bow (weapon)'``."""
    return ' '.join(name.replace('_', ' ').split())


def read_category_file(ann_file: str) -> dict:
    """Parse an LVIS/COCO-format json with a ``categories`` list (the whole file: a build reads
    its categories and its size statistics from this one parse).

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
        json, e.g. LVIS ``frequency``, are kept).

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
                cat.get('name'), str) or not cat['name']:
            raise ValueError(f'{source}: categories[{i}] needs an int "id" and a non-empty '
                             f'"name", got {cat!r}')
        cat = dict(cat)
        cat.setdefault('synonyms', [])
        cat.setdefault('def', '')
        result.append(cat)
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


def check_templates(templates: Sequence[str]) -> None:
    """Raise ``ValueError`` for an empty list or a template with an unknown field."""
    if isinstance(templates, str) or not templates:
        raise ValueError(f'prompt templates must be a non-empty list of strings, got '
                         f'{templates!r}')
    for template in templates:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        unknown = fields - set(TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(f'prompt template {template!r} uses unknown fields '
                             f'{sorted(unknown)!r}; known: {list(TEMPLATE_FIELDS)!r}')


def expand_templates(category: dict, templates: Sequence[str] = DEFAULT_TEMPLATES) -> list[str]:
    """All prompts of ``templates`` for ``category``, deduplicated, in template order.

    Args:
        category (dict): ``name`` and optionally ``synonyms`` and ``def``.
        templates (Sequence[str]): Templates over ``{name}``, ``{synonym}``, ``{definition}``.
            Defaults to :data:`DEFAULT_TEMPLATES`.
    """
    check_templates(templates)
    name = display_name(category['name'])
    synonyms = [display_name(s) for s in category.get('synonyms') or []] or [name]
    definition = (category.get('def') or '').strip().rstrip('.')
    prompts = []
    for template in templates:
        if '{definition}' in template and not definition:
            continue
        for synonym in (synonyms if '{synonym}' in template else [name]):
            prompts.append(template.format(name=name, synonym=synonym, definition=definition))
    return list(dict.fromkeys(prompts))


def load_prompt_file(path: str) -> dict[str, list[str]]:
    """Read per-class prompts: a json object ``{category name: [prompt, ...] or prompt}``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a json object of strings / lists of strings (the message names the key).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'prompt file not found: {path!r}')
    with open(path) as f:
        try:
            data = json.load(f)
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


class PromptBank:
    """The prompts of every class of a build.

    Image ``i`` of a class gets prompt ``i % len(prompts)``, so prompts are used in turn and the
    prompt of an image does not depend on how the work is split.

    Args:
        categories (list[dict]): From :func:`load_categories`.
        templates (Sequence[str]): Defaults to :data:`DEFAULT_TEMPLATES`.
        prompt_file (str, optional): Per-class prompts replacing the templates for the classes it
            names (see :func:`load_prompt_file`). Defaults to None.
    """

    def __init__(self,
                 categories: list[dict],
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 prompt_file: Optional[str] = None):
        templates = list(templates)
        check_templates(templates)
        overrides = load_prompt_file(prompt_file) if prompt_file else {}
        names = {c['name'] for c in categories}
        unknown = sorted(set(overrides) - names)
        if unknown:
            print_log(
                f'prompt file {prompt_file!r} names {len(unknown)} classes that are not '
                f'built (ignored): {unknown[:10]!r}',
                logger='current',
                level=logging.WARNING)
        self.templates = templates
        self.prompt_file = prompt_file
        self._prompts = {
            c['name']: overrides.get(c['name']) or expand_templates(c, templates)
            for c in categories
        }

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

"""The option names of every section of a bank build config, checked before anything is built.

A misspelt option (``--cfg-options filter.min_clipp=20``) stops the build with the section, the
option and the known names, e.g. ``filter: unknown option 'min_clipp' (known: min_clip,
tolerance, ...); did you mean 'min_clip'?``, instead of a ``TypeError`` of a constructor or, for
the sections read by key, of being silently ignored.

The known names of a section are the arguments of what it builds (``inspect.signature``: a
registered source, segmenter, :class:`~xpaste.builder.clip_scoring.ClipScorer`,
:class:`~xpaste.builder.filters.InstanceFilter`, ...) or, for a section read by key
(``generate``, ``segment``, ``write``, ``report``, ``workers``, ``stream``, ``dist``), the keys of
:data:`~xpaste.builder.defaults.BUILD_DEFAULTS`.
"""
import difflib
import inspect
from typing import Callable, Optional, Sequence

from .clip_scoring import ClipScorer
from .defaults import BUILD_DEFAULTS
from .filters import InstanceFilter
from .prompts import PromptBank, load_categories
from .segmenters import SEGMENTERS
from .sources import SOURCES

_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
# The sections read by key: their options are the keys of their defaults.
_BY_KEY = ('generate', 'segment', 'write', 'report', 'workers', 'stream', 'dist')


def accepted_options(target: Callable, skip: Sequence[str] = ()) -> Optional[list]:
    """The keyword arguments of ``target`` (a class or a function), in signature order, less
    ``skip`` (arguments the build passes itself); None when it takes ``**kwargs``."""
    params = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in _KEYWORD and p.name not in skip]


def check_section(section: str, options: dict, known: Optional[Sequence[str]]) -> None:
    """Raise when ``options`` has keys outside ``known`` (None: anything goes).

    Raises:
        ValueError: ``"<section>: unknown option 'x' (known: a, b, ...)"``, with the closest
            known name when there is one.
    """
    if known is None:
        return
    unknown = [key for key in options if key not in known]
    if not unknown:
        return
    names = ', '.join(repr(k) for k in unknown)
    key = str(unknown[0])
    close = difflib.get_close_matches(
        key, list(known), n=1) or [k for k in known if k.startswith(key) or key.startswith(k)]
    hint = f'; did you mean {close[0]!r}?' if close else ''
    raise ValueError(f'{section}: unknown option{"s" if len(unknown) > 1 else ""} {names} '
                     f'(known: {", ".join(known)}){hint}')


def _registered(registry, cfg: dict):
    """The class ``cfg['type']`` names in ``registry``, None when unknown (the registry's
    own error then names it)."""
    kind = cfg.get('type')
    return kind if inspect.isclass(kind) else registry.get(kind)


def _check_component(section: str, cfg: dict, registry, extra: Sequence[str] = ()) -> None:
    """A registered component's options (``type``, its arguments and ``extra``), and those of
    the components nested in it: the entries of a composite source, which may also carry the
    ``name`` the composite records."""
    cls = _registered(registry, cfg)
    if cls is not None:
        known = accepted_options(cls)
        check_section(section, cfg, None if known is None else ['type', *known, *extra])
    for key, value in cfg.items():
        for sub, item in _nested(f'{section}.{key}', value):
            _check_component(sub, item, registry, extra=('name', ))


def _nested(path: str, value):
    """``(path, dict)`` of every dict with a ``type`` under ``value`` (lists and dicts)."""
    if isinstance(value, dict):
        if 'type' in value:
            yield path, value
        else:
            for key, item in value.items():
                yield from _nested(f'{path}.{key}', item)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _nested(f'{path}[{i}]', item)


def check_options(cfg: dict) -> None:
    """Check the option names of every section of a merged build config
    (:func:`~xpaste.builder.defaults.merge_defaults`).

    Raises:
        ValueError: an unknown option; the message names the section (e.g.
            ``segment.segmenters[1]``), the option and the known ones.
    """
    targets = {
        'categories': accepted_options(load_categories, skip=('data', )),
        'prompts': accepted_options(PromptBank, skip=('categories', 'seed')),
        'score': ['type', *accepted_options(ClipScorer)],
        'filter': accepted_options(InstanceFilter),
    }
    targets.update({key: list(BUILD_DEFAULTS[key]) for key in _BY_KEY})
    for section, known in targets.items():
        if isinstance(cfg.get(section), dict):
            check_section(section, cfg[section], known)
    if isinstance(cfg.get('source'), dict):
        _check_component('source', cfg['source'], SOURCES)
    segmenters = (cfg.get('segment') or {}).get('segmenters')
    if isinstance(segmenters, (list, tuple)):
        for i, seg in enumerate(segmenters):
            if isinstance(seg, dict):
                _check_component(f'segment.segmenters[{i}]', seg, SEGMENTERS)

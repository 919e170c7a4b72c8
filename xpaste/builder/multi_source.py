"""Sources made of several sources: per-class routing and per-image mixing.

- :class:`RoutedSource` sends each class to one source, chosen by its LVIS ``frequency``
  (``'r'``, ``'c'``, ``'f'``) or by an explicit list of class names: e.g. a text-to-image model
  for the rare classes, retrieved images for the others.
- :class:`MixedSource` makes each image of a class with one of several generators, drawn by
  weight from the image's own seed, so the choice does not depend on batching or ranks
  (DiverGen, CVPR 2024: "generative model diversity", Stable Diffusion and DeepFloyd-IF images
  mixed for every class).

Every item records which entry made it (:attr:`~xpaste.builder.sources.SourceItem.generator`,
``'<route>/<generator>'`` when nested); the build keeps it in the ``generate`` record, the filter
output, the report (counts and score histograms per generator) and the bank row's ``source``
(:func:`~xpaste.builder.sources.source_label`). Both are registered in
:data:`~xpaste.builder.sources.SOURCES`.
"""
import re
from collections.abc import Sequence
from typing import Optional

import numpy as np

from .sources import SOURCES, BaseSource, SourceItem, build_source

#: Names of the entries of a composite source (recorded with every image).
ENTRY_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
LVIS_FREQUENCIES = ('r', 'c', 'f')


def _build_entry(cfg, what: str) -> tuple[str, BaseSource]:
    """``(name, source)`` of an entry config: a source dict with an optional ``name`` (default:
    the source type without ``Source``, lower case, e.g. ``'diffusers'``)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'{what} must be a source dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    name = cfg.pop('name', None)
    if name is None:
        kind = str(cfg['type']).rsplit('.', 1)[-1]
        name = (kind[:-len('Source')] if kind.endswith('Source') else kind).lower() or kind
    if not isinstance(name, str) or not ENTRY_NAME.match(name):
        raise ValueError(f'{what}.name must be letters, digits, "_", "." or "-", got {name!r}')
    return name, build_source(cfg)


def _check_unique(names: Sequence[str], what: str) -> None:
    dups = sorted({n for n in names if list(names).count(n) > 1})
    if dups:
        raise ValueError(f'{what}: entries share the names {dups!r}; give each a name= '
                         '(recorded with every image)')


def _tag(item: SourceItem, name: str) -> SourceItem:
    item.generator = f'{name}/{item.generator}' if item.generator else name
    return item


class CompositeSource(BaseSource):
    """What :class:`MixedSource` and :class:`RoutedSource` share: named child sources whose
    settings (device rank, checks, models) follow the composite's."""

    def __init__(self, entries: Sequence[tuple[str, BaseSource]], what: str):
        _check_unique([n for n, _ in entries], what)
        self.names = [n for n, _ in entries]
        self.children = [s for _, s in entries]
        self._local_rank = 0

    @property
    def uses_gpu(self) -> bool:
        return any(c.uses_gpu for c in self.children)

    @property
    def batch_size(self) -> int:
        """The largest batch of the GPU children (the stream fills batches across chunks)."""
        return max([getattr(c, 'batch_size', 1) for c in self.children if c.uses_gpu] or [1])

    @property
    def local_rank(self) -> int:
        return self._local_rank

    @local_rank.setter
    def local_rank(self, value: int) -> None:
        self._local_rank = value
        for child in self.children:
            child.local_rank = value

    def check(self) -> None:
        for child in self.children:
            child.check()

    def setup(self) -> None:
        for child in self.children:
            child.setup()

    def _run(self, child: int, requests: list) -> list[list[SourceItem]]:
        """``generate_many`` of one child, its items tagged with the child's name."""
        out = self.children[child].generate_many(requests)
        return [[_tag(item, self.names[child]) for item in items] for items in out]


@SOURCES.register_module()
class MixedSource(CompositeSource):
    """Each image of every class from one of several generators, drawn by weight.

    Image ``i`` of a class goes to the generator drawn from a uniform number seeded by the
    image's seed (:func:`~xpaste.builder.sources.derive_seed`): the assignment is the same
    whatever the batching, the chunking or the ranks, and about ``weights[k] / sum(weights)``
    of each class's images come from generator ``k``. Each generator gets the image's prompt and
    seed. Requests are grouped per generator, so a batched generator still fills its batches.

    Args:
        sources (Sequence[dict]): Generator configs (``dict(type=..., name=..., ...)``; every
            one generative, e.g. two ``DiffusersSource`` with different models). ``name`` is
            recorded with each image; defaults to the type without ``Source``, lower case.
        weights (Sequence[float], optional): Share of each generator (>= 0, not all 0).
            Defaults to equal shares.
    """

    def __init__(self, sources: Sequence[dict], weights: Optional[Sequence[float]] = None):
        if isinstance(sources, dict) or not sources:
            raise ValueError(f'MixedSource.sources must be a non-empty list of source dicts, got '
                             f'{sources!r}')
        entries = [_build_entry(cfg, f'MixedSource.sources[{i}]') for i, cfg in enumerate(sources)]
        super().__init__(entries, 'MixedSource.sources')
        for name, child in entries:
            if not child.generative:
                raise ValueError(f'MixedSource.sources: {name!r} ({type(child).__name__}) does '
                                 'not generate from prompts and seeds; mix generators only (route '
                                 'classes to image folders with RoutedSource)')
        weights = [1.0] * len(entries) if weights is None else list(weights)
        if len(weights) != len(entries) or any(
                not isinstance(w, (int, float)) or isinstance(w, bool) or not w >= 0
                for w in weights) or sum(weights) <= 0:
            raise ValueError(f'MixedSource.weights must be {len(entries)} numbers >= 0 with a '
                             f'positive sum (one per source), got {weights!r}')
        self.weights = [float(w) for w in weights]
        self._edges = np.cumsum(self.weights) / sum(self.weights)

    @property
    def batch_size(self) -> int:
        """The GPU generators' batches added up: a group of chunks this large gives each
        generator about a full batch (equal weights)."""
        return max(sum(getattr(c, 'batch_size', 1) for c in self.children if c.uses_gpu), 1)

    def choose(self, seed: int) -> int:
        """The generator of the image with seed ``seed``."""
        seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x6D6978])  # 'mix'
        u = np.random.default_rng(seq).random()
        return min(int(np.searchsorted(self._edges, u, side='right')), len(self.children) - 1)

    def check_categories(self, categories):
        for child in self.children:
            child.check_categories(categories)

    def generate(self, category, indices, prompts, seeds):
        return self.generate_many([(category, indices, prompts, seeds)])[0]

    def generate_many(self, requests):
        """Split every request by generator, run each generator once over its share of all
        the requests, and put the items back in request order."""
        out = [[None] * len(r[1]) for r in requests]
        for child in range(len(self.children)):
            where, sub = [], []
            for r, (category, indices, prompts, seeds) in enumerate(requests):
                pos = [k for k, s in enumerate(seeds) if self.choose(s) == child]
                if pos:
                    where.append((r, pos))
                    sub.append((category, [indices[k] for k in pos], [prompts[k] for k in pos],
                                [seeds[k] for k in pos]))
            if not sub:
                continue
            for (r, pos), items in zip(where, self._run(child, sub)):
                if len(items) != len(pos):
                    raise RuntimeError(f'MixedSource: {self.names[child]!r} returned '
                                       f'{len(items)} images for {len(pos)} requests')
                for k, item in zip(pos, items):
                    out[r][k] = item
        return out

    def describe(self):
        return dict(
            type='MixedSource',
            sources=[dict(c.describe(), name=n) for n, c in zip(self.names, self.children)],
            weights=list(self.weights))


@SOURCES.register_module()
class RoutedSource(CompositeSource):
    """Each class from one source, chosen by the class's LVIS frequency or by name.

    A class takes the first route that matches it: ``frequency`` (one of ``'r'``, ``'c'``,
    ``'f'`` or a sequence of them, read from the category's LVIS ``frequency`` field) or
    ``classes`` (category names). A class that no route matches goes to ``default``; without a
    ``default`` the build stops before any work with the list of such classes.

    Example::

        source = dict(
            type='RoutedSource',
            routes=[
                dict(frequency='r', source=dict(type='DiffusersSource', model=...)),
                dict(frequency=('c', 'f'), source=dict(type='FolderSource', root=...)),
            ])

    Args:
        routes (Sequence[dict]): ``dict(source=<source dict>, frequency=... | classes=...,
            name=...)``; ``name`` (recorded with each image) defaults to the source type
            without ``Source``, lower case.
        default (dict, optional): The source of the classes no route matches (a source dict,
            optionally with ``name``; default name ``'default'``). Defaults to None.
    """

    def __init__(self, routes: Sequence[dict], default: Optional[dict] = None):
        if isinstance(routes, dict) or not routes:
            raise ValueError(f'RoutedSource.routes must be a non-empty list of dicts, got '
                             f'{routes!r}')
        entries, self.rules = [], []
        for i, route in enumerate(routes):
            what = f'RoutedSource.routes[{i}]'
            if not isinstance(route, dict) or 'source' not in route:
                raise ValueError(f'{what} must be dict(source=..., frequency=... or classes=...), '
                                 f'got {route!r}')
            unknown = sorted(set(route) - {'source', 'frequency', 'classes', 'name'})
            if unknown or ('frequency' in route) == ('classes' in route):
                raise ValueError(f'{what} needs exactly one of frequency= and classes= (and '
                                 f'source=, optionally name=), got keys {sorted(route)}')
            self.rules.append(self._rule(route, what))
            source = dict(route['source'])
            if 'name' in route:
                source['name'] = route['name']
            entries.append(_build_entry(source, what))
        self.has_default = default is not None
        if default is not None:
            entries.append(_build_entry(dict(dict(name='default'), **default),
                                        'RoutedSource.default'))
        super().__init__(entries, 'RoutedSource.routes')
        self._route_cache: dict[int, Optional[int]] = {}

    @staticmethod
    def _rule(route: dict, what: str) -> tuple[str, frozenset, object]:
        """``(field, values it matches, the setting as given)`` of a route."""
        if 'frequency' in route:
            given = route['frequency']
            freq = (given, ) if isinstance(given, str) else tuple(given)
            if not freq or any(f not in LVIS_FREQUENCIES for f in freq):
                raise ValueError(f'{what}.frequency must be one or more of {LVIS_FREQUENCIES}, '
                                 f'got {given!r}')
            return 'frequency', frozenset(freq), given if isinstance(given, str) else list(freq)
        classes = route['classes']
        if isinstance(classes, str) or not classes or not all(isinstance(c, str)
                                                              for c in classes):
            raise ValueError(f'{what}.classes must be a non-empty list of class names, got '
                             f'{classes!r}')
        return 'classes', frozenset(classes), list(classes)

    @property
    def generative(self) -> bool:
        return any(c.generative for c in self.children)

    def route(self, category: dict) -> Optional[int]:
        """The position of ``category``'s source among :attr:`children`, None when no route
        matches it and there is no default."""
        key = category['id']
        if key not in self._route_cache:
            found = None
            for i, (kind, values, _) in enumerate(self.rules):
                field = category.get('frequency') if kind == 'frequency' else category['name']
                if field in values:
                    found = i
                    break
            if found is None and self.has_default:
                found = len(self.children) - 1
            self._route_cache[key] = found
        return self._route_cache[key]

    def child_of(self, category: dict) -> BaseSource:
        """The source of ``category``.

        Raises:
            ValueError: no route matches it and there is no default.
        """
        i = self.route(category)
        if i is None:
            raise ValueError(f'RoutedSource: no route for class {category["name"]!r} '
                             f'(frequency {category.get("frequency")!r}); add a route or a '
                             'default=')
        return self.children[i]

    def check_categories(self, categories):
        unrouted = [c for c in categories if self.route(c) is None]
        if unrouted:
            names = [c['name'] for c in unrouted]
            no_freq = sum(1 for c in unrouted if c.get('frequency') is None)
            hint = (f'; {no_freq} of them have no LVIS "frequency" field (categories from '
                    'names= or a COCO json): route them by classes=' if no_freq else '')
            raise ValueError(f'RoutedSource: {len(names)} classes match no route and there is no '
                             f'default: {names[:20]!r}{" ..." if len(names) > 20 else ""}'
                             f'{hint}; add a route (frequency= or classes=) or default=')
        for i, child in enumerate(self.children):
            child.check_categories([c for c in categories if self.route(c) == i])

    def num_images(self, category, images_per_class):
        return self.child_of(category).num_images(category, images_per_class)

    def generate(self, category, indices, prompts, seeds):
        return self.generate_many([(category, indices, prompts, seeds)])[0]

    def generate_many(self, requests):
        """Run each route's source once over its classes' requests, in request order."""
        out = [None] * len(requests)
        by_route: dict[int, list[int]] = {}
        for r, request in enumerate(requests):
            self.child_of(request[0])
            by_route.setdefault(self.route(request[0]), []).append(r)
        for child, positions in by_route.items():
            for r, items in zip(positions, self._run(child, [requests[r] for r in positions])):
                out[r] = items
        return out

    def describe(self):
        routes = [{
            kind: given,
            'name': name,
            'source': child.describe()
        } for (kind, _, given), name, child in zip(self.rules, self.names, self.children)]
        info = dict(type='RoutedSource', routes=routes)
        if self.has_default:
            info['default'] = dict(self.children[-1].describe(), name=self.names[-1])
        return info

"""Read-only, lazily opened view of an instance bank for training (sampling, decoding, sizes)."""
import math
import os
import os.path as osp
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from xpaste.bank import BankReader, load_size_stats, read_manifest
from xpaste.bank import class_frequency as _class_frequency_from_annotations
from xpaste.utils.checks import check_choice, check_non_negative, check_number, check_range

SAMPLING_MODES = ('uniform', 'class_balanced', 'frequency')


@DATASETS.register_module()
class InstanceBank:
    """Read-only view of a bank (see ``docs/bank_format.md``) for pasting during training.

    Construction only validates arguments and reads the small manifest (plus the class
    frequency/size statistics files if given as paths, reduced to small dicts). The index is
    memory-mapped and the shards are opened on first use, i.e. inside each dataloader worker;
    pickling drops them (and the decode cache), so only a few kB go to the workers.

    Opening (on first use, once per process) checks that every index row names a manifest
    category. :meth:`restrict` narrows ``categories`` further (``XPaste(ignore_unknown=True)``
    uses it to leave out categories the dataset does not have).

    Sampling modes (all restricted to ``categories`` and ``min_clip_score`` when given):

    1. ``'uniform'``: every eligible instance equally likely.
    2. ``'class_balanced'``: a class uniformly among the classes with at least one eligible
       instance, then an instance uniformly within it (the X-Paste default).
    3. ``'frequency'``: a class with probability proportional to
       ``class_frequency[name] ** freq_power`` (a negative power favours rare classes), then an
       instance uniformly within it.

    Args:
        root (str | os.PathLike): Bank root folder.
        sampling (str): ``'uniform'``, ``'class_balanced'`` or ``'frequency'``.
            Defaults to ``'class_balanced'``.
        categories (Sequence[str], optional): Sample only from these category names (all must be
            bank categories). Defaults to None (all).
        freq_power (float): Exponent of the training frequency in ``'frequency'`` mode.
            Defaults to -0.5.
        class_frequency (dict | str | os.PathLike, optional): ``{name: count}`` or a COCO/LVIS
            annotation file (LVIS ``image_count``, else images per class). Required by
            ``'frequency'``; bank classes missing from it (or with count 0) get the smallest
            known count, with a warning. Defaults to None.
        size_stats (dict | str | os.PathLike, optional): Size statistics
            (``tools/bank/stats.py`` output) or their path. Defaults to None: the manifest's
            ``size_stats`` if any.
        size_fallback (tuple[float, float]): ``(low, high)`` range of ``sqrt(area ratio)`` used
            for classes without statistics: :meth:`size_prior` returns the mean and std of the
            uniform distribution on it. Defaults to (0.05, 0.5).
        cache_size (int): Decoded instances kept per process (LRU); 0 disables the cache.
            Defaults to 2048.
        min_clip_score (float, optional): Sample only instances whose ``clip_score`` is at least
            this. Instances with an unknown (NaN) score, e.g. every instance of a bank built
            from annotations, are then excluded, with a warning that gives their count.
            Defaults to None.
        cache_bytes (int): Upper bound on the decoded bytes held by the cache. Defaults to
            256 MiB.
    """

    def __init__(self,
                 root: str | os.PathLike,
                 sampling: str = 'class_balanced',
                 categories: Sequence[str] | None = None,
                 freq_power: float = -0.5,
                 class_frequency: Mapping[str, float] | str | os.PathLike | None = None,
                 size_stats: Mapping | str | os.PathLike | None = None,
                 size_fallback: tuple[float, float] = (0.05, 0.5),
                 cache_size: int = 2048,
                 min_clip_score: float | None = None,
                 cache_bytes: int = 256 << 20):
        self.root = osp.abspath(os.fspath(root))
        self.sampling = check_choice('sampling', sampling, SAMPLING_MODES)
        self.freq_power = check_number('freq_power', freq_power)
        self.size_fallback = check_range('size_fallback', size_fallback, 0, lo_open=True)
        self.cache_size = check_non_negative('cache_size', cache_size, integer=True)
        self.cache_bytes = check_non_negative('cache_bytes', cache_bytes, integer=True)
        self.min_clip_score = check_number(
            'min_clip_score', min_clip_score, allow_none=True, finite=False)

        manifest = read_manifest(self.root)
        self._category_names = [c['name'] for c in manifest['categories']]
        self._category_ids = [c['id'] for c in manifest['categories']]
        self._num_instances = manifest['num_instances']
        self.categories = None
        self._subset = None
        if categories is not None:
            self._set_categories(categories)

        self._class_freq = None
        if sampling == 'frequency':
            if class_frequency is None:
                raise ValueError("sampling='frequency' needs class_frequency (a dict "
                                 'name->count or a COCO/LVIS annotation file)')
            self._class_freq = self._resolve_frequency(class_frequency)
        elif class_frequency is not None:
            warnings.warn(f'class_frequency is ignored with sampling={sampling!r}', stacklevel=2)

        if size_stats is not None:
            stats = load_size_stats(size_stats)
        elif manifest.get('size_stats') is not None:
            stats = load_size_stats(manifest['size_stats'])
        else:
            stats = None
            print_log(
                f'InstanceBank {self.root}: no size statistics; every class uses the '
                f'fallback range {self.size_fallback}',
                logger='current')
        self._size = self._resolve_sizes(stats)
        self._reset_runtime()

    # ---------------------------------------------------------------- setup helpers
    def _category_positions(self, categories: Sequence[str]) -> np.ndarray:
        """Sorted unique bank positions of ``categories``, a non-empty list of bank names."""
        if isinstance(categories, str) or not isinstance(categories, Sequence):
            raise TypeError(f'categories must be a list of names, got {categories!r}')
        if not categories:
            raise ValueError('categories is empty: pass None to sample from every category')
        name_to_pos = {n: i for i, n in enumerate(self._category_names)}
        unknown = [c for c in categories if c not in name_to_pos]
        if unknown:
            raise ValueError(f'{osp.join(self.root, "manifest.json")}: categories '
                             f'{unknown[:10]} are not in the bank ({len(unknown)} unknown)')
        return np.unique([name_to_pos[c] for c in categories]).astype(np.int64)

    def _set_categories(self, categories: Sequence[str]) -> None:
        """Sample only from ``categories`` (bank category names)."""
        self._subset = self._category_positions(categories)
        self.categories = list(categories)

    def _resolve_frequency(self, class_frequency) -> np.ndarray:
        if isinstance(class_frequency, (str, os.PathLike)):
            names_in_file = _class_frequency_from_annotations(class_frequency)
            freq = {n: names_in_file[n] for n in self._category_names if n in names_in_file}
        elif isinstance(class_frequency, Mapping):
            freq = dict(class_frequency)
        else:
            raise TypeError('class_frequency must be a dict name->count or a path, got '
                            f'{type(class_frequency).__name__}')
        out = np.full(len(self._category_names), np.nan)
        for i, name in enumerate(self._category_names):
            value = freq.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f'class_frequency[{name!r}] must be a count >= 0, got {value!r}')
            if value > 0:
                out[i] = float(value)
        known = out[np.isfinite(out)]
        if known.size == 0:
            raise ValueError('class_frequency has no positive count for any bank category')
        missing = int(np.isnan(out).sum())
        if missing:
            names = [n for n, v in zip(self._category_names, out) if np.isnan(v)]
            warnings.warn(
                f'class_frequency lacks a positive count for {missing} bank '
                f'categories (e.g. {names[:5]}); they get the smallest known count '
                f'{known.min():g}',
                stacklevel=3)
            out[np.isnan(out)] = known.min()
        return out

    def _resolve_sizes(self, stats) -> dict[str, tuple[float, float]]:
        if stats is None:
            return {}
        out = {}
        for name, s in stats['categories'].items():
            if not s['count'] or s['mean'] is None:
                continue
            std = s['std'] if s['count'] >= 2 and s['std'] is not None else None
            out[name] = (float(s['mean']), None if std is None else float(std))
        return out

    def _reset_runtime(self) -> None:
        self._reader = None
        self._cache: OrderedDict = OrderedDict()
        self._cache_nbytes = 0
        self._bad: set[int] = set()
        self._ids = None
        self._counts = None
        self._offsets = None
        self._classes = None
        self._cdf = None

    def _open(self) -> BankReader:
        """Open the bank and build the per-class CSR of eligible instance ids (once/process)."""
        if self._reader is not None:
            return self._reader
        reader = BankReader(self.root)
        if len(reader) != self._num_instances or reader.category_names != self._category_names:
            raise RuntimeError(f'{self.root}: the bank changed since InstanceBank was built '
                               f'({self._num_instances} -> {len(reader)} instances)')
        self._reader = reader
        try:
            self._check_categories()
            self._build_sampler()
        except Exception:
            self._reader = None
            reader.close()
            raise
        return reader

    def _column(self, name: str) -> np.ndarray:
        """Index column ``name`` of the open bank (the one place that reads index columns)."""
        return self._open().column(name)

    def _check_categories(self) -> None:
        """Every index row must name a manifest category (an index from another bank does not)."""
        cat = np.asarray(self._column('category'))
        n_cls = len(self._category_names)
        if len(cat) and (int(cat.min()) < 0 or int(cat.max()) >= n_cls):
            bad = np.flatnonzero((cat < 0) | (cat >= n_cls))
            path = osp.join(self.root, self._reader.manifest['index']['dir'], 'category.npy')
            raise ValueError(
                f'{path}: {len(bad)} rows hold category values outside [0, {n_cls}) of '
                f'{osp.join(self.root, "manifest.json")} (e.g. row {int(bad[0])}: '
                f'{int(cat[bad[0]])}); the index does not belong to this manifest: rebuild '
                'the bank or rerun finalize_bank')

    def _build_sampler(self) -> None:
        """Eligible ids grouped by class (CSR) and the class CDF, from the open bank."""
        n_cls = len(self._category_names)
        cat = np.asarray(self._column('category'))
        eligible = np.ones(len(cat), dtype=bool)
        if self._subset is not None:
            allowed = np.zeros(n_cls, dtype=bool)
            allowed[self._subset] = True
            eligible &= allowed[cat]
        if self.min_clip_score is not None:
            score = np.asarray(self._column('clip_score'))
            unscored = int(np.count_nonzero(eligible & np.isnan(score)))
            if unscored:
                warnings.warn(
                    f'InstanceBank {self.root}: min_clip_score={self.min_clip_score} excludes '
                    f'{unscored} of {int(eligible.sum())} instances that have no CLIP score '
                    '(NaN; e.g. a bank built from annotations): set min_clip_score=None or '
                    'score the bank',
                    stacklevel=4)
            eligible &= score >= self.min_clip_score
        id_dtype = np.int32 if len(cat) < np.iinfo(np.int32).max else np.int64
        ids = np.flatnonzero(eligible).astype(id_dtype)
        order = np.argsort(cat[ids], kind='stable')
        self._ids = ids[order]
        self._counts = np.bincount(cat[self._ids], minlength=n_cls).astype(np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(self._counts)]).astype(np.int64)
        self._classes = np.flatnonzero(self._counts)
        probs = self._class_probs_of(self._classes)
        self._cdf = np.cumsum(probs) if probs is not None else None
        if self._cdf is not None and len(self._cdf):
            self._cdf /= self._cdf[-1]

    def _class_probs_of(self, classes: np.ndarray) -> np.ndarray | None:
        if self.sampling == 'uniform':
            return None
        if self.sampling == 'class_balanced':
            return np.full(len(classes), 1.0 / max(len(classes), 1))
        w = self._class_freq[classes]**self.freq_power
        return w / w.sum() if len(w) else w

    # ---------------------------------------------------------------- public API
    def __len__(self) -> int:
        """Number of instances in the bank (valid indices are ``range(len(bank))``)."""
        return self._num_instances

    @property
    def category_names(self) -> list[str]:
        """Names of the bank categories, in bank order (``category_index`` indexes this)."""
        return list(self._category_names)

    @property
    def category_ids(self) -> list[int]:
        """Category ids (e.g. LVIS ids) of the bank categories, in bank order."""
        return list(self._category_ids)

    @property
    def reader(self) -> BankReader:
        """The low-level :class:`~xpaste.bank.BankReader` (opened on first access)."""
        return self._open()

    @property
    def num_eligible(self) -> int:
        """Instances that :meth:`sample` can return (after category/score restrictions)."""
        self._open()
        return len(self._ids)

    @property
    def class_counts(self) -> np.ndarray:
        """Eligible instances per bank category (int64, bank order)."""
        self._open()
        return self._counts.copy()

    @property
    def class_probabilities(self) -> np.ndarray:
        """Probability that one draw of :meth:`sample` comes from each bank category."""
        self._open()
        out = np.zeros(len(self._category_names))
        if self.sampling == 'uniform':
            if len(self._ids):
                out[:] = self._counts / len(self._ids)
        elif len(self._classes):
            out[self._classes] = self._class_probs_of(self._classes)
        return out

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` instance indices (with replacement) according to ``sampling``.

        Args:
            n (int): Number of draws (>= 0).
            rng (np.random.Generator): Source of randomness (an int seeds a new generator).

        Returns:
            np.ndarray: int64 indices into the bank, shape ``(n,)``.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f'n must be a non-negative int, got {n!r}')
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        self._open()
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if len(self._ids) == 0:
            raise RuntimeError(f'InstanceBank {self.root}: no instance to sample (categories='
                               f'{self.categories!r}, min_clip_score={self.min_clip_score!r})')
        if self.sampling == 'uniform':
            return self._ids[rng.integers(0, len(self._ids), size=n)].astype(np.int64)
        cls = self._classes[np.searchsorted(self._cdf, rng.random(n),
                                            side='right').clip(max=len(self._classes) - 1)]
        pos = self._offsets[cls] + rng.integers(0, self._counts[cls])
        return self._ids[pos].astype(np.int64)

    def category_index(self, idx):
        """Bank category position(s) of instance(s) ``idx`` (int, or int64 array for arrays)."""
        col = self._column('category')
        if np.ndim(idx) == 0:
            return int(col[int(idx)])
        return np.asarray(col[np.asarray(idx, dtype=np.int64)], dtype=np.int64)

    def category_name(self, idx):
        """Category name(s) of instance(s) ``idx`` (str, or list of str for arrays)."""
        pos = self.category_index(idx)
        if isinstance(pos, int):
            return self._category_names[pos]
        return [self._category_names[p] for p in pos.tolist()]

    def mask_area(self, idx: int) -> int:
        """Mask pixels (``alpha >= 128``) of stored instance ``idx``, read from the index."""
        return int(self._column('area')[int(idx)])

    def restrict(self, categories: Sequence[str]) -> 'InstanceBank':
        """Sample only from ``categories`` as well: the new restriction is the intersection
        of ``categories`` with the current one (``categories=`` of the constructor, if any).

        Args:
            categories (Sequence[str]): Bank category names.

        Returns:
            InstanceBank: ``self``.

        Raises:
            ValueError: A name is not a bank category, or the intersection is empty.
        """
        self._category_positions(categories)
        if self.categories is not None:
            wanted = set(categories)
            common = [c for c in self.categories if c in wanted]
            if not common:
                raise ValueError(
                    f'InstanceBank {self.root}: restricting categories={self.categories[:10]!r} '
                    f'to {sorted(wanted)[:10]!r} leaves no category to sample from')
            categories = common
        self._set_categories(categories)
        if self._reader is not None:
            self._build_sampler()
        return self

    def load(self, idx: int) -> np.ndarray | None:
        """Decoded instance ``idx`` as a read-only HxWx4 BGRA uint8 array.

        Served from the per-process LRU cache when possible. An instance whose bytes cannot be
        read or decoded gives one warning and ``None`` (also on later calls), never an error.

        Args:
            idx (int): Instance index.

        Returns:
            np.ndarray | None: The crop, or None if undecodable.
        """
        idx = int(idx)
        hit = self._cache.get(idx)
        if hit is not None:
            self._cache.move_to_end(idx)
            return hit
        if idx in self._bad:
            return None
        reader = self._open()
        if not 0 <= idx < len(reader):
            raise IndexError(f'instance index {idx} out of range for a bank of {len(reader)}')
        try:
            img = reader.decode(idx)
        except (ValueError, OSError) as e:
            self._bad.add(idx)
            warnings.warn(
                f'InstanceBank {self.root}: skipping undecodable instance {idx}: {e}', stacklevel=2)
            return None
        img.setflags(write=False)
        if self.cache_size and img.nbytes <= self.cache_bytes:
            self._cache[idx] = img
            self._cache_nbytes += img.nbytes
            while len(self._cache) > self.cache_size or self._cache_nbytes > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cache_nbytes -= old.nbytes
        return img

    def size_prior(self, name: str) -> tuple[float, float]:
        """``(mean, std)`` of ``sqrt(instance area / image area)`` for category ``name``.

        Classes without statistics get the mean and std of the uniform distribution on
        ``size_fallback``; a class with a single annotation keeps its mean and gets that std.
        """
        lo, hi = self.size_fallback
        fb_mean, fb_std = (lo + hi) / 2, (hi - lo) / math.sqrt(12)
        mean, std = self._size.get(name, (fb_mean, fb_std))
        return float(mean), float(fb_std if std is None else std)

    def close(self) -> None:
        """Drop the open files, index views and cache (reopened on next use)."""
        if self._reader is not None:
            self._reader.close()
        self._reset_runtime()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ('_reader', '_cache', '_cache_nbytes', '_bad', '_ids', '_counts', '_offsets',
                    '_classes', '_cdf'):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset_runtime()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(root={self.root!r}, sampling={self.sampling!r}, '
                f'categories={self.categories!r}, freq_power={self.freq_power}, '
                f'size_fallback={self.size_fallback}, cache_size={self.cache_size}, '
                f'cache_bytes={self.cache_bytes}, min_clip_score={self.min_clip_score}, '
                f'num_instances={self._num_instances})')


def build_instance_bank(cfg) -> InstanceBank:
    """Build an :class:`InstanceBank` from a config dict, a bank path or an instance.

    Args:
        cfg (dict | str | os.PathLike | InstanceBank): ``dict(type='InstanceBank', root=...,
            ...)`` (``type`` may be omitted), the bank root, or an existing bank (returned as is).

    Returns:
        InstanceBank: The bank view.
    """
    if isinstance(cfg, InstanceBank):
        return cfg
    if isinstance(cfg, (str, os.PathLike)):
        return InstanceBank(cfg)
    if isinstance(cfg, Mapping):
        cfg = dict(cfg)
        cfg.setdefault('type', 'InstanceBank')
        bank = DATASETS.build(cfg)
        if not isinstance(bank, InstanceBank):
            raise TypeError(f'bank config built a {type(bank).__name__}, expected InstanceBank '
                            f'(type={cfg["type"]!r})')
        return bank
    raise TypeError('bank must be a config dict, a path or an InstanceBank, '
                    f'got {type(cfg).__name__}')

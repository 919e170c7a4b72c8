"""Per-class statistics of a COCO/LVIS-style annotation file.

* Size statistics (the size model of pasted instances): for every category, the number of
  annotations and the mean and standard deviation of ``sqrt(mask area / image area)``, the
  relative linear size of an instance. Saved as JSON (:func:`save_size_stats`) and stored in a
  bank's manifest.
* Class frequencies (for frequency-weighted sampling): LVIS ``image_count`` of each category,
  or the number of images with the category in a COCO-style file.

Categories are identified by name everywhere.
"""
import json
import os
import os.path as osp
from collections.abc import Mapping, Sequence

import numpy as np

from xpaste.utils.fileio import atomic_write_json
from .annotations import load_annotations, select_categories

SIZE_STATS_FORMAT = 'xpaste-size-stats'
SIZE_STATS_VERSION = 1
SIZE_MEASURE = 'sqrt(area / (image_width * image_height))'


def compute_size_stats(ann, categories: Sequence[str] | None = None,
                       skip_crowd: bool = True) -> dict:
    """Per-class count, mean and std of ``sqrt(area / image area)`` over the annotations.

    Uses each annotation's ``area`` (mask area in pixels) and its image's ``width``/``height``.
    Annotations with ``area <= 0`` are ignored.

    Args:
        ann (str | dict): COCO/LVIS annotation file or loaded dict.
        categories (Sequence[str], optional): Restrict to these category names. Defaults to all.
        skip_crowd (bool): Ignore ``iscrowd`` annotations. Defaults to True.

    Returns:
        dict: ``{'format', 'version', 'measure', 'source', 'num_annotations', 'all': {...},
        'categories': {name: {'id', 'count', 'mean', 'std'}}}``; ``mean``/``std`` are ``None``
        for a class without annotations, ``std`` is the population standard deviation.
    """
    source = os.fspath(ann) if isinstance(ann, (str, os.PathLike)) else ''
    data = load_annotations(ann)
    where = source or 'annotation dict'
    cats, id_to_pos = select_categories(data, categories, where)
    img_area = {}
    for img in data['images']:
        try:
            img_area[img['id']] = float(img['width']) * float(img['height'])
        except KeyError as e:
            raise ValueError(f'{where}: image {img.get("id")!r} lacks field {e.args[0]!r}') from e
    cat_pos, ratios = [], []
    for i, a in enumerate(data['annotations']):
        pos = id_to_pos.get(a.get('category_id'))
        if pos is None or (skip_crowd and a.get('iscrowd', 0)):
            continue
        if 'area' not in a:
            raise ValueError(f'{where}: annotations[{i}] (id {a.get("id")!r}) has no "area"')
        area = float(a['area'])
        denom = img_area.get(a.get('image_id'))
        if denom is None:
            raise ValueError(f'{where}: annotations[{i}] (id {a.get("id")!r}) refers to unknown '
                             f'image_id {a.get("image_id")!r}')
        if area <= 0 or denom <= 0:
            continue
        cat_pos.append(pos)
        ratios.append(area / denom)
    cat_pos = np.asarray(cat_pos, dtype=np.int64)
    r = np.sqrt(np.asarray(ratios, dtype=np.float64))
    n_cls = len(cats)
    count = np.bincount(cat_pos, minlength=n_cls)
    mean = np.bincount(cat_pos, weights=r, minlength=n_cls) / np.maximum(count, 1)
    var = np.bincount(cat_pos, weights=(r - mean[cat_pos])**2, minlength=n_cls) / np.maximum(
        count, 1)
    std = np.sqrt(var)
    per_class = {}
    for i, c in enumerate(cats):
        has = bool(count[i])
        per_class[c['name']] = {
            'id': c['id'],
            'count': int(count[i]),
            'mean': float(mean[i]) if has else None,
            'std': float(std[i]) if has else None,
        }
    return {
        'format': SIZE_STATS_FORMAT,
        'version': SIZE_STATS_VERSION,
        'measure': SIZE_MEASURE,
        'source': osp.basename(source),
        'num_annotations': int(len(r)),
        'all': {
            'count': int(len(r)),
            'mean': float(r.mean()) if len(r) else None,
            'std': float(r.std()) if len(r) else None,
        },
        'categories': per_class,
    }


def validate_size_stats(stats: Mapping, where: str = 'size stats') -> dict:
    """Check the structure of a size-statistics dict (as made by :func:`compute_size_stats`).

    Args:
        stats (Mapping): The statistics.
        where (str): Name used in error messages (file path). Defaults to ``'size stats'``.

    Returns:
        dict: ``stats`` as a plain dict.
    """
    if not isinstance(stats, Mapping):
        raise TypeError(f'{where}: expected a dict, got {type(stats).__name__}')
    if stats.get('format') != SIZE_STATS_FORMAT:
        raise ValueError(f'{where}: field "format" must be {SIZE_STATS_FORMAT!r}, '
                         f'got {stats.get("format")!r}')
    if stats.get('version') != SIZE_STATS_VERSION:
        raise ValueError(f'{where}: unsupported version {stats.get("version")!r} '
                         f'(expected {SIZE_STATS_VERSION})')
    per_class = stats.get('categories')
    if not isinstance(per_class, Mapping):
        raise ValueError(f'{where}: missing dict field "categories"')
    for name, s in per_class.items():
        if not isinstance(s, Mapping) or any(k not in s for k in ('count', 'mean', 'std')):
            raise ValueError(f'{where}: categories[{name!r}] must have count, mean and std, '
                             f'got {s!r}')
    return dict(stats)


def save_size_stats(stats: Mapping, path) -> None:
    """Save size statistics as JSON (atomically).

    Args:
        stats (Mapping): Output of :func:`compute_size_stats`.
        path (str): Destination file.
    """
    atomic_write_json(os.fspath(path), validate_size_stats(stats, os.fspath(path)))


def load_size_stats(stats) -> dict:
    """Load size statistics from a JSON file, or validate an in-memory dict.

    Args:
        stats (str | Mapping): Path written by :func:`save_size_stats` (or
            ``tools/bank/stats.py``), or the dict itself.

    Returns:
        dict: The statistics.
    """
    if isinstance(stats, (str, os.PathLike)):
        path = os.fspath(stats)
        if not osp.isfile(path):
            raise FileNotFoundError(f'size statistics file not found: {path}')
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid JSON ({e})') from e
        return validate_size_stats(data, path)
    return validate_size_stats(stats)


def class_frequency(ann, categories: Sequence[str] | None = None) -> dict[str, int]:
    """Training frequency of each category: images containing it.

    Uses LVIS's ``image_count`` of each category when present, otherwise counts the distinct
    images with at least one (non-crowd or crowd) annotation of the category.

    Args:
        ann (str | dict): COCO/LVIS annotation file or loaded dict.
        categories (Sequence[str], optional): Restrict to these names. Defaults to all.

    Returns:
        dict[str, int]: ``{name: image count}`` (0 for categories without images).
    """
    where = os.fspath(ann) if isinstance(ann, (str, os.PathLike)) else 'annotation dict'
    data = load_annotations(ann)
    cats, id_to_pos = select_categories(data, categories, where)
    if cats and all('image_count' in c for c in cats):
        return {c['name']: int(c['image_count']) for c in cats}
    pairs = {(id_to_pos[a['category_id']], a['image_id'])
             for a in data['annotations'] if a.get('category_id') in id_to_pos}
    pos = np.fromiter((p for p, _ in pairs), dtype=np.int64, count=len(pairs))
    counts = np.bincount(pos, minlength=len(cats))
    return {c['name']: int(counts[i]) for i, c in enumerate(cats)}

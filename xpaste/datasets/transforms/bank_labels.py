"""Dataset class names, and a bank opened once with its categories mapped to labels.

:class:`~.XPaste` maps bank categories to the dataset's labels **by name**. This module resolves
the dataset's class names from what a config can give (:func:`resolve_class_names`) and opens
the bank (:func:`open_labelled_bank`): it builds the :class:`InstanceBank` once, checks its
categories against the classes and, with ``ignore_unknown``, narrows its sampling to the known
ones (intersected with any ``categories=`` restriction the bank config already has).
"""
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
from mmdet.registry import DATASETS

from ..instance_bank import InstanceBank, build_instance_bank
from ..lvis import names_from_ann_file


def is_json_path(value) -> bool:
    """Whether ``value`` is a path (str or ``os.PathLike``) ending in ``.json``."""
    return isinstance(value, (str, os.PathLike)) and os.fspath(value).endswith('.json')


def resolve_class_names(classes) -> tuple:
    """Class names of the training dataset, in label order.

    Args:
        classes (str | os.PathLike | Sequence[str] | Mapping): One of

            - a sequence of class names (label ``i`` is ``classes[i]``);
            - a dataset ``metainfo`` dict holding a ``'classes'`` entry;
            - the name of a dataset class registered in mmdet's ``DATASETS`` whose
              ``METAINFO['classes']`` is used, e.g. ``'LVISV1Dataset'``;
            - the path of an LVIS/COCO-format json (``*.json``) whose categories, in id order,
              are the classes, as :class:`~xpaste.datasets.LVISV1JsonDataset` labels them.

    Returns:
        tuple[str]: The class names.
    """
    source = classes
    if is_json_path(classes):
        classes = names_from_ann_file(os.fspath(classes))
    elif isinstance(classes, str):
        ds_cls = DATASETS.get(classes)
        if ds_cls is None:
            raise KeyError(f'classes={classes!r} is neither a list of class names nor a dataset '
                           "registered in mmdet's DATASETS")
        classes = getattr(ds_cls, 'METAINFO', {}).get('classes')
        if classes is None:
            raise ValueError(f'dataset {source!r} has no METAINFO["classes"]')
    elif isinstance(classes, Mapping):
        if 'classes' not in classes:
            raise KeyError(f'classes: a metainfo dict must hold a "classes" entry, got keys '
                           f'{sorted(classes)}')
        classes = classes['classes']
    if not isinstance(classes, Sequence) or isinstance(classes, (str, bytes)) or not classes:
        raise TypeError(f'classes must be a non-empty sequence of class names, a metainfo dict or '
                        f'a registered dataset name, got {source!r}')
    names = tuple(classes)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f'class names must be strings, got {bad[:5]!r}')
    dup = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if dup:
        raise ValueError(f'duplicate class names in classes: {dup[:10]!r}')
    return names


def bank_exists(bank) -> bool:
    """Whether ``bank`` (config, path or :class:`InstanceBank`) names an existing folder."""
    if isinstance(bank, InstanceBank):
        return True
    root = bank.get('root') if isinstance(bank, Mapping) else bank
    return isinstance(root, (str, os.PathLike)) and os.path.isdir(root)


def bank_config(bank) -> dict:
    """A bank config dict from a path (str or ``os.PathLike``) or a config mapping (copied)."""
    if isinstance(bank, (str, os.PathLike)):
        return dict(type='InstanceBank', root=os.fspath(bank))
    if isinstance(bank, Mapping):
        return dict(bank)
    raise TypeError(f'bank must be a config dict, a path or an InstanceBank, got '
                    f'{type(bank).__name__}')


@dataclass(frozen=True)
class LabelledBank:
    """A bank and the dataset label of each of its categories.

    Attributes:
        bank (InstanceBank): The bank (restricted to known categories with ``ignore_unknown``).
        cat_to_label (np.ndarray): int64 label of each bank category, in bank order; -1 for the
            categories that are never sampled.
    """

    bank: InstanceBank
    cat_to_label: np.ndarray


def open_labelled_bank(bank,
                       classes: Sequence[str],
                       category_map: Optional[Mapping] = None,
                       ignore_unknown: bool = False,
                       sampling: Optional[str] = None) -> LabelledBank:
    """Build the bank once and map its categories to the labels of ``classes``.

    Args:
        bank (dict | str | os.PathLike | InstanceBank): Bank config, root or object.
        classes (Sequence[str]): Dataset class names in label order.
        category_map (Mapping, optional): Bank name -> class name for names that differ.
            Defaults to None.
        ignore_unknown (bool): Never sample bank categories that are not classes (the bank's
            own ``categories=`` restriction, if any, still applies), instead of raising.
            Needs a config or path (a built bank is not modified). Defaults to False.
        sampling (str, optional): Override the sampling of a bank config or path.
            Defaults to None.

    Returns:
        LabelledBank: The bank and its label map.
    """
    if sampling is not None:
        if isinstance(bank, InstanceBank):
            raise TypeError('XPaste: sampling= overrides the sampling of a bank config or '
                            f'path; got a built bank {bank!r} (set its sampling instead)')
        bank = dict(bank_config(bank), sampling=sampling)
    built = build_instance_bank(bank)
    names = list(built.category_names)
    if category_map is not None:
        stray = sorted(set(category_map) - set(names))
        if stray:
            raise ValueError(f'XPaste: category_map keys {stray[:20]!r} are not categories of '
                             f'the bank {built.root!r}')
    mapped = [category_map.get(n, n) if category_map else n for n in names]
    label_of = {c: i for i, c in enumerate(classes)}
    unknown = [n for n, m in zip(names, mapped) if m not in label_of]
    if unknown and not ignore_unknown:
        raise ValueError(
            f'XPaste: {len(unknown)} of {len(names)} categories of the bank '
            f'{built.root!r} are not dataset classes: {unknown[:30]!r}'
            f'{" ..." if len(unknown) > 30 else ""}; map them with category_map or pass '
            'ignore_unknown=True to never paste them')
    if unknown:
        if built is bank:
            raise ValueError(
                f'XPaste: ignore_unknown=True needs the bank as a config or path to restrict '
                f'its categories; the built bank {built.root!r} has unknown '
                f'categories {unknown[:30]!r}')
        known = [n for n, m in zip(names, mapped) if m in label_of]
        if not known:
            raise ValueError(f'XPaste: none of the {len(names)} categories of the bank '
                             f'{built.root!r} is a dataset class (e.g. {names[:10]!r}); '
                             'check classes= and category_map')
        built.restrict(known)
    cat_to_label = np.array([label_of.get(m, -1) for m in mapped], dtype=np.int64)
    return LabelledBank(built, cat_to_label)

"""Parts: the output of one writer (one rank or process), committed atomically by ``part.json``.

A part folder holds shard files and the part's index (``index-NNNNN.npz``, part-local shard and
string ids); ``part.json``, written last with ``os.replace``, is its commit record. Shards named
by the live or a kept bank version (:func:`xpaste.bank.manifest.referenced_files`) are never
deleted here: a rewritten part gets new shard files beside them.
"""
import os
import os.path as osp
from collections.abc import Mapping, Sequence

import numpy as np

from xpaste.utils.fileio import atomic_write_bytes, atomic_write_json, npz_bytes
from .codec import DEFAULT_IMAGE_FORMAT, check_image_format
from .manifest import referenced_files
from .schema import (INDEX_COLUMNS, PART_COLUMNS, PART_FILE, PART_FORMAT, PARTS_DIR,
                     SCHEMA_VERSION, STRING_TABLES, UINT16_MAX, check_header, check_name,
                     read_json, validate_categories)

INDEX_FILE_PREFIX = 'index-'
PART_FIELDS = ('format', 'schema_version', 'name', 'generation', 'num_instances', 'image_format',
               'index_file', 'shards', 'categories', 'strings')


def part_dir(root: str, part: str) -> str:
    """Folder of ``part`` in a bank."""
    return osp.join(root, PARTS_DIR, part)


def part_rel(part: str, fname: str) -> str:
    """Bank-relative path of file ``fname`` of ``part`` (as manifests store it)."""
    return f'{PARTS_DIR}/{part}/{fname}'


def commit_part(root: str, part: str, categories: list[dict], columns: Mapping[str, np.ndarray],
                shards: Sequence[Mapping], strings: Mapping[str, Sequence[str]] | None = None,
                image_format: str = DEFAULT_IMAGE_FORMAT, info: dict | None = None) -> dict:
    """Atomically commit one part from index columns whose shards are already on disk.

    This is the single commit path: :meth:`BankWriter.close` calls it, and benchmarks can build
    large synthetic parts with it directly. The index goes to a new ``index-NNNNN.npz`` and
    ``part.json`` (written last with ``os.replace``) points at it, so a crash leaves the previous
    commit intact; older index files are removed afterwards.

    Args:
        root (str): Bank root.
        part (str): Part name (letters, digits, ``._-``).
        categories (list[dict]): Bank categories (``id`` and ``name``).
        columns (Mapping[str, np.ndarray]): Every :data:`INDEX_COLUMNS` column except ``part``,
            equal lengths; ``shard`` indexes ``shards``, string ids index ``strings``.
        shards (Sequence[Mapping]): ``[{'file': 'shard-00000.bin', 'bytes': int}, ...]``, files
            relative to the part folder.
        strings (Mapping[str, Sequence[str]], optional): The part's string tables
            (:data:`STRING_TABLES`). Defaults to one empty string per table.
        image_format (str): Encoding of the crops. Defaults to ``'webp'``.
        info (dict, optional): Free-form JSON info about this part (rank, host, ...).

    Returns:
        dict: The written ``part.json`` content.
    """
    root = os.fspath(root)
    check_name(part, 'part')
    categories = validate_categories(categories, f'part {part!r}: categories')
    check_image_format(image_format)
    strings = {t: list((strings or {}).get(t, [''])) for t in STRING_TABLES}
    cols = {}
    n = None
    for name in PART_COLUMNS:
        if name not in columns:
            raise ValueError(f'part {part!r}: missing index column {name!r}')
        col = np.ascontiguousarray(columns[name], dtype=INDEX_COLUMNS[name])
        if col.ndim != 1 or (n is not None and len(col) != n):
            raise ValueError(f'part {part!r}: column {name!r} has shape {col.shape}, '
                             f'expected ({n},)')
        n = len(col)
        cols[name] = col
    shards = [{'file': check_name(s['file'], 'shard file'), 'bytes': int(s['bytes'])}
              for s in shards]
    if len(shards) > UINT16_MAX:
        raise ValueError(f'part {part!r}: {len(shards)} shards exceed the limit {UINT16_MAX}; '
                         'raise shard_bytes')
    limits = {'shard': len(shards), 'category': len(categories),
              **{col: len(strings[t]) for t, col in STRING_TABLES.items()}}
    for col, limit in limits.items():
        if n and (int(cols[col].min()) < 0 or int(cols[col].max()) >= limit):
            raise ValueError(f'part {part!r}: column {col!r} has values in '
                             f'[{int(cols[col].min())}, {int(cols[col].max())}], '
                             f'expected [0, {limit})')

    pdir = part_dir(root, part)
    os.makedirs(pdir, exist_ok=True)
    prev = read_part_record(pdir) if osp.isfile(osp.join(pdir, PART_FILE)) else None
    generation = (prev['generation'] + 1) if prev else 1
    index_file = f'{INDEX_FILE_PREFIX}{generation:05d}.npz'
    atomic_write_bytes(osp.join(pdir, index_file), npz_bytes(**cols))
    record = {
        'format': PART_FORMAT,
        'schema_version': SCHEMA_VERSION,
        'name': part,
        'generation': generation,
        'num_instances': int(n or 0),
        'image_format': image_format,
        'index_file': index_file,
        'shards': shards,
        'categories': categories,
        'strings': strings,
        'info': dict(info or {}),
    }
    atomic_write_json(osp.join(pdir, PART_FILE), record)
    for fname in os.listdir(pdir):
        if _is_index_file(fname) and fname != index_file:
            os.remove(osp.join(pdir, fname))
    return record


def _is_index_file(fname: str) -> bool:
    return fname.startswith(INDEX_FILE_PREFIX) and fname.endswith('.npz')


def read_part_record(pdir: str) -> dict:
    """Read and check ``<pdir>/part.json``."""
    path = osp.join(pdir, PART_FILE)
    return check_header(read_json(path, 'part record'), path, PART_FIELDS, PART_FORMAT)


def load_part(root: str, part: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The commit record and index columns (all but ``part``) of a committed part."""
    pdir = part_dir(root, part)
    rec = read_part_record(pdir)
    path = osp.join(pdir, check_name(rec['index_file'], 'index_file'))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{osp.join(pdir, PART_FILE)}: index file {path} is missing')
    with np.load(path, allow_pickle=False) as npz:
        cols = {k: npz[k] for k in PART_COLUMNS if k in npz.files}
    missing = [k for k in PART_COLUMNS if k not in cols]
    if missing:
        raise ValueError(f'{path}: missing index columns {missing}')
    lengths = {len(c) for c in cols.values()}
    if lengths != {rec['num_instances']}:
        raise ValueError(f'{path}: column lengths {sorted(lengths)} differ from num_instances '
                         f'{rec["num_instances"]} in {PART_FILE}')
    return rec, cols


def incomplete_parts(root: str) -> list[str]:
    """Part folders without ``part.json`` that hold files no bank version refers to (the
    leftovers of a writer that never closed), sorted."""
    pdir = osp.join(os.fspath(root), PARTS_DIR)
    if not osp.isdir(pdir):
        return []
    protected = None
    out = []
    for d in sorted(os.listdir(pdir)):
        if not osp.isdir(osp.join(pdir, d)) or osp.isfile(osp.join(pdir, d, PART_FILE)):
            continue
        if protected is None:
            protected = referenced_files(root)
        if any(part_rel(d, f) not in protected for f in os.listdir(osp.join(pdir, d))):
            out.append(d)
    return out


def remove_unprotected(root: str, part: str, keep: set[str] = frozenset()) -> list[str]:
    """Delete the files of ``part`` except ``keep`` (file names) and those a bank version refers
    to; remove the folder if it ends up empty. Returns the deleted file names."""
    pdir = part_dir(root, part)
    if not osp.isdir(pdir):
        return []
    protected = referenced_files(root)
    removed = []
    for fname in sorted(os.listdir(pdir)):
        path = osp.join(pdir, fname)
        if fname in keep or part_rel(part, fname) in protected or not osp.isfile(path):
            continue
        os.remove(path)
        removed.append(fname)
    if not os.listdir(pdir):
        os.rmdir(pdir)
    return removed


def drop_part(root, part: str) -> None:
    """Withdraw a committed part so that the next :func:`finalize_bank` leaves it out.

    ``part.json`` goes first (the part stops existing at once), then its files, except shards
    that the live or a kept version still reads: those go when that version is pruned. Use it
    instead of deleting a part folder of a bank that readers may have open.

    Args:
        root (str): Bank root.
        part (str): Part name.
    """
    root = os.fspath(root)
    check_name(part, 'part')
    record = osp.join(part_dir(root, part), PART_FILE)
    if osp.isfile(record):
        os.remove(record)
    remove_unprotected(root, part)

"""Names, columns and limits of the bank format, plus the small helpers every bank module uses.

A bank is a directory (all paths inside it are relative to its root; ``docs/bank_format.md``)::

    <root>/manifest.json                     the live version: categories, parts, index, build
    <root>/index/<column>.npy                index of version 1 (one numpy column per field)
    <root>/meta/<table>.json                 string tables of version 1
    <root>/versions/vNNNNN/index|meta/       index and string tables of version N >= 2
    <root>/versions/vNNNNN/manifest.json     manifest of version N, kept once it is superseded
    <root>/parts/<part>/part.json            commit record of one writer (written last)
    <root>/parts/<part>/index-NNNNN.npz      that part's index columns (part-local string ids)
    <root>/parts/<part>/shard-NNNNN.bin      concatenated encoded BGRA crops (WebP or PNG)
"""
import io
import json
import os
import os.path as osp
import re
from collections.abc import Mapping, Sequence

import numpy as np

from xpaste.utils.fileio import atomic_write_bytes

SCHEMA_VERSION = 1
BANK_FORMAT = 'xpaste-bank'
PART_FORMAT = 'xpaste-bank-part'
MANIFEST_FILE = 'manifest.json'
PART_FILE = 'part.json'
INDEX_DIR = 'index'
META_DIR = 'meta'
PARTS_DIR = 'parts'
VERSIONS_DIR = 'versions'

#: Columns of the index (schema version 1), in storage order, with their dtypes.
INDEX_COLUMNS: dict[str, np.dtype] = {
    'category': np.dtype(np.int32),  # position in manifest['categories']
    'part': np.dtype(np.uint16),  # position in manifest['parts']
    'shard': np.dtype(np.uint16),  # position in manifest['parts'][part]['shards']
    'offset': np.dtype(np.uint64),  # byte offset of the encoded crop in its shard
    'length': np.dtype(np.uint32),  # byte length of the encoded crop
    'height': np.dtype(np.uint16),  # stored crop height (after crop and max_side)
    'width': np.dtype(np.uint16),  # stored crop width
    'area': np.dtype(np.uint32),  # pixels with alpha >= 128 in the stored crop
    'clip_score': np.dtype(np.float32),  # CLIP score of the cut-out, NaN if unknown
    'image_score': np.dtype(np.float32),  # CLIP score of the whole source image, NaN if unknown
    'segmenter': np.dtype(np.uint8),  # id in the 'segmenter' string table
    'seed': np.dtype(np.int64),  # generation seed, -1 if not generated
    'prompt_id': np.dtype(np.int32),  # id in the 'prompt' string table
    'source_id': np.dtype(np.int32),  # id in the 'source' string table
}

#: Index columns stored in a part (``part`` is assigned when parts are merged).
PART_COLUMNS: tuple[str, ...] = tuple(k for k in INDEX_COLUMNS if k != 'part')

#: String tables and the index column holding their ids.
STRING_TABLES: dict[str, str] = {
    'segmenter': 'segmenter',
    'source': 'source_id',
    'prompt': 'prompt_id',
}

UINT16_MAX = int(np.iinfo(np.uint16).max)
#: Largest id each string table can hold (the dtype of its index column).
STRING_ID_MAX = {t: int(np.iinfo(INDEX_COLUMNS[c]).max) for t, c in STRING_TABLES.items()}
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is a plain file/part name (letters, digits, ``._-``), else raise."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name in ('.', '..'):
        raise ValueError(f'{what} must match {NAME_RE.pattern} (letters, digits, ".", "_", "-"), '
                         f'got {name!r}')
    return name


def safe_join(root: str, rel: str, *, what: str = 'path') -> str:
    """Join a bank-relative path to ``root``, refusing absolute paths and ``..`` escapes.

    Args:
        root (str): Bank root.
        rel (str): Path relative to the root, as stored in a manifest.
        what (str): Name of the field in error messages. Defaults to ``'path'``.

    Returns:
        str: ``root/rel``.
    """
    if not isinstance(rel, str) or not rel:
        raise ValueError(f'{osp.join(root, MANIFEST_FILE)}: {what} must be a non-empty relative '
                         f'path string, got {rel!r}')
    norm = osp.normpath(rel)
    if (osp.isabs(rel) or rel.startswith(('/', '\\')) or norm == '..'
            or norm.startswith('..' + os.sep) or norm.startswith('../')):
        raise ValueError(f'{osp.join(root, MANIFEST_FILE)}: {what} {rel!r} escapes the bank root '
                         f'{root!r} (paths inside a bank must be relative and stay inside it)')
    return osp.join(root, norm)


def read_json(path: str, what: str):
    """Load a JSON file, naming ``what`` and the path when it is missing or invalid."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{path}: not valid JSON ({e})') from e


def check_header(record, path: str, fields: Sequence[str], fmt: str) -> dict:
    """Check that a loaded manifest or part record is a dict with ``fields``, ``format`` equal
    to ``fmt`` and this package's :data:`SCHEMA_VERSION`; raise naming ``path``."""
    if not isinstance(record, dict):
        raise ValueError(f'{path}: expected a JSON object, got {type(record).__name__}')
    for key in fields:
        if key not in record:
            raise ValueError(f'{path}: missing field {key!r}')
    if record['format'] != fmt:
        raise ValueError(f'{path}: field "format" must be {fmt!r}, got {record["format"]!r}')
    if record['schema_version'] != SCHEMA_VERSION:
        raise ValueError(f'{path}: unsupported schema_version {record["schema_version"]!r} '
                         f'(this xpaste reads schema_version {SCHEMA_VERSION})')
    return record


def save_npy(path: str, array: np.ndarray) -> None:
    """Write one index column as ``.npy`` (no pickle) atomically."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def validate_categories(categories, where: str = 'categories') -> list[dict]:
    """Check a category list: non-empty dicts with a unique ``str`` name and a unique ``int`` id.

    Args:
        categories (list[dict]): ``[{'id': int, 'name': str, ...}, ...]``.
        where (str): Prefix of error messages (file and field). Defaults to ``'categories'``.

    Returns:
        list[dict]: Plain-dict copies, in the given order.
    """
    if not isinstance(categories, Sequence) or isinstance(categories, (str, bytes)):
        raise TypeError(f'{where}: expected a list of {{"id", "name"}} dicts, '
                        f'got {type(categories).__name__}')
    out, names, ids = [], set(), set()
    for i, cat in enumerate(categories):
        if not isinstance(cat, Mapping):
            raise TypeError(f'{where}[{i}]: expected a dict, got {cat!r}')
        for key in ('id', 'name'):
            if key not in cat:
                raise ValueError(f'{where}[{i}]: missing field {key!r} in {dict(cat)!r}')
        name, cid = cat['name'], cat['id']
        if not isinstance(name, str) or not name:
            raise ValueError(f'{where}[{i}].name: expected a non-empty string, got {name!r}')
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)):
            raise ValueError(f'{where}[{i}].id: expected an int, got {cid!r}')
        if name in names:
            raise ValueError(f'{where}[{i}].name: duplicate category name {name!r}')
        if int(cid) in ids:
            raise ValueError(f'{where}[{i}].id: duplicate category id {int(cid)!r}')
        names.add(name)
        ids.add(int(cid))
        out.append({**dict(cat), 'id': int(cid)})
    return out


def list_parts(root) -> list[str]:
    """Names of the committed parts of a bank (those with a ``part.json``), sorted.

    Args:
        root (str): Bank root.

    Returns:
        list[str]: Sorted part names. Folders without ``part.json`` (a writer that never closed)
        are left out.
    """
    pdir = osp.join(os.fspath(root), PARTS_DIR)
    if not osp.isdir(pdir):
        return []
    return sorted(d for d in os.listdir(pdir) if osp.isfile(osp.join(pdir, d, PART_FILE)))


def category_key(categories: Sequence[Mapping]) -> list[tuple]:
    """``[(id, name), ...]``: what must agree between the parts of one bank."""
    return [(c['id'], c['name']) for c in categories]


def empty_index(n: int) -> dict[str, np.ndarray]:
    """Zero-filled index columns for ``n`` instances (scores NaN, seed -1), in schema dtypes.

    Args:
        n (int): Number of rows.

    Returns:
        dict[str, np.ndarray]: One array per :data:`INDEX_COLUMNS` entry.
    """
    cols = {k: np.zeros(n, dtype=dt) for k, dt in INDEX_COLUMNS.items()}
    cols['clip_score'][:] = np.nan
    cols['image_score'][:] = np.nan
    cols['seed'][:] = -1
    return cols


def index_nbytes(columns: Mapping[str, np.ndarray]) -> int:
    """Bytes held by index columns (sum of ``nbytes``); divide by the row count for bytes/row.

    Args:
        columns (Mapping[str, np.ndarray]): Index columns, e.g. ``BankReader.columns``.

    Returns:
        int: Total size in bytes.
    """
    return int(sum(np.asarray(c).nbytes for c in columns.values()))

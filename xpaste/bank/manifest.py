"""The manifest of a bank version: its schema, where a version's files live, how to read them.

``<root>/manifest.json`` names the live version. Version 1 keeps its index and string tables at
``<root>/index`` and ``<root>/meta`` (the layout of every first build); version N >= 2 keeps them
under ``<root>/versions/vNNNNN/``, and its manifest carries ``"version": N``. A superseded
version's manifest is kept as ``<root>/versions/vNNNNN/manifest.json`` until it is pruned.
Shards live in ``<root>/parts`` and may be shared by several versions.
"""
import os
import os.path as osp
from collections.abc import Sequence
from importlib import metadata

import numpy as np

from xpaste.utils.checks import check_number
from .schema import (BANK_FORMAT, INDEX_COLUMNS, INDEX_DIR, MANIFEST_FILE, META_DIR,
                     SCHEMA_VERSION, STRING_TABLES, VERSIONS_DIR, check_header, list_parts,
                     read_json, safe_join, validate_categories)

MANIFEST_FIELDS = ('format', 'schema_version', 'num_instances', 'categories', 'index', 'strings',
                   'parts')


# --------------------------------------------------------------------------------------------
# versions and their paths
# --------------------------------------------------------------------------------------------
def version_dir(version: int) -> str:
    """Bank-relative folder holding the index and string tables of ``version`` (``''``: root)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f'a bank version is an int >= 1, got {version!r}')
    return '' if version == 1 else f'{VERSIONS_DIR}/v{version:05d}'


def kept_manifest_path(root: str, version: int) -> str:
    """Where the manifest of a superseded ``version`` is kept."""
    return osp.join(root, VERSIONS_DIR, f'v{version:05d}', MANIFEST_FILE)


def manifest_version(manifest: dict) -> int:
    """The version a manifest describes (``1`` when it has no ``version`` field)."""
    return int(manifest.get('version', 1))


def kept_versions(root) -> list[int]:
    """Versions whose manifest is kept under ``versions/`` (superseded ones), sorted."""
    vdir = osp.join(os.fspath(root), VERSIONS_DIR)
    if not osp.isdir(vdir):
        return []
    out = []
    for name in os.listdir(vdir):
        if (len(name) == 6 and name[0] == 'v' and name[1:].isdigit()
                and osp.isfile(osp.join(vdir, name, MANIFEST_FILE))):
            out.append(int(name[1:]))
    return sorted(out)


def build_manifest(version: int, categories: list[dict], num_instances: int, parts: list[dict],
                   build: dict, size_stats: dict | None = None, **extra) -> dict:
    """A manifest for ``version`` with its index and string tables at their standard paths.

    Args:
        version (int): The bank version (1: root layout; N: ``versions/vNNNNN``).
        categories (list[dict]): Validated categories.
        num_instances (int): Rows of the index.
        parts (list[dict]): ``[{'name', 'num_instances', 'image_format', 'shards', 'info'}]``.
        build (dict): How the bank was built.
        size_stats (dict, optional): Per-class size statistics. Defaults to None (left out).
        **extra: Further top-level fields (e.g. ``repair``), written last.

    Returns:
        dict: The manifest, keys in their documented order.
    """
    vdir = version_dir(version)
    prefix = f'{vdir}/' if vdir else ''
    manifest = {'format': BANK_FORMAT, 'schema_version': SCHEMA_VERSION}
    if version != 1:
        manifest['version'] = version
    manifest.update({
        'num_instances': int(num_instances),
        'categories': categories,
        'index': {'dir': prefix + INDEX_DIR,
                  'columns': {k: dt.str for k, dt in INDEX_COLUMNS.items()}},
        'strings': {t: f'{prefix}{META_DIR}/{t}.json' for t in STRING_TABLES},
        'parts': parts,
        'build': build,
    })
    if size_stats is not None:
        manifest['size_stats'] = size_stats
    manifest.update(extra)
    return manifest


# --------------------------------------------------------------------------------------------
# reading and validating
# --------------------------------------------------------------------------------------------
def manifest_path(root, version: int | None = None) -> str:
    """The manifest file of ``version``: ``manifest.json`` for the live one (and for None),
    else the kept ``versions/vNNNNN/manifest.json``."""
    root = os.fspath(root)
    path = osp.join(root, MANIFEST_FILE)
    if version is None:
        return path
    version_dir(version)
    try:
        live = read_json(path, 'bank manifest')
        if isinstance(live, dict) and manifest_version(live) == version:
            return path
    except (OSError, ValueError, TypeError):
        pass
    return kept_manifest_path(root, version)


def read_manifest(root, version: int | None = None) -> dict:
    """Read and validate a bank manifest (fields, schema version, categories, paths).

    Args:
        root (str): Bank root.
        version (int, optional): A superseded version that is still kept (see
            ``finalize_bank(keep_versions=...)``). Defaults to None: the live version.

    Returns:
        dict: The manifest.
    """
    root = os.fspath(root)
    path = manifest_path(root, version)
    if version is not None and not osp.isfile(path):
        raise FileNotFoundError(f'{root}: version {version} is not kept (kept versions: '
                                f'{kept_versions(root)}; {MANIFEST_FILE} holds the live one)')
    if version is None and not osp.isfile(path) and list_parts(root):
        raise FileNotFoundError(f'{path} not found, but {root} has parts: run '
                                'finalize_bank(root) to merge them into a bank')
    man = read_json(path, 'bank manifest')
    validate_manifest(man, root, path)
    if version is not None and manifest_version(man) != version:
        raise ValueError(f'{path}: describes version {manifest_version(man)}, expected {version}')
    return man


def validate_manifest(man, root: str, path: str) -> dict:
    """Check a loaded manifest in place (categories are normalised); raise naming ``path``."""
    check_header(man, path, MANIFEST_FIELDS, BANK_FORMAT)
    ver = man.get('version', 1)
    check_number(f'{path}: version', ver, 1, integer=True)
    check_number(f'{path}: num_instances', man['num_instances'], 0, integer=True)
    man['categories'] = validate_categories(man['categories'], f'{path}: categories')
    index = man['index']
    if not isinstance(index, dict) or 'dir' not in index or 'columns' not in index:
        raise ValueError(f'{path}: field "index" must be {{"dir": str, "columns": {{...}}}}, '
                         f'got {index!r}')
    safe_join(root, index['dir'], what='index.dir')
    missing = [c for c in INDEX_COLUMNS if c not in index['columns']]
    if missing:
        raise ValueError(f'{path}: index.columns lacks {missing}')
    strings = man['strings']
    if not isinstance(strings, dict) or any(t not in strings for t in STRING_TABLES):
        raise ValueError(f'{path}: field "strings" must map {sorted(STRING_TABLES)} to files, '
                         f'got {strings!r}')
    for t in STRING_TABLES:
        safe_join(root, strings[t], what=f'strings.{t}')
    if not isinstance(man['parts'], list):
        raise ValueError(f'{path}: field "parts" must be a list, got {man["parts"]!r}')
    for i, p in enumerate(man['parts']):
        if not isinstance(p, dict) or 'name' not in p or 'shards' not in p:
            raise ValueError(f'{path}: parts[{i}] must have "name" and "shards", got {p!r}')
        for j, s in enumerate(p['shards']):
            if not isinstance(s, dict) or 'path' not in s or 'bytes' not in s:
                raise ValueError(f'{path}: parts[{i}].shards[{j}] must have "path" and "bytes", '
                                 f'got {s!r}')
            safe_join(root, s['path'], what=f'parts[{i}].shards[{j}].path')
    return man


def column_path(root: str, man: dict, name: str) -> str:
    """Absolute path of index column ``name`` of a manifest."""
    return osp.join(safe_join(root, man['index']['dir'], what='index.dir'), f'{name}.npy')


def open_index_column(root: str, man: dict, name: str, mmap: bool = True) -> np.ndarray:
    """Load index column ``name`` of a validated manifest, checking its dtype and length.

    Args:
        root (str): Bank root.
        man (dict): The manifest.
        name (str): One of :data:`INDEX_COLUMNS`.
        mmap (bool): Memory-map it read-only (not for empty columns). Defaults to True.

    Returns:
        np.ndarray: The column, shape ``(num_instances,)``.
    """
    n = man['num_instances']
    dtype = INDEX_COLUMNS[name]
    path = column_path(root, man, name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{osp.join(root, MANIFEST_FILE)}: index column {name!r} is '
                                f'missing: {path}')
    try:
        col = np.load(path, mmap_mode='r' if (n and mmap) else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f'{path}: not a valid .npy column ({e})') from e
    if col.dtype != dtype or col.shape != (n, ):
        raise ValueError(f'{path}: expected {dtype} of shape ({n},), got {col.dtype} of '
                         f'shape {col.shape} (interrupted finalize? rerun finalize_bank)')
    return col


def string_table_path(root: str, man: dict, table: str) -> str:
    """Absolute path of string table ``table`` of a manifest."""
    return safe_join(root, man['strings'][table], what=f'strings.{table}')


def read_string_table(root: str, man: dict, table: str) -> list[str]:
    """Load string table ``table`` (a JSON list of strings) of a validated manifest."""
    path = string_table_path(root, man, table)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{osp.join(root, MANIFEST_FILE)}: {table} string table is '
                                f'missing: {path}')
    values = read_json(path, f'{table} string table')
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f'{path}: expected a JSON list of strings')
    return values


def shard_layout(root: str, man: dict) -> tuple[list[list[str]], list[list[int]]]:
    """``(paths, recorded_bytes)`` of every shard, per part, as listed by a manifest."""
    paths = [[safe_join(root, s['path'], what=f'parts[{i}].shards[{j}].path')
              for j, s in enumerate(p['shards'])] for i, p in enumerate(man['parts'])]
    sizes = [[int(s['bytes']) for s in p['shards']] for p in man['parts']]
    return paths, sizes


def manifest_files(man: dict) -> set[str]:
    """Bank-relative paths (normalised) of every file a manifest names: index columns, string
    tables and shards. Malformed entries of an unvalidated manifest are skipped."""
    out = set()
    index, strings, parts = man.get('index'), man.get('strings'), man.get('parts')
    if isinstance(index, dict) and isinstance(index.get('dir'), str):
        out |= {osp.normpath(f'{index["dir"]}/{k}.npy') for k in INDEX_COLUMNS}
    if isinstance(strings, dict):
        out |= {osp.normpath(v) for v in strings.values() if isinstance(v, str) and v}
    for p in parts if isinstance(parts, list) else []:
        shards = p.get('shards') if isinstance(p, dict) else None
        for sh in shards if isinstance(shards, list) else []:
            if isinstance(sh, dict) and isinstance(sh.get('path'), str) and sh['path']:
                out.add(osp.normpath(sh['path']))
    return out


def referenced_files(root) -> set[str]:
    """Bank-relative paths of every file the live or a kept version refers to.

    These files are never modified or deleted by writers; only pruning a version
    (:func:`xpaste.bank.prune_versions`) removes the ones no kept version needs any more.
    Manifests are read leniently (a manifest this xpaste cannot open still protects the files
    it names); unreadable ones protect nothing.
    """
    root = os.fspath(root)
    paths = [osp.join(root, MANIFEST_FILE)] + [kept_manifest_path(root, v)
                                                for v in kept_versions(root)]
    out = set()
    for path in paths:
        try:
            man = read_json(path, 'bank manifest')
        except (OSError, ValueError):
            continue
        if isinstance(man, dict):
            out |= manifest_files(man)
    return out


# --------------------------------------------------------------------------------------------
# rows against shards
# --------------------------------------------------------------------------------------------
def shard_keys(part: np.ndarray, shard: np.ndarray, sizes: list[list[int]]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether its ``(part, shard)`` exists, and a flat shard id (``-1`` if not).

    Args:
        part (np.ndarray): The ``part`` column.
        shard (np.ndarray): The ``shard`` column.
        sizes (list[list[int]]): Per part, one entry per shard (only the lengths are used).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``valid`` (bool) and ``key`` (int64, the position of
        the shard in the flattened per-part shard lists).
    """
    part = np.asarray(part).astype(np.int64)
    shard = np.asarray(shard).astype(np.int64)
    nshards = np.array([len(s) for s in sizes] + [0], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(nshards[:-1])])
    in_parts = (part >= 0) & (part < len(sizes))
    p = np.where(in_parts, part, len(sizes))
    valid = in_parts & (shard >= 0) & (shard < nshards[p])
    key = np.where(valid, first[p] + shard, -1)
    return valid, key


def rows_past_end(part: np.ndarray, shard: np.ndarray, ends: np.ndarray,
                  sizes: list[list[int]]) -> np.ndarray:
    """Rows whose ``offset + length`` lies beyond ``sizes`` of their shard (bool mask).

    Rows whose part or shard does not exist are not flagged here (see :func:`shard_keys`).
    """
    valid, key = shard_keys(part, shard, sizes)
    flat = np.array([b for s in sizes for b in s] + [0], dtype=np.uint64)
    limit = flat[np.where(valid, key, len(flat) - 1)]
    return valid & (np.asarray(ends, dtype=np.uint64) > limit)


def check_row_ends(where: str, part: np.ndarray, shard: np.ndarray, ends: np.ndarray,
                   shard_paths: list[list[str]], shard_sizes: list[list[int]]) -> None:
    """Raise if a row points outside its shard; the message lists every offending shard.

    Args:
        where (str): Prefix of error messages (bank root).
        part (np.ndarray): The ``part`` column.
        shard (np.ndarray): The ``shard`` column.
        ends (np.ndarray): ``offset + length`` per row.
        shard_paths (list[list[str]]): Per part, the shard paths.
        shard_sizes (list[list[int]]): Per part, the bytes each shard may hold.
    """
    if len(ends) == 0:
        return
    part = np.asarray(part)
    if int(part.max()) >= len(shard_paths):
        raise ValueError(f'{where}: index column "part" has value {int(part.max())} but '
                         f'there are only {len(shard_paths)} parts')
    valid, _ = shard_keys(part, shard, shard_sizes)
    if not valid.all():
        i = int(np.flatnonzero(~valid)[0])
        raise ValueError(f'{where}: row {i} points at shard {int(shard[i])} of part '
                         f'{int(part[i])}, which has {len(shard_sizes[int(part[i])])} shards')
    past = rows_past_end(part, shard, ends, shard_sizes)
    if past.any():
        _, key = shard_keys(part, shard, shard_sizes)
        max_end = np.zeros(sum(len(s) for s in shard_sizes), dtype=np.uint64)
        np.maximum.at(max_end, key[past], np.asarray(ends, dtype=np.uint64)[past])
        flat = [(p, s) for p, sizes in enumerate(shard_sizes) for s in range(len(sizes))]
        problems = [f'{shard_paths[p][s]} ({shard_sizes[p][s]} bytes, rows need '
                    f'{int(max_end[k])})' for k, (p, s) in enumerate(flat) if max_end[k]]
        raise ValueError(f'{where}: truncated or corrupt shard(s), index rows point past the end '
                         f'of: {"; ".join(problems)}')


# --------------------------------------------------------------------------------------------
# build info
# --------------------------------------------------------------------------------------------
def package_versions(names: Sequence[str] = ('xpaste', 'numpy', 'opencv-python-headless',
                                             'opencv-python', 'pycocotools', 'torch',
                                             'diffusers', 'transformers', 'open_clip_torch',
                                             'segment_anything')) -> dict[str, str]:
    """Versions of the installed distributions among ``names`` (absent ones are left out).

    Args:
        names (Sequence[str]): Distribution names. Defaults to the bank-relevant packages.

    Returns:
        dict[str, str]: ``{name: version}``.
    """
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if 'xpaste' not in out and 'xpaste' in names:
        from xpaste.version import __version__
        out['xpaste'] = __version__
    return out

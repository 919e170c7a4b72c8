"""Bank versions: write a new index beside the live one, switch ``manifest.json`` atomically,
prune old versions on request.

Readers that opened a version keep reading it after a switch as long as that version is kept
(``keep_versions``, default 1: the previous version survives one switch). A process killed
anywhere in :func:`commit_version` leaves the live version untouched: the new version's files
are written first, in their own folder, and ``manifest.json`` is replaced last.
"""
import os
import os.path as osp
import shutil
from collections.abc import Mapping

import numpy as np

from xpaste.utils.checks import check_number
from xpaste.utils.fileio import atomic_write_bytes, atomic_write_json
from .check import check_manifest
from .manifest import (build_manifest, kept_manifest_path, kept_versions, manifest_files,
                       manifest_version, open_index_column, read_manifest, read_string_table,
                       version_dir)
from .schema import (INDEX_COLUMNS, INDEX_DIR, MANIFEST_FILE, META_DIR, PART_FILE, PARTS_DIR,
                     STRING_TABLES, list_parts, read_json, save_npy)

#: Superseded versions a commit keeps, unless told otherwise.
DEFAULT_KEEP_VERSIONS = 1


def live_manifest(root: str) -> dict | None:
    """The live manifest, or None if there is none or it cannot be read."""
    try:
        return read_manifest(root)
    except (OSError, ValueError, TypeError):
        return None


def _same_content(root: str, live: dict, content: dict, columns: Mapping[str, np.ndarray],
                  strings: Mapping[str, list[str]]) -> bool:
    """Whether the live version already holds exactly this index (read back from disk)."""
    for key in ('num_instances', 'categories', 'parts'):
        if live.get(key) != content[key]:
            return False
    try:
        for name, dtype in INDEX_COLUMNS.items():
            col = open_index_column(root, live, name, mmap=False)
            if col.tobytes() != np.ascontiguousarray(columns[name], dtype=dtype).tobytes():
                return False
        return all(read_string_table(root, live, t) == list(strings[t]) for t in STRING_TABLES)
    except (OSError, ValueError):
        return False


def _write_version_files(root: str, version: int, columns: Mapping[str, np.ndarray],
                         strings: Mapping[str, list[str]]) -> None:
    vdir = version_dir(version)
    if vdir and osp.isdir(osp.join(root, vdir)):
        shutil.rmtree(osp.join(root, vdir))  # an earlier commit of this version never switched
    index_dir = osp.join(root, vdir, INDEX_DIR)
    os.makedirs(index_dir, exist_ok=True)
    for name, dtype in INDEX_COLUMNS.items():
        save_npy(osp.join(index_dir, f'{name}.npy'), np.ascontiguousarray(columns[name], dtype))
    for table in STRING_TABLES:
        atomic_write_json(osp.join(root, vdir, META_DIR, f'{table}.json'), list(strings[table]))


def commit_version(root, *, categories: list[dict], columns: Mapping[str, np.ndarray],
                   strings: Mapping[str, list[str]], parts: list[dict], build: dict,
                   size_stats: dict | None = None,
                   keep_versions: int | None = DEFAULT_KEEP_VERSIONS, **extra) -> dict:
    """Make ``columns`` + ``strings`` the live index of a bank.

    1. If the live version holds exactly this index (compared with its files on disk), only
       ``manifest.json`` is rewritten (``build``/``size_stats`` may change).
    2. Otherwise the index and string tables go to a new version (version 1 at the root when
       the bank has none, else ``versions/v<live + 1>``), the new manifest is checked
       (:func:`xpaste.bank.check.check_manifest`), the live manifest is kept as
       ``versions/v<live>/manifest.json`` and ``manifest.json`` is replaced (``os.replace``).
    3. Versions beyond ``keep_versions`` are pruned (:func:`prune_versions`).

    Args:
        root (str): Bank root.
        categories (list[dict]): Validated categories.
        columns (Mapping[str, np.ndarray]): Every :data:`INDEX_COLUMNS` column, equal lengths.
        strings (Mapping[str, list[str]]): The string tables.
        parts (list[dict]): Manifest ``parts`` entries (shard paths and sizes).
        build (dict): How the bank was built.
        size_stats (dict, optional): Per-class size statistics. Defaults to None.
        keep_versions (int, optional): Superseded versions to keep; None prunes nothing.
            Defaults to 1.
        **extra: Further manifest fields (e.g. ``repair``).

    Returns:
        dict: The live manifest.
    """
    root = os.fspath(root)
    keep_versions = check_number('keep_versions', keep_versions, 0, integer=True,
                                 allow_none=True)
    num = len(columns['category'])
    live = live_manifest(root)
    live_version = manifest_version(live) if live is not None else None
    kept = kept_versions(root)
    content = dict(categories=categories, num_instances=num, parts=parts, build=build,
                   size_stats=size_stats, **extra)
    if live is not None and _same_content(root, live, content, columns, strings):
        version = live_version
    else:
        version = max([live_version or 0, *kept]) + 1
        _write_version_files(root, version, columns, strings)
    manifest = build_manifest(version, **content)
    problems = check_manifest(root, manifest).problems
    if problems:
        raise ValueError(f'{root}: version {version} fails its check, the live version is left '
                         f'as it was: ' + '; '.join(p.line() for p in problems[:10]))
    man_path = osp.join(root, MANIFEST_FILE)
    if live_version is not None and version != live_version:
        with open(man_path, 'rb') as f:
            atomic_write_bytes(kept_manifest_path(root, live_version), f.read())
    atomic_write_json(man_path, manifest)
    if keep_versions is not None:
        prune_versions(root, keep_versions)
    return manifest


def prune_versions(root, keep_versions: int = DEFAULT_KEEP_VERSIONS) -> list[int]:
    """Remove superseded versions but the newest ``keep_versions``.

    A removed version's index and string tables are deleted, and so are its shards unless the
    live version, a kept version or a committed part still uses them. Readers that opened a
    removed version fail on their next read of a deleted file.

    Args:
        root (str): Bank root.
        keep_versions (int): Superseded versions to keep (0: only the live one). Defaults to 1.

    Returns:
        list[int]: The removed versions.
    """
    root = os.fspath(root)
    live = read_manifest(root)
    live_version = manifest_version(live)
    old = [v for v in kept_versions(root) if v < live_version]
    drop = old[:max(0, len(old) - keep_versions)]
    if not drop:
        return []
    needed = manifest_files(live) | _part_files(root)
    for v in old[len(drop):]:
        needed |= manifest_files(read_json(kept_manifest_path(root, v), 'kept manifest'))
    for v in drop:
        path = kept_manifest_path(root, v)
        try:
            files = manifest_files(read_json(path, 'kept manifest'))
        except ValueError:
            files = set()  # a damaged kept manifest: only its own folder can go
        for rel in sorted(files - needed):
            full = osp.join(root, rel)
            if osp.isfile(full):
                os.remove(full)
        os.remove(path)
        vdir = osp.dirname(path)
        if v != 1 and osp.isdir(vdir):
            shutil.rmtree(vdir)  # its own index and string tables
        for rel in sorted({osp.dirname(r) for r in files - needed} | {osp.relpath(vdir, root)},
                          reverse=True):
            _remove_empty_dirs(root, rel)
    return drop


def _part_files(root: str) -> set[str]:
    """Shards named by committed ``part.json`` records (a future version may merge them)."""
    out = set()
    for name in list_parts(root):
        rec = read_json(osp.join(root, PARTS_DIR, name, PART_FILE), 'part record')
        out |= {osp.normpath(f'{PARTS_DIR}/{name}/{s["file"]}') for s in rec.get('shards', [])}
    return out


def _remove_empty_dirs(root: str, rel: str) -> None:
    """Remove ``root/rel`` and its parents up to (not including) ``root`` while they are empty."""
    while rel and rel != '.':
        full = osp.join(root, rel)
        if osp.isdir(full):
            if os.listdir(full):
                return
            os.rmdir(full)
        rel = osp.dirname(rel)

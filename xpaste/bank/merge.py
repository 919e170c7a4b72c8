"""``finalize_bank``: merge the committed parts of a bank into a (new) version of its index."""
import os
import os.path as osp
import warnings

import numpy as np

from .manifest import check_row_ends
from .parts import incomplete_parts, load_part, part_dir, part_rel
from .schema import (INDEX_COLUMNS, MANIFEST_FILE, PART_FILE, PARTS_DIR, STRING_ID_MAX,
                     STRING_TABLES, UINT16_MAX, category_key, check_name, list_parts, read_json,
                     validate_categories)
from .versions import DEFAULT_KEEP_VERSIONS, commit_version


def _merge_part(root: str, name: str, p: int, tables: dict[str, dict[str, int]]
                ) -> tuple[dict, dict[str, np.ndarray], dict]:
    """Load part ``name`` (position ``p``): its record, columns with merged string ids and
    ``part`` filled, and its manifest entry (shard sizes checked against the files)."""
    rec, cols = load_part(root, name)
    n = rec['num_instances']
    for table, colname in STRING_TABLES.items():  # part-local ids -> merged ids
        ids = tables[table]
        lut = np.array([ids.setdefault(s, len(ids)) for s in rec['strings'][table]],
                       dtype=np.int64)
        if len(ids) > STRING_ID_MAX[table] + 1:
            raise ValueError(f'{root}: too many distinct {table} strings after merging '
                             f'(limit {STRING_ID_MAX[table] + 1})')
        cols[colname] = lut[cols[colname]].astype(INDEX_COLUMNS[colname])
    cols['part'] = np.full(n, p, dtype=INDEX_COLUMNS['part'])
    record = osp.join(part_dir(root, name), PART_FILE)
    shards = []
    for s in rec['shards']:
        rel = part_rel(name, check_name(s['file'], 'shard file'))
        full = osp.join(root, rel)
        if not osp.isfile(full):
            raise FileNotFoundError(f'{record}: shard {full} is missing')
        actual = osp.getsize(full)
        if actual < s['bytes']:
            raise ValueError(f'{record}: shard {full} is {actual} bytes, the part recorded '
                             f'{s["bytes"]} (truncated)')
        shards.append({'path': rel, 'bytes': int(s['bytes'])})
    entry = {'name': name, 'num_instances': n, 'image_format': rec['image_format'],
             'shards': shards, 'info': rec.get('info', {})}
    return rec, cols, entry


def finalize_bank(root, build_info: dict | None = None, size_stats: dict | None = None,
                  keep_versions: int | None = DEFAULT_KEEP_VERSIONS) -> dict:
    """Merge all committed parts into the bank's index and make it the live version.

    Rows are ordered by part name (sorted), then by insertion order within a part. String tables
    are merged in first-seen order. If the live version already holds exactly this index, only
    ``manifest.json`` is rewritten; otherwise the index goes to a new version beside the live
    one, is checked, and ``manifest.json`` is switched atomically (see
    :func:`xpaste.bank.versions.commit_version`): readers that opened the previous version keep
    reading it, and a crash at any point leaves the previous version live and intact.
    Rerunning gives the same bank (never duplicated rows). Parts without ``part.json`` (a
    writer that never closed) are skipped with a warning.

    Args:
        root (str): Bank root.
        build_info (dict, optional): How the bank was built (models, thresholds, seeds, package
            versions, config hash). ``None`` keeps the value of an existing manifest.
        size_stats (dict, optional): Per-class size statistics
            (:func:`xpaste.bank.stats.compute_size_stats`). ``None`` keeps an existing value.
        keep_versions (int, optional): Superseded versions to keep after the switch (0: none;
            None: prune nothing). Defaults to 1, so readers of the previous version survive.

    Returns:
        dict: The written manifest.
    """
    root = os.fspath(root)
    names = list_parts(root)
    unfinished = incomplete_parts(root)
    if unfinished:
        warnings.warn(f'{root}: skipping {len(unfinished)} unfinished part(s) without '
                      f'{PART_FILE}: {unfinished[:10]}', stacklevel=2)
    if not names:
        raise FileNotFoundError(f'{osp.join(root, PARTS_DIR)}: no committed part to finalize '
                                '(did every BankWriter close()?)')
    if len(names) > UINT16_MAX + 1:
        raise ValueError(f'{root}: {len(names)} parts exceed the limit {UINT16_MAX + 1}')
    old = {}
    man_path = osp.join(root, MANIFEST_FILE)
    if osp.isfile(man_path):
        try:
            old = read_json(man_path, 'bank manifest')
        except ValueError:
            old = {}
    old = old if isinstance(old, dict) else {}
    categories = None
    merged = {k: [] for k in INDEX_COLUMNS}
    tables: dict[str, dict[str, int]] = {t: {} for t in STRING_TABLES}
    parts_meta = []
    for p, name in enumerate(names):
        rec, cols, entry = _merge_part(root, name, p, tables)
        if categories is None:
            categories = validate_categories(rec['categories'], f'part {name!r}: categories')
        elif category_key(rec['categories']) != category_key(categories):
            raise ValueError(f'{root}: part {name!r} has different categories than part '
                             f'{names[0]!r}; all parts of a bank must share one category list')
        for k, col in cols.items():
            merged[k].append(col)
        parts_meta.append(entry)
    columns = {k: np.concatenate(v) if v else np.zeros(0, INDEX_COLUMNS[k])
               for k, v in merged.items()}
    shard_paths = [[osp.join(root, s['path']) for s in e['shards']] for e in parts_meta]
    shard_sizes = [[s['bytes'] for s in e['shards']] for e in parts_meta]
    check_row_ends(root, columns['part'], columns['shard'],
                   columns['offset'] + columns['length'].astype(np.uint64), shard_paths,
                   shard_sizes)
    return commit_version(
        root,
        categories=categories,
        columns=columns,
        strings={t: list(ids) or [''] for t, ids in tables.items()},
        parts=parts_meta,
        build=dict(build_info) if build_info is not None else old.get('build', {}),
        size_stats=size_stats if size_stats is not None else old.get('size_stats'),
        keep_versions=keep_versions)

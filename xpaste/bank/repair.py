"""``repair_bank``: drop the rows a check found broken, as a new version of the bank."""
import os
import os.path as osp
from dataclasses import dataclass, field

import numpy as np

from .check import CheckReport, Problem, check_bank
from .manifest import manifest_version, open_index_column, read_manifest, read_string_table
from .schema import INDEX_COLUMNS, STRING_TABLES
from .versions import DEFAULT_KEEP_VERSIONS, commit_version


@dataclass
class RepairResult:
    """What :func:`repair_bank` did.

    Args:
        version (int | None): The new live version, None if nothing was written.
        dropped_rows (np.ndarray): Rows of the checked version that were left out.
        shard_fixes (list[str]): Shards whose recorded size was lowered to what is on disk, or
            that were taken out of the manifest because they are missing.
        unrepaired (list[Problem]): Problems a repair cannot fix (the bank must be rebuilt).
        before (CheckReport): The check the repair worked from.
        after (CheckReport | None): The check of the result (None if nothing was written).
    """
    version: int | None
    dropped_rows: np.ndarray
    shard_fixes: list[str] = field(default_factory=list)
    unrepaired: list[Problem] = field(default_factory=list)
    before: CheckReport | None = None
    after: CheckReport | None = None

    @property
    def ok(self) -> bool:
        """True when the bank has no problem left."""
        if self.after is not None:
            return self.after.ok
        return self.before is not None and self.before.ok

    def to_dict(self) -> dict:
        return dict(version=self.version, dropped_rows=int(len(self.dropped_rows)),
                    shard_fixes=self.shard_fixes, ok=self.ok,
                    unrepaired=[p.to_dict() for p in self.unrepaired],
                    after=self.after.to_dict() if self.after is not None else None)


def _fix_parts(root: str, man: dict, keep: np.ndarray, part: np.ndarray,
               shard: np.ndarray) -> tuple[list[dict], np.ndarray, list[str]]:
    """Manifest parts without missing shards and with truncated shards at their real size;
    returns the parts, the remapped ``shard`` column of the kept rows, and what was changed."""
    parts, fixes = [], []
    new_shard = shard.astype(np.int64).copy()
    for p, entry in enumerate(man['parts']):
        remap, shards = {}, []
        for j, s in enumerate(entry['shards']):
            path = osp.join(root, s['path'])
            if not osp.isfile(path):
                fixes.append(f'{path}: missing, taken out of part {entry["name"]!r}')
                continue
            size = min(int(s['bytes']), osp.getsize(path))
            if size < int(s['bytes']):
                fixes.append(f'{path}: recorded size {s["bytes"]} lowered to {size} bytes')
            remap[j] = len(shards)
            shards.append({'path': s['path'], 'bytes': size})
        rows = keep & (part == p)
        new_shard[rows] = [remap[int(j)] for j in shard[rows]]
        parts.append({**entry, 'num_instances': int(rows.sum()), 'shards': shards})
    return parts, new_shard[keep], fixes


def repair_bank(root, report: CheckReport | None = None, deep: bool = True,
                keep_versions: int | None = DEFAULT_KEEP_VERSIONS,
                progress: bool = False) -> RepairResult:
    """Write a new version of a bank without the rows whose bytes or values are broken.

    Rows named by row problems (out-of-range ids, bytes past the end of their shard, crops that
    do not decode) are dropped; missing shards leave the manifest and truncated ones are
    recorded at their real size. The index and string tables of the new version are written
    beside the live one and ``manifest.json`` is switched atomically, as
    :func:`xpaste.bank.finalize_bank` does; the parts are left as they are, so a later
    ``finalize_bank`` merges them again (rebuild damaged parts for a lasting fix). A missing or
    invalid manifest, index column or string table cannot be repaired by dropping rows: nothing
    is written and those problems are returned as ``unrepaired``.

    Args:
        root (str): Bank root.
        report (CheckReport, optional): A check of the live version to work from. Defaults to
            None: run :func:`check_bank` with ``deep``.
        deep (bool): Decode every crop when checking. Defaults to True.
        keep_versions (int, optional): Superseded versions to keep. Defaults to 1.
        progress (bool): Progress bar while decoding. Defaults to False.

    Returns:
        RepairResult: What was dropped or fixed, and what could not be repaired.
    """
    root = os.fspath(root)
    if report is None:
        report = check_bank(root, deep=deep, progress=progress)
    fatal = [p for p in report.file_problems() if p.kind != 'shard']
    if report.ok or fatal:
        return RepairResult(None, np.zeros(0, np.int64), unrepaired=fatal, before=report)
    man = read_manifest(root)
    if manifest_version(man) != report.version or man['num_instances'] != report.num_instances:
        raise RuntimeError(f'{root}: the bank changed since it was checked (version '
                           f'{report.version} -> {manifest_version(man)}); check it again')
    n = man['num_instances']
    columns = {k: np.array(open_index_column(root, man, k)) for k in INDEX_COLUMNS}
    bad = report.bad_rows()
    keep = np.ones(n, dtype=bool)
    keep[bad] = False
    parts, shard, fixes = _fix_parts(root, man, keep, columns['part'], columns['shard'])
    columns = {k: c[keep] for k, c in columns.items()}
    columns['shard'] = shard.astype(INDEX_COLUMNS['shard'])
    repair = dict(from_version=manifest_version(man), dropped_rows=int(len(bad)),
                  problems=[p.line() for p in report.problems[:50]])
    out = commit_version(
        root, categories=man['categories'], columns=columns,
        strings={t: read_string_table(root, man, t) for t in STRING_TABLES},
        parts=parts, build=man.get('build', {}), size_stats=man.get('size_stats'),
        keep_versions=keep_versions, repair=repair)
    after = check_bank(root, deep=report.deep, progress=progress)
    return RepairResult(manifest_version(out), bad, fixes, after.problems, report, after)

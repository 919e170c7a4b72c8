"""Check a bank's integrity and optionally drop its broken rows.

Examples::

    python tools/bank/check.py data/banks/lvis_sd            # cheap check (seconds)
    python tools/bank/check.py data/banks/lvis_sd --deep     # also decode every crop
    python tools/bank/check.py data/banks/lvis_sd --deep --repair --json

Exit status: 0 when the bank has no problem (after ``--repair``: when none is left), 1 otherwise.
``--repair`` writes a new version of the bank without the broken rows and switches to it
atomically; what it cannot repair (a missing or damaged manifest, index column or string
table) is listed, and the bank must then be rebuilt (``finalize_bank`` from its parts).
"""
import argparse
import json
import sys

from xpaste.bank import check_bank, repair_bank


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check an instance bank (manifest, index, string tables, shards, crops).')
    parser.add_argument('bank', help='bank root (the folder holding manifest.json)')
    parser.add_argument('--deep', action='store_true',
                        help='also read and decode every crop (slow: about 0.3-0.6 ms a crop)')
    parser.add_argument('--repair', action='store_true',
                        help='drop broken rows into a new version of the bank')
    parser.add_argument('--keep-versions', type=int, default=None,
                        help='superseded versions to keep after --repair (library default: 1)')
    parser.add_argument('--bank-version', type=int, default=None,
                        help='check this kept version instead of the live one (not with '
                        '--repair)')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.repair and args.bank_version is not None:
        parser.error('--repair works on the live version; drop --bank-version')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = not (args.no_progress or args.json)
    report = check_bank(args.bank, deep=args.deep, version=args.bank_version, progress=progress)
    out = dict(check=report.to_dict())
    lines = report.summary()
    ok = report.ok
    if args.repair and not report.ok:
        kwargs = {} if args.keep_versions is None else dict(keep_versions=args.keep_versions)
        result = repair_bank(args.bank, report=report, progress=progress, **kwargs)
        out['repair'] = result.to_dict()
        ok = result.ok
        if result.version is not None:
            lines.append(f'repaired: version {result.version} without {len(result.dropped_rows)} '
                         'broken rows')
            lines += [f'  shard fixed: {s}' for s in result.shard_fixes]
        for p in result.unrepaired:
            lines.append(f'could not repair: {p.line()}')
        if result.unrepaired and result.version is None:
            lines.append('rebuild the bank (finalize_bank from its parts, or rerun the build)')
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print('\n'.join(lines))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())

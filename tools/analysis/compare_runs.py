"""Compare the LVIS metrics of several runs: Markdown table (and PNG) with deltas to a baseline.

Examples::

    python tools/analysis/compare_runs.py work_dirs/baseline work_dirs/xpaste --baseline 0
    python tools/analysis/compare_runs.py 'baseline=work_dirs/exp/baseline/seed*' \\
        'xpaste=work_dirs/exp/xpaste/seed0,work_dirs/exp/xpaste/seed1' --baseline baseline \\
        --out-md work_dirs/exp/table.md --out-png work_dirs/exp/table.png

Each RUN is ``[name=]DIR[,DIR...]`` (globs allowed): several work_dirs are seeds of one row,
shown as mean ± standard deviation. The newest test (``tools/test.py``) or validation metrics of
each work_dir are read (see :mod:`xpaste.utils.metrics`).
"""
import argparse
import json
import os
import os.path as osp

from xpaste.utils.metrics import (format_markdown, load_group, plot_comparison, select_baseline,
                                  summarize, to_jsonable)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Compare the LVIS metrics (AP, APr, APc, APf; box and mask) of work_dirs')
    parser.add_argument('runs', nargs='+', metavar='RUN',
                        help='[name=]WORK_DIR[,WORK_DIR...]; globs allowed; several work_dirs '
                        'are averaged (seeds)')
    parser.add_argument('--baseline', default='0',
                        help='baseline run: index, name, or one of its work_dirs (default 0)')
    parser.add_argument('--names', nargs='+', help='display names, one per RUN')
    parser.add_argument('--title', help='title of the PNG')
    parser.add_argument('--out-md', help='also write the Markdown table to this file')
    parser.add_argument('--out-png', help='also draw a grouped bar chart into this PNG')
    parser.add_argument('--json', action='store_true',
                        help='print the summary as JSON instead of the Markdown table')
    args = parser.parse_args(argv)
    if args.names is not None and len(args.names) != len(args.runs):
        parser.error(f'--names needs one name per run: {len(args.runs)} runs, '
                     f'got {len(args.names)} names')
    return args


def main(argv=None):
    """Print the comparison and return the summary rows."""
    args = parse_args(argv)
    names = args.names or [None] * len(args.runs)
    groups = [load_group(spec, name) for spec, name in zip(args.runs, names)]
    rows = summarize(groups, select_baseline(groups, args.baseline, args.runs))
    table = format_markdown(rows)
    if args.out_md:
        os.makedirs(osp.dirname(osp.abspath(args.out_md)), exist_ok=True)
        with open(args.out_md, 'w', encoding='utf-8') as f:
            f.write(table)
    if args.out_png:
        plot_comparison(rows, args.out_png, title=args.title)
    if args.json:
        print(json.dumps(to_jsonable(rows), indent=2))
    else:
        print(table, end='')
    return rows


if __name__ == '__main__':
    main()

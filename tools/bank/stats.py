"""Per-class size statistics (mean/std of sqrt(mask area / image area)) of a COCO/LVIS file.

Example::

    python tools/bank/stats.py data/lvis_v1/annotations/lvis_v1_train.json --out lvis_sizes.json
    # and store them in a bank's manifest too:
    python tools/bank/stats.py lvis_v1_train.json --out lvis_sizes.json --bank data/banks/sd
"""
import argparse

from mmengine.logging import print_log

from xpaste.bank import compute_size_stats, finalize_bank, save_size_stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Compute per-class size statistics of an annotation file.')
    parser.add_argument('ann_file', help='COCO or LVIS annotation JSON')
    parser.add_argument('--out', required=True, help='output JSON file')
    parser.add_argument('--categories', nargs='+', help='category names to keep (default all)')
    parser.add_argument('--bank', help='also write the statistics into this bank\'s manifest')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stats = compute_size_stats(args.ann_file, categories=args.categories)
    save_size_stats(stats, args.out)
    known = sum(1 for s in stats['categories'].values() if s['count'])
    print_log(f'{args.out}: size statistics of {known}/{len(stats["categories"])} categories '
              f'from {stats["num_annotations"]} annotations', logger='current')
    if args.bank:
        finalize_bank(args.bank, size_stats=stats)
        print_log(f'{args.bank}/manifest.json: size_stats updated', logger='current')
    return stats


if __name__ == '__main__':
    main()

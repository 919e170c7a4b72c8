"""Build an instance bank from the annotated instances of a COCO/LVIS dataset.

Example::

    python tools/bank/from_annotations.py data/lvis_v1/annotations/lvis_v1_train.json \
        data/coco/ data/banks/lvis_train --max-side 256 --min-area 64
"""
import argparse

from xpaste.builder.from_annotations import build_bank_from_annotations


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Build an instance bank from a COCO/LVIS annotation file (crowd and tiny '
        'instances skipped; size statistics written to the manifest).')
    parser.add_argument('ann_file', help='COCO or LVIS annotation JSON')
    parser.add_argument(
        'img_prefix', help='image folder (LVIS: the folder holding train2017/ and val2017/)')
    parser.add_argument('out_bank', help='bank folder to (re)build')
    parser.add_argument('--max-side', type=int, help='longest side of stored crops (default 256)')
    parser.add_argument('--min-area', type=float, help='skip annotations with area below this '
                        '(pixels, default 64)')
    parser.add_argument('--categories', nargs='+', help='category names to keep (default all)')
    parser.add_argument('--max-per-class', type=int, help='at most N instances per class')
    parser.add_argument('--seed', type=int, help='seed of --max-per-class subsampling (default 0)')
    parser.add_argument('--image-format', choices=['webp', 'png'], help='default webp')
    parser.add_argument('--quality', type=int, help='WebP quality 1..100 (default 95)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    kwargs = dict(max_side=args.max_side, min_area=args.min_area, categories=args.categories,
                  max_per_class=args.max_per_class, seed=args.seed,
                  image_format=args.image_format, quality=args.quality)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return build_bank_from_annotations(args.ann_file, args.img_prefix, args.out_bank,
                                       progress=not args.no_progress, **kwargs)


if __name__ == '__main__':
    main()

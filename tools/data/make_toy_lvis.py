"""Generate the toy LVIS world (images + LVIS v1 train/val annotation files).

Example::

    python tools/data/make_toy_lvis.py --out data/toy_lvis
    python tools/data/make_toy_lvis.py --out data/toy_lvis_small --num-classes 12 \\
        --num-train 60 --num-val 20 --seed 1
"""
import argparse
import inspect

from xpaste.toy import make_toy_lvis


def parse_args(argv=None) -> argparse.Namespace:
    # Defaults come from the library's signature, the single place where they are set.
    defaults = {k: p.default for k, p in inspect.signature(make_toy_lvis).parameters.items()}
    parser = argparse.ArgumentParser(
        description='Generate the toy LVIS world: long-tailed train split, balanced val split, '
        'LVIS v1 json files.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', default=defaults['out_dir'], help='output root directory')
    parser.add_argument(
        '--num-classes', type=int, default=defaults['num_classes'], help='number of categories')
    parser.add_argument(
        '--num-train', type=int, default=defaults['num_train'], help='number of train images')
    parser.add_argument(
        '--num-val', type=int, default=defaults['num_val'], help='number of val images')
    parser.add_argument(
        '--min-size', type=int, default=defaults['min_size'], help='smallest image side')
    parser.add_argument(
        '--max-size', type=int, default=defaults['max_size'], help='largest image side')
    parser.add_argument('--seed', type=int, default=defaults['seed'], help='random seed')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    return make_toy_lvis(
        args.out,
        num_classes=args.num_classes,
        num_train=args.num_train,
        num_val=args.num_val,
        min_size=args.min_size,
        max_size=args.max_size,
        seed=args.seed,
        progress=True)


if __name__ == '__main__':
    main()

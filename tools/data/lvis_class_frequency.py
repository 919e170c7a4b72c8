"""Write the class-frequency file of the federated loss from a training annotation file.

For each category (in id order): its id, name, the number of training images holding it
(LVIS's ``image_count`` when the json has it, else counted) and LVIS's frequency group, in the
format of Detic's ``lvis_v1_train_cat_info.json``. ``FederatedLoss`` (xpaste/models) samples
classes with probability ``image_count ** 0.5``.

Example::

    python tools/data/lvis_class_frequency.py data/lvis_v1/annotations/lvis_v1_train.json \\
        --out data/lvis_v1/annotations/lvis_v1_train_cat_info.json
"""
import argparse

from mmengine.logging import print_log

from xpaste.bank import class_frequency, load_annotations
from xpaste.models import class_frequency_records
from xpaste.utils.fileio import atomic_write_json


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the per-class image counts (federated loss) of an LVIS/COCO '
        'training annotation file.')
    parser.add_argument('ann_file', help='LVIS or COCO training annotation json')
    parser.add_argument('--out', required=True, help='output json (list of records by id)')
    return parser.parse_args(argv)


def main(argv=None) -> list:
    args = parse_args(argv)
    data = load_annotations(args.ann_file)
    records = class_frequency_records(data['categories'], class_frequency(data))
    atomic_write_json(args.out, records)
    empty = [r['name'] for r in records if r['image_count'] == 0]
    print_log(f'{args.out}: {len(records)} classes, {sum(r["image_count"] for r in records)} '
              f'image-class pairs' + (f'; {len(empty)} classes without images (never '
                                      f'sampled): {empty[:5]}' if empty else ''),
              logger='current')
    return records


if __name__ == '__main__':
    main()

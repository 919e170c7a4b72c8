"""Count the instances of a toy bank by generator defect (the prompt tags of a gapped build).

Example::

    python tools/toy/count_defects.py work_dirs/toy_gap/bank work_dirs/toy_gap_nofilter/bank

A bank built with ``ToySource(gap=...)`` records each instance's defect at the end of its prompt
(:func:`xpaste.toy.gap.parse_gap_tag`). Prints one JSON object: per bank, the number of
instances, the count per defect, and ``wrong_fraction`` (instances with a defect of
:data:`xpaste.toy.gap.WRONG_DEFECTS`) and ``duplicate_fraction``; instances without a tag
(an oracle build) are counted as ``untagged``.
"""
import argparse
import json
import os.path as osp
from collections import Counter

from xpaste.bank import BankReader
from xpaste.toy.gap import WRONG_DEFECTS, parse_gap_tag


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count a toy bank\'s instances by defect')
    parser.add_argument('banks', nargs='+', help='bank directories')
    return parser.parse_args(argv)


def count_defects(bank_dir: str) -> dict:
    """Per-defect instance counts of one bank."""
    with BankReader(bank_dir) as reader:
        prompts = reader.strings('prompt')
        counts = Counter()
        for prompt_id in reader.column('prompt_id'):
            tag = parse_gap_tag(prompts[int(prompt_id)])
            counts['untagged' if tag is None else tag[0]] += 1
    total = sum(counts.values())
    wrong = sum(counts[k] for k in WRONG_DEFECTS)
    return dict(
        instances=total,
        defects=dict(sorted(counts.items())),
        wrong_fraction=wrong / total if total else None,
        duplicate_fraction=counts['duplicate'] / total if total else None)


def main(argv=None) -> dict:
    args = parse_args(argv)
    for bank in args.banks:
        if not osp.isfile(osp.join(bank, 'manifest.json')):
            raise FileNotFoundError(f'not a bank (no manifest.json): {bank!r}')
    result = {bank: count_defects(bank) for bank in args.banks}
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()

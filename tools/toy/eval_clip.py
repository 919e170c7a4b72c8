"""Evaluate the toy CLIP as the bank builder uses it: zero-shot top-1 and score separation.

Example::

    python tools/toy/eval_clip.py --json                    # work_dirs/toy_clip, data/toy_lvis
    python tools/toy/eval_clip.py --clip-dir work_dirs/toy_clip_300 --gap-images-per-class 20

The model is loaded by the bank builder's ``ClipScorer`` (model config + safetensors weights)
and every input is prepared as a bank build prepares it. The generator, segmenter and score
threshold are those of ``--bank-config`` (default ``configs/bank/toy_gap.py``). Measured:

1. ``zero_shot_top1``: the val split's instances (cut out with their annotated masks) classified
   among the val json's classes with the scorer's text prompts; also per frequency group.
2. On the generator's images (seeds as a bank build derives them): ``gap_top1`` of the right
   images (no defect, or a duplicate) cut out with the drawn mask, and ``gap_top1_segmented``
   with the segmenter's mask.
3. The separation the CLIP filter relies on: cut-out scores (segmenter mask, as the build
   scores it) against the *requested* class for right and wrong images
   (:data:`xpaste.toy.gap.WRONG_DEFECTS`; black images never reach the scorer, empty masks are
   dropped before it): statistics per defect, ROC AUC, d', the share of right and wrong cut-outs
   at or above the config's ``filter.min_clip``, and the threshold keeping 90 % of right ones.

``--json`` prints exactly one JSON object on stdout (logs go to stderr).
"""
import argparse
import json
import os.path as osp
from dataclasses import dataclass, field

import numpy as np
from mmengine.config import Config

from xpaste.builder.clip_scoring import ClipScorer, prepare_cutout
from xpaste.builder.defaults import merge_defaults
from xpaste.builder.segmenters import build_segmenters
from xpaste.builder.sources import build_source, derive_seed
from xpaste.builder.stages.segment import postprocess_mask
from xpaste.toy.clip import TOY_CLIP_NAME, annotated_instances
from xpaste.toy.gap import DEFECTS, WRONG_DEFECTS, render_gapped_instance
from xpaste.utils.stdio import stdout_to_stderr

DEFAULT_VAL_ANN = 'data/toy_lvis/annotations/lvis_v1_val.json'
DEFAULT_BANK_CONFIG = 'configs/bank/toy_gap.py'
#: Right images: what the requested class should look like (a duplicate is right, redundant).
RIGHT = ('none', 'duplicate')
KINDS = ('none', ) + DEFECTS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Zero-shot top-1 of the toy CLIP on val instances, and its score '
        'separation of right and wrong generated images',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--clip-dir',
        default='work_dirs/toy_clip',
        help='output folder of tools/toy/train_clip.py (model config + weights)')
    parser.add_argument('--val-ann', default=DEFAULT_VAL_ANN, help='toy LVIS val json')
    parser.add_argument(
        '--bank-config',
        default=DEFAULT_BANK_CONFIG,
        help='bank config giving the generator (source with gap), segmenter and min_clip')
    parser.add_argument(
        '--gap-images-per-class', type=int, default=10, help='generated images per val class')
    parser.add_argument(
        '--gap-size', type=int, help='side of generated images (default: the config\'s)')
    parser.add_argument('--seed', type=int, default=0, help='bank build seed of the images')
    parser.add_argument('--json', action='store_true', help='print one JSON object only')
    return parser.parse_args(argv)


@dataclass
class GapSamples:
    """CLIP inputs of generated images: ``gt_*`` the right ones cut out with the drawn mask,
    ``seg_*`` every one with a non-empty segmenter mask; ``images``/``empty_masks`` per defect."""

    gt_inputs: list = field(default_factory=list)
    gt_labels: list = field(default_factory=list)
    seg_inputs: list = field(default_factory=list)
    seg_labels: list = field(default_factory=list)
    seg_defects: list = field(default_factory=list)
    images: dict = field(default_factory=lambda: {k: 0 for k in KINDS})
    empty_masks: dict = field(default_factory=lambda: {k: 0 for k in KINDS})


def _encode(scorer: ClipScorer, inputs: list, dim: int) -> np.ndarray:
    """Embeddings ``(N, dim)`` of prepared inputs (``(0, dim)`` for none)."""
    if not inputs:
        return np.zeros((0, dim), np.float32)
    return scorer.encode(np.stack(inputs))


def _top1(embeddings: np.ndarray, labels, text: np.ndarray):
    """Top-1 accuracy (None without inputs) and the per-input hits."""
    hits = (embeddings @ text.T).argmax(1) == np.asarray(labels, dtype=np.int64)
    return (float(hits.mean()) if len(hits) else None), hits


def _stats(values: np.ndarray, threshold=None) -> dict:
    out = dict(
        n=int(len(values)),
        mean=float(values.mean()) if len(values) else None,
        std=float(values.std()) if len(values) else None)
    if threshold is not None:
        out['kept'] = float((values >= threshold).mean()) if len(values) else None
    return out


def _auc(right: np.ndarray, wrong: np.ndarray):
    """P(score of a right cut-out > score of a wrong one), ties half."""
    if len(right) == 0 or len(wrong) == 0:
        return None
    diff = right[:, None] - wrong[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def val_top1(scorer: ClipScorer, text: np.ndarray, categories: list, val_ann: str) -> dict:
    """Zero-shot top-1 on the instances of ``val_ann``, overall and per frequency group."""
    index = {c['name']: i for i, c in enumerate(categories)}
    inputs, labels = [], []
    for image, mask, name in annotated_instances(val_ann):
        inputs.append(prepare_cutout(image, mask, scorer.input_size, scorer.cutout_margin))
        labels.append(index[name])
    labels = np.asarray(labels, dtype=np.int64)
    top1, hits = _top1(_encode(scorer, inputs, text.shape[1]), labels, text)
    by_freq = {}
    for freq in 'rcf':
        sel = np.isin(labels, [i for i, c in enumerate(categories) if c.get('frequency') == freq])
        by_freq[freq] = float(hits[sel].mean()) if sel.any() else None
    return dict(
        zero_shot_top1=top1, zero_shot_top1_by_frequency=by_freq, val_instances=int(len(labels)))


def gap_samples(cfg: dict, categories: list, per_class: int, seed: int, size: int,
                margin: float) -> GapSamples:
    """Render, segment and prepare the generator's images of every class."""
    source = build_source(cfg['source'])
    if getattr(source, 'gap', None) is None:
        raise ValueError(f'--bank-config: source {cfg["source"]!r} has no gap (use a '
                         'ToySource with gap=..., e.g. configs/bank/toy_gap.py)')
    world = source.world()
    segmenter = build_segmenters(cfg['segment']['segmenters'])[0]
    largest = cfg['segment']['largest_component']
    samples = GapSamples()
    for k, category in enumerate(categories):
        toy = source.toy_category(category)
        for i in range(per_class):
            out = render_gapped_instance(toy, derive_seed(seed, category['id'], i), source.gap,
                                         source.size, world)
            samples.images[out.defect] += 1
            if out.defect == 'black':
                continue
            if out.defect in RIGHT:
                samples.gt_inputs.append(prepare_cutout(out.image, out.mask, size, margin))
                samples.gt_labels.append(k)
            mask, _ = postprocess_mask(segmenter.segment([out.image], category)[0], largest)
            if not mask.any():
                samples.empty_masks[out.defect] += 1
                continue
            samples.seg_inputs.append(prepare_cutout(out.image, mask, size, margin))
            samples.seg_labels.append(k)
            samples.seg_defects.append(out.defect)
    return samples


def separation(scorer: ClipScorer, text: np.ndarray, samples: GapSamples, min_clip) -> dict:
    """Top-1 and right/wrong score statistics of the generated images."""
    dim = text.shape[1]
    gap_top1, _ = _top1(_encode(scorer, samples.gt_inputs, dim), samples.gt_labels, text)
    emb = _encode(scorer, samples.seg_inputs, dim)
    labels = np.asarray(samples.seg_labels, dtype=np.int64)
    defects = np.asarray(samples.seg_defects, dtype=object)
    is_right = np.isin(defects, RIGHT)
    gap_top1_seg, _ = _top1(emb[is_right], labels[is_right], text)
    score = 100.0 * np.einsum('nd,nd->n', emb, text[labels])
    right, wrong = score[is_right], score[np.isin(defects, WRONG_DEFECTS)]
    keep90 = float(np.quantile(right, 0.1)) if len(right) else None
    pooled = np.sqrt((right.var() + wrong.var()) / 2) if len(right) and len(wrong) else 0.0
    total = sum(samples.images.values())
    return dict(
        gap_images=int(total),
        gap_wrong_fraction=sum(samples.images[k] for k in WRONG_DEFECTS) / max(total, 1),
        gap_top1=gap_top1,
        gap_top1_segmented=gap_top1_seg,
        min_clip=min_clip,
        score_right=_stats(right, min_clip),
        score_wrong=_stats(wrong, min_clip),
        separation_auc=_auc(right, wrong),
        separation_d_prime=float((right.mean() - wrong.mean()) / pooled) if pooled > 0 else None,
        threshold_keep90=keep90,
        wrong_kept_at_keep90=float(
            (wrong >= keep90).mean()) if len(wrong) and keep90 is not None else None,
        per_defect={
            k:
            dict(
                _stats(score[defects == k], min_clip),
                images=samples.images[k],
                empty_mask=samples.empty_masks[k])
            for k in KINDS
        })


def evaluate(args) -> dict:
    cfg = merge_defaults(Config.fromfile(args.bank_config).to_dict())
    if args.gap_size is not None:
        cfg['source']['size'] = args.gap_size
    # the config's scorer (templates, cut-out margin) with the weights of --clip-dir
    score = {k: v for k, v in (cfg['score'] or {}).items() if k != 'type'}
    score.update(
        model=TOY_CLIP_NAME,
        pretrained=osp.join(args.clip_dir, f'{TOY_CLIP_NAME}.safetensors'),
        model_config=osp.join(args.clip_dir, f'{TOY_CLIP_NAME}.json'),
        precision='fp32',
        device='cpu')
    scorer = ClipScorer(**score)
    scorer.setup()
    with open(args.val_ann, encoding='utf-8') as f:
        categories = json.load(f)['categories']
    text = np.stack([scorer.text_embedding(c).cpu().numpy() for c in categories])
    result = val_top1(scorer, text, categories, args.val_ann)
    samples = gap_samples(cfg, categories, args.gap_images_per_class, args.seed, scorer.input_size,
                          scorer.cutout_margin)
    result.update(separation(scorer, text, samples, cfg['filter'].get('min_clip')))
    return dict(result, classes=len(categories), checkpoint=scorer.pretrained)


def main(argv=None) -> dict:
    args = parse_args(argv)
    for path, what in ((args.val_ann, '--val-ann'), (args.clip_dir, '--clip-dir'),
                       (args.bank_config, '--bank-config')):
        if not osp.exists(path):
            raise FileNotFoundError(f'{what}: {path!r} not found (make the toy world with '
                                    'tools/data/make_toy_lvis.py, the toy CLIP with '
                                    'tools/toy/train_clip.py)')
    if args.gap_images_per_class < 1:
        raise ValueError(f'--gap-images-per-class must be >= 1, got '
                         f'{args.gap_images_per_class}')
    if args.json:
        with stdout_to_stderr():
            result = evaluate(args)
        print(json.dumps(result))
    else:
        result = evaluate(args)
        print(json.dumps(result, indent=1))
    return result


if __name__ == '__main__':
    main()

"""Train the toy CLIP (a small open_clip model) on the toy world's train split and renders.

Example::

    python tools/toy/train_clip.py                 # data/toy_lvis -> work_dirs/toy_clip
    python tools/toy/train_clip.py --steps 300 --out work_dirs/toy_clip_300

Writes ``<out>/xpaste-toy-clip.json`` (the open_clip model config),
``<out>/xpaste-toy-clip.safetensors`` (the weights) and ``<out>/train_info.json`` (settings, their
hash, data counts, time). When ``train_info.json`` records the same settings hash (settings, model
config, train json content) and the weights exist, training is skipped (``--force`` retrains).
The val split is never read. A bank config scores with it as with any open_clip model::

    score = dict(model='xpaste-toy-clip',
                 pretrained='work_dirs/toy_clip/xpaste-toy-clip.safetensors',
                 model_config='work_dirs/toy_clip/xpaste-toy-clip.json', precision='fp32')
"""
import argparse
import hashlib
import inspect
import os.path as osp
from dataclasses import asdict, fields

import numpy as np
from mmengine.logging import print_log

from xpaste.builder.clip_scoring import ClipScorer, prepare_cutout
from xpaste.builder.prompts import display_name
from xpaste.toy import max_toy_categories, toy_categories
from xpaste.toy.clip import (TOY_CLIP_CFG, TOY_CLIP_NAME, ToyClipSettings, annotated_instances,
                             register_model_config, rendered_instances, save_toy_clip,
                             settings_digest, train_toy_clip, write_model_config)
from xpaste.utils.fileio import atomic_write_json, read_json

DEFAULT_TRAIN_ANN = 'data/toy_lvis/annotations/lvis_v1_train.json'
DEFAULT_OUT = 'work_dirs/toy_clip'
#: Renderer images per toy category (all shape x colour x texture combinations).
DEFAULT_RENDERS = 8
#: Side of the rendered images before the cut-out is taken.
RENDER_SIZE = 96
CUTOUT_MARGIN = inspect.signature(ClipScorer).parameters['cutout_margin'].default


def parse_args(argv=None) -> argparse.Namespace:
    defaults = ToyClipSettings()
    parser = argparse.ArgumentParser(
        description='Train the toy CLIP on the toy train split and rendered objects',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--train-ann', default=DEFAULT_TRAIN_ANN, help='toy LVIS train json')
    parser.add_argument('--out', default=DEFAULT_OUT, help='output folder')
    parser.add_argument(
        '--renders-per-class',
        type=int,
        default=DEFAULT_RENDERS,
        help='rendered objects per toy category (every combination, not only the dataset\'s)')
    group = parser.add_argument_group('training (ToyClipSettings)')
    for f in fields(ToyClipSettings):
        group.add_argument(
            f'--{f.name.replace("_", "-")}',
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name))
    parser.add_argument('--force', action='store_true', help='retrain even when cached')
    return parser.parse_args(argv)


def _file_sha1(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def build_inputs(train_ann: str, renders_per_class: int, size: int) -> tuple:
    """CLIP inputs (prepared as the scorer prepares cut-outs), labels and class texts."""
    world = toy_categories(max_toy_categories(), seed=0)
    index = {c.name: i for i, c in enumerate(world)}
    inputs, labels, counts = [], [], dict(train_instances=0, rendered=0)
    sources = (('train_instances', annotated_instances(train_ann)),
               ('rendered', rendered_instances(world, renders_per_class, RENDER_SIZE)))
    for key, items in sources:
        for image, mask, name in items:
            if name not in index:
                raise ValueError(f'{train_ann}: category {name!r} is not a toy category; train '
                                 'the toy CLIP on a toy world (tools/data/make_toy_lvis.py)')
            inputs.append(prepare_cutout(image, mask, size, CUTOUT_MARGIN))
            labels.append(index[name])
            counts[key] += 1
    texts = [display_name(c.name) for c in world]
    return np.stack(inputs), np.asarray(labels), texts, dict(counts, classes=len(world))


def main(argv=None) -> dict:
    args = parse_args(argv)
    settings = ToyClipSettings(**{f.name: getattr(args, f.name) for f in fields(ToyClipSettings)})
    if not osp.isfile(args.train_ann):
        raise FileNotFoundError(f'--train-ann: {args.train_ann!r} not found; make the toy world '
                                'first: python tools/data/make_toy_lvis.py')
    if args.renders_per_class < 0:
        raise ValueError(f'--renders-per-class must be >= 0, got {args.renders_per_class}')
    size = TOY_CLIP_CFG['vision_cfg']['image_size']
    digest = settings_digest(
        settings=settings,
        renders_per_class=args.renders_per_class,
        render_size=RENDER_SIZE,
        cutout_margin=CUTOUT_MARGIN,
        train_ann_sha1=_file_sha1(args.train_ann))
    checkpoint = osp.join(args.out, f'{TOY_CLIP_NAME}.safetensors')
    info_path = osp.join(args.out, 'train_info.json')
    info = read_json(info_path)
    if not args.force and info and info.get('digest') == digest and osp.isfile(checkpoint):
        print(f'toy CLIP: {checkpoint} is up to date (settings hash {digest}); not retrained')
        return dict(info, cached=True)
    model_config = write_model_config(args.out)
    register_model_config(model_config)
    inputs, labels, texts, counts = build_inputs(args.train_ann, args.renders_per_class, size)
    print_log(
        f'toy CLIP: {counts["train_instances"]} train-split cut-outs + {counts["rendered"]} '
        f'rendered objects of {counts["classes"]} classes, {settings.steps} steps',
        logger='current')
    model, stats = train_toy_clip(inputs, labels, texts, settings)
    save_toy_clip(model, checkpoint)
    info = dict(
        digest=digest,
        model=TOY_CLIP_NAME,
        model_config=model_config,
        checkpoint=checkpoint,
        settings=asdict(settings),
        renders_per_class=args.renders_per_class,
        train_ann=args.train_ann,
        data=counts,
        stats=stats)
    atomic_write_json(info_path, info)
    print(f'toy CLIP: trained in {stats["seconds"]:.0f} s (final loss {stats["final_loss"]:.3f})'
          f' -> {checkpoint}')
    return dict(info, cached=False)


if __name__ == '__main__':
    main()

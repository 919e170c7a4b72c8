"""A toy CLIP: a small open_clip model trained contrastively on the toy world.

The bank builder scores cut-outs with any open_clip model (``ClipScorer``). For the toy world
no released weights know the toy classes, so this module defines a small open_clip model
(:data:`TOY_CLIP_CFG`: a ModifiedResNet image tower at 64 px and a two-layer text transformer)
and trains it on what a real CLIP's web-scale pretraining stands for here:

- cut-outs of the toy *train* split's instances (:func:`annotated_instances`), never val;
- single objects of every toy category drawn by the renderer (:func:`rendered_instances`), so
  the model knows classes beyond the dataset's, as a real CLIP does.

The model is an ordinary open_clip model: its config is a json file registered with
``open_clip.add_model_config`` (:func:`write_model_config`, :func:`register_model_config`) and
its weights a safetensors state dict (:func:`save_toy_clip`), which the scorer loads through
``open_clip.create_model_and_transforms(name, pretrained=<file>)`` as it loads real weights.
Training (:func:`train_toy_clip`) is deterministic for a seed and a thread count.
"""
import hashlib
import json
import logging
import os.path as osp
import time
from dataclasses import asdict, dataclass
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log
from pycocotools import mask as mask_utils

from xpaste.utils.checks import check_number
from xpaste.utils.fileio import atomic_write_bytes, atomic_write_json
from .categories import ToyCategory
from .render import render_single_instance

#: Name of the toy CLIP model config (the stem of its json file, as open_clip registers it).
TOY_CLIP_NAME = 'xpaste-toy-clip'
#: The open_clip model config: ModifiedResNet (1 block per stage, width 16) at 64 px, a
#: 2-layer width-128 text transformer over 16 tokens (toy prompts are short), 128-d embeddings.
TOY_CLIP_CFG = dict(
    embed_dim=128,
    vision_cfg=dict(image_size=64, layers=[1, 1, 1, 1], width=16),
    text_cfg=dict(context_length=16, vocab_size=49408, width=128, heads=4, layers=2))
#: Caption templates of training, one drawn per class and step; the scorer's default
#: ``'a photo of {name}'`` is among them.
TRAIN_TEMPLATES = ('a photo of {name}', 'a photo of a single {name}', 'a {name}',
                   'a picture of a {name}', '{name}')
#: Bumped when a change of the training code changes the weights a setting gives.
TRAINING_VERSION = 1


@dataclass(frozen=True)
class ToyClipSettings:
    """Settings of :func:`train_toy_clip`.

    Args:
        steps (int): Optimiser steps. Defaults to 160.
        batch_size (int): Images per step. Defaults to 128.
        lr (float): Peak AdamW learning rate (linear warm-up, cosine decay). Defaults to 2e-3.
        weight_decay (float): AdamW weight decay. Defaults to 0.05.
        warmup (int): Warm-up steps. Defaults to 10.
        min_classes (int): Captions contrasted per step: the batch's classes, topped up with
            random other classes to at least this many. Defaults to 64.
        seed (int): Seed of the initial weights, the batches and the captions. Defaults to 0.
        threads (int): torch CPU threads while training (on a shared machine one thread avoids
            contention; the weights depend on it). Defaults to 1.
    """

    steps: int = 160
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 10
    min_classes: int = 64
    seed: int = 0
    threads: int = 1

    def __post_init__(self):
        for name in ('steps', 'batch_size', 'min_classes', 'threads'):
            check_number(f'ToyClipSettings.{name}', getattr(self, name), 1, integer=True)
        for name in ('warmup', 'seed'):
            check_number(f'ToyClipSettings.{name}', getattr(self, name), 0, integer=True)
        check_number('ToyClipSettings.lr', self.lr, 0, lo_open=True)
        check_number('ToyClipSettings.weight_decay', self.weight_decay, 0)


def settings_digest(**parts) -> str:
    """A short hash of json-able settings (with the model config and training version)."""
    blob = json.dumps(
        dict(parts, model_cfg=TOY_CLIP_CFG, version=TRAINING_VERSION),
        sort_keys=True,
        default=lambda o: asdict(o) if hasattr(o, '__dataclass_fields__') else str(o))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def write_model_config(out_dir: str, name: str = TOY_CLIP_NAME, cfg: Optional[dict] = None) -> str:
    """Write an open_clip model config json ``<out_dir>/<name>.json``; returns its path."""
    path = osp.join(out_dir, f'{name}.json')
    atomic_write_json(path, cfg or TOY_CLIP_CFG)
    return path


def register_model_config(path: str) -> str:
    """Register an open_clip model config json (once); returns the model name (file stem).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    import open_clip
    if not osp.isfile(path):
        raise FileNotFoundError(f'open_clip model config not found: {path!r} (train the toy '
                                'CLIP with tools/toy/train_clip.py, which writes it)')
    name = osp.splitext(osp.basename(path))[0]
    if open_clip.get_model_config(name) is None:
        open_clip.add_model_config(path)
    return name


def _decode_instance_mask(ann: dict, height: int, width: int) -> np.ndarray:
    segm = ann['segmentation']
    rles = mask_utils.frPyObjects(segm, height, width) if isinstance(segm, list) else [segm]
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def annotated_instances(ann_file: str,
                        image_root: Optional[str] = None,
                        min_area: float = 0.0) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
    """The instances of an LVIS-format toy split: ``(image, mask, category name)``.

    Args:
        ann_file (str): The split's json, e.g. ``data/toy_lvis/annotations/lvis_v1_train.json``.
        image_root (str, optional): Folder that the images' ``file_name`` are relative to.
            Defaults to the folder above the json's folder (the toy world's root).
        min_area (float): Instances with a smaller annotated area are skipped. Defaults to 0.

    Yields:
        tuple: The BGR uint8 image (shared by its instances), the bool mask and the name.
    """
    with open(ann_file, encoding='utf-8') as f:
        data = json.load(f)
    root = image_root or osp.dirname(osp.dirname(osp.abspath(ann_file)))
    names = {c['id']: c['name'] for c in data['categories']}
    by_image: dict[int, list] = {}
    for ann in data['annotations']:
        if ann.get('area', 1) >= min_area:
            by_image.setdefault(ann['image_id'], []).append(ann)
    for info in sorted(data['images'], key=lambda i: i['id']):
        anns = by_image.get(info['id'])
        if not anns:
            continue
        path = osp.join(root, info['file_name'])
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f'{ann_file}: image {info["file_name"]!r} not found or '
                                    f'unreadable under {root!r}')
        for ann in sorted(anns, key=lambda a: a['id']):
            mask = _decode_instance_mask(ann, image.shape[0], image.shape[1])
            if mask.any():
                yield image, mask, names[ann['category_id']]


def rendered_instances(categories: Sequence[ToyCategory],
                       per_class: int,
                       size: int = 96,
                       seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
    """``per_class`` single objects of each category drawn by the toy renderer (the dataset's
    own in-class variation, plain background): ``(image, mask, category name)``."""
    for category in categories:
        for i in range(per_class):
            rng = np.random.default_rng([int(seed), category.id, i, 0xC11])
            image, mask = render_single_instance(category, rng, size=size)
            yield image, mask, category.name


def _augment(x, generator):
    """Label-preserving batch augmentation (N, 3, S, S) in [0, 255]: flips, quarter turns,
    brightness and contrast."""
    import torch
    n = x.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    x = torch.rot90(x, int(torch.randint(4, (1, ), generator=generator)), dims=(2, 3))
    gain = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator)
    contrast = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean * gain).clamp(0, 255)


def _contrastive_loss(logits, target):
    """CLIP's symmetric cross-entropy with several images per caption.

    Args:
        logits (torch.Tensor): ``(B, C)`` image-caption logits; the first captions are those
            of the batch's classes, the rest only negatives.
        target (torch.Tensor): int64 ``(B,)``: the caption of each image.
    """
    import torch.nn.functional as F
    loss_image = F.cross_entropy(logits, target)
    num_positive = int(target.max()) + 1
    positives = F.one_hot(target, logits.shape[1]).T[:num_positive].float()
    loss_text = -(positives / positives.sum(1, keepdim=True) *
                  F.log_softmax(logits.T[:num_positive], dim=1)).sum(1).mean()
    return (loss_image + loss_text) / 2


def train_toy_clip(inputs: np.ndarray,
                   labels: np.ndarray,
                   class_texts: Sequence[str],
                   settings: ToyClipSettings = ToyClipSettings(),
                   model_name: str = TOY_CLIP_NAME,
                   log_every: int = 20):
    """Train an open_clip model contrastively on images and class captions.

    Each step draws ``batch_size`` images (a seeded permutation, epoch after epoch), augments
    them, and contrasts them with one caption per class in the batch (a random template of
    :data:`TRAIN_TEMPLATES` over the class text), topped up with captions of other classes to
    ``min_classes``. The loss is CLIP's symmetric cross-entropy where every image of a class is
    a positive of its caption.

    Args:
        inputs (np.ndarray): RGB uint8 ``(N, S, S, 3)`` at the model's input size, prepared as
            the scorer prepares its inputs.
        labels (np.ndarray): int ``(N,)`` indices into ``class_texts``.
        class_texts (Sequence[str]): Text of each class (what ``{name}`` becomes).
        settings (ToyClipSettings): Defaults to ``ToyClipSettings()``.
        model_name (str): A registered open_clip model config. Defaults to
            :data:`TOY_CLIP_NAME` (call :func:`register_model_config` first).
        log_every (int): Log the loss every this many steps. Defaults to 20.

    Returns:
        tuple: ``(model, stats)``: the trained model in eval mode and a dict with
        ``final_loss``, ``train_top1`` (over the last 20 steps' batches), ``seconds``.
    """
    import open_clip
    import torch
    inputs = np.asarray(inputs)
    labels = np.asarray(labels, dtype=np.int64)
    if inputs.ndim != 4 or inputs.shape[-1] != 3 or inputs.dtype != np.uint8:
        raise ValueError(f'inputs must be uint8 (N, S, S, 3), got {inputs.dtype} {inputs.shape}')
    if len(labels) != len(inputs) or len(inputs) == 0:
        raise ValueError(f'need as many labels as inputs (> 0), got {len(labels)} labels for '
                         f'{len(inputs)} inputs')
    if labels.min() < 0 or labels.max() >= len(class_texts):
        raise ValueError(f'labels must index class_texts (0..{len(class_texts) - 1}), got '
                         f'{labels.min()}..{labels.max()}')
    s = settings
    threads = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    try:
        torch.manual_seed(s.seed)
        model = open_clip.create_model(model_name)
        tokenizer = open_clip.get_tokenizer(model_name)
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg['size'] if isinstance(cfg['size'], int) else cfg['size'][0]
        if inputs.shape[1:3] != (size, size):
            raise ValueError(f'inputs are {inputs.shape[1:3]}, the model {model_name!r} takes '
                             f'{size}x{size}')
        mean = torch.tensor(cfg['mean']).view(1, 3, 1, 1) * 255
        std = torch.tensor(cfg['std']).view(1, 3, 1, 1) * 255
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and 'embedding' not in n]
        rest = [
            p for n, p in model.named_parameters() if not (p.ndim >= 2 and 'embedding' not in n)
        ]
        optimizer = torch.optim.AdamW(
            [dict(params=decay, weight_decay=s.weight_decay),
             dict(params=rest, weight_decay=0.0)],
            lr=s.lr)

        def lr_at(step):
            if step < s.warmup:
                return s.lr * (step + 1) / s.warmup
            progress = (step - s.warmup) / max(1, s.steps - s.warmup)
            return s.lr * 0.5 * (1 + np.cos(np.pi * progress))

        rng = np.random.default_rng([s.seed, 0xC1])
        generator = torch.Generator().manual_seed(s.seed)
        order, cursor = rng.permutation(len(inputs)), 0
        data = torch.from_numpy(inputs).permute(0, 3, 1, 2)
        start, hits, seen, loss = time.time(), 0, 0, torch.zeros(())
        model.train()
        for step in range(s.steps):
            if cursor + s.batch_size > len(order):
                order, cursor = rng.permutation(len(inputs)), 0
            idx = order[cursor:cursor + s.batch_size]
            cursor += s.batch_size
            classes, target = np.unique(labels[idx], return_inverse=True)
            extra = min(s.min_classes, len(class_texts)) - len(classes)
            if extra > 0:
                others = np.setdiff1d(np.arange(len(class_texts)), classes)
                classes = np.concatenate([classes, rng.choice(others, extra, replace=False)])
            captions = [
                TRAIN_TEMPLATES[int(rng.integers(len(TRAIN_TEMPLATES)))].format(name=class_texts[c])
                for c in classes
            ]
            x = _augment(data[idx].float(), generator)
            image = model.encode_image((x - mean) / std, normalize=True)
            text = model.encode_text(tokenizer(captions), normalize=True)
            logits = model.logit_scale.exp() * image @ text.T
            target_t = torch.from_numpy(target)
            loss = _contrastive_loss(logits, target_t)
            for group in optimizer.param_groups:
                group['lr'] = lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            if step >= s.steps - 20:
                hits += int((logits.argmax(1) == target_t).sum())
                seen += len(idx)
            if log_every and ((step + 1) % log_every == 0 or step + 1 == s.steps):
                print_log(
                    f'toy CLIP step {step + 1}/{s.steps}: loss {loss.item():.3f}, '
                    f'lr {lr_at(step):.2e}, {time.time() - start:.0f} s',
                    logger='current',
                    level=logging.INFO)
        model.eval()
    finally:
        torch.set_num_threads(threads)
    return model, dict(
        final_loss=loss.item(), train_top1=hits / max(seen, 1), seconds=time.time() - start)


def save_toy_clip(model, path: str) -> None:
    """Save a model's state dict as safetensors (atomically), the format open_clip loads
    as ``pretrained=<path>``."""
    from safetensors.torch import save
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state))

"""The bank builder: stages, work split over ranks, resume, GPU/CPU overlap.

Stages (:data:`STAGES`), each runnable alone or all in order::

    generate  images of every class from the source           work_dir/gen/, work_dir/images/
    segment   one mask per image and segmenter                 work_dir/seg/<segmenter>/
    score     CLIP scores of images and cut-outs, best cut-out work_dir/score/
    filter    keep/drop decision per cut-out, with the reason  work_dir/filter/
    write     RGBA crops into the bank (one part per class)    bank_dir/ (+ work_dir/write/)
    report    counts, score histograms, contact sheets         work_dir/report/index.html

Work units: ``generate``/``segment``/``score`` work on *chunks* (``chunk_size`` consecutive
images of one class), ``filter``/``write``/``report`` on whole classes. Each rank takes a
contiguous block of the chunk list (:func:`xpaste.builder.dist.block_bounds`), so most classes
have all their chunks on one rank, and runs the per-class stages of the classes whose last
chunk it holds. Every unit's output is one file, written atomically, holding the fingerprint of
the settings that made it (per class: a changed prompt file regenerates only the classes it
changes). A rerun skips units whose file has the current fingerprint, so a killed run loses at
most the chunks in flight, and
``--stage filter --cfg-options filter.min_clip=20`` recomputes the filter from the saved
scores while ``generate``, ``segment`` and ``score`` stay as they are.

Overlap: ``generate``, ``segment`` and ``score`` run as one stream. The main process generates
(GPU; a batched generator fills its batches across chunks) and hands each chunk to a pool of CPU
workers (``workers``) that save the images, run the CPU segmenters and prepare CLIP inputs; at
most ``workers.max_pending`` chunks are in flight (a bounded queue), and finished chunks come
back to the main process for the GPU segmenters and CLIP. When the last chunk of a class whose
chunks are all on this rank is done, the class is filtered and its bank part written by the
workers while generation goes on. The log reports how long the main process waited for the
workers.

Ranks without a process group synchronise through files: a stage that needs other ranks'
outputs (``filter`` needs every chunk of a class, the bank merge needs every class) waits for
them up to ``dist.wait_timeout`` seconds.
"""
import json
import logging
import os
import os.path as osp
import re
import time
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log

from .clip_scoring import build_scorer, prepare_cutout, prepare_whole
from xpaste.utils.fileio import (atomic_write_bytes, atomic_write_json, atomic_write_npz,
                                 read_json, read_npz)
from .dist import (barrier, block_bounds, block_owner, fingerprint, get_dist_info, json_from_npz,
                   json_in_npz, wait_for)
from .filters import DROP_REASONS, InstanceFilter, perceptual_hash
from .hub import local_rank_from_env
from .prompts import PromptBank, load_categories
from .segmenters import (build_segmenters, cutout_on_white, largest_component, pack_mask,
                         unpack_mask)
from .sources import SourceItem, build_source, check_image, derive_seed, read_image

STAGES = ('generate', 'segment', 'score', 'filter', 'write', 'report')
STREAM_STAGES = ('generate', 'segment', 'score')

#: Every option of a bank build with its default; a config overrides what it sets.
BUILD_DEFAULTS = dict(
    work_dir=None,  # outputs of every stage; the tool sets ./work_dirs/<config name>
    bank_dir=None,  # the bank; None -> <work_dir>/bank
    # LVIS/COCO json with "categories" (or names=[...]); include/exclude/max_classes select
    categories=dict(ann_file=None, names=None, include=None, exclude=None, max_classes=None),
    images_per_class=100,  # generators: images per class; folders: at most this many (None: all)
    chunk_size=16,  # images per work unit (one file per stage); a killed run loses <= 1 chunk
    seed=0,  # base seed; image i of class c gets derive_seed(seed, c, i)
    prompts=dict(templates=['a photo of a single {name}'], prompt_file=None),
    source=dict(type='ToySource'),
    generate=dict(image_format='png', quality=95),  # how generated images are kept on disk
    # segmenters run on every image; with several, the best CLIP cut-out wins per image
    segment=dict(segmenters=[dict(type='ClassicalSegmenter')], largest_component=True),
    score=dict(model='ViT-L-14', pretrained=None),  # pretrained None: CLIP scoring skipped
    filter=dict(
        min_clip=21.0,
        tolerance=1.0,
        min_area=0.05,
        max_area=0.95,
        min_component=0.0,
        dedup='auto',
        dedup_cosine=0.95,
        dedup_hamming=4),
    # crops in the bank; size_stats: True = per-class size statistics from categories.ann_file
    write=dict(
        image_format='webp', quality=95, max_side=512, shard_bytes=256 << 20, size_stats=True),
    report=dict(thumb_side=128, max_kept=48, max_dropped=24, bins=30),
    # CPU worker pool of the streamed stages and of write: 'process', 'thread' or None (inline)
    # max_pending: chunks in flight (a bounded queue); None -> 2 * num_workers
    workers=dict(type='process', num_workers=2, max_pending=None, start_method='spawn'),
    # seconds a rank waits for other ranks' outputs (None: 0 for one rank, 24 h for several)
    dist=dict(wait_timeout=None, poll_interval=10.0),
    progress=True,  # progress bars (tqdm) per stage
)


def _copy_cfg(obj):
    """Copy the containers of a config; other objects (e.g. a prebuilt model) are shared."""
    if isinstance(obj, dict):
        return {k: _copy_cfg(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_cfg(v) for v in obj)
    return obj


def merge_defaults(cfg: dict) -> dict:
    """``BUILD_DEFAULTS`` updated with ``cfg`` (one level deep for dict options).

    Raises:
        ValueError: an unknown top-level option (the message lists the known ones).
    """
    out = _copy_cfg(BUILD_DEFAULTS)
    skip = {'filename', 'text', 'pretty_text', '_base_', 'custom_imports'}
    for key, value in cfg.items():
        if key in skip or key.startswith('_'):
            continue
        if key not in out:
            raise ValueError(f'unknown bank build option {key!r}; known: {sorted(out)}')
        if key in ('source', 'score') or not isinstance(out[key], dict) or value is None:
            out[key] = _copy_cfg(value)
        else:
            out[key].update(_copy_cfg(dict(value)))
    return out


def category_key(category: dict) -> str:
    """File-system name of a class: ``'<id:05d>-<name>'`` with unsafe characters replaced."""
    return f'{category["id"]:05d}-' + re.sub(r'[^A-Za-z0-9._-]+', '_', category['name'])


@dataclass(frozen=True)
class Chunk:
    """``stop - start`` consecutive images of the class at position ``cat`` of the build."""

    cat: int
    number: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f'c{self.number:05d}'

    def __len__(self) -> int:
        return self.stop - self.start


def _to_builtin(obj):
    """Config values (ConfigDict, tuples, numpy scalars) as plain json types; NaN -> None;
    other objects (e.g. a prebuilt model) by their type name."""
    if isinstance(obj, dict):
        return {str(k): _to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_builtin(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return f'<{type(obj).__name__}>'


def _nan(value) -> Optional[float]:
    return None if value is None or not np.isfinite(value) else float(value)


# --------------------------------------------------------------------------------------------
# CPU work: runs in the worker pool (module-level functions, picklable arguments)
# --------------------------------------------------------------------------------------------
def load_item_image(work_dir: str, item: dict) -> Optional[np.ndarray]:
    """The image of a ``gen`` record at its recorded size; None when unreadable."""
    path = item['file'] if osp.isabs(item['file']) else osp.join(work_dir, item['file'])
    image = read_image(path)
    if image is None:
        return None
    if image.shape[:2] != (item['height'], item['width']):
        image = cv2.resize(image, (item['width'], item['height']), interpolation=cv2.INTER_AREA)
    return image


def encode_image(image: np.ndarray, image_format: str, quality: int) -> bytes:
    """Encode a BGR image as ``'png'``, ``'jpg'`` or ``'webp'``."""
    params = {
        'jpg': [cv2.IMWRITE_JPEG_QUALITY, quality],
        'webp': [cv2.IMWRITE_WEBP_QUALITY, quality],
        'png': [cv2.IMWRITE_PNG_COMPRESSION, 1]
    }
    if image_format not in params:
        raise ValueError(f"generate.image_format must be 'png', 'jpg' or 'webp', got "
                         f'{image_format!r}')
    ok, buf = cv2.imencode(f'.{image_format}', image, params[image_format])
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {image.shape} image as {image_format}')
    return buf.tobytes()


def postprocess_mask(mask: np.ndarray, largest: bool) -> tuple[np.ndarray, dict]:
    """Clean a raw mask (keep its largest component if ``largest``) and measure it: area ratio
    and the share of the raw mask in its largest component."""
    mask = np.asarray(mask, dtype=bool)
    cleaned, share = largest_component(mask)
    if largest:
        mask = cleaned
    return mask, dict(area=float(mask.mean()) if mask.size else 0.0, component=share)


def segment_and_save(path: str, meta: dict, segmenter, images: list, category: dict,
                     largest: bool) -> list:
    """Run ``segmenter`` on the ``'ok'`` images, save masks and measurements to ``path``.

    ``images[i]`` is None for unusable images. Returns the (cleaned) masks, None for those.
    """
    ok = [i for i, im in enumerate(images) if im is not None]
    raw = segmenter.segment([images[i] for i in ok], category) if ok else []
    if len(raw) != len(ok):
        raise RuntimeError(f'segmenter {segmenter.name!r} returned {len(raw)} masks for '
                           f'{len(ok)} images')
    n = len(images)
    masks = [None] * n
    area = np.zeros(n, np.float32)
    component = np.zeros(n, np.float32)
    phash = np.zeros(n, np.uint64)
    shape = np.zeros((n, 2), np.int32)
    arrays = {}
    for i, mask in zip(ok, raw):
        if mask.shape != images[i].shape[:2]:
            raise RuntimeError(f'segmenter {segmenter.name!r} returned a mask of shape '
                               f'{mask.shape} for an image of shape {images[i].shape[:2]}')
        mask, stats = postprocess_mask(mask, largest)
        masks[i] = mask
        area[i], component[i] = stats['area'], stats['component']
        shape[i] = mask.shape
        if stats['area'] > 0:
            phash[i] = perceptual_hash(cutout_on_white(images[i], mask))
        arrays[f'mask_{i:05d}'] = pack_mask(mask)
    atomic_write_npz(
        path,
        meta=json_in_npz(meta),
        area=area,
        component=component,
        phash=phash,
        shape=shape,
        **arrays)
    return masks


def load_masks(path: str) -> tuple[dict, list]:
    """Masks of a ``seg`` chunk file: ``(arrays, masks)`` with None for images without one."""
    data = read_npz(path)
    if data is None:
        raise FileNotFoundError(f'segment output missing or unreadable: {path!r}')
    n = len(data['area'])
    masks = [None] * n
    for i in range(n):
        key = f'mask_{i:05d}'
        if key in data:
            masks[i] = unpack_mask(data[key], tuple(data['shape'][i]))
    return data, masks


def clip_inputs(images: list, masks: dict, size: int, margin: float) -> tuple:
    """CLIP inputs of a chunk: whole images ``(N, S, S, 3)`` and cut-outs per segmenter.

    Unusable images and empty masks get a white input (their scores are set to NaN later).
    """
    blank = np.full((size, size, 3), 255, np.uint8)
    whole = np.stack([prepare_whole(im, size) if im is not None else blank for im in images])
    cuts = {}
    for name, seg_masks in masks.items():
        cuts[name] = np.stack([
            prepare_cutout(im, m, size, margin)
            if im is not None and m is not None and m.any() else blank
            for im, m in zip(images, seg_masks)
        ])
    return whole, cuts


def generate_chunk(source, category: dict, indices: list, prompts: list,
                   seeds: list) -> tuple[list[SourceItem], list[str]]:
    """Make the images of a chunk with ``source`` and check them.

    Returns:
        tuple: the items (unusable ones with their status) and one message per unusable image.
    """
    return generate_chunks(source, [(category, indices, prompts, seeds)])[0]


def generate_chunks(source, requests: list) -> list[tuple[list[SourceItem], list[str]]]:
    """:func:`generate_chunk` for several chunks at once (``source.generate_many``, which fills
    a batched generator's batches across them)."""
    out = []
    for (category, indices, _, _), items in zip(requests, source.generate_many(requests)):
        if len(items) != len(indices):
            raise RuntimeError(f'source {type(source).__name__} returned {len(items)} images '
                               f'for {len(indices)} requests (class {category["name"]!r})')
        items = [check_image(item) for item in items]
        out.append((items, [
            f'class {category["name"]!r} image {item.index}: {item.status}: '
            f'{item.message}; dropped, the run goes on' for item in items if item.status != 'ok'
        ]))
    return out


def cpu_chunk_job(task: dict) -> dict:
    """The CPU part of a chunk (runs in a worker).

    1. Fresh generation (images made by the main process, or here for a CPU source such as
       the toy renderer): save the ``'ok'`` images and the chunk's ``gen`` record. Else: load
       the images from disk.
    2. Run the CPU segmenters still to do; save their masks.
    3. Load the masks of the segmenters already done and prepare CLIP inputs if asked.

    Returns a dict with what the main process needs: ``images`` (when GPU segmenters still
    run), ``whole``/``cuts`` (CLIP inputs), ``empty`` (per segmenter, bool per image) and
    ``status``.
    """
    if task.get('single_thread'):
        cv2.setNumThreads(1)
    work_dir = task['work_dir']
    category = task['category']
    items, messages = task['items'], []
    if task['generate'] is not None:
        items, messages = generate_chunk(*task['generate'])
    if items is not None:  # fresh generation
        images, records = [], []
        for item in items:
            rec = dict(
                index=item.index,
                status=item.status,
                message=item.message,
                prompt=item.prompt,
                seed=item.seed,
                file=None,
                height=0,
                width=0)
            image = item.image
            if item.status == 'ok':
                rec['height'], rec['width'] = image.shape[:2]
                if item.file is not None:
                    rec['file'] = osp.abspath(item.file)
                else:
                    rel = osp.join('images', task['cat_key'],
                                   f'{item.index:06d}.{task["image_format"]}')
                    atomic_write_bytes(
                        osp.join(work_dir, rel),
                        encode_image(image, task['image_format'], task['quality']))
                    rec['file'] = rel
            elif item.file is not None:
                rec['file'] = osp.abspath(item.file)
            records.append(rec)
            images.append(image if item.status == 'ok' else None)
        atomic_write_json(task['gen_path'], _to_builtin(dict(task['gen_meta'], items=records)))
    else:
        records = read_json(task['gen_path'])['items']
        images = []
        for rec in records:
            image = load_item_image(work_dir, rec) if rec['status'] == 'ok' else None
            if rec['status'] == 'ok' and image is None:
                raise FileNotFoundError(f'image of a finished chunk is missing or unreadable: '
                                        f'{rec["file"]!r} (class {category["name"]!r}); delete '
                                        f'{task["gen_path"]!r} to regenerate the chunk')
            images.append(image)
    masks = {}
    for seg, path, meta in task['segment']:
        masks[seg.name] = segment_and_save(path, meta, seg, images, category, task['largest'])
    for name, path in task['load_masks']:
        masks[name] = load_masks(path)[1]
    out = dict(status=[r['status'] for r in records], n=len(records), messages=messages)
    out['empty'] = {
        name: np.array([m is None or not m.any() for m in ms])
        for name, ms in masks.items()
    }
    if task['clip_size']:
        out['whole'], out['cuts'] = clip_inputs(images, masks, task['clip_size'],
                                                task['clip_margin'])
    if task['need_images']:
        out['images'] = images
    return out


def write_class_job(task: dict) -> int:
    """Write the kept cut-outs of one class as one bank part (runs in a worker).

    Returns the number of instances written.
    """
    from xpaste.bank import BankWriter
    if task.get('single_thread'):
        cv2.setNumThreads(1)
    work_dir = task['work_dir']
    mask_cache: dict[str, list] = {}
    writer = BankWriter(
        task['bank_dir'],
        task['categories'],
        part=task['part'],
        image_format=task['image_format'],
        quality=task['quality'],
        max_side=task['max_side'],
        shard_bytes=task['shard_bytes'],
        mode='w',
        info=dict(category=task['category']))
    with writer:
        for row in task['rows']:
            seg_path = row['seg_path']
            if seg_path not in mask_cache:
                mask_cache = {seg_path: load_masks(seg_path)[1]}  # chunks come in order
            mask = mask_cache[seg_path][row['pos']]
            image = load_item_image(work_dir, row)
            if image is None or mask is None:
                raise FileNotFoundError(f'class {task["category"]!r}: image {row["file"]!r} or '
                                        f'its mask in {seg_path!r} is missing; rerun the '
                                        'generate/segment stages')
            writer.add(
                image,
                task['category'],
                mask=mask,
                crop=True,
                clip_score=np.nan if row['clip_score'] is None else row['clip_score'],
                image_score=np.nan if row['image_score'] is None else row['image_score'],
                segmenter=row['segmenter'],
                source=row['source'],
                prompt=row['prompt'],
                seed=int(row['seed']))
        count = writer.num_instances
    return count


class _InlineExecutor(Executor):
    """Runs jobs in the calling thread (``workers.type=None`` or ``num_workers=0``)."""

    def submit(self, fn, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: B902  (delivered to .result())
            future.set_exception(e)
        return future


def make_executor(cfg: dict) -> Executor:
    """The CPU worker pool of ``workers`` settings (``type``: 'process', 'thread' or None)."""
    kind, num = cfg.get('type'), int(cfg.get('num_workers', 0))
    if kind is None or num <= 0:
        return _InlineExecutor()
    if kind == 'thread':
        return ThreadPoolExecutor(num)
    if kind == 'process':
        import multiprocessing as mp
        return ProcessPoolExecutor(num, mp_context=mp.get_context(cfg.get('start_method', 'spawn')))
    raise ValueError(f"workers.type must be 'process', 'thread' or None, got {kind!r}")


# --------------------------------------------------------------------------------------------
# the builder
# --------------------------------------------------------------------------------------------
class BankBuilder:
    """Builds an instance bank from a config (see :data:`BUILD_DEFAULTS` for every option).

    All settings are checked and every model path is resolved at construction, before any
    work; models are loaded by the first stage that needs them.

    Args:
        cfg (dict | mmengine.Config): The build settings; ``work_dir`` is required.
        rank (int, optional): This rank. Defaults to the launcher's environment.
        world_size (int, optional): Number of ranks. Defaults to the launcher's environment.
    """

    def __init__(self, cfg: dict, rank: Optional[int] = None, world_size: Optional[int] = None):
        self.cfg = cfg = merge_defaults(cfg)
        if not cfg['work_dir']:
            raise ValueError('work_dir must be set (the tool sets ./work_dirs/<config name>)')
        env_rank, env_world, _ = get_dist_info()
        self.rank = env_rank if rank is None else rank
        self.world_size = env_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f'rank must be in [0, {self.world_size}), got {self.rank!r}')
        self.local_rank = local_rank_from_env()
        self.work_dir = osp.abspath(cfg['work_dir'])
        self.bank_dir = osp.abspath(cfg['bank_dir'] or osp.join(self.work_dir, 'bank'))
        for key in ('chunk_size', ):
            if not isinstance(cfg[key], int) or cfg[key] < 1:
                raise ValueError(f'{key} must be an int >= 1, got {cfg[key]!r}')
        self.chunk_size = cfg['chunk_size']
        self.images_per_class = cfg['images_per_class']
        self.seed = int(cfg['seed'])
        self.categories = load_categories(**cfg['categories'])
        if not self.categories:
            raise ValueError('the build selects no categories (check categories.include/'
                             'exclude/max_classes)')
        self.keys = [category_key(c) for c in self.categories]
        self.prompts = PromptBank(self.categories, **cfg['prompts'])
        self.source = build_source(cfg['source'])
        self.segmenters = build_segmenters(cfg['segment']['segmenters'])
        self.largest = bool(cfg['segment'].get('largest_component', True))
        self.scorer = build_scorer(cfg['score'])
        self.filter = InstanceFilter(**cfg['filter'])
        gen = cfg['generate']
        self.image_format, self.quality = gen.get('image_format', 'png'), gen.get('quality', 95)
        encode_image(np.zeros((8, 8, 3), np.uint8), self.image_format, self.quality)
        for model in [self.source, *self.segmenters, self.scorer]:
            if model is not None:
                model.local_rank = self.local_rank
                model.check()
        self.source.check_categories(self.categories)
        wait = cfg['dist'].get('wait_timeout')
        self.wait_timeout = (0 if self.world_size == 1 else 24 * 3600) if wait is None else wait
        self.poll_interval = cfg['dist'].get('poll_interval', 10.0)
        self.progress = bool(cfg['progress'])
        self._fingerprints()
        self._chunks = None
        self._owners = None

    # ---------------------------------------------------------------- layout and fingerprints
    def _fingerprints(self) -> None:
        cfg = self.cfg
        src = self.source.describe()
        gen_common = dict(
            source=src, seed=self.seed, image_format=self.image_format, quality=self.quality)
        self.fp_gen = [
            fingerprint(gen_common,
                        self.prompts.prompts(c['name']) if self.source.generative else None,
                        c['id'], c['name']) for c in self.categories
        ]
        self.fp_seg = {
            s.name: [fingerprint(s.describe(), self.largest, fp) for fp in self.fp_gen]
            for s in self.segmenters
        }
        scorer = self.scorer.describe() if self.scorer else None
        self.fp_score = [
            fingerprint(scorer, [self.fp_seg[s.name][i] for s in self.segmenters])
            for i in range(len(self.categories))
        ]
        self.fp_filter = [fingerprint(self.filter.describe(), fp) for fp in self.fp_score]
        write = {k: v for k, v in cfg['write'].items() if k != 'size_stats'}
        self.fp_write = [fingerprint(write, fp, self.bank_dir) for fp in self.fp_filter]
        self.fp_report = [fingerprint(cfg['report'], fp) for fp in self.fp_filter]

    def gen_path(self, chunk: Chunk) -> str:
        return osp.join(self.work_dir, 'gen', self.keys[chunk.cat], f'{chunk.name}.json')

    def seg_path(self, seg_name: str, chunk: Chunk) -> str:
        return osp.join(self.work_dir, 'seg', seg_name, self.keys[chunk.cat], f'{chunk.name}.npz')

    def score_path(self, chunk: Chunk) -> str:
        return osp.join(self.work_dir, 'score', self.keys[chunk.cat], f'{chunk.name}.npz')

    def filter_path(self, cat: int) -> str:
        return osp.join(self.work_dir, 'filter', f'{self.keys[cat]}.json')

    def write_path(self, cat: int) -> str:
        return osp.join(self.work_dir, 'write', f'{self.keys[cat]}.json')

    def part_name(self, cat: int) -> str:
        return f'cls-{self.categories[cat]["id"]:05d}'

    @property
    def report_dir(self) -> str:
        return osp.join(self.work_dir, 'report')

    def chunks(self) -> list[Chunk]:
        """Every chunk of the build, in a fixed order (class by class)."""
        if self._chunks is None:
            chunks = []
            for pos, cat in enumerate(self.categories):
                n = self.source.num_images(cat, self.images_per_class)
                if n == 0:
                    print_log(
                        f'class {cat["name"]!r} has no images',
                        logger='current',
                        level=logging.WARNING)
                for k, start in enumerate(range(0, n, self.chunk_size)):
                    chunks.append(Chunk(pos, k, start, min(n, start + self.chunk_size)))
            self._chunks = chunks
        return self._chunks

    def class_chunks(self, cat: int) -> list[Chunk]:
        return [c for c in self.chunks() if c.cat == cat]

    def my_chunks(self) -> list[Chunk]:
        """This rank's chunks: a contiguous block of :meth:`chunks`, so that most classes
        have all their chunks on one rank."""
        start, stop = block_bounds(len(self.chunks()), self.rank, self.world_size)
        return self.chunks()[start:stop]

    def class_owner(self, cat: int) -> int:
        """The rank running the per-class stages of class ``cat``: the owner of its last chunk
        (round robin for a class without images)."""
        chunks = self.chunks()
        last = [i for i, c in enumerate(chunks) if c.cat == cat]
        if not last:
            return cat % self.world_size
        return block_owner(last[-1], len(chunks), self.world_size)

    def my_classes(self) -> list[int]:
        """The classes whose per-class stages (filter, write, report) run on this rank."""
        if self._owners is None:
            self._owners = [self.class_owner(c) for c in range(len(self.categories))]
        return [c for c, r in enumerate(self._owners) if r == self.rank]

    # ---------------------------------------------------------------- done checks
    def _chunk_meta(self, chunk: Chunk, fp: str) -> dict:
        return dict(
            fingerprint=fp,
            category=self.categories[chunk.cat]['name'],
            start=chunk.start,
            stop=chunk.stop)

    def gen_done(self, chunk: Chunk) -> bool:
        rec = read_json(self.gen_path(chunk))
        if not rec or rec.get('fingerprint') != self.fp_gen[chunk.cat] or (
                rec.get('start'), rec.get('stop')) != (chunk.start, chunk.stop):
            return False
        return all(item['status'] != 'ok' or osp.isfile(
            item['file'] if osp.isabs(item['file']) else osp.join(self.work_dir, item['file']))
                   for item in rec['items'])

    def _npz_done(self, path: str, fp: str, chunk: Chunk) -> bool:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json_from_npz(data['meta'])
        except (FileNotFoundError, OSError, ValueError, KeyError, EOFError):
            return False
        return meta.get('fingerprint') == fp and (meta.get('start'),
                                                  meta.get('stop')) == (chunk.start, chunk.stop)

    def seg_done(self, seg_name: str, chunk: Chunk) -> bool:
        return self._npz_done(
            self.seg_path(seg_name, chunk), self.fp_seg[seg_name][chunk.cat], chunk)

    def score_done(self, chunk: Chunk) -> bool:
        return self.scorer is None or self._npz_done(
            self.score_path(chunk), self.fp_score[chunk.cat], chunk)

    def _class_done(self, path: str, fp: str) -> bool:
        rec = read_json(path)
        return bool(rec) and rec.get('fingerprint') == fp

    def filter_done(self, cat: int) -> bool:
        return self._class_done(self.filter_path(cat), self.fp_filter[cat])

    def write_done(self, cat: int) -> bool:
        return self._class_done(self.write_path(cat), self.fp_write[cat]) and osp.isfile(
            osp.join(self.bank_dir, 'parts', self.part_name(cat), 'part.json'))

    def report_done(self, cat: int) -> bool:
        return self._class_done(
            osp.join(self.report_dir, 'classes', f'{self.keys[cat]}.json'), self.fp_report[cat])

    # ---------------------------------------------------------------- running
    def run(self, stages: Sequence[str] = STAGES) -> dict:
        """Run ``stages`` (in pipeline order) on this rank; returns per-stage summaries."""
        stages = list(STAGES) if stages in ('all', ['all'], ('all', )) else list(stages)
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f'unknown stages {unknown!r}; choose from {list(STAGES)} or "all"')
        stages = [s for s in STAGES if s in stages]
        os.makedirs(self.work_dir, exist_ok=True)
        summary = {}
        stream = [s for s in stages if s in STREAM_STAGES]
        if stream:
            # classes whose chunks all finish on this rank are filtered and written at once
            then = []
            if len(stream) == len(STREAM_STAGES) and 'filter' in stages:
                then = ['filter'] + (['write'] if 'write' in stages else [])
            summary['stream'] = self.run_stream(stream, then=then)
            barrier()
        for stage in stages:
            if stage in STREAM_STAGES:
                continue
            summary[stage] = getattr(self, f'run_{stage}')()
            barrier()
        return summary

    def _bar(self, total: int, desc: str):
        from tqdm import tqdm
        return tqdm(
            total=total,
            desc=f'{desc} [rank {self.rank}/{self.world_size}]',
            unit='img',
            dynamic_ncols=True,
            disable=not self.progress or None,
            mininterval=1.0)

    def run_stream(self, stages: Sequence[str], then: Sequence[str] = ()) -> dict:
        """Run ``generate``/``segment``/``score`` (those in ``stages``) on this rank's chunks.

        Args:
            stages (Sequence[str]): Stages among :data:`STREAM_STAGES`.
            then (Sequence[str]): ``'filter'`` and optionally ``'write'``: run them for each
                class as soon as its last chunk is done, if all its chunks are on this rank
                (writing then overlaps generation). Defaults to none.

        Returns:
            dict: ``images`` (in the chunks handled), ``chunks`` (done now), ``skipped``
            (already done), ``seconds``, ``wait_s`` (main process waiting for the CPU
            workers), ``generate_s`` (main process generating), ``gpu_s`` (GPU segmenters
            and CLIP), ``bad`` (unusable images by status), ``classes_written``.
        """
        do_gen, do_seg, do_score = (s in stages for s in STREAM_STAGES)
        do_score = do_score and self.scorer is not None
        if 'score' in stages and self.scorer is None and stages == ['score']:
            print_log('score stage: nothing to do (CLIP scoring is skipped)', logger='current')
        chunks = self.my_chunks()
        gpu_segs = [s for s in self.segmenters if s.uses_gpu]
        workers = dict(self.cfg['workers'])
        num_workers = int(workers.get('num_workers') or 0)
        max_pending = workers.get('max_pending') or 2 * max(1, num_workers)
        stats = dict(
            images=0,
            chunks=0,
            skipped=0,
            wait_s=0.0,
            generate_s=0.0,
            gpu_s=0.0,
            bad={},
            classes_written=0)
        plan = []
        for chunk in chunks:
            gen_ok = self.gen_done(chunk)
            seg_todo = [s for s in self.segmenters if not self.seg_done(s.name, chunk)]
            score_todo = self.scorer is not None and not self.score_done(chunk)
            if (gen_ok or not do_gen) and (not seg_todo or not do_seg) and (not score_todo
                                                                            or not do_score):
                stats['skipped'] += 1
                continue
            if not gen_ok and not do_gen:
                raise FileNotFoundError(
                    f'generate output missing for class {self.keys[chunk.cat]!r} chunk '
                    f'{chunk.name} ({self.gen_path(chunk)}): run --stage generate first')
            if seg_todo and not do_seg and do_score:
                raise FileNotFoundError(
                    f'segment output of {[s.name for s in seg_todo]} missing for class '
                    f'{self.keys[chunk.cat]!r} chunk {chunk.name}: run --stage segment first')
            plan.append((chunk, not gen_ok, seg_todo if do_seg else [], score_todo and do_score))
        total = sum(len(c) for c, *_ in plan)
        if not plan:
            print_log(
                f'{"/".join(stages)}: all {len(chunks)} chunks of rank {self.rank} are '
                'done',
                logger='current')
            return stats
        # classes to filter (and write) during the stream: all chunks here, some still to do
        mine = set(self.my_classes())
        remaining: dict[int, int] = {}
        for chunk, *_ in plan:
            remaining[chunk.cat] = remaining.get(chunk.cat, 0) + 1
        local = {
            c
            for c in remaining if c in mine and all(ch in chunks for ch in self.class_chunks(c))
        } if then else set()
        if any(g for _, g, _, _ in plan):
            self.source.setup()
        for seg in gpu_segs if do_seg else []:
            seg.setup()
        if do_score:
            self.scorer.setup()
        start = time.perf_counter()
        pending: deque = deque()
        writes: list = []
        executor = make_executor(workers)
        single = workers.get('type') == 'process'
        bar = self._bar(total, '/'.join(stages))
        batch = getattr(self.source, 'batch_size', 1) if self.source.uses_gpu else 1
        try:
            i = 0
            while i < len(plan):
                # GPU sources fill their batches across consecutive chunks
                group = [plan[i]]
                while (self.source.uses_gpu and group[0][1] and i + len(group) < len(plan)
                       and plan[i + len(group)][1]
                       and sum(len(g[0]) for g in group) + len(plan[i + len(group)][0]) <= batch):
                    group.append(plan[i + len(group)])
                i += len(group)
                generated = [(None, [])] * len(group)
                if group[0][1] and self.source.uses_gpu:  # GPU generation in this process
                    t0 = time.perf_counter()
                    generated = generate_chunks(self.source, [self._requests(g[0]) for g in group])
                    stats['generate_s'] += time.perf_counter() - t0
                for (chunk, gen_todo, seg_todo, score_todo), (items,
                                                              messages) in zip(group, generated):
                    for message in messages:
                        print_log(message, logger='current', level=logging.WARNING)
                    generate = (self.source, *self._requests(chunk)) if (
                        gen_todo and not self.source.uses_gpu) else None  # in the worker
                    task = self._cpu_task(chunk, items, generate,
                                          [s for s in seg_todo if not s.uses_gpu],
                                          [s for s in seg_todo if s.uses_gpu], score_todo, single)
                    pending.append(
                        (chunk, seg_todo, score_todo, executor.submit(cpu_chunk_job, task)))
                while pending and (len(pending) >= max_pending or pending[0][3].done()):
                    self._finish_streamed(pending.popleft(), stats, bar, remaining, local, then,
                                          executor, writes)
            while pending:
                self._finish_streamed(pending.popleft(), stats, bar, remaining, local, then,
                                      executor, writes)
            t0 = time.perf_counter()
            for cat, task, future in writes:
                self._write_marker(cat, task, future.result())
            stats['wait_s'] += time.perf_counter() - t0
            stats['classes_written'] = len(writes)
        except BaseException:
            for *_, future in pending:
                future.cancel()
            raise
        finally:
            bar.close()
            executor.shutdown(wait=True, cancel_futures=True)
        stats['seconds'] = time.perf_counter() - start
        rate = stats['images'] / max(stats['seconds'], 1e-9)
        bad = ', '.join(f'{v} {k}' for k, v in sorted(stats['bad'].items())) or 'none'
        print_log(
            f'{"/".join(stages)} [rank {self.rank}]: {stats["images"]} images in '
            f'{stats["chunks"]} chunks, {stats["seconds"]:.1f} s ({rate:.2f} img/s); '
            f'{stats["skipped"]} chunks already done; unusable images: {bad}; '
            f'{len(writes)} classes written on the way; main process: generating '
            f'{stats["generate_s"]:.1f} s, GPU segment/score {stats["gpu_s"]:.1f} s, '
            f'waiting for CPU workers {stats["wait_s"]:.1f} s',
            logger='current')
        return stats

    def _finish_streamed(self, entry, stats, bar, remaining, local, then, executor, writes) -> None:
        """:meth:`_finish` a chunk, then filter (and submit the writing of) its class if that
        was the class's last chunk."""
        self._finish(entry, stats, bar)
        cat = entry[0].cat
        remaining[cat] -= 1
        if remaining[cat] == 0 and cat in local:
            t0 = time.perf_counter()
            self.filter_class(cat)
            if 'write' in then:
                task = self._write_task(cat)
                writes.append((cat, task, executor.submit(write_class_job, task)))
            stats['gpu_s'] += time.perf_counter() - t0

    def _requests(self, chunk: Chunk) -> tuple:
        """``(category, indices, prompts, seeds)`` of a chunk's images."""
        cat = self.categories[chunk.cat]
        indices = list(range(chunk.start, chunk.stop))
        if self.source.generative:
            prompts = [self.prompts.prompt(cat['name'], i) for i in indices]
            seeds = [derive_seed(self.seed, cat['id'], i) for i in indices]
        else:
            prompts, seeds = [''] * len(indices), [-1] * len(indices)
        return cat, indices, prompts, seeds

    def _cpu_task(self, chunk, items, generate, cpu_segs, gpu_segs, score_todo, single) -> dict:
        cat = chunk.cat
        fresh = {s.name for s in cpu_segs} | {s.name for s in gpu_segs}
        need_masks = score_todo
        return dict(
            work_dir=self.work_dir,
            category=self.categories[cat],
            cat_key=self.keys[cat],
            items=items,
            generate=generate,
            gen_path=self.gen_path(chunk),
            gen_meta=self._chunk_meta(chunk, self.fp_gen[cat]),
            image_format=self.image_format,
            quality=self.quality,
            largest=self.largest,
            segment=[(s, self.seg_path(s.name,
                                       chunk), self._chunk_meta(chunk, self.fp_seg[s.name][cat]))
                     for s in cpu_segs],
            load_masks=[(s.name, self.seg_path(s.name, chunk)) for s in self.segmenters
                        if need_masks and s.name not in fresh],
            clip_size=self.scorer.input_size if score_todo else 0,
            clip_margin=self.scorer.cutout_margin if score_todo else 0.0,
            need_images=bool(gpu_segs),
            single_thread=single)

    def _finish(self, entry, stats: dict, bar) -> None:
        chunk, seg_todo, score_todo, future = entry
        t0 = time.perf_counter()
        result = future.result()
        stats['wait_s'] += time.perf_counter() - t0
        for message in result['messages']:
            print_log(message, logger='current', level=logging.WARNING)
        t0 = time.perf_counter()
        cat = self.categories[chunk.cat]
        empty = dict(result['empty'])
        cuts = dict(result.get('cuts', {}))
        for seg in [s for s in seg_todo if s.uses_gpu]:
            masks = segment_and_save(
                self.seg_path(seg.name, chunk),
                self._chunk_meta(chunk, self.fp_seg[seg.name][chunk.cat]), seg, result['images'],
                cat, self.largest)
            empty[seg.name] = np.array([m is None or not m.any() for m in masks])
            if score_todo:
                _, cuts_gpu = clip_inputs(result['images'], {seg.name: masks},
                                          self.scorer.input_size, self.scorer.cutout_margin)
                cuts.update(cuts_gpu)
        if score_todo:
            self._score_chunk(chunk, result['status'], result['whole'], cuts, empty)
        stats['gpu_s'] += time.perf_counter() - t0
        stats['images'] += result['n']
        stats['chunks'] += 1
        for status in result['status']:
            if status != 'ok':
                stats['bad'][status] = stats['bad'].get(status, 0) + 1
        bar.update(result['n'])

    def _score_chunk(self, chunk: Chunk, status: list, whole: np.ndarray, cuts: dict,
                     empty: dict) -> None:
        cat = self.categories[chunk.cat]
        scorer = self.scorer
        ok = np.array([s == 'ok' for s in status])
        n, names = len(status), [s.name for s in self.segmenters]
        image_score = np.full(n, np.nan, np.float32)
        cutout = np.full((n, len(names)), np.nan, np.float32)
        if ok.any():
            image_score[ok] = scorer.scores(scorer.encode(whole[ok]), cat)
        embeddings = []
        for j, name in enumerate(names):
            valid = ok & ~empty[name]
            emb = np.zeros((n, 0), np.float32)
            if valid.any():
                enc = scorer.encode(cuts[name][valid])
                emb = np.zeros((n, enc.shape[1]), np.float32)
                emb[valid] = enc
                cutout[valid, j] = scorer.scores(enc, cat)
            embeddings.append(emb)
        has = np.isfinite(cutout).any(1)
        best = np.where(has, np.argmax(np.where(np.isfinite(cutout), cutout, -np.inf), 1), -1)
        dim = max(e.shape[1] for e in embeddings)
        embedding = np.zeros((n, dim), np.float16)
        for i in np.flatnonzero(has):
            embedding[i] = embeddings[best[i]][i]
        meta = dict(self._chunk_meta(chunk, self.fp_score[chunk.cat]), segmenters=names)
        atomic_write_npz(
            self.score_path(chunk),
            meta=json_in_npz(meta),
            image_score=image_score,
            cutout_score=cutout,
            best=best.astype(np.int16),
            embedding=embedding)

    # ---------------------------------------------------------------- filter
    def _wait_chunks(self, cats: Sequence[int], what: str) -> None:
        """Wait until every chunk of ``cats`` has its segment (and score) outputs."""
        needed = []
        for cat in cats:
            for chunk in self.class_chunks(cat):
                needed.append(('gen', chunk))
                needed += [(s.name, chunk) for s in self.segmenters]
                if self.scorer is not None:
                    needed.append(('score', chunk))

        def check(item):
            kind, chunk = item
            if kind == 'gen':
                return self.gen_done(chunk)
            if kind == 'score':
                return self.score_done(chunk)
            return self.seg_done(kind, chunk)

        wait_for(
            needed,
            check,
            self.wait_timeout,
            self.poll_interval,
            what=f'chunk outputs needed by {what}',
            name=lambda x: f'{x[0]} output of {self.keys[x[1].cat]}/{x[1].name}')

    def class_table(self, cat: int) -> dict:
        """Everything the filter needs about the images of class ``cat`` (all chunks)."""
        names = [s.name for s in self.segmenters]
        rows, area, comp, phash, score, image_score, emb = [], [], [], [], [], [], []
        for chunk in self.class_chunks(cat):
            items = read_json(self.gen_path(chunk))['items']
            segs = [read_npz(self.seg_path(n, chunk)) for n in names]
            sc = read_npz(self.score_path(chunk)) if self.scorer is not None else None
            for pos, item in enumerate(items):
                if sc is not None:
                    best = int(sc['best'][pos])
                else:  # no CLIP: the first segmenter with a non-empty mask
                    best = next((j for j, s in enumerate(segs) if s['area'][pos] > 0), -1)
                j = max(best, 0)
                rows.append(
                    dict(
                        index=item['index'],
                        chunk=chunk.name,
                        pos=pos,
                        status=item['status'],
                        message=item['message'],
                        file=item['file'],
                        height=item['height'],
                        width=item['width'],
                        prompt=item['prompt'],
                        seed=item['seed'],
                        segmenter=names[best] if best >= 0 else ''))
                area.append(float(segs[j]['area'][pos]) if best >= 0 else 0.0)
                comp.append(float(segs[j]['component'][pos]) if best >= 0 else 0.0)
                phash.append(int(segs[j]['phash'][pos]) if best >= 0 else 0)
                if sc is not None:
                    score.append(float(sc['cutout_score'][pos, best]) if best >= 0 else np.nan)
                    image_score.append(float(sc['image_score'][pos]))
                    emb.append(sc['embedding'][pos].astype(np.float32))
                else:
                    score.append(np.nan)
                    image_score.append(np.nan)
        return dict(
            rows=rows,
            area=np.array(area, np.float64),
            component=np.array(comp),
            phash=np.array(phash, np.uint64),
            clip_score=np.array(score, np.float64),
            image_score=np.array(image_score, np.float64),
            embedding=np.stack(emb) if emb else None)

    def filter_class(self, cat: int) -> dict:
        """Filter the cut-outs of class ``cat`` and save the decisions; returns the counts."""
        table = self.class_table(cat)
        result = self.filter([r['status'] for r in table['rows']], table['area'],
                             table['component'], table['clip_score'], table['phash'],
                             table['embedding'])
        rows = []
        for i, row in enumerate(table['rows']):
            rows.append(
                dict(
                    row,
                    area=float(table['area'][i]),
                    component=float(table['component'][i]),
                    clip_score=_nan(table['clip_score'][i]),
                    image_score=_nan(table['image_score'][i]),
                    reason=result['reason'][i]))
        atomic_write_json(
            self.filter_path(cat),
            _to_builtin(
                dict(
                    fingerprint=self.fp_filter[cat],
                    category=self.categories[cat]['name'],
                    threshold=result['threshold'],
                    class_max=result['class_max'],
                    dedup=result['dedup'],
                    counts=result['counts'],
                    items=rows)))
        return result['counts']

    def run_filter(self) -> dict:
        """Decide keep/drop for every cut-out of this rank's classes."""
        cats = self.my_classes()
        todo = [c for c in cats if not self.filter_done(c)]
        self._wait_chunks(todo, 'the filter stage')
        counts = {r: 0 for r in (*DROP_REASONS, 'kept')}
        for cat in todo:
            for k, v in self.filter_class(cat).items():
                counts[k] += v
        dropped = ', '.join(f'{k} {v}' for k, v in counts.items() if v and k != 'kept')
        print_log(
            f'filter [rank {self.rank}]: {len(todo)} classes filtered '
            f'({len(cats) - len(todo)} already done): kept {counts["kept"]}, dropped '
            f'{dropped or "none"}',
            logger='current')
        return dict(classes=len(todo), skipped=len(cats) - len(todo), counts=counts)

    # ---------------------------------------------------------------- write
    def bank_categories(self) -> list[dict]:
        keep = ('id', 'name', 'synonyms', 'def', 'frequency')
        return [{k: c[k] for k in keep if k in c} for c in self.categories]

    def _write_task(self, cat: int) -> dict:
        """The arguments of :func:`write_class_job` for class ``cat``."""
        names = [s.name for s in self.segmenters]
        rec = read_json(self.filter_path(cat))
        by_chunk = {c.name: c for c in self.class_chunks(cat)}
        rows = []
        for item in rec['items']:
            if item['reason']:
                continue
            seg = item['segmenter'] if item['segmenter'] in names else names[0]
            rows.append(
                dict(
                    item,
                    seg_path=self.seg_path(seg, by_chunk[item['chunk']]),
                    source=self._source_name(item)))
        write = self.cfg['write']
        return dict(
            work_dir=self.work_dir,
            bank_dir=self.bank_dir,
            categories=self.bank_categories(),
            part=self.part_name(cat),
            category=self.categories[cat]['name'],
            rows=rows,
            image_format=write.get('image_format', 'webp'),
            quality=write.get('quality', 95),
            max_side=write.get('max_side'),
            shard_bytes=write.get('shard_bytes', 256 << 20),
            single_thread=self.cfg['workers'].get('type') == 'process')

    def _write_marker(self, cat: int, task: dict, count: int) -> None:
        atomic_write_json(
            self.write_path(cat),
            dict(
                fingerprint=self.fp_write[cat],
                category=task['category'],
                part=task['part'],
                count=count))

    def run_write(self) -> dict:
        """Write the kept cut-outs of this rank's classes (one bank part per class), then, on
        rank 0, merge every part into the bank."""
        cats = self.my_classes()
        todo = [c for c in cats if not self.write_done(c)]
        missing = [self.filter_path(c) for c in todo if not self.filter_done(c)]
        if missing:
            raise FileNotFoundError(f'filter output missing or stale for {len(missing)} classes '
                                    f'(first: {missing[0]!r}): run --stage filter first')
        tasks = [self._write_task(cat) for cat in todo]
        total = sum(len(t['rows']) for t in tasks)
        start = time.perf_counter()
        written = 0
        if tasks:
            executor = make_executor(self.cfg['workers'])
            bar = self._bar(total, 'write')
            try:
                futures = [(cat, task, executor.submit(write_class_job, task))
                           for cat, task in zip(todo, tasks)]
                for cat, task, future in futures:
                    count = future.result()
                    self._write_marker(cat, task, count)
                    written += count
                    bar.update(len(task['rows']))
            finally:
                bar.close()
                executor.shutdown(wait=True, cancel_futures=True)
        seconds = time.perf_counter() - start
        print_log(
            f'write [rank {self.rank}]: {written} instances of {len(todo)} classes in '
            f'{seconds:.1f} s ({written / max(seconds, 1e-9):.1f} img/s); '
            f'{len(cats) - len(todo)} classes already written',
            logger='current')
        summary = dict(
            classes=len(todo), skipped=len(cats) - len(todo), instances=written, seconds=seconds)
        if self.rank == 0:
            summary['bank'] = self.finalize()
        return summary

    def _source_name(self, item: dict) -> str:
        """The ``source`` string of a bank row: the image file, relative to the work dir for
        generated images, as given for folder images."""
        return item['file'] or ''

    def finalize(self) -> dict:
        """Merge every class part into the bank (rank 0; waits for the other ranks)."""
        from xpaste.bank import finalize_bank, read_manifest
        cats = list(range(len(self.categories)))
        wait_for(
            cats,
            self.write_done,
            self.wait_timeout,
            self.poll_interval,
            what='bank parts',
            name=lambda c: repr(self.write_path(c)))
        build_fp = fingerprint(self.fp_write)
        manifest_path = osp.join(self.bank_dir, 'manifest.json')
        if osp.isfile(manifest_path):
            manifest = read_manifest(self.bank_dir)
            if manifest.get('build', {}).get('fingerprint') == build_fp:
                print_log(
                    f'bank {self.bank_dir} is up to date ({manifest["num_instances"]} '
                    'instances)',
                    logger='current')
                return dict(num_instances=manifest['num_instances'], path=self.bank_dir)
        expected = {self.part_name(c) for c in cats}
        parts_dir = osp.join(self.bank_dir, 'parts')
        stale = sorted(p for p in os.listdir(parts_dir)
                       if p not in expected) if osp.isdir(parts_dir) else []
        if stale:
            import shutil
            print_log(
                f'removing {len(stale)} bank parts of classes no longer built: '
                f'{stale[:5]}',
                logger='current',
                level=logging.WARNING)
            for p in stale:
                shutil.rmtree(osp.join(parts_dir, p))
        manifest = finalize_bank(
            self.bank_dir, build_info=self.build_info(build_fp), size_stats=self.size_stats())
        print_log(
            f'bank written: {self.bank_dir} ({manifest["num_instances"]} instances of '
            f'{len(self.categories)} classes)',
            logger='current')
        return dict(num_instances=manifest['num_instances'], path=self.bank_dir)

    def size_stats(self) -> Optional[dict]:
        """Per-class size statistics for the bank (``write.size_stats``)."""
        opt = self.cfg['write'].get('size_stats', True)
        if opt is False or opt is None:
            return None
        from xpaste.bank import compute_size_stats
        ann = self.cfg['categories'].get('ann_file') if opt is True else opt
        if not ann:
            return None
        with open(ann) as f:
            has_annotations = bool(json.load(f).get('annotations'))
        if not has_annotations:
            print_log(
                f'{ann}: no annotations, the bank gets no size statistics',
                logger='current',
                level=logging.WARNING)
            return None
        return compute_size_stats(ann, categories=[c['name'] for c in self.categories])

    def build_info(self, build_fp: str) -> dict:
        """How the bank was built (stored in its manifest)."""
        from xpaste.bank import package_versions
        cfg = {k: v for k, v in self.cfg.items() if k not in ('work_dir', 'bank_dir')}
        return _to_builtin(
            dict(
                fingerprint=build_fp,
                config_hash=fingerprint(cfg),
                config=cfg,
                source=self.source.describe(),
                segmenters=[s.describe() for s in self.segmenters],
                scorer=self.scorer.describe() if self.scorer else None,
                filter=self.filter.describe(),
                seed=self.seed,
                images_per_class=self.images_per_class,
                prompt_templates=self.prompts.templates,
                prompt_file=self.prompts.prompt_file,
                package_versions=package_versions()))

    # ---------------------------------------------------------------- report
    def run_report(self) -> dict:
        """Per-class report pages on every rank, the index page on rank 0."""
        from .report import write_class_report, write_index
        cats = self.my_classes()
        todo = [c for c in cats if not self.report_done(c)]
        missing = [self.filter_path(c) for c in todo if not self.filter_done(c)]
        if missing:
            raise FileNotFoundError(f'filter output missing or stale for {len(missing)} classes '
                                    f'(first: {missing[0]!r}): run --stage filter first')
        start = time.perf_counter()
        for cat in todo:
            rec = read_json(self.filter_path(cat))
            write_class_report(
                self.report_dir,
                self.keys[cat],
                self.categories[cat],
                rec,
                self._report_image_loader(cat),
                self.cfg['report'],
                fp=self.fp_report[cat])
        if self.rank == 0:
            paths = [osp.join(self.report_dir, 'classes', f'{k}.json') for k in self.keys]
            wait_for(
                list(range(len(paths))),
                self.report_done,
                self.wait_timeout,
                self.poll_interval,
                what='class reports',
                name=lambda c: repr(paths[c]))
            index = write_index(
                self.report_dir, [read_json(p) for p in paths],
                self.cfg['report'],
                title=osp.basename(self.work_dir),
                build=self._report_build_summary())
            print_log(f'report: {index} ({time.perf_counter() - start:.1f} s)', logger='current')
        return dict(classes=len(todo), skipped=len(cats) - len(todo))

    def _report_build_summary(self) -> dict:
        return _to_builtin(
            dict(
                source=self.source.describe(),
                segmenters=[s.describe() for s in self.segmenters],
                scorer=self.scorer.describe() if self.scorer else 'skipped (no CLIP weights)',
                filter=self.filter.describe(),
                images_per_class=self.images_per_class,
                bank=self.bank_dir))

    def _report_image_loader(self, cat: int):
        chunks = {c.name: c for c in self.class_chunks(cat)}
        cache: dict = {}

        def load(item: dict):
            """(image, mask) of a filter row, mask None when there is none."""
            if item['status'] != 'ok':
                return None, None
            image = load_item_image(self.work_dir, item)
            mask = None
            if item['segmenter']:
                path = self.seg_path(item['segmenter'], chunks[item['chunk']])
                if path not in cache:
                    cache.clear()
                    cache[path] = load_masks(path)[1] if osp.isfile(path) else None
                masks = cache[path]
                mask = masks[item['pos']] if masks is not None else None
            return image, mask

        return load

"""Throughput of the bank builder against its generator, with random-weight models.

:func:`run_benchmark` builds a text-to-image pipeline of a real architecture with random weights
(SD 1.5, SD 2.1 / SD-Turbo, or a tiny one for CPUs; nothing is downloaded), then measures in one
run:

1. ``generator_img_s``: the bare generator (batches of ``pipe(...)`` to numpy), the ceiling;
2. ``pipeline_img_s``: ``generate -> segment -> score -> filter -> write`` through
   :class:`~xpaste.builder.pipeline.BankBuilder` (generation on the GPU overlapping CPU work);
3. ``stages``: each stage run alone on the saved images (its own images/s), so the bottleneck
   is visible.

``ratio = pipeline_img_s / generator_img_s``: 1.0 means the rest of the pipeline costs nothing.
Random weights give noise-like images on which the classical segmenter finds nothing, so the
benchmark segments with :class:`BenchmarkSegmenter` (the classical segmenter's full work, then a
centred ellipse where it found nothing) and opens the filter (no score, area or duplicate
filter): every image is written and the write stage does its full work.
"""
import logging
import math
import os.path as osp
import shutil
import tempfile
import time
from typing import Optional

from mmengine.logging import print_log

import cv2
import numpy as np

from xpaste.builder.hub import resolve_device, torch_dtype
from xpaste.builder.pipeline import BankBuilder
from xpaste.builder.segmenters import SEGMENTERS, ClassicalSegmenter

ARCH_DEFAULTS = {
    'sd15': dict(resolution=512, clip='ViT-L-14'),
    'sd21': dict(resolution=512, clip='ViT-L-14'),
    'tiny': dict(resolution=32, clip='tiny'),
}


@SEGMENTERS.register_module()
class BenchmarkSegmenter(ClassicalSegmenter):
    """The classical segmenter, with a centred ellipse where it finds nothing (benchmarks on
    random-weight images only)."""

    default_name = 'classical'

    def segment_one(self, image: np.ndarray) -> np.ndarray:
        mask = super().segment_one(image)
        if not mask.any():
            h, w = mask.shape
            ellipse = np.zeros((h, w), np.uint8)
            cv2.ellipse(ellipse, (w // 2, h // 2), (w // 3, h // 4), 0, 0, 360, 1, -1)
            mask = ellipse > 0
        return mask


def _sync(device: str) -> None:
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)


def _clip_model(name: str, device: str, precision: str):
    import open_clip
    import torch
    from .random_models import register_tiny_open_clip
    if name == 'tiny':
        name = register_tiny_open_clip()
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None, precision=precision, device=device)
    return model.eval(), open_clip.get_tokenizer(name)


def run_benchmark(arch: str = 'sd15',
                  images: int = 128,
                  batch_size: int = 32,
                  steps: int = 50,
                  guidance_scale: float = 7.5,
                  resolution: Optional[int] = None,
                  dtype: str = 'float16',
                  device: str = 'auto',
                  vae: str = 'full',
                  scheduler: Optional[str] = 'DPMSolverMultistepScheduler',
                  clip: Optional[str] = None,
                  chunk_size: Optional[int] = None,
                  workers: int = 8,
                  executor: str = 'process',
                  segment_side: int = 192,
                  compile: bool = False,
                  work_dir: Optional[str] = None,
                  keep: bool = False) -> dict:
    """Measure generator and pipeline throughput (see the module docstring).

    Args:
        arch (str): ``'sd15'``, ``'sd21'`` or ``'tiny'``. Defaults to ``'sd15'``.
        images (int): Images per measurement. Defaults to 128.
        batch_size (int): Generator batch size. Defaults to 32.
        steps (int): Denoising steps. Defaults to 50.
        guidance_scale (float): CFG scale (0 turns CFG off, as distilled models run).
            Defaults to 7.5.
        resolution (int, optional): Image side. Defaults to the architecture's.
        dtype (str): Generator dtype. Defaults to ``'float16'``.
        device (str): Defaults to ``'auto'``.
        vae (str): ``'full'`` (AutoencoderKL) or ``'tiny'`` (AutoencoderTiny). Defaults to
            ``'full'``.
        scheduler (str, optional): diffusers scheduler class. Defaults to DPM-Solver++.
        clip (str, optional): open_clip architecture of the scorer (random weights), ``'tiny'``
            or ``'none'``. Defaults to the architecture's.
        chunk_size (int, optional): Images per work unit (generator batches span chunks).
            Defaults to ``min(batch_size, 8)``.
        workers (int): CPU workers. Defaults to 8.
        executor (str): ``'process'`` or ``'thread'``. Defaults to ``'process'``.
        segment_side (int): Working side of the classical segmenter. Defaults to 192.
        compile (bool): ``torch.compile`` the UNet. Defaults to False.
        work_dir (str, optional): Where the build goes. Defaults to a temporary directory.
        keep (bool): Keep ``work_dir`` afterwards. Defaults to False.

    Returns:
        dict: ``pipeline_img_s``, ``generator_img_s``, ``ratio``, ``stages`` (images/s of
        each stage alone), ``stream`` (the pipeline's own timing of the overlapped stages),
        ``settings`` and ``device``.
    """
    import torch
    from .random_models import build_sd_pipeline, build_tiny_vae
    from xpaste.builder.diffusers_source import DiffusersSource
    if arch not in ARCH_DEFAULTS:
        raise ValueError(f'arch must be one of {sorted(ARCH_DEFAULTS)}, got {arch!r}')
    if vae not in ('full', 'tiny'):
        raise ValueError(f"vae must be 'full' or 'tiny', got {vae!r}")
    resolution = resolution or ARCH_DEFAULTS[arch]['resolution']
    clip = clip or ARCH_DEFAULTS[arch]['clip']
    chunk_size = chunk_size or min(batch_size, 8)
    device = resolve_device(device)
    if device == 'cpu':
        dtype = 'float32'
    own_dir = work_dir is None
    work_dir = work_dir or tempfile.mkdtemp(prefix='bank-benchmark-')
    settings = dict(
        arch=arch,
        images=images,
        batch_size=batch_size,
        steps=steps,
        guidance_scale=guidance_scale,
        resolution=resolution,
        dtype=dtype,
        vae=vae,
        scheduler=scheduler,
        clip=clip,
        chunk_size=chunk_size,
        workers=workers,
        executor=executor,
        segment_side=segment_side,
        compile=compile)
    print_log(f'benchmark settings: {settings}', logger='current')

    pipe = build_sd_pipeline(
        arch,
        dtype=torch_dtype(dtype),
        device=device,
        tokenizer_dir=osp.join(work_dir, 'tokenizer'))
    if vae == 'tiny':
        pipe.vae = build_tiny_vae(
            'tiny' if arch == 'tiny' else 'sd', device=device).to(torch_dtype(dtype))
    source_cfg = dict(
        type='DiffusersSource',
        model=f'random-{arch}',
        pipeline=pipe,
        dtype=dtype,
        scheduler=scheduler,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        height=resolution,
        width=resolution,
        batch_size=batch_size,
        device=device,
        compile=compile)
    precision = 'fp32' if device == 'cpu' else 'fp16'
    score_cfg = None if clip == 'none' else dict(
        model=clip,
        pretrained='random',
        clip_model=_clip_model(clip, device, precision),
        batch_size=256,
        precision=precision,
        device=device)

    # 1. the bare generator (after a warm-up batch)
    source = DiffusersSource(**{k: v for k, v in source_cfg.items() if k != 'type'})
    cat = {'id': 1, 'name': 'object'}
    source.generate(cat, list(range(batch_size)), ['a photo of a single object'] * batch_size,
                    list(range(batch_size)))
    _sync(device)
    start = time.perf_counter()
    done = 0
    while done < images:
        n = min(batch_size, images - done)
        source.generate(cat, list(range(done, done + n)), ['a photo of a single object'] * n,
                        list(range(done, done + n)))
        done += n
    _sync(device)
    generator_s = time.perf_counter() - start
    generator_img_s = images / generator_s
    print_log(
        f'bare generator: {images} images in {generator_s:.1f} s '
        f'({generator_img_s:.2f} img/s)',
        logger='current')

    # 2. the whole pipeline
    per_class = chunk_size * max(1, math.ceil(images / chunk_size / 8))
    num_classes = math.ceil(images / per_class)
    cfg = dict(
        work_dir=work_dir,
        categories=dict(names=[f'object_{i}' for i in range(num_classes)]),
        images_per_class=per_class,
        chunk_size=chunk_size,
        source=source_cfg,
        generate=dict(image_format='jpg', quality=95),
        segment=dict(segmenters=[dict(type='BenchmarkSegmenter', work_side=segment_side)]),
        score=score_cfg,
        filter=dict(min_clip=None, tolerance=None, min_area=0.0, max_area=1.0, dedup=None),
        write=dict(max_side=512, size_stats=False),
        workers=dict(type=executor, num_workers=workers),
        progress=False)
    builder = BankBuilder(cfg, rank=0, world_size=1)
    scorer = builder.ctx.scorer
    builder.ctx.source.setup()
    if scorer is not None:  # warm up CLIP (first-call kernel selection)
        scorer.setup()
        size = scorer.input_size
        scorer.scores(scorer.encode(np.zeros((2, size, size, 3), np.uint8)), cat)
    total = num_classes * per_class
    _sync(device)
    start = time.perf_counter()
    summary = builder.run(['generate', 'segment', 'score', 'filter', 'write'])
    _sync(device)
    pipeline_s = time.perf_counter() - start
    pipeline_img_s = total / pipeline_s
    print_log(
        f'pipeline: {total} images in {pipeline_s:.1f} s ({pipeline_img_s:.2f} img/s)',
        logger='current')

    # 3. each stage alone, on the saved images
    def alone(stage: str, outputs: list[str]) -> float:
        for out in outputs:
            shutil.rmtree(osp.join(work_dir, out), ignore_errors=True)
        _sync(device)
        t0 = time.perf_counter()
        builder.run([stage])
        _sync(device)
        return total / (time.perf_counter() - t0)

    stages = dict(generate=generator_img_s)
    stages['segment'] = alone('segment', ['seg', 'score', 'filter', 'write', 'bank'])
    if scorer is not None:
        stages['score'] = alone('score', ['score', 'filter', 'write', 'bank'])
    stages['filter'] = alone('filter', ['filter', 'write', 'bank'])
    stages['write'] = alone('write', ['write', 'bank'])
    instances = summary['write']['bank']['num_instances']
    if own_dir and not keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    result = dict(
        pipeline_img_s=pipeline_img_s,
        generator_img_s=generator_img_s,
        ratio=pipeline_img_s / generator_img_s,
        stages={
            k: round(v, 3)
            for k, v in stages.items()
        },
        stream={
            k: (round(v, 3) if isinstance(v, float) else v)
            for k, v in summary['stream'].items()
        },
        instances_written=instances,
        settings=settings,
        device=torch.cuda.get_device_name(device) if device.startswith('cuda') else 'cpu')
    slowest = min((k for k in stages if k != 'generate'), key=stages.get)
    print_log(
        f'ratio pipeline / generator = {result["ratio"]:.3f}; slowest stage after the '
        f'generator: {slowest} ({stages[slowest]:.1f} img/s)',
        logger='current',
        level=logging.INFO)
    return result

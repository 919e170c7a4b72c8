"""Throughput of the bank builder against its generator, with random-weight models.

:func:`run_benchmark` builds a text-to-image pipeline of a real architecture with random weights
(SD 1.5, SD 2.1 / SD-Turbo, or a tiny one for CPUs; nothing is downloaded), then measures in one
run:

1. ``raw_generator_img_s``: the generator's own compute, the ceiling: latents -> UNet steps ->
   VAE decode -> uint8 on the device, prompts encoded once, no pipeline call, nothing on the
   host (:func:`raw_generator_rate`);
2. ``generator_img_s``: the diffusers call as the build makes it
   (:class:`~xpaste.builder.diffusers_source.DiffusersSource`: uint8 images on the host);
3. ``pipeline_img_s``: ``generate -> segment -> score -> filter -> write`` through
   :class:`~xpaste.builder.pipeline.BankBuilder` (generation on the GPU overlapping the rest),
   with the GPU's utilisation and peak memory over that run (:mod:`.gpu_monitor`);
4. ``stages``: each stage run alone on the saved images (its own images/s), so the bottleneck
   is visible.

``ratio = pipeline_img_s / raw_generator_img_s``: 1.0 means the rest of the pipeline costs
nothing. Random weights give noise-like images on which the classical segmenter finds nothing, so
the benchmark segments with :class:`BenchmarkSegmenter` (the classical segmenter's full work,
then a centred ellipse where it found nothing), optionally with SAM or CLIPSeg (random weights
of their real architectures) on the GPU, and opens the filter (no score, area or duplicate
filter): every image is written and the write stage does its full work. :data:`PRESETS` are the
settings of the README's table.
"""
import logging
import math
import os.path as osp
import shutil
import tempfile
import time
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log

from xpaste.builder.diffusers_source import DiffusersSource, images_to_uint8
from xpaste.builder.hub import resolve_device, torch_dtype
from xpaste.builder.pipeline import BankBuilder
from xpaste.builder.segmenters import SEGMENTERS, ClassicalSegmenter
from .gpu_monitor import GpuMonitor, host_peak_memory_mb

ARCH_DEFAULTS = {
    'sd15': dict(resolution=512, clip='ViT-L-14', sam='vit_h', clipseg='rd64'),
    'sd21': dict(resolution=512, clip='ViT-L-14', sam='vit_h', clipseg='rd64'),
    'tiny': dict(resolution=32, clip='tiny', sam='xpaste_tiny', clipseg='tiny'),
}
#: The README's settings. paper: X-Paste's generator (SD 1.5, 50 DPM-Solver steps, CFG 7.5);
#: turbo: a 1-step distilled generator of SD 2.1's architecture (SD-Turbo: no CFG, Euler
#: ancestral) with the full VAE; turbo-tiny: the same with AutoencoderTiny; cpu-tiny: a tiny
#: architecture that runs through every stage in under a minute on 2 CPU cores.
_TURBO = dict(arch='sd21', steps=1, guidance_scale=0.0, batch_size=64, images=768, chunk_size=16,
              workers=13, scheduler='EulerAncestralDiscreteScheduler')
PRESETS = {
    'paper': dict(arch='sd15', steps=50, guidance_scale=7.5, batch_size=32, images=64,
                  chunk_size=8, workers=12, scheduler='DPMSolverMultistepScheduler'),
    'turbo': _TURBO,
    'turbo-tiny': dict(_TURBO, vae='tiny'),
    'cpu-tiny': dict(arch='tiny', steps=2, guidance_scale=7.5, batch_size=4, images=16,
                     chunk_size=4, workers=2, executor='thread', segment_side=32, device='cpu'),
}  # yapf: disable
#: Segmenters the benchmark can run: the classical one (CPU workers), SAM and CLIPSeg (GPU).
BENCHMARK_SEGMENTERS = ('classical', 'sam', 'clipseg')


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


def raw_generator_rate(pipe, images: int, batch_size: int, steps: int, guidance_scale: float,
                       resolution: int, device: str) -> float:
    """Images/s of the generator's compute alone: random latents -> ``steps`` UNet passes
    (two halves with CFG) -> VAE decode -> uint8 on the device (:func:`images_to_uint8`),
    prompts encoded once, nothing copied to the host; after warm-up batches."""
    import torch
    unet, vae, scheduler = pipe.unet, pipe.vae, pipe.scheduler
    cfg = guidance_scale > 1
    side = resolution // pipe.vae_scale_factor
    with torch.inference_mode():
        cond, uncond = pipe.encode_prompt(['a photo of a single object'] * batch_size, device, 1,
                                          cfg)
        context = torch.cat([uncond, cond]) if cfg else cond
        shape = (batch_size, unet.config.in_channels, side, side)
        scale = getattr(vae.config, 'scaling_factor', 1.0) or 1.0

        def one_batch():
            latents = torch.randn(shape, device=device, dtype=context.dtype)
            scheduler.set_timesteps(steps, device=device)
            latents = latents * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                x = scheduler.scale_model_input(torch.cat([latents] * 2) if cfg else latents, t)
                noise = unet(x, t, encoder_hidden_states=context).sample
                if cfg:
                    uncond_noise, cond_noise = noise.chunk(2)
                    noise = uncond_noise + guidance_scale * (cond_noise - uncond_noise)
                latents = scheduler.step(noise, t, latents).prev_sample
            decoded = vae.decode(latents / scale).sample
            return images_to_uint8((decoded / 2 + 0.5).clamp(0, 1))[0]

        for _ in range(_warm_up_batches(device)):
            one_batch()
        _sync(device)
        start, done = time.perf_counter(), 0
        while done < images:
            one_batch()
            done += batch_size
        _sync(device)
    return done / (time.perf_counter() - start)


def _warm_up_batches(device: str) -> int:
    """Batches run before the raw generator is timed (one less before the diffusers call,
    which runs the same shapes next): one on a GPU; more on the CPU, where the first calls of
    new shapes are slow for longer."""
    return 1 if str(device).startswith('cuda') else 3


def _segmenter_cfgs(names: Sequence[str], arch: str, device: str, segment_side: int,
                    sam_type: Optional[str], dtype: str, work_dir: str) -> list:
    """The build's segmenters: the classical one in the CPU workers; SAM (image encoder in
    ``dtype``) and CLIPSeg as random-weight models of their real architectures on the GPU."""
    from .random_models import build_clipseg, build_sam
    unknown = [n for n in names if n not in BENCHMARK_SEGMENTERS]
    if unknown or not names:
        raise ValueError(f'segmenters must be some of {BENCHMARK_SEGMENTERS}, got {list(names)}')
    seg_dtype = 'float32' if device == 'cpu' else ('bfloat16' if dtype == 'bfloat16' else 'float16')
    cfgs = []
    for name in names:
        if name == 'classical':
            cfgs.append(dict(type='BenchmarkSegmenter', work_side=segment_side))
        elif name == 'sam':
            sam_type = sam_type or ARCH_DEFAULTS[arch]['sam']
            cfgs.append(
                dict(
                    type='SAMSegmenter',
                    checkpoint=f'random-{sam_type}',
                    model_type=sam_type,
                    batch_size=16,
                    dtype=seg_dtype,
                    device=device,
                    built_model=build_sam(sam_type, device=device)))
        else:
            cfgs.append(
                dict(
                    type='CLIPSegSegmenter',
                    model='random-clipseg',
                    batch_size=64,
                    dtype=seg_dtype,
                    device=device,
                    built_model=build_clipseg(
                        ARCH_DEFAULTS[arch]['clipseg'],
                        tokenizer_dir=osp.join(work_dir, 'clipseg-tok'))))
    return cfgs


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
                  compile_vae: bool = False,
                  segmenters: Sequence[str] = ('classical', ),
                  sam_type: Optional[str] = None,
                  preset: Optional[str] = None,
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
        compile_vae (bool): ``torch.compile`` the VAE decoder. Defaults to False.
        segmenters (Sequence[str]): Some of :data:`BENCHMARK_SEGMENTERS`. Defaults to
            ``('classical',)``.
        sam_type (str, optional): SAM architecture (``'vit_b'``, ``'vit_l'``, ``'vit_h'``).
            Defaults to the architecture's (``'vit_h'``; the tiny one for ``arch='tiny'``).
        preset (str, optional): The preset's name, recorded. Defaults to None.
        work_dir (str, optional): Where the build goes. Defaults to a temporary directory.
        keep (bool): Keep ``work_dir`` afterwards. Defaults to False.

    Returns:
        dict: ``raw_generator_img_s``, ``generator_img_s``, ``pipeline_img_s``, ``ratio``
        (pipeline / raw generator), ``ratio_to_generator``, ``stages`` (images/s of each stage
        alone), ``gpu_utilisation``, ``gpu_busy_fraction``, ``gpu_peak_memory_mb``,
        ``gpu_reason`` (why GPU figures are None), ``host_peak_memory_mb``,
        ``host_peak_memory_workers_mb``, ``stream`` (the pipeline's own timing of the
        overlapped stages), ``instances_written``, ``settings`` and ``device``.
    """
    import torch
    from .random_models import build_sd_pipeline, build_tiny_vae
    if arch not in ARCH_DEFAULTS:
        raise ValueError(f'arch must be one of {sorted(ARCH_DEFAULTS)}, got {arch!r}')
    if vae not in ('full', 'tiny'):
        raise ValueError(f"vae must be 'full' or 'tiny', got {vae!r}")
    resolution = resolution or ARCH_DEFAULTS[arch]['resolution']
    clip = clip or ARCH_DEFAULTS[arch]['clip']
    chunk_size = chunk_size or min(batch_size, 8)
    segmenters = [segmenters] if isinstance(segmenters, str) else list(segmenters)
    device = resolve_device(device)
    if device == 'cpu':
        dtype = 'float32'
    own_dir = work_dir is None
    work_dir = work_dir or tempfile.mkdtemp(prefix='bank-benchmark-')
    settings = dict(
        preset=preset,
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
        compile=compile,
        compile_vae=compile_vae,
        segmenters=segmenters,
        sam_type=(sam_type or ARCH_DEFAULTS[arch]['sam']) if 'sam' in segmenters else None)
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
        compile=compile,
        compile_vae=compile_vae)
    precision = 'fp32' if device == 'cpu' else 'fp16'
    score_cfg = None if clip == 'none' else dict(
        model=clip,
        pretrained='random',
        clip_model=_clip_model(clip, device, precision),
        batch_size=256,
        precision=precision,
        device=device)

    # 1. the generator's compute alone, then the diffusers call as the build makes it
    source = DiffusersSource(**{k: v for k, v in source_cfg.items() if k != 'type'})
    source.setup()  # the scheduler the build uses
    raw_img_s = raw_generator_rate(pipe, images, batch_size, steps, guidance_scale, resolution,
                                   device)
    print_log(f'raw generator: {raw_img_s:.2f} img/s', logger='current')
    cat = {'id': 1, 'name': 'object'}
    for _ in range(_warm_up_batches(device) - 1):  # the raw run warmed up the same shapes
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
        f'generator (diffusers call): {images} images in {generator_s:.1f} s '
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
        segment=dict(
            segmenters=_segmenter_cfgs(segmenters, arch, device, segment_side, sam_type, dtype,
                                       work_dir)),
        score=score_cfg,
        filter=dict(min_clip=None, tolerance=None, min_area=0.0, max_area=1.0, dedup=None),
        write=dict(max_side=512, size_stats=False),
        workers=dict(type=executor, num_workers=workers),
        progress=False)
    builder = BankBuilder(cfg, rank=0, world_size=1)
    _warm_up(builder, cat)
    total = num_classes * per_class
    _sync(device)
    with GpuMonitor(device) as monitor:
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
    if builder.ctx.scorer is not None:
        stages['score'] = alone('score', ['score', 'filter', 'write', 'bank'])
    stages['filter'] = alone('filter', ['filter', 'write', 'bank'])
    stages['write'] = alone('write', ['write', 'bank'])
    instances = summary['write']['bank']['num_instances']
    if own_dir and not keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    result = dict(
        raw_generator_img_s=round(raw_img_s, 3),
        generator_img_s=round(generator_img_s, 3),
        pipeline_img_s=round(pipeline_img_s, 3),
        ratio=round(pipeline_img_s / raw_img_s, 4),
        ratio_to_generator=round(pipeline_img_s / generator_img_s, 4),
        stages={
            k: round(v, 3)
            for k, v in stages.items()
        },
        **monitor.result(),
        **host_peak_memory_mb(),
        stream={
            k: (round(v, 3) if isinstance(v, float) else v)
            for k, v in summary['stream'].items()
        },
        instances_written=instances,
        settings=settings,
        device=torch.cuda.get_device_name(device) if device.startswith('cuda') else 'cpu')
    slowest = min((k for k in stages if k != 'generate'), key=stages.get)
    print_log(
        f'ratio pipeline / raw generator = {result["ratio"]:.3f} (/ diffusers call '
        f'{result["ratio_to_generator"]:.3f}); slowest stage after the generator: {slowest} '
        f'({stages[slowest]:.1f} img/s, {stages[slowest] / raw_img_s:.2f}x the raw generator)',
        logger='current',
        level=logging.INFO)
    return result


def _warm_up(builder: BankBuilder, cat: dict) -> None:
    """Load the build's models and run them once (first-call kernel selection) before the
    pipeline is timed."""
    ctx = builder.ctx
    ctx.source.setup()
    probe = np.full((64, 64, 3), 127, np.uint8)
    for seg in ctx.segmenters:
        if seg.uses_gpu:
            seg.setup()
            seg.segment([probe, probe], cat)
    if ctx.scorer is not None:
        ctx.scorer.setup()
        size = ctx.scorer.input_size
        ctx.scorer.scores(ctx.scorer.encode(np.zeros((2, size, size, 3), np.uint8)), cat)


def run_preset(name: str, **overrides) -> dict:
    """:func:`run_benchmark` with the settings of :data:`PRESETS` ``[name]``, updated with
    the ``overrides`` that are not None."""
    if name not in PRESETS:
        raise ValueError(f'preset must be one of {sorted(PRESETS)}, got {name!r}')
    options = dict(PRESETS[name], preset=name)
    options.update({k: v for k, v in overrides.items() if v is not None})
    return run_benchmark(**options)

"""Text-to-image generation with diffusers (:class:`DiffusersSource`): a diffusers folder, a
hub id or a single-file checkpoint, batched on the GPU with one seed per image.

Registered in :data:`~xpaste.builder.sources.SOURCES`, which imports this module the first time
a source is looked up; diffusers and torch are imported when the model loads.
"""
import json
import logging
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import numpy as np
from mmengine.logging import print_log

from xpaste.utils.checks import check_number
from .hub import (SINGLE_FILE_SUFFIXES, check_model_source, dtype_kwargs, load_error,
                  resolve_device, resolve_dtype, torch_dtype)
from .sources import (DEFAULT_BLACK_MAX, SOURCES, BaseSource, SourceItem, black_message,
                      check_image)

#: Where the generator's float images become uint8 (``DiffusersSource.postprocess``).
POSTPROCESS_MODES = ('device', 'host')


@dataclass
class DeviceSourceItem(SourceItem):
    """A :class:`~xpaste.builder.sources.SourceItem` whose image also stays on the generator's
    device.

    Attributes:
        device_image (torch.Tensor, optional): The same BGR uint8 ``(H, W, 3)`` pixels as
            ``image``, on the generator's device (whole-image CLIP scores are computed from it
            without a round trip through the host). Never sent to worker processes.
    """

    device_image: Optional[object] = None


def images_to_uint8(images) -> tuple:
    """diffusers' ``output_type='pt'`` images as uint8, on their device.

    The same arithmetic as the host path (:func:`array_item` on ``output_type='np'``: float32, ``x * 255 + 0.5`` clipped to [0, 255], truncated), so the
    pixels are equal bit for bit; the NaN/inf and black checks run on the device too.

    Args:
        images (torch.Tensor): ``(N, 3, H, W)`` RGB in [0, 1] (any float dtype).

    Returns:
        tuple: BGR uint8 ``(N, H, W, 3)`` (contiguous, on the device), per image whether all
        its pixels are finite ``(N,)`` bool, and its brightest uint8 value ``(N,)``.
    """
    import torch
    x = images.permute(0, 2, 3, 1).float()
    finite = torch.isfinite(x).flatten(1).all(1)
    rgb = (x * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
    bgr = rgb.flip(-1).contiguous()
    return bgr, finite, bgr.flatten(1).amax(1)


@SOURCES.register_module()
class DiffusersSource(BaseSource):
    """Text-to-image generation with diffusers' ``AutoPipelineForText2Image``.

    Any model id or local diffusers folder works (SD 1.5/2.1, SDXL, SD-Turbo, ...), and so does a
    single-file checkpoint in the original Stable Diffusion layout (``.safetensors``/``.ckpt``),
    loaded with ``<pipeline_class>.from_single_file``: give ``config``, a diffusers folder of the
    same architecture (its configs, tokenizer and scheduler; weights are not needed), to load it
    without network access; without it diffusers infers the architecture from the weights and
    fetches its configs from the hub (or the hub cache).

    Each image has its own seed (a CPU ``torch.Generator`` per image, so images do not depend on
    the batch they are in nor on the GPU type). Images with NaNs and black images (what the
    safety checker returns) are reported and dropped.

    Args:
        model (str): Hub id or local folder of a diffusers pipeline, or a single-file
            checkpoint (``.safetensors``, ``.ckpt``, ``.pt``, ``.pth``, ``.bin``). A relative
            ``org/name`` is a local folder when it exists, else a hub id.
        dtype (str): ``'float16'``, ``'bfloat16'`` or ``'float32'``. float16/bfloat16 fall back
            to float32 on CPU. Defaults to ``'float16'``.
        scheduler (str | dict, optional): A diffusers scheduler class name (or
            ``dict(type=name, **kwargs)``) built from the pipeline's scheduler config, e.g.
            ``'DPMSolverMultistepScheduler'``. Defaults to the pipeline's own.
        num_inference_steps (int): Denoising steps. Defaults to 50.
        guidance_scale (float): Classifier-free guidance scale (0 for distilled models).
            Defaults to 7.5.
        negative_prompt (str, optional): Defaults to None.
        height (int, optional): Image height. Defaults to the model's.
        width (int, optional): Image width. Defaults to the model's.
        batch_size (int): Images per call. Defaults to 8.
        vae (dict, optional): Replacement VAE, ``dict(type='AutoencoderTiny', path=...)``
            (any diffusers autoencoder class). Defaults to the pipeline's.
        safety_checker (bool): Keep the pipeline's safety checker (its black images are
            dropped). Defaults to True.
        device (str): ``'auto'``, ``'cuda'`` (``cuda:<LOCAL_RANK>``), ``'cpu'``...
            Defaults to ``'auto'``.
        compile (bool): ``torch.compile`` the UNet/transformer. Defaults to False.
        compile_vae (bool): ``torch.compile`` the VAE decoder (80 % of the time of a 1-step
            generator with the full VAE). Defaults to False.
        postprocess (str): ``'device'``: ask diffusers for tensors (``output_type='pt'``) and
            convert them to uint8 and check them for NaN and black images on the generator's
            device (:func:`images_to_uint8`); only uint8 pixels cross to the host, and they
            stay on the device for whole-image CLIP scores. ``'host'``: diffusers' numpy output
            converted on the host. Both give the same pixels. Defaults to ``'device'``.
        pipeline_kwargs (dict, optional): More keyword arguments of ``from_pretrained``
            (e.g. ``variant='fp16'``). Defaults to None.
        call_kwargs (dict, optional): More keyword arguments of the pipeline call.
            Defaults to None.
        pipeline (object, optional): An already built pipeline (benchmarks, tests); ``model``
            is then only recorded. Defaults to None.
        black_max (int): Brightest pixel value of a black image. Defaults to 8.
        pipeline_class (str, optional): A diffusers pipeline class, e.g.
            ``'StableDiffusionXLPipeline'``. Defaults to ``AutoPipelineForText2Image`` for a
            folder or hub id; for a single file to the ``_class_name`` of ``config``'s
            ``model_index.json``, else ``'StableDiffusionPipeline'`` (set it for an SDXL file).
        config (str, optional): Single files only: a local diffusers folder (or hub id) whose
            configs describe the file's architecture. Defaults to None (inferred).
        original_config (str, optional): Single files only: the original (LDM) yaml config of
            the checkpoint, a local file or URL. Defaults to None.
    """

    uses_gpu = True

    def __init__(self,
                 model: str,
                 dtype: str = 'float16',
                 scheduler=None,
                 num_inference_steps: int = 50,
                 guidance_scale: float = 7.5,
                 negative_prompt: Optional[str] = None,
                 height: Optional[int] = None,
                 width: Optional[int] = None,
                 batch_size: int = 8,
                 vae: Optional[dict] = None,
                 safety_checker: bool = True,
                 device: str = 'auto',
                 compile: bool = False,
                 pipeline_kwargs: Optional[dict] = None,
                 call_kwargs: Optional[dict] = None,
                 pipeline=None,
                 black_max: int = DEFAULT_BLACK_MAX,
                 pipeline_class: Optional[str] = None,
                 config: Optional[str] = None,
                 original_config: Optional[str] = None,
                 compile_vae: bool = False,
                 postprocess: str = 'device'):
        num_inference_steps = check_number(
            'DiffusersSource.num_inference_steps', num_inference_steps, 1, integer=True)
        batch_size = check_number('DiffusersSource.batch_size', batch_size, 1, integer=True)
        for key, value in (('height', height), ('width', width)):
            if value is not None and (not isinstance(value, int) or value % 8):
                raise ValueError(f'DiffusersSource.{key} must be None or a multiple of 8, '
                                 f'got {value!r}')
        torch_dtype(dtype)  # validates the name
        if postprocess not in POSTPROCESS_MODES:
            raise ValueError(f'DiffusersSource.postprocess must be one of {POSTPROCESS_MODES}, '
                             f'got {postprocess!r}')
        if vae is not None and (not isinstance(vae, dict) or 'path' not in vae):
            raise ValueError(f"DiffusersSource.vae must be dict(type=..., path=...), got {vae!r}")
        self.model = model
        self.dtype = dtype
        self.scheduler = scheduler
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = float(guidance_scale)
        self.negative_prompt = negative_prompt
        self.height, self.width = height, width
        self.batch_size = batch_size
        self.vae = dict(vae) if vae else None
        self.safety_checker = safety_checker
        self.device = device
        self.compile = compile
        self.compile_vae = compile_vae
        self.postprocess = postprocess
        self.pipeline_kwargs = dict(pipeline_kwargs or {})
        self.call_kwargs = dict(call_kwargs or {})
        self.black_max = black_max
        self.pipe = pipeline
        self.local_rank = 0
        self.pipeline_class = pipeline_class
        self.config = config
        self.original_config = original_config

    def check(self) -> None:
        if self.pipe is None:
            self._model_path()
        if self.vae is not None:
            check_model_source(self.vae['path'], 'source.vae.path', kind='dir')
        if self.pipeline_class is not None:
            import diffusers
            _diffusers_class(diffusers, self.pipeline_class, 'source.pipeline_class')

    def _model_path(self) -> str:
        """``model`` checked: a diffusers folder, a hub id or a single-file checkpoint (with
        ``config``/``original_config`` checked too)."""
        path = check_model_source(self.model, 'source.model')
        single = osp.isfile(path)
        if single and not path.lower().endswith(SINGLE_FILE_SUFFIXES):
            raise ValueError(f'source.model {self.model!r} is a file but not a single-file '
                             f'checkpoint ({", ".join(SINGLE_FILE_SUFFIXES)}); give one, or a '
                             'diffusers folder')
        for key in ('config', 'original_config'):
            if getattr(self, key) is not None and not single:
                raise ValueError(f'source.{key} is only used for a single-file checkpoint, but '
                                 f'source.model {self.model!r} is a folder or hub id: remove '
                                 f'source.{key}')
        if self.config is not None:
            check_model_source(self.config, 'source.config', kind='dir')
        if self.original_config is not None and not str(self.original_config).startswith(
            ('http://', 'https://')):
            check_model_source(
                self.original_config, 'source.original_config', allow_hub_id=False, kind='file')
        return path

    def _single_file_class(self) -> str:
        """The pipeline class of a single file: ``pipeline_class``, else ``config``'s, else
        ``StableDiffusionPipeline``."""
        if self.pipeline_class is not None:
            return self.pipeline_class
        index = osp.join(osp.expanduser(str(self.config)), 'model_index.json')
        if self.config is not None and osp.isfile(index):
            with open(index) as f:
                return json.load(f).get('_class_name', 'StableDiffusionPipeline')
        return 'StableDiffusionPipeline'

    def _load_pipeline(self, diffusers, kwargs: dict):
        """Load ``model`` (folder or hub id: ``from_pretrained``; file: ``from_single_file``)."""
        path = self._model_path()
        if not osp.isfile(path):
            cls = (
                diffusers.AutoPipelineForText2Image if self.pipeline_class is None else
                _diffusers_class(diffusers, self.pipeline_class, 'source.pipeline_class'))
            return _load(lambda: cls.from_pretrained(path, **kwargs), self.model, 'source.model')
        name = self._single_file_class()
        cls = _diffusers_class(diffusers, name, 'source.pipeline_class')
        if not hasattr(cls, 'from_single_file'):
            raise ValueError(f'source.pipeline_class: diffusers {name} cannot load a single-file '
                             f'checkpoint (no from_single_file); source.model is {self.model!r}')
        kwargs = dict(kwargs)
        if self.config is not None:
            kwargs['config'] = check_model_source(self.config, 'source.config', kind='dir')
        if self.original_config is not None:
            kwargs['original_config'] = osp.expanduser(self.original_config)
        if self.safety_checker and 'safety_checker' not in kwargs:
            print_log(
                f'source: diffusers does not load a safety checker with the single-file '
                f'checkpoint {self.model!r}: images are not checked (pass '
                'pipeline_kwargs=dict(safety_checker=...) to add one)',
                logger='current',
                level=logging.WARNING)
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        return _load(lambda: cls.from_single_file(path, **kwargs), self.model, 'source.model')

    def setup(self) -> None:
        if getattr(self, '_ready', False):
            return
        import diffusers
        import torch
        device = resolve_device(self.device, self.local_rank, 'source')
        dtype = resolve_dtype(self.dtype, device, 'source')
        if self.pipe is None:
            kwargs = dict(dtype_kwargs('diffusers', dtype), **self.pipeline_kwargs)
            if self.vae is not None:
                vae_cfg = dict(self.vae)
                vae_cls = _diffusers_class(diffusers, vae_cfg.pop('type', 'AutoencoderKL'),
                                           'source.vae.type')
                path = check_model_source(vae_cfg.pop('path'), 'source.vae.path', kind='dir')
                kwargs['vae'] = _load(
                    lambda: vae_cls.from_pretrained(path, **dtype_kwargs('diffusers', dtype), **
                                                    vae_cfg), path, 'source.vae.path')
            if not self.safety_checker:
                kwargs.update(safety_checker=None, requires_safety_checker=False)
            self.pipe = self._load_pipeline(diffusers, kwargs)
        pipe = self.pipe
        if self.scheduler is not None:
            cfg = dict(
                type=self.scheduler) if isinstance(self.scheduler, str) else dict(self.scheduler)
            cls = _diffusers_class(diffusers, cfg.pop('type'), 'source.scheduler')
            pipe.scheduler = cls.from_config(pipe.scheduler.config, **cfg)
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        if self.compile:
            denoiser = 'unet' if getattr(pipe, 'unet', None) is not None else 'transformer'
            module = getattr(pipe, denoiser)
            if not hasattr(module, '_orig_mod'):  # not compiled yet
                setattr(pipe, denoiser, torch.compile(module))
        vae = getattr(pipe, 'vae', None)
        if self.compile_vae and vae is not None and not hasattr(vae.decoder, '_orig_mod'):
            vae.decoder = torch.compile(vae.decoder)
        self._device = device
        self._ready = True

    def generate(self, category, indices, prompts, seeds):
        return self.generate_many([(category, indices, prompts, seeds)])[0]

    def generate_many(self, requests):
        """Generate the images of several requests in shared batches of ``batch_size``."""
        flat = [(i, index, prompt, seed) for i, (_, indices, prompts, seeds) in enumerate(requests)
                for index, prompt, seed in zip(indices, prompts, seeds)]
        items = self._generate_flat([f[1] for f in flat], [f[2] for f in flat],
                                    [f[3] for f in flat])
        out = [[] for _ in requests]
        for (i, *_), item in zip(flat, items):
            out[i].append(item)
        return out

    def _generate_flat(self, indices, prompts, seeds) -> list[SourceItem]:
        import torch
        self.setup()
        items = []
        for start in range(0, len(indices), self.batch_size):
            stop = start + self.batch_size
            batch_prompts = list(prompts[start:stop])
            batch_seeds = list(seeds[start:stop])
            generators = [torch.Generator('cpu').manual_seed(int(s)) for s in batch_seeds]
            kwargs = dict(self.call_kwargs)
            if self.negative_prompt:
                kwargs['negative_prompt'] = [self.negative_prompt] * len(batch_prompts)
            if self.height is not None:
                kwargs['height'] = self.height
            if self.width is not None:
                kwargs['width'] = self.width
            with torch.inference_mode():
                out = self.pipe(
                    prompt=batch_prompts,
                    num_inference_steps=self.num_inference_steps,
                    guidance_scale=self.guidance_scale,
                    generator=generators,
                    output_type='pt' if self.postprocess == 'device' else 'np',
                    **kwargs)
                nsfw = getattr(out, 'nsfw_content_detected', None) or [False] * len(batch_prompts)
                meta = list(zip(indices[start:stop], batch_prompts, batch_seeds, nsfw))
                nan = (f'the generator returned NaN/inf pixels (model {self.model!r}, dtype '
                       f'{self.dtype}): try float32 or bfloat16, or another VAE')
                if torch.is_tensor(out.images):
                    items += tensor_items(out.images, meta, self.black_max, nan)
                else:  # numpy (output_type='np', or a pipeline that returns numpy anyway)
                    items += [
                        array_item(out.images[i], m, self.black_max, nan)
                        for i, m in enumerate(meta)
                    ]
        return items

    def describe(self):
        return dict(
            type='DiffusersSource',
            model=self.model,
            dtype=self.dtype,
            scheduler=self.scheduler,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            negative_prompt=self.negative_prompt,
            height=self.height,
            width=self.width,
            vae=self.vae,
            safety_checker=self.safety_checker,
            **{
                key: getattr(self, key)
                for key in ('pipeline_class', 'config', 'original_config')
                if getattr(self, key) is not None
            })


def tensor_items(images, meta: list, black_max: int, nan_message: str) -> list[SourceItem]:
    """Items of a batch of ``output_type='pt'`` images: uint8 conversion and checks on the
    device (:func:`images_to_uint8`), one transfer of the uint8 batch to the host.

    Args:
        images (torch.Tensor): ``(N, 3, H, W)`` RGB in [0, 1].
        meta (list[tuple]): Per image ``(index, prompt, seed, nsfw)``.
        black_max (int): Brightest pixel value of a black image.
        nan_message (str): The message of an image with NaN/inf pixels.

    Returns:
        list[DeviceSourceItem]: One per image; usable ones keep their pixels on the device too.
    """
    import torch
    bgr, finite, peak = images_to_uint8(images)
    host = bgr.cpu()
    finite, peak = finite.tolist(), peak.tolist()
    keep = bgr.device.type != 'cpu'  # a CPU tensor is the host copy already
    items = []
    for i, (index, prompt, seed, nsfw) in enumerate(meta):
        item = DeviceSourceItem(index=index, prompt=prompt, seed=seed)
        if not finite[i]:
            item.status, item.message = 'nan', nan_message
        elif nsfw:
            item.status, item.message = 'black', 'the safety checker flagged the image'
        elif peak[i] <= black_max:
            item.status, item.message = 'black', black_message(peak[i], black_max)
        else:
            item.image = host[i].numpy()
            item.device_image = bgr[i] if keep else torch.from_numpy(item.image)
        items.append(item)
    return items


def array_item(image: np.ndarray, meta: tuple, black_max: int, nan_message: str) -> SourceItem:
    """The item of one float RGB image in [0, 1] of ``output_type='np'`` (the host path):
    NaN/inf check, safety-checker flag, uint8 conversion, black check.

    Args:
        image (np.ndarray): ``(H, W, 3)``.
        meta (tuple): ``(index, prompt, seed, nsfw)``.
        black_max (int): Brightest pixel value of a black image.
        nan_message (str): The message of an image with NaN/inf pixels.
    """
    index, prompt, seed, nsfw = meta
    item = SourceItem(index=index, prompt=prompt, seed=seed)
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        item.status, item.message = 'nan', nan_message
        return item
    if nsfw:
        item.status, item.message = 'black', 'the safety checker flagged the image'
        return item
    rgb = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    item.image = np.ascontiguousarray(rgb[..., ::-1])
    return check_image(item, black_max)


def _diffusers_class(module, name: str, what: str):
    cls = getattr(module, str(name), None)
    if not isinstance(cls, type):
        raise ValueError(f'{what}: diffusers has no class {name!r}')
    return cls


def _load(fn, path: str, what: str):
    """Call a loader, turning its errors into one naming the setting and the path (and, for a
    hub id, why it was taken as one)."""
    try:
        return fn()
    except (OSError, ValueError) as e:
        raise load_error(what, path, e) from e

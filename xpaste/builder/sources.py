"""Image sources of a bank build: text-to-image models, image folders, the toy world.

A source turns requests ``(class, index, prompt, seed)`` into images. Every source returns one
:class:`SourceItem` per request, in request order, with a ``status``: ``'ok'`` or the reason the
image is unusable (``'corrupt'``, ``'nan'``, ``'black'``, ``'missing'``), so one bad image is
counted and reported while the rest of the run goes on.

Sources are registered in :data:`SOURCES` and built from the ``source`` dict of a bank config.
Heavy libraries (torch, diffusers) are imported only by the sources that need them.
"""
import logging
import os
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.registry import Registry

from .hub import check_model_source, dtype_kwargs, resolve_device, torch_dtype

SOURCES = Registry('bank image source')

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff')

# An image whose brightest pixel is at most this is black (a safety checker's output or a
# diverged generator).
DEFAULT_BLACK_MAX = 8


def derive_seed(base_seed: int, category_id: int, index: int) -> int:
    """The seed of image ``index`` of a class: a hash of ``(base_seed, category_id, index)``.

    It does not depend on batching or on the rank that makes the image, so a rerun or another
    split of the work reproduces the same image.
    """
    seq = np.random.SeedSequence([int(base_seed) & 0xFFFFFFFF, int(category_id), int(index)])
    return int(seq.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


@dataclass
class SourceItem:
    """One image of a source.

    Attributes:
        index (int): Index of the image within its class.
        image (np.ndarray | None): BGR uint8 (H, W, 3), None when the status is not ``'ok'``.
        prompt (str): Text prompt it was generated from ('' for folder images).
        seed (int): Seed it was generated with (-1 when not generated).
        status (str): ``'ok'``, ``'corrupt'``, ``'nan'``, ``'black'`` or ``'missing'``.
        message (str): Why the image is unusable, naming the file or model.
        file (str | None): The source file when the image was read from disk; the build then
            refers to it instead of storing a copy.
    """

    index: int
    image: Optional[np.ndarray] = None
    prompt: str = ''
    seed: int = -1
    status: str = 'ok'
    message: str = ''
    file: Optional[str] = None


def check_image(item: SourceItem, black_max: int = DEFAULT_BLACK_MAX) -> SourceItem:
    """Mark an unusable image of a generator: black (``max <= black_max``) or without pixels.

    Returns the same item with ``status``/``message`` updated and the image dropped.
    """
    if item.status != 'ok':
        item.image = None
        return item
    image = item.image
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        shape = None if image is None else image.shape
        item.status, item.message, item.image = 'corrupt', f'no usable image (shape {shape})', None
    elif int(image.max()) <= black_max:
        item.status, item.image = 'black', None
        item.message = (f'black image (max {int(image.max())} <= {black_max}): a safety '
                        'checker or a diverged generator')
    return item


class BaseSource:
    """Interface of image sources.

    Subclasses set :attr:`generative` (whether prompts and seeds are used) and implement
    :meth:`generate`; :meth:`check` runs when the build is set up (paths, settings),
    :meth:`setup` loads models once per process before the first image.
    """

    #: Whether the source uses prompts and seeds (a text-to-image model, the toy renderer).
    generative = True
    #: Whether the source runs a model on the GPU.
    uses_gpu = False

    def check(self) -> None:
        """Fail early, before any work, on missing paths or bad settings."""

    def check_categories(self, categories: Sequence[dict]) -> None:
        """Fail early when the source cannot make images of some of ``categories``."""

    def setup(self) -> None:
        """Load models (called once, before the first :meth:`generate`)."""

    def num_images(self, category: dict, images_per_class: Optional[int]) -> int:
        """How many images class ``category`` has (generators: ``images_per_class``)."""
        if images_per_class is None or images_per_class < 0:
            raise ValueError(f'images_per_class must be an int >= 0 for a generative source, '
                             f'got {images_per_class!r}')
        return int(images_per_class)

    def generate(self, category: dict, indices: Sequence[int], prompts: Sequence[str],
                 seeds: Sequence[int]) -> list[SourceItem]:
        """Make images ``indices`` of ``category`` (one :class:`SourceItem` each, same order)."""
        raise NotImplementedError

    def generate_many(self, requests: Sequence[tuple]) -> list[list[SourceItem]]:
        """:meth:`generate` for several ``(category, indices, prompts, seeds)`` requests; a
        batched generator fills its batches across them."""
        return [self.generate(*request) for request in requests]

    def describe(self) -> dict:
        """Settings recorded in the bank's build info."""
        return {'type': type(self).__name__}


@SOURCES.register_module()
class ToySource(BaseSource):
    """Single-instance images of the toy world (:mod:`xpaste.toy`): no weights needed.

    The category is looked up by *name* among the toy categories, so a bank built from the toy
    LVIS json's categories uses the same renderer as the toy dataset.

    Args:
        size (int): Side of the square images. Defaults to 256.
    """

    def __init__(self, size: int = 256):
        if not isinstance(size, int) or size < 16:
            raise ValueError(f'ToySource.size must be an int >= 16, got {size!r}')
        self.size = size
        self._render = None
        self._lookup = None

    def setup(self) -> None:
        if self._render is not None:
            return
        from xpaste.toy import max_toy_categories, render_single_instance, toy_categories

        # Every shape x colour x texture combination: any toy json's names are among them.
        self._lookup = {c.name: c for c in toy_categories(max_toy_categories(), seed=0)}
        self._render = render_single_instance

    def toy_category(self, category: dict):
        """The toy category named like ``category``.

        Raises:
            ValueError: the name is not a toy category.
        """
        self.setup()
        toy = self._lookup.get(category['name'])
        if toy is None:
            raise ValueError(f'ToySource: {category["name"]!r} is not a toy category (names '
                             f'are colour_texture_shape, e.g. {next(iter(self._lookup))!r}); '
                             'build from the toy LVIS json')
        return toy

    def check_categories(self, categories):
        for category in categories:
            self.toy_category(category)

    def generate(self, category, indices, prompts, seeds):
        toy_category = self.toy_category(category)
        items = []
        for index, prompt, seed in zip(indices, prompts, seeds):
            rng = np.random.default_rng(seed)
            image, _ = self._render(toy_category, rng, size=self.size)
            items.append(
                SourceItem(
                    index=index, image=np.ascontiguousarray(image), prompt=prompt, seed=seed))
        return items

    def describe(self):
        return dict(type='ToySource', size=self.size)


@SOURCES.register_module()
class FolderSource(BaseSource):
    """Images on disk, one folder per class (retrieved or web images).

    The folder of a class is ``root/<name>``, else ``root/<name with spaces>``, else
    ``root/<id>``. Images are taken in sorted file-name order; ``images_per_class`` caps their
    number. An image that cannot be decoded is reported (file named) and skipped; a class without
    a folder or images is reported and gets no images.

    Args:
        root (str): The folder holding the class folders.
        extensions (Sequence[str]): File suffixes taken as images (case-insensitive).
            Defaults to :data:`IMAGE_EXTENSIONS`.
        max_side (int, optional): Larger images are downscaled to this longest side.
            Defaults to 1024.
    """

    generative = False

    def __init__(self,
                 root: str,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 max_side: Optional[int] = 1024):
        if max_side is not None and (not isinstance(max_side, int) or max_side < 16):
            raise ValueError(f'FolderSource.max_side must be None or an int >= 16, '
                             f'got {max_side!r}')
        self.root = root
        self.extensions = tuple(e.lower() for e in extensions)
        self.max_side = max_side
        self._files: dict[int, list[str]] = {}

    def check(self) -> None:
        if not osp.isdir(self.root):
            raise FileNotFoundError(f'FolderSource.root is not a directory: {self.root!r}')

    def class_dir(self, category: dict) -> Optional[str]:
        """The folder of ``category``, None when there is none."""
        name = category['name']
        for candidate in (name, name.replace('_', ' '), str(category['id'])):
            path = osp.join(self.root, candidate)
            if osp.isdir(path):
                return path
        return None

    def files(self, category: dict) -> list[str]:
        """Image files of ``category``, sorted (listed once and cached)."""
        if category['id'] not in self._files:
            folder = self.class_dir(category)
            if folder is None:
                print_log(
                    f'FolderSource: no folder for class {category["name"]!r} under '
                    f'{self.root!r}: the class gets no images',
                    logger='current',
                    level=logging.WARNING)
                files = []
            else:
                files = sorted(
                    osp.join(folder, f) for f in os.listdir(folder)
                    if f.lower().endswith(self.extensions) and not f.startswith('.'))
                if not files:
                    print_log(
                        f'FolderSource: no images in {folder!r} (class '
                        f'{category["name"]!r}, extensions {self.extensions})',
                        logger='current',
                        level=logging.WARNING)
            self._files[category['id']] = files
        return self._files[category['id']]

    def num_images(self, category, images_per_class):
        count = len(self.files(category))
        return count if images_per_class is None else min(count, int(images_per_class))

    def generate(self, category, indices, prompts, seeds):
        files = self.files(category)
        items = []
        for index in indices:
            path = files[index]
            image = read_image(path, self.max_side)
            if image is None:
                items.append(
                    SourceItem(
                        index=index,
                        status='corrupt',
                        file=path,
                        message=f'cannot decode image file {path!r}'))
            else:
                items.append(SourceItem(index=index, image=image, file=path))
        return items

    def describe(self):
        return dict(type='FolderSource', root=self.root, max_side=self.max_side)


def read_image(path: str, max_side: Optional[int] = None) -> Optional[np.ndarray]:
    """Read an image as BGR uint8, downscaled (area interpolation) to ``max_side`` when larger.

    Returns None when the file cannot be read or decoded.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return None
    return resize_max_side(image, max_side)


def resize_max_side(image: np.ndarray, max_side: Optional[int]) -> np.ndarray:
    """Downscale ``image`` so that its longest side is at most ``max_side`` (area interp.)."""
    if max_side is None:
        return image
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@SOURCES.register_module()
class DiffusersSource(BaseSource):
    """Text-to-image generation with diffusers' ``AutoPipelineForText2Image``.

    Any model id or local diffusers folder works (SD 1.5/2.1, SDXL, SD-Turbo, ...). Each image
    has its own seed (a CPU ``torch.Generator`` per image, so images do not depend on the batch
    they are in nor on the GPU type). Images with NaNs and black images (what the safety checker
    returns) are reported and dropped.

    Args:
        model (str): Hub id or local path of a diffusers pipeline.
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
        pipeline_kwargs (dict, optional): More keyword arguments of ``from_pretrained``
            (e.g. ``variant='fp16'``). Defaults to None.
        call_kwargs (dict, optional): More keyword arguments of the pipeline call.
            Defaults to None.
        pipeline (object, optional): An already built pipeline (benchmarks, tests); ``model``
            is then only recorded. Defaults to None.
        black_max (int): Brightest pixel value of a black image. Defaults to 8.
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
                 black_max: int = DEFAULT_BLACK_MAX):
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f'DiffusersSource.num_inference_steps must be an int >= 1, got '
                             f'{num_inference_steps!r}')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'DiffusersSource.batch_size must be an int >= 1, got '
                             f'{batch_size!r}')
        for key, value in (('height', height), ('width', width)):
            if value is not None and (not isinstance(value, int) or value % 8):
                raise ValueError(f'DiffusersSource.{key} must be None or a multiple of 8, '
                                 f'got {value!r}')
        torch_dtype(dtype)  # validates the name
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
        self.pipeline_kwargs = dict(pipeline_kwargs or {})
        self.call_kwargs = dict(call_kwargs or {})
        self.black_max = black_max
        self.pipe = pipeline
        self.local_rank = 0

    def check(self) -> None:
        if self.pipe is None:
            check_model_source(self.model, 'source.model', kind='dir')
        if self.vae is not None:
            check_model_source(self.vae['path'], 'source.vae.path', kind='dir')

    def setup(self) -> None:
        if getattr(self, '_ready', False):
            return
        import diffusers
        import torch
        device = resolve_device(self.device, self.local_rank)
        dtype = torch_dtype(self.dtype)
        if device == 'cpu' and dtype != torch.float32:
            print_log(
                f'DiffusersSource: {self.dtype} on CPU is slow or unsupported; using '
                'float32',
                logger='current',
                level=logging.WARNING)
            dtype = torch.float32
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
            path = check_model_source(self.model, 'source.model', kind='dir')
            self.pipe = _load(
                lambda: diffusers.AutoPipelineForText2Image.from_pretrained(path, **kwargs), path,
                'source.model')
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
                    output_type='np',
                    **kwargs)
            nsfw = getattr(out, 'nsfw_content_detected', None) or [False] * len(batch_prompts)
            for i, (index, prompt,
                    seed) in enumerate(zip(indices[start:stop], batch_prompts, batch_seeds)):
                items.append(self._to_item(out.images[i], bool(nsfw[i]), index, prompt, seed))
        return items

    def _to_item(self, image: np.ndarray, nsfw: bool, index: int, prompt: str,
                 seed: int) -> SourceItem:
        item = SourceItem(index=index, prompt=prompt, seed=seed)
        image = np.asarray(image, dtype=np.float32)
        if not np.isfinite(image).all():
            item.status = 'nan'
            item.message = (f'the generator returned NaN/inf pixels (model {self.model!r}, '
                            f'dtype {self.dtype}): try float32 or bfloat16, or another VAE')
            return item
        if nsfw:
            item.status, item.message = 'black', 'the safety checker flagged the image'
            return item
        rgb = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        item.image = np.ascontiguousarray(rgb[..., ::-1])
        return check_image(item, self.black_max)

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
            safety_checker=self.safety_checker)


def _diffusers_class(module, name: str, what: str):
    cls = getattr(module, str(name), None)
    if not isinstance(cls, type):
        raise ValueError(f'{what}: diffusers has no class {name!r}')
    return cls


def _load(fn, path: str, what: str):
    """Call a loader, turning its errors into one naming the setting and the path."""
    try:
        return fn()
    except (OSError, ValueError) as e:
        raise OSError(f'{what}: cannot load {path!r} ({type(e).__name__}: {e})') from e


def build_source(cfg: dict) -> BaseSource:
    """Build a source from its config dict (``type`` is a registered source)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'source must be a dict with a "type" key, got {cfg!r}')
    return SOURCES.build(dict(cfg))

"""Image sources of a bank build: text-to-image models, image folders, the toy world.

A source turns requests ``(class, index, prompt, seed)`` into images. Every source returns one
:class:`SourceItem` per request, in request order, with a ``status``: ``'ok'`` or the reason the
image is unusable (``'corrupt'``, ``'nan'``, ``'black'``, ``'missing'``), so one bad image is
counted and reported while the rest of the run goes on.

Sources are registered in :data:`SOURCES` and built from the ``source`` dict of a bank config.
Text-to-image models are :class:`~xpaste.builder.diffusers_source.DiffusersSource` (module
:mod:`.diffusers_source`). Heavy libraries (torch, diffusers) are imported only by the sources
that need them.
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

from xpaste.utils.checks import check_number

# DiffusersSource lives in .diffusers_source and the composite sources (MixedSource,
# RoutedSource) in .multi_source, imported by the registry the first time a source is looked up.
SOURCES = Registry(
    'bank image source',
    locations=['xpaste.builder.diffusers_source', 'xpaste.builder.multi_source'])

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
        generator (str): Which of several sources made the image (a composite source's entry
            name, e.g. ``'sd15'``); '' for a single source. Recorded with the image and in the
            bank row's ``source`` (:func:`source_label`).
    """

    index: int
    image: Optional[np.ndarray] = None
    prompt: str = ''
    seed: int = -1
    status: str = 'ok'
    message: str = ''
    file: Optional[str] = None
    generator: str = ''


def source_label(file: str, generator: str = '') -> str:
    """The ``source`` of a bank row: the image file, prefixed ``'<generator>:'`` when a
    composite source says which generator made it (``'sd15:images/00001-x/000003.png'``)."""
    return f'{generator}:{file}' if generator else file


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
        item.message = black_message(int(image.max()), black_max)
    return item


def black_message(peak: int, black_max: int = DEFAULT_BLACK_MAX) -> str:
    """Why an image whose brightest pixel is ``peak`` was dropped as black."""
    return (f'black image (max {peak} <= {black_max}): a safety checker or a diverged '
            'generator')


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
        return check_number('images_per_class', images_per_class, 0, integer=True,
                            hint='a generative source needs a number of images per class')

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

    Without ``gap`` the source is an oracle: each image is one object drawn exactly as the
    dataset draws it, on a plain background (:func:`xpaste.toy.render_single_instance`). With
    ``gap`` it stands for a real text-to-image model
    (:func:`xpaste.toy.gap.render_gapped_instance`): other styles and backgrounds, and a set
    fraction of wrong images (another class, two objects, a truncated object, no object, a black
    image) and near-duplicates. Each item's prompt then ends with a tag naming its defect and
    what was drawn (e.g. ``' [gap: wrong_class drew=blue_dotted_ring]'``, read back with
    :func:`xpaste.toy.gap.parse_gap_tag`), which the bank index keeps.

    Args:
        size (int): Side of the square images. Defaults to 256.
        gap (dict | str, optional): ``'default'`` or a dict of
            :class:`xpaste.toy.gap.GapSettings` fields; None draws oracle images.
            Defaults to None.
    """

    def __init__(self, size: int = 256, gap=None):
        size = check_number('ToySource.size', size, 16, integer=True)
        if gap is not None and size < 32:
            raise ValueError(f'ToySource.size must be >= 32 with a gap, got {size!r}')
        self.size = size
        self.gap = None
        if gap is not None:
            from xpaste.toy.gap import GapSettings
            self.gap = GapSettings.from_config(gap)
        self._render = None
        self._lookup = None

    def setup(self) -> None:
        if self._render is not None:
            return
        from xpaste.toy import max_toy_categories, render_single_instance, toy_categories
        from xpaste.toy.gap import render_gapped_instance

        # Every shape x colour x texture combination: any toy json's names are among them.
        self._lookup = {c.name: c for c in toy_categories(max_toy_categories(), seed=0)}
        self._render = render_single_instance
        self._render_gapped = render_gapped_instance

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

    def world(self) -> tuple:
        """Every toy category (what a wrong-class image of a gapped source is drawn from)."""
        self.setup()
        return tuple(self._lookup.values())

    def check_categories(self, categories):
        for category in categories:
            self.toy_category(category)

    def generate(self, category, indices, prompts, seeds):
        toy_category = self.toy_category(category)
        items = []
        for index, prompt, seed in zip(indices, prompts, seeds):
            if self.gap is None:
                image, _ = self._render(toy_category, np.random.default_rng(seed), size=self.size)
            else:
                out = self._render_gapped(toy_category, seed, self.gap, self.size, self.world())
                image, prompt = out.image, f'{prompt} {out.tag}'
            items.append(
                SourceItem(
                    index=index, image=np.ascontiguousarray(image), prompt=prompt, seed=seed))
        return items

    def describe(self):
        info = dict(type='ToySource', size=self.size)
        if self.gap is not None:
            info['gap'] = self.gap.to_dict()
        return info


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


def build_source(cfg: dict) -> BaseSource:
    """Build a source from its config dict (``type`` is a registered source)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'source must be a dict with a "type" key, got {cfg!r}')
    return SOURCES.build(dict(cfg))

"""The ``generate`` stage: images of every class, from the source.

Output per chunk: ``gen/<class>/cNNNNN.json`` (one record per image: ``index``, ``status``,
``message``, ``prompt``, ``seed``, ``file``, ``height``, ``width``, ``generator``: which entry of a
composite source made it, '' otherwise) and the generated images in
``images/<class>/NNNNNN.<fmt>`` (folder images are read where they are). A GPU source generates
in the main process, filling its batches across chunks; a CPU source generates in the worker
that handles the chunk (:mod:`xpaste.builder.jobs`).
"""
import os.path as osp
from typing import Optional

import cv2
import numpy as np

from xpaste.utils.fileio import atomic_write_bytes, atomic_write_json, read_json
from ..layout import Chunk, image_path, to_builtin
from ..sources import SourceItem, check_image, derive_seed, read_image
from .base import ChunkStage


class GenerateStage(ChunkStage):
    """Makes the images of each chunk (see the module docstring)."""

    name = 'generate'

    def requests(self, chunk: Chunk) -> tuple:
        """``(category, indices, prompts, seeds)`` of a chunk's images (the source's request)."""
        ctx = self.ctx
        cat = ctx.categories[chunk.cat]
        indices = list(range(chunk.start, chunk.stop))
        if ctx.source.generative:
            prompts = [ctx.prompts.prompt(cat['name'], i) for i in indices]
            seeds = [derive_seed(int(ctx.cfg['seed']), cat['id'], i) for i in indices]
        else:
            prompts, seeds = [''] * len(indices), [-1] * len(indices)
        return cat, indices, prompts, seeds


def generate_chunks(source, requests: list) -> list[tuple[list[SourceItem], list[str]]]:
    """Make and check the images of several chunks (``source.generate_many``, which fills a
    batched generator's batches across them).

    Args:
        source: The image source.
        requests (list[tuple]): ``(category, indices, prompts, seeds)`` per chunk.

    Returns:
        list[tuple]: Per chunk, the items (unusable ones with their status) and one message
        per unusable image.
    """
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


def save_generated(items: list[SourceItem], work_dir: str, cat_key: str, image_format: str,
                   quality: int, gen_path: str, meta: dict) -> list:
    """Save the ``'ok'`` images of fresh items and the chunk's record (``meta`` + items).

    Returns:
        list: The images, None for unusable ones.
    """
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
            width=0,
            generator=item.generator)
        if item.status == 'ok':
            rec['height'], rec['width'] = item.image.shape[:2]
            if item.file is None:
                rec['file'] = osp.join('images', cat_key, f'{item.index:06d}.{image_format}')
                atomic_write_bytes(
                    osp.join(work_dir, rec['file']), encode_image(item.image, image_format,
                                                                  quality))
        if item.file is not None:
            rec['file'] = osp.abspath(item.file)
        records.append(rec)
        images.append(item.image if item.status == 'ok' else None)
    atomic_write_json(gen_path, to_builtin(dict(meta, items=records)))
    return images


def load_generated(work_dir: str, gen_path: str, category: dict) -> tuple[list, list]:
    """The records and images of a done chunk (None for unusable images).

    Raises:
        FileNotFoundError: the image of an ``'ok'`` record is missing or unreadable.
    """
    records = read_json(gen_path)['items']
    images = []
    for rec in records:
        image = load_item_image(work_dir, rec) if rec['status'] == 'ok' else None
        if rec['status'] == 'ok' and image is None:
            raise FileNotFoundError(f'image of a finished chunk is missing or unreadable: '
                                    f'{rec["file"]!r} (class {category["name"]!r}); delete '
                                    f'{gen_path!r} to regenerate the chunk')
        images.append(image)
    return records, images


def load_item_image(work_dir: str, item: dict) -> Optional[np.ndarray]:
    """The image of a ``generate`` record at its recorded size; None when unreadable."""
    image = read_image(image_path(work_dir, item['file']))
    if image is None:
        return None
    if image.shape[:2] != (item['height'], item['width']):
        image = cv2.resize(image, (item['width'], item['height']), interpolation=cv2.INTER_AREA)
    return image

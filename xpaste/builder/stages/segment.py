"""The ``segment`` stage: one mask per image and segmenter.

Output per chunk and segmenter: ``seg/<segmenter>/<class>/cNNNNN.npz`` with ``meta`` (json:
fingerprint, class, image range), per image ``area`` (mask / image), ``component`` (share of the
raw mask in its largest component), ``phash`` (64-bit perceptual hash of the cut-out) and
``shape``, and one bit-packed mask ``mask_NNNNN`` per image that has one. The per-image scalars
are arrays of their own, so the filter reads them without decompressing a mask
(:func:`read_mask_scalars`). CPU segmenters run in the workers, GPU segmenters in the main
process (:mod:`xpaste.builder.stream`).
"""
import numpy as np

from xpaste.utils.fileio import atomic_write_npz, read_npz
from ..dist import json_in_npz
from ..filters import perceptual_hash
from ..segmenters import cutout_on_white, largest_component, pack_mask, unpack_mask
from .base import ChunkStage

#: The per-image scalars of a segment output (everything but the masks).
MASK_SCALARS = ('area', 'component', 'phash')


class SegmentStage(ChunkStage):
    """Segments the images of each chunk with every segmenter (see the module docstring);
    ``path``/``done`` take the segmenter name as ``part`` (``done`` without it: all)."""

    name = 'segment'


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
    """Run ``segmenter`` on the usable images, save masks and measurements to ``path``.

    Args:
        path (str): The output file.
        meta (dict): Its record header (:meth:`~xpaste.builder.layout.WorkLayout.meta`).
        segmenter: The segmenter.
        images (list): The chunk's images, None for unusable ones.
        category (dict): Their class.
        largest (bool): Keep the largest connected component of each mask.

    Returns:
        list: The (cleaned) masks, None for unusable images.
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


def empty_masks(masks: list) -> np.ndarray:
    """Per image, whether it has no mask or an empty one."""
    return np.array([m is None or not m.any() for m in masks])


def load_masks(path: str) -> list:
    """The masks of a segment output, None for images without one.

    Raises:
        FileNotFoundError: ``path`` is missing or unreadable.
    """
    data = read_npz(path)
    if data is None:
        raise FileNotFoundError(f'segment output missing or unreadable: {path!r}')
    masks = [None] * len(data['area'])
    for i in range(len(masks)):
        key = f'mask_{i:05d}'
        if key in data:
            masks[i] = unpack_mask(data[key], tuple(data['shape'][i]))
    return masks


def read_mask_scalars(path: str) -> dict:
    """The per-image scalars (:data:`MASK_SCALARS`) of a segment output, without its masks.

    Raises:
        FileNotFoundError: ``path`` is missing or unreadable.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in MASK_SCALARS}
    except (FileNotFoundError, OSError, ValueError, KeyError, EOFError) as e:
        raise FileNotFoundError(f'segment output missing or unreadable: {path!r} ({e}); rerun '
                                'the segment stage') from e

"""Build an instance bank from the annotated instances of a COCO/LVIS-style dataset.

Each selected annotation's polygon/RLE mask is decoded with pycocotools, the image and mask are
cropped to the mask's tight box and stored as a BGRA crop (alpha = mask) with
:class:`~xpaste.bank.BankWriter`; the bank's manifest also gets the dataset's per-class
size statistics. This gives the "copy-paste from the training set" bank, built with the same
format and code path as generated banks.
"""
import hashlib
import json
import os
import os.path as osp
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence

import cv2
import numpy as np
from mmengine.logging import print_log
from pycocotools import mask as mask_utils
from tqdm import tqdm

from xpaste.bank import (COCO_URL_PREFIX, BankWriter, compute_size_stats, finalize_bank,
                         load_annotations, package_versions, select_categories)
from xpaste.utils.checks import check_number

ANNOTATION_SEGMENTER = 'annotation'


def image_relpath(img_info: dict) -> str:
    """Path of an image relative to the image prefix, as mmdet resolves it.

    COCO layout: ``file_name``. LVIS layout (no ``file_name``): ``coco_url`` without
    ``http://images.cocodataset.org/`` (e.g. ``train2017/000000391895.jpg``), like mmdet's
    ``LVISV1Dataset``.

    Args:
        img_info (dict): One entry of the annotation file's ``images``.

    Returns:
        str: Relative image path.
    """
    if img_info.get('file_name'):
        return img_info['file_name']
    if img_info.get('coco_url'):
        return img_info['coco_url'].replace(COCO_URL_PREFIX, '')
    raise ValueError(f'image {img_info.get("id")!r} has neither "file_name" nor "coco_url"')


def segmentation_to_mask(segm, height: int, width: int) -> np.ndarray | None:
    """Decode a COCO polygon list, uncompressed RLE or compressed RLE to an HxW uint8 mask.

    Args:
        segm (list | dict): The annotation's ``segmentation``.
        height (int): Image height.
        width (int): Image width.

    Returns:
        np.ndarray | None: 0/1 uint8 mask, or None for a segmentation without a valid polygon.
    """
    if isinstance(segm, list):
        polys = [p for p in segm if len(p) >= 6]
        if not polys:
            return None
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segm, dict) and isinstance(segm.get('counts'), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    elif isinstance(segm, dict) and 'counts' in segm:
        rle = dict(segm)
        if isinstance(rle['counts'], str):
            rle['counts'] = rle['counts'].encode('ascii')
    else:
        raise ValueError(f'unsupported segmentation of type {type(segm).__name__}')
    return mask_utils.decode(rle)


def select_annotations(data: dict, category_ids: set, images: dict, min_area: float = 64,
                       max_per_class: int | None = None,
                       seed: int = 0) -> tuple[dict[int, list], Counter]:
    """The usable annotations of some classes: non-crowd, with a segmentation, ``area >=
    min_area``, of a known image; with ``max_per_class``, a seeded random subset per class (the
    classes drawn in id order from one generator, annotations in id order).

    Args:
        data (dict): The annotation json.
        category_ids (set): The classes to keep.
        images (dict): ``{image id: image record}`` of the json.
        min_area (float): Smallest ``area`` (pixels). Defaults to 64.
        max_per_class (int, optional): At most this many per class. Defaults to None (all).
        seed (int): Seed of the subset. Defaults to 0.

    Returns:
        tuple[dict, Counter]: ``{category id: [annotation, ...]}`` and the skipped count per
        reason.
    """
    skipped = Counter()
    by_class = defaultdict(list)
    for a in data['annotations']:
        if a.get('category_id') not in category_ids:
            continue
        if a.get('iscrowd', 0):
            skipped['crowd'] += 1
        elif not a.get('segmentation'):
            skipped['no_segmentation'] += 1
        elif float(a.get('area', 0)) < min_area:
            skipped['small'] += 1
        elif a.get('image_id') not in images:
            skipped['unknown_image'] += 1
        else:
            by_class[a['category_id']].append(a)
    rng = np.random.default_rng(seed)
    selected = {}
    for cid in sorted(by_class):
        anns = sorted(by_class[cid], key=lambda a: a['id'])
        if max_per_class is not None and len(anns) > max_per_class:
            keep = np.sort(rng.choice(len(anns), max_per_class, replace=False))
            skipped['max_per_class'] += len(anns) - max_per_class
            anns = [anns[i] for i in keep]
        selected[cid] = anns
    return selected, skipped


def build_bank_from_annotations(ann_file, img_prefix, out_root, *, max_side: int | None = 256,
                                min_area: float = 64, categories: Sequence[str] | None = None,
                                max_per_class: int | None = None, seed: int = 0,
                                image_format: str = 'webp', quality: int = 95,
                                progress: bool = True) -> dict:
    """Build (or rebuild) a bank at ``out_root`` from a dataset's own instances.

    1. Select annotations: non-crowd, with a segmentation, ``area >= min_area``, in
       ``categories``; with ``max_per_class``, a seeded random subset per class.
    2. For each image (in image-id order, a tqdm bar): read it, decode each selected mask with
       pycocotools, store the BGRA crop at the mask's tight box (``max_side`` cap).
    3. Compute per-class size statistics of the whole file and finalize the bank.

    Missing or unreadable images are skipped with one warning listing them. The bank's single
    part (``part-00000``) is overwritten, so a rerun gives the same bank.

    Args:
        ann_file (str): COCO or LVIS annotation JSON.
        img_prefix (str): Folder the image paths are relative to (see :func:`image_relpath`).
        out_root (str): Bank root to write.
        max_side (int, optional): Longest side of stored crops; None keeps full size.
            Defaults to 256.
        min_area (float): Skip annotations whose ``area`` (pixels) is below this. Defaults to 64.
        categories (Sequence[str], optional): Category names to keep. Defaults to all.
        max_per_class (int, optional): Keep at most this many instances per class.
            Defaults to None (all).
        seed (int): Seed of the ``max_per_class`` subsampling. Defaults to 0.
        image_format (str): ``'webp'`` or ``'png'``. Defaults to ``'webp'``.
        quality (int): WebP quality. Defaults to 95.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: Summary: ``num_instances``, ``num_images``, ``skipped`` (reason -> count) and
        ``manifest``.
    """
    ann_file = os.fspath(ann_file)
    img_prefix = os.fspath(img_prefix)
    if min_area < 0:
        raise ValueError(f'min_area must be >= 0, got {min_area!r}')
    max_per_class = check_number('max_per_class', max_per_class, 1, integer=True, allow_none=True)
    if not osp.isdir(img_prefix):
        raise FileNotFoundError(f'image prefix folder not found: {img_prefix}')
    data = load_annotations(ann_file)
    file_cats, _ = select_categories(data, categories, ann_file)
    bank_cats = [{k: c[k] for k in ('id', 'name', 'frequency') if k in c} for c in file_cats]
    cat_name = {c['id']: c['name'] for c in file_cats}
    images = {img['id']: img for img in data['images']}
    by_class, skipped = select_annotations(data, set(cat_name), images, min_area, max_per_class,
                                           seed)
    selected = [a for cid in sorted(by_class) for a in by_class[cid]]
    by_image = defaultdict(list)
    for a in selected:
        by_image[a['image_id']].append(a)

    args = dict(ann_file=osp.abspath(ann_file), img_prefix=osp.abspath(img_prefix),
                max_side=max_side, min_area=min_area, categories=list(categories or []) or None,
                max_per_class=max_per_class, seed=seed, image_format=image_format,
                quality=quality)
    build_info = {
        'source': 'annotations',
        'args': args,
        'config_hash': hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest(),
        'package_versions': package_versions(),
    }
    missing = []
    num_images = 0
    with BankWriter(out_root, bank_cats, part='part-00000', image_format=image_format,
                    quality=quality, max_side=max_side, mode='w',
                    info={'source': 'annotations'}) as writer:
        for img_id in tqdm(sorted(by_image), desc='bank from annotations', unit='img',
                           disable=not progress):
            info = images[img_id]
            rel = image_relpath(info)
            img = cv2.imread(osp.join(img_prefix, rel), cv2.IMREAD_COLOR)
            if img is None:
                missing.append(rel)
                skipped['missing_image'] += len(by_image[img_id])
                continue
            h, w = img.shape[:2]
            if (info.get('height', h), info.get('width', w)) != (h, w):
                warnings.warn(f'{ann_file}: image {rel} is {h}x{w} on disk but '
                              f'{info.get("height")}x{info.get("width")} in the annotations; '
                              'skipped', stacklevel=2)
                skipped['size_mismatch'] += len(by_image[img_id])
                continue
            num_images += 1
            for a in sorted(by_image[img_id], key=lambda a: a['id']):
                mask = segmentation_to_mask(a['segmentation'], h, w)
                if mask is None or not mask.any():
                    skipped['empty_mask'] += 1
                    continue
                x, y, bw, bh = cv2.boundingRect(mask)
                writer.add(img[y:y + bh, x:x + bw], cat_name[a['category_id']],
                           mask=mask[y:y + bh, x:x + bw], segmenter=ANNOTATION_SEGMENTER,
                           source=rel)
        num = writer.num_instances
    if missing:
        warnings.warn(f'{len(missing)} image(s) missing or unreadable under {img_prefix}, '
                      f'e.g. {missing[:5]}', stacklevel=2)
    stats = compute_size_stats(data, categories=[c['name'] for c in bank_cats])
    stats['source'] = osp.basename(ann_file)
    manifest = finalize_bank(out_root, build_info=build_info, size_stats=stats)
    print_log(f'bank {out_root}: {num} instances of {len(bank_cats)} categories from '
              f'{num_images} images; skipped {dict(skipped)}', logger='current')
    return {'num_instances': num, 'num_images': num_images, 'skipped': dict(skipped),
            'manifest': manifest}

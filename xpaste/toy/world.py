"""A small, deterministic LVIS-v1-format world of toy objects.

Layout written by :func:`make_toy_lvis` (what mmdet's ``LVISV1Dataset`` expects: it takes the
image path from ``coco_url`` minus ``http://images.cocodataset.org/``)::

    <out>/annotations/lvis_v1_train.json
    <out>/annotations/lvis_v1_val.json
    <out>/train2017/000000000001.jpg ...
    <out>/val2017/000000000301.jpg ...

The train split is long-tailed: the categories are split into thirds that are meant to become
rare (in 1-10 train images), common (11-100) and frequent (> 100, when there are more than 100
train images). The generator fixes the exact number of train images of each category and then
distributes categories over images, so these counts hold by construction; the ``frequency``
field is computed from the actual train image counts with the LVIS definition. The val split is
balanced: every category is in several val images.
"""
import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
from mmengine.logging import print_log
from pycocotools import mask as mask_utils
from tqdm import tqdm

from xpaste.utils.checks import check_number
from .categories import ToyCategory, toy_categories
from .render import cluttered_background, draw_instance, paste, sample_pose

#: Most instances (and so most distinct categories) in one image.
MAX_INSTANCES_PER_IMAGE = 8
#: An instance is kept only if this fraction of it stays visible ...
MIN_VISIBLE_FRACTION = 0.25
#: ... and at least this many pixels.
MIN_VISIBLE_PIXELS = 48
#: Placement rejects positions that leave an earlier instance with less than this fraction.
_PLACEMENT_KEEP_FRACTION = 0.5
_PLACEMENT_TRIES = 30
_JPEG_QUALITY = 92
_URL_PREFIX = 'http://images.cocodataset.org/'
_SPLITS = {'train': ('train2017', 1), 'val': ('val2017', 2)}


def frequency_from_image_count(image_count: int) -> str:
    """LVIS frequency group of a category from its number of train images.

    Args:
        image_count (int): Number of train images holding the category.

    Returns:
        str: ``'r'`` (at most 10 images), ``'c'`` (11-100) or ``'f'`` (more than 100).
    """
    if image_count <= 10:
        return 'r'
    return 'c' if image_count <= 100 else 'f'


def _shrink(targets: np.ndarray, selected: np.ndarray, floor: int, excess: int) -> int:
    """Lower ``targets[selected]`` towards ``floor`` by about ``excess`` in total, in proportion
    to each one's room above the floor; returns the excess left."""
    room = np.maximum(targets[selected] - floor, 0)
    if excess <= 0 or room.sum() == 0:
        return excess
    keep = max(0.0, 1.0 - excess / room.sum())
    before = int(targets[selected].sum())
    targets[selected] = np.minimum(targets[selected], floor + np.floor(room * keep).astype(int))
    return excess - (before - int(targets[selected].sum()))


def _long_tail_targets(num_classes: int, num_images: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Number of train images of each category, and its intended tier (0 r, 1 c, 2 f).

    A third of the categories (rounded) is rare with 1-10 images, a third frequent with
    101 to 101 + num_images // 10 images (half to all images when there are at most 100), the
    rest common with a log-uniform count in [11, 100]; all capped at ``num_images``. If the
    counts do not fit into the images (at most ``MAX_INSTANCES_PER_IMAGE - 2`` categories per
    image on average), common counts are lowered towards 11 first, then frequent counts towards
    101, then both towards 1 (with a warning, as the tiers are then not all kept).
    """
    n = num_images
    num_rare = round(num_classes / 3)
    num_frequent = round(num_classes / 3)
    tiers = np.array([0] * num_rare + [2] * num_frequent + [1] *
                     (num_classes - num_rare - num_frequent))
    tiers = tiers[rng.permutation(num_classes)]
    targets = np.empty(num_classes, dtype=np.int64)
    for k, tier in enumerate(tiers):
        if tier == 0:
            targets[k] = rng.integers(1, min(10, n) + 1)
        elif tier == 1:
            lo, hi = min(11, n), min(100, n)
            targets[k] = round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
        elif n > 100:
            targets[k] = rng.integers(101, min(n, 101 + n // 10) + 1)
        else:
            targets[k] = rng.integers((n + 1) // 2, n + 1)
    excess = int(targets.sum()) - (MAX_INSTANCES_PER_IMAGE - 2) * n
    excess = _shrink(targets, tiers == 1, min(11, n), excess)
    excess = _shrink(targets, tiers == 2, min(101, n), excess)
    if excess > 0:
        excess = _shrink(targets, tiers != 0, 1, excess)
        print_log(
            f'{num_classes} toy categories do not fit a long tail of rare, common and frequent '
            f'categories into {n} train images; add train images or use fewer categories',
            logger='current',
            level=logging.WARNING)
    return targets, tiers


def _balanced_targets(num_classes: int, num_images: int, rng: np.random.Generator) -> np.ndarray:
    """Number of val images of each category: about 4 categories per image, spread evenly."""
    mean = 4.0 * num_images / num_classes
    targets = np.round(mean * rng.uniform(0.8, 1.2, size=num_classes)).astype(np.int64)
    return np.clip(targets, min(3, num_images), num_images)


def _assign_categories(targets: np.ndarray, num_images: int,
                       rng: np.random.Generator) -> list[list[int]]:
    """Distribute categories over images so that category ``k`` is in exactly ``targets[k]``
    images (when the images have room) and every image holds at least one category.

    Categories are placed from the most to the least frequent, each into distinct images drawn
    with weights ``affinity * free slots`` (a per-image affinity makes some images busy and
    others sparse). Images left empty then take a category from a busy image, which keeps every
    count unchanged.
    """
    members: list[list[int]] = [[] for _ in range(num_images)]
    load = np.zeros(num_images, dtype=np.int64)
    affinity = rng.uniform(0.1, 1.0, size=num_images)
    order = sorted(range(len(targets)), key=lambda k: (-targets[k], rng.random()))
    for k in order:
        weights = affinity * np.maximum(MAX_INSTANCES_PER_IMAGE - load, 0)
        count = min(int(targets[k]), int(np.count_nonzero(weights)))
        for i in rng.choice(num_images, size=count, replace=False, p=weights / weights.sum()):
            members[i].append(k)
            load[i] += 1
    for i in np.flatnonzero(load == 0):
        donors = [j for j in range(num_images) if load[j] >= 2]
        if donors:
            j = donors[int(rng.integers(len(donors)))]
            # Move the most frequent category of the donor: counts stay as they are.
            k = max(members[j], key=lambda c: (targets[c], -c))
            members[j].remove(k)
            load[j] -= 1
        else:  # fewer category slots than images: add the most frequent category.
            k = int(np.argmax(targets))
        members[i].append(k)
        load[i] += 1
    return members


def _bridge_holes(mask: np.ndarray, max_iters: int = 64) -> np.ndarray:
    """Cut a one-pixel channel from each hole of a {0, 1} mask up to the outside.

    COCO/LVIS polygons cannot express holes (the polygons of an instance are merged by union),
    so a ring or an object with an occluder inside it is described by one outline that runs
    around the hole through the channel.
    """
    mask = np.pad(mask, 1)
    for _ in range(max_iters):
        # Labels of the background; 4-connected, the complement of findContours' 8-connected
        # foreground. The padded corner belongs to the outside.
        num, labels, stats, _ = cv2.connectedComponentsWithStats(
            (mask == 0).astype(np.uint8), connectivity=4)
        outside = labels[0, 0]
        holes = [lab for lab in range(1, num) if lab != outside]
        if not holes:
            break
        for lab in holes:
            top = int(stats[lab, cv2.CC_STAT_TOP])
            x = int(np.flatnonzero(labels[top] == lab)[0])
            y = top - 1
            while y >= 0 and mask[y, x]:
                mask[y, x] = 0
                y -= 1
    return mask[1:-1, 1:-1]


def mask_to_polygons(mask: np.ndarray, min_area: float = 2.0) -> list[list[float]]:
    """COCO/LVIS polygons of a binary mask.

    Holes are bridged to the outside first (see :func:`_bridge_holes`), outlines are traced
    with ``cv2.findContours`` and simplified with ``cv2.approxPolyDP`` (0.5 px). Coordinates are
    pixel centres (``x + 0.5``), so every point lies inside the image.

    Args:
        mask (np.ndarray): (H, W) bool or {0, 1} array.
        min_area (float): Outlines enclosing less than this many square pixels are dropped.
            Defaults to 2.0.

    Returns:
        list[list[float]]: Polygons ``[x0, y0, x1, y1, ...]``, each with at least 3 points.
    """
    bridged = _bridge_holes(np.asarray(mask).astype(np.uint8))
    contours, _ = cv2.findContours(bridged, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, 0.5, True)
        if len(contour) < 3 or cv2.contourArea(contour) < min_area:
            continue
        polygons.append((contour.reshape(-1).astype(np.float64) + 0.5).tolist())
    return polygons


def _compose_scene(categories: list[ToyCategory], labels: list[int], required: list[bool],
                   height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """Draw the instances of one image on a cluttered background.

    Each instance is placed where it leaves every earlier instance at least half visible; when
    30 positions fail the object is shrunk (3 times), and if it still does not fit it is skipped
    unless ``required`` (then the least damaging position is used). Visible masks are what the
    later instances leave of each object; instances left with less than
    ``MIN_VISIBLE_FRACTION`` of their area or ``MIN_VISIBLE_PIXELS`` are dropped.

    Returns:
        tuple: The uint8 BGR image and a list of ``(label, visible mask)`` in drawing order.
    """
    image = cluttered_background(height, width, rng)
    owner = np.full((height, width), -1, dtype=np.int64)
    full_area: list[int] = []
    visible: list[int] = []
    placed_labels: list[int] = []
    short = min(height, width)
    for label, must in zip(labels, required):
        category = categories[label]
        relative = np.clip(category.size * np.exp(rng.normal(0, 0.2)), 0.08, 0.45)
        extent = max(12.0, relative * short)
        pose = sample_pose(rng)
        best = None  # (damage, x, y, bgr, mask)
        for _ in range(4):
            bgr, mask = draw_instance(category, extent, pose=pose)
            h, w = mask.shape
            for _ in range(_PLACEMENT_TRIES):
                x = int(rng.integers(0, width - w + 1))
                y = int(rng.integers(0, height - h + 1))
                covered = owner[y:y + h, x:x + w][mask]
                lost = np.bincount(covered[covered >= 0], minlength=len(visible))
                left = np.asarray(visible, dtype=np.float64) - lost
                need = np.maximum(_PLACEMENT_KEEP_FRACTION * np.asarray(full_area, np.float64),
                                  MIN_VISIBLE_PIXELS)
                damage = float(np.max(need - left, initial=-np.inf))
                if best is None or damage < best[0]:
                    best = (damage, x, y, bgr, mask)
                if damage <= 0:
                    break
            if best[0] <= 0:
                break
            extent *= 0.8
        damage, x, y, bgr, mask = best
        if damage > 0 and not must:
            continue
        h, w = mask.shape
        window = owner[y:y + h, x:x + w]
        covered = window[mask]
        lost = np.bincount(covered[covered >= 0], minlength=len(visible))
        for j in np.flatnonzero(lost):
            visible[j] -= int(lost[j])
        window[mask] = len(visible)
        paste(image, bgr, mask, x, y)
        full_area.append(int(mask.sum()))
        visible.append(full_area[-1])
        placed_labels.append(label)
    instances = []
    for j, label in enumerate(placed_labels):
        if visible[j] < max(MIN_VISIBLE_FRACTION * full_area[j], MIN_VISIBLE_PIXELS):
            continue
        instances.append((label, owner == j))
    return image, instances


def _annotate(mask: np.ndarray) -> dict | None:
    """Polygons, bbox and area of a visible mask, or None if nothing drawable is left."""
    ys, xs = np.nonzero(mask)
    y0, x0 = int(ys.min()), int(xs.min())
    crop = mask[y0:ys.max() + 1, x0:xs.max() + 1]
    polygons = [[v + (x0 if i % 2 == 0 else y0) for i, v in enumerate(poly)]
                for poly in mask_to_polygons(crop)]
    if not polygons:
        return None
    height, width = mask.shape
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    coords = np.concatenate([np.asarray(p).reshape(-1, 2) for p in polygons])
    (bx0, by0), (bx1, by1) = coords.min(axis=0), coords.max(axis=0)
    return dict(
        segmentation=polygons,
        area=int(mask_utils.area(rle)),
        bbox=[float(bx0), float(by0), float(bx1 - bx0),
              float(by1 - by0)])


def _generate_split(split: str, categories: list[ToyCategory], num_images: int, first_image_id: int,
                    first_ann_id: int, out_dir: Path, min_size: int, max_size: int, seed: int,
                    progress: bool) -> tuple[list, list]:
    """Render and write the images of one split; returns (images, annotations)."""
    folder, split_code = _SPLITS[split]
    rng = np.random.default_rng([seed, split_code, 0])
    num_classes = len(categories)
    if split == 'train':
        targets, _ = _long_tail_targets(num_classes, num_images, rng)
    else:
        targets = _balanced_targets(num_classes, num_images, rng)
    members = _assign_categories(targets, num_images, rng)
    image_dir = out_dir / folder
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = first_ann_id
    for index in tqdm(range(num_images), desc=f'toy {split}', disable=not progress):
        image_rng = np.random.default_rng([seed, split_code, 1, index])
        present = members[index]
        free = MAX_INSTANCES_PER_IMAGE - len(present)
        extra = [
            present[int(image_rng.integers(len(present)))]
            for _ in range(image_rng.binomial(free, 0.2))
        ]
        labels = present + extra
        required = [True] * len(present) + [False] * len(extra)
        order = image_rng.permutation(len(labels))
        height = int(image_rng.integers(min_size, max_size + 1))
        width = int(image_rng.integers(min_size, max_size + 1))
        image, instances = _compose_scene(categories, [labels[i] for i in order],
                                          [required[i] for i in order], height, width, image_rng)
        image_id = first_image_id + index
        file_name = f'{folder}/{image_id:012d}.jpg'
        ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f'could not encode {file_name!r} as JPEG')
        (out_dir / file_name).write_bytes(encoded.tobytes())
        labels_here = set()
        for label, mask in instances:
            record = _annotate(mask)
            if record is None:
                continue
            labels_here.add(label)
            annotations.append(
                dict(
                    id=ann_id,
                    image_id=image_id,
                    category_id=categories[label].id,
                    iscrowd=0,
                    **record))
            ann_id += 1
        absent = [c.id for i, c in enumerate(categories) if i not in labels_here]
        num_neg = min(len(absent), int(image_rng.integers(2, 6)))
        negatives = sorted(int(c) for c in image_rng.choice(absent, size=num_neg, replace=False))
        images.append(
            dict(
                id=image_id,
                file_name=file_name,
                width=width,
                height=height,
                coco_url=_URL_PREFIX + file_name,
                flickr_url=_URL_PREFIX + file_name,
                license=1,
                date_captured='2023-01-01 00:00:00',
                neg_category_ids=negatives,
                not_exhaustive_category_ids=[]))
    return images, annotations


def _write_json(path: Path, data: dict) -> None:
    """Write JSON atomically with sorted keys and fixed separators (byte-reproducible)."""
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(data, sort_keys=True, separators=(',', ':')), encoding='utf-8')
    os.replace(tmp, path)


def make_toy_lvis(out_dir: str | os.PathLike = 'data/toy_lvis',
                  num_classes: int = 30,
                  num_train: int = 300,
                  num_val: int = 100,
                  min_size: int = 256,
                  max_size: int = 384,
                  seed: int = 0,
                  progress: bool = False) -> dict[str, str]:
    """Generate the toy LVIS world: JPEG images and LVIS v1 train/val annotation files.

    1. Choose ``num_classes`` categories (:func:`toy_categories`).
    2. Train split: fix each category's number of train images along a long tail (a third
       rare, a third common, a third frequent at the default sizes) and distribute the
       categories over images (1-8 instances per image, repeats of a present category allowed).
       Val split: every category in several images.
    3. Draw each image: cluttered background, objects placed with limited occlusion; the visible
       mask of each object is what later objects leave of it, tiny leftovers are dropped.
    4. Annotate: polygons of the visible masks, tight bbox, area from pycocotools, LVIS image
       fields (``neg_category_ids``: 2-5 categories absent from the image;
       ``not_exhaustive_category_ids`` is empty since every instance is annotated).
    5. Categories block (same in both files): ``image_count``, ``instance_count`` and
       ``frequency`` from the train annotations as written.

    Same arguments give byte-identical files. Image ids are 1..num_train for train and follow
    on for val; annotation ids are unique across both files.

    Args:
        out_dir (str | PathLike): Output root. Defaults to ``'data/toy_lvis'``.
        num_classes (int): Number of categories. Defaults to 30.
        num_train (int): Number of train images, >= 1. Defaults to 300.
        num_val (int): Number of val images, >= 1. Defaults to 100.
        min_size (int): Smallest image side, >= 64. Defaults to 256.
        max_size (int): Largest image side, >= min_size. Defaults to 384.
        seed (int): Seed of everything. Defaults to 0.
        progress (bool): Show tqdm progress bars. Defaults to False.

    Returns:
        dict[str, str]: Paths written: ``root``, ``train_ann``, ``val_ann``,
        ``train_img_dir``, ``val_img_dir``.
    """
    num_train = check_number('num_train', num_train, 1, integer=True)
    num_val = check_number('num_val', num_val, 1, integer=True)
    min_size = check_number('min_size', min_size, 64, integer=True)
    max_size = check_number('max_size', max_size, 64, integer=True)
    if max_size < min_size:
        raise ValueError(f'max_size must be >= min_size ({min_size}), got {max_size!r}')
    seed = check_number('seed', seed, 0, integer=True)
    categories = toy_categories(num_classes, seed)
    out = Path(out_dir)
    (out / 'annotations').mkdir(parents=True, exist_ok=True)
    common = dict(
        categories=categories,
        out_dir=out,
        min_size=min_size,
        max_size=max_size,
        seed=seed,
        progress=progress)
    train_images, train_anns = _generate_split(
        'train', num_images=num_train, first_image_id=1, first_ann_id=1, **common)
    val_images, val_anns = _generate_split(
        'val',
        num_images=num_val,
        first_image_id=num_train + 1,
        first_ann_id=len(train_anns) + 1,
        **common)
    image_sets = {c.id: set() for c in categories}
    instance_counts = {c.id: 0 for c in categories}
    for ann in train_anns:
        image_sets[ann['category_id']].add(ann['image_id'])
        instance_counts[ann['category_id']] += 1
    category_block = []
    for category in categories:
        image_count = len(image_sets[category.id])
        category_block.append(
            dict(
                category.to_lvis(),
                image_count=image_count,
                instance_count=instance_counts[category.id],
                frequency=frequency_from_image_count(image_count)))
    info = dict(
        description='xpaste toy LVIS world: shape x colour x texture objects',
        version='1.0',
        year=2023,
        contributor='xpaste',
        date_created='2023-01-01',
        url='',
        generator=dict(
            num_classes=num_classes,
            num_train=num_train,
            num_val=num_val,
            min_size=min_size,
            max_size=max_size,
            seed=seed))
    licenses = [
        dict(
            id=1,
            name='Attribution 4.0 International',
            url='https://creativecommons.org/licenses/by/4.0/')
    ]
    paths = dict(
        root=str(out),
        train_ann=str(out / 'annotations' / 'lvis_v1_train.json'),
        val_ann=str(out / 'annotations' / 'lvis_v1_val.json'),
        train_img_dir=str(out / _SPLITS['train'][0]),
        val_img_dir=str(out / _SPLITS['val'][0]))
    for key, images, anns in (('train_ann', train_images, train_anns), ('val_ann', val_images,
                                                                        val_anns)):
        _write_json(
            Path(paths[key]),
            dict(
                info=info,
                licenses=licenses,
                images=images,
                annotations=anns,
                categories=category_block))
    groups = {f: sum(c['frequency'] == f for c in category_block) for f in 'rcf'}
    print_log(
        f'toy LVIS world in {out}: {len(categories)} categories '
        f'(r/c/f = {groups["r"]}/{groups["c"]}/{groups["f"]}), '
        f'train {len(train_images)} images / {len(train_anns)} instances, '
        f'val {len(val_images)} images / {len(val_anns)} instances',
        logger='current')
    return paths

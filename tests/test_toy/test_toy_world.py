import hashlib
import importlib.util
import json
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from lvis import LVIS
from pycocotools import mask as mask_utils

from xpaste.toy import (frequency_from_image_count, make_toy_lvis, mask_to_polygons, toy_categories)
from xpaste.toy.world import (MAX_INSTANCES_PER_IMAGE, MIN_VISIBLE_PIXELS, _assign_categories,
                              _compose_scene, _long_tail_targets)

SMALL = dict(num_classes=12, num_train=60, num_val=20, min_size=128, max_size=192)
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope='module')
def small_world(tmp_path_factory):
    return make_toy_lvis(tmp_path_factory.mktemp('small') / 'toy', seed=0, **SMALL)


@pytest.fixture(scope='module')
def default_world(tmp_path_factory):
    return make_toy_lvis(tmp_path_factory.mktemp('default') / 'toy')


def _load_cli():
    spec = importlib.util.spec_from_file_location('make_toy_lvis_cli',
                                                  ROOT / 'tools' / 'data' / 'make_toy_lvis.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def _load(path):
    return json.loads(Path(path).read_text())


def _hashes(root):
    root = Path(root)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


def _train_counts(data):
    images, instances = defaultdict(set), Counter()
    for ann in data['annotations']:
        images[ann['category_id']].add(ann['image_id'])
        instances[ann['category_id']] += 1
    return {k: len(v) for k, v in images.items()}, instances


@pytest.mark.parametrize('frequency,counts', [('r', [0, 1, 10]), ('c', [11, 100]),
                                              ('f', [101, 5000])])
def test_frequency_from_image_count(frequency, counts):
    assert all(frequency_from_image_count(n) == frequency for n in counts)


def test_layout_and_lvis_api(small_world):
    root = Path(small_world['root'])
    assert small_world['train_ann'] == str(root / 'annotations' / 'lvis_v1_train.json')
    assert small_world['val_ann'] == str(root / 'annotations' / 'lvis_v1_val.json')
    ids = set()
    for split, folder, num in (('train', 'train2017', 60), ('val', 'val2017', 20)):
        api = LVIS(small_world[f'{split}_ann'])
        assert len(api.get_img_ids()) == num and len(api.get_cat_ids()) == 12
        assert len(api.get_ann_ids()) > num
        for img in api.load_imgs(api.get_img_ids()):
            relative = img['coco_url'].replace('http://images.cocodataset.org/', '')
            assert relative == img['file_name'] == f'{folder}/{img["id"]:012d}.jpg'
            image = cv2.imread(str(root / relative))
            assert image.shape == (img['height'], img['width'], 3)
            assert 128 <= img['height'] <= 192 and 128 <= img['width'] <= 192
            for key in ('license', 'flickr_url', 'date_captured', 'neg_category_ids',
                        'not_exhaustive_category_ids'):
                assert key in img
            ids.add(img['id'])
    assert ids == set(range(1, 81))  # image ids are unique across the splits


def test_categories_block_follows_train_split(small_world):
    train, val = _load(small_world['train_ann']), _load(small_world['val_ann'])
    assert train['categories'] == val['categories']
    image_counts, instance_counts = _train_counts(train)
    for cat in train['categories']:
        assert cat['image_count'] == image_counts.get(cat['id'], 0)
        assert cat['instance_count'] == instance_counts[cat['id']]
        assert cat['frequency'] == frequency_from_image_count(cat['image_count'])
        assert cat['image_count'] >= 1
        assert cat['synonyms'][0] == cat['name'] and cat['def'] and cat['synset']
    assert [c['id'] for c in train['categories']] == list(range(1, 13))
    # with 60 train images there are rare and common but no frequent categories
    assert {c['frequency'] for c in train['categories']} == {'r', 'c'}


def test_every_category_in_val_several_times(small_world):
    val = _load(small_world['val_ann'])
    images = defaultdict(set)
    for ann in val['annotations']:
        images[ann['category_id']].add(ann['image_id'])
    assert sorted(images) == list(range(1, 13))
    assert min(len(v) for v in images.values()) >= 3


@pytest.mark.parametrize('split', ['train', 'val'])
def test_annotations_are_valid(small_world, split):
    data = _load(small_world[f'{split}_ann'])
    images = {img['id']: img for img in data['images']}
    per_image = defaultdict(list)
    for ann in data['annotations']:
        img = images[ann['image_id']]
        h, w = img['height'], img['width']
        assert ann['iscrowd'] == 0 and ann['segmentation']
        coords = []
        for poly in ann['segmentation']:
            assert len(poly) >= 6 and len(poly) % 2 == 0
            xy = np.asarray(poly).reshape(-1, 2)
            assert (xy >= 0).all() and (xy[:, 0] <= w).all() and (xy[:, 1] <= h).all()
            coords.append(xy)
        coords = np.concatenate(coords)
        x, y, bw, bh = ann['bbox']
        np.testing.assert_allclose([x, y, x + bw, y + bh],
                                   [*coords.min(axis=0), *coords.max(axis=0)],
                                   atol=1e-6)
        rle = mask_utils.merge(mask_utils.frPyObjects(ann['segmentation'], h, w))
        assert ann['area'] == int(mask_utils.area(rle)) >= 20
        per_image[ann['image_id']].append((ann['category_id'], mask_utils.decode(rle)))
    for image_id, img in images.items():
        anns = per_image[image_id]
        assert 1 <= len(anns) <= 8
        present = {c for c, _ in anns}
        assert img['neg_category_ids'] and not present & set(img['neg_category_ids'])
        # visible masks of one image do not overlap (occluded parts were removed)
        stack = np.stack([m for _, m in anns]).sum(axis=0)
        assert (stack > 1).sum() <= 2 * len(anns)
    assert len({a['id'] for a in data['annotations']}) == len(data['annotations'])


def test_same_seed_same_bytes_other_seed_differs(small_world, tmp_path):
    again = make_toy_lvis(tmp_path / 'again', seed=0, **SMALL)
    other = make_toy_lvis(tmp_path / 'other', seed=1, **SMALL)
    reference = _hashes(small_world['root'])
    assert len(reference) == 2 + 60 + 20
    assert _hashes(again['root']) == reference
    other_hashes = _hashes(other['root'])
    assert other_hashes.keys() == reference.keys()
    differing = [k for k in reference if other_hashes[k] != reference[k]]
    assert len(differing) == len(reference)


def test_default_world_long_tail(default_world):
    train, val = _load(default_world['train_ann']), _load(default_world['val_ann'])
    assert len(train['images']) == 300 and len(val['images']) == 100
    image_counts, _ = _train_counts(train)
    groups = Counter(c['frequency'] for c in train['categories'])
    assert len(train['categories']) == 30
    assert all(7 <= groups[f] <= 13 for f in 'rcf'), groups
    for cat in train['categories']:
        assert cat['frequency'] == frequency_from_image_count(image_counts[cat['id']])
        if cat['frequency'] == 'r':
            assert 1 <= image_counts[cat['id']] <= 10
    val_images = defaultdict(set)
    for ann in val['annotations']:
        val_images[ann['category_id']].add(ann['image_id'])
    assert len(val_images) == 30 and min(len(v) for v in val_images.values()) >= 5
    per_image = Counter(a['image_id'] for a in train['annotations'])
    assert set(per_image) == {img['id'] for img in train['images']}
    assert 1 <= min(per_image.values()) and max(per_image.values()) <= 8


def test_mask_to_polygons_bridges_holes():
    mask = np.zeros((60, 80), dtype=np.uint8)
    cv2.circle(mask, (30, 30), 25, 1, -1)
    cv2.circle(mask, (30, 30), 12, 0, -1)  # a ring
    mask[5:15, 60:75] = 1  # a second component
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 2
    decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, 60, 80)))
    assert decoded[30, 30] == 0 and decoded[30, 8] == 1 and decoded[10, 67] == 1
    iou = (decoded & mask).sum() / (decoded | mask).sum()
    assert iou > 0.85
    assert mask_to_polygons(np.zeros((5, 5), bool)) == []


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_train=0), 'num_train'),
    (dict(num_val=-1), 'num_val'),
    (dict(min_size=32), 'min_size'),
    (dict(min_size=200, max_size=100), 'max_size'),
    (dict(num_classes=0), 'num_classes'),
    (dict(seed=-3), 'seed'),
])
def test_make_toy_lvis_validates(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_toy_lvis(tmp_path / 'bad', **kwargs)


def test_cli(tmp_path):
    cli = _load_cli()
    paths = cli.main([
        '--out',
        str(tmp_path / 'cli'), '--num-classes', '5', '--num-train', '12', '--num-val', '4',
        '--min-size', '96', '--max-size', '128', '--seed', '2'
    ])
    train = _load(paths['train_ann'])
    assert len(train['categories']) == 5 and len(train['images']) == 12
    assert len(_load(paths['val_ann'])['images']) == 4
    assert len(list((tmp_path / 'cli' / 'val2017').glob('*.jpg'))) == 4
    assert train['info']['generator']['seed'] == 2


@pytest.mark.parametrize('num_classes,num_images', [(30, 300), (12, 60), (3, 50)])
def test_assign_categories_meets_targets(num_classes, num_images):
    rng = np.random.default_rng(0)
    targets, _ = _long_tail_targets(num_classes, num_images, rng)
    members = _assign_categories(targets, num_images, rng)
    assert all(1 <= len(m) <= MAX_INSTANCES_PER_IMAGE and len(set(m)) == len(m) for m in members)
    counts = Counter(k for m in members for k in m)
    if targets.sum() >= num_images:  # enough category slots: every count is exact
        assert [counts[k] for k in range(num_classes)] == targets.tolist()


def test_crowded_scene_drops_hidden_instances():
    categories = toy_categories(8, seed=0)
    kept = []
    for seed in range(5):
        image, instances = _compose_scene(categories, list(range(8)), [True] * 8, 32, 32,
                                          np.random.default_rng(seed))
        assert image.shape == (32, 32, 3)
        masks = np.stack([m for _, m in instances])
        assert (masks.sum(axis=(1, 2)) >= MIN_VISIBLE_PIXELS).all()
        assert masks.sum(axis=0).max() == 1  # visible masks are disjoint
        kept.append(len(instances))
    assert min(kept) < 8 and max(kept) > 1


def test_cli_defaults_are_the_library_defaults():
    cli = _load_cli()
    args = cli.parse_args([])
    assert (args.out, args.num_classes, args.num_train, args.num_val, args.min_size, args.max_size,
            args.seed) == ('data/toy_lvis', 30, 300, 100, 256, 384, 0)

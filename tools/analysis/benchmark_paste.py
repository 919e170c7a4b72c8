"""Speed of the XPaste transform against mmdet's CopyPaste, on one CPU thread.

What is compared (same process, ``cv2.setNumThreads(1)``, ``torch.set_num_threads(1)``):

- destination: a 1024x1024 uint8 BGR image holding ``--num-instances`` (30) instances, masks as
  ``BitmapMasks`` (uint8, full frame), boxes as ``HorizontalBoxes``;
- **XPaste**: pastes exactly ``--num-pastes`` (20) instances of a synthetic bank (textured
  ellipses and polygons, crops of 64-256 px, WebP, written with ``BankWriter``), size model
  ``'range'`` so that ``sqrt(mask area)`` is 56-225 px, aspect jitter 0.2, flip, hard blend;
  *warm*: every crop already decoded in the bank's cache; *cold*: ``cache_size=0`` (every
  paste reads and decodes its WebP crop);
- **CopyPaste** (``selected=False``): pastes all instances of a second 1024x1024 image holding
  exactly ``--num-pastes`` instances of the same size distribution (ellipses/polygons, bounding
  boxes 64-256 px), given as ``mix_results`` the way ``MultiImageMixDataset`` prepares it. The
  second image's loading is not timed (nor is any decode for CopyPaste).

Only ``transform(results)`` is timed; the input dicts are rebuilt before each repetition. The
figures are medians. Also measured: XPaste at 0, 5, 20, 50 pastes onto 30 instances, 20 pastes
onto 100 instances (and CopyPaste for the latter), and the index memory of a synthetic bank of
1.2M instances (``BankReader.index_nbytes``), plus the sampler arrays ``InstanceBank`` builds.

Example::

    python tools/analysis/benchmark_paste.py
    python tools/analysis/benchmark_paste.py --json
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import tempfile
import time

import cv2
import numpy as np
import torch
from mmengine.logging import MMLogger
from tqdm import tqdm

from xpaste.utils.stdio import stdout_to_stderr

CROP_SIDE = (1 / 16, 1 / 4)  # box side of the synthetic instances / image side: 64-256 px at 1024
SIZE_RANGE = (0.055, 0.22)  # XPaste size model: sqrt(area) = 56 .. 225 px at 1024x1024


def crop_sides(size: int) -> tuple:
    """(min, max) box side in px of the synthetic instances for a ``size`` x ``size`` image."""
    return max(4, round(CROP_SIDE[0] * size)), max(5, round(CROP_SIDE[1] * size))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark XPaste against mmdet CopyPaste '
                                     '(one CPU thread).')
    parser.add_argument('--size', type=int, default=1024, help='image side (px)')
    parser.add_argument(
        '--num-instances', type=int, default=30, help='instances already in the destination image')
    parser.add_argument('--num-pastes', type=int, default=20, help='instances pasted')
    parser.add_argument('--repeats', type=int, default=30, help='repetitions per figure')
    parser.add_argument(
        '--bank-size',
        type=int,
        default=200,
        help='instances of the synthetic bank used for pasting')
    parser.add_argument(
        '--index-instances',
        type=int,
        default=1_200_000,
        help='instances of the synthetic bank whose index memory is measured '
        '(0 skips it)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--work-dir',
        default=None,
        help='where the synthetic banks are written (default: a temporary '
        'folder, removed at the end)')
    parser.add_argument(
        '--json',
        action='store_true',
        help='print one JSON object with all figures instead of a table, as the only output on '
        'stdout (logs go to stderr)')
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------ data
def random_shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An (h, w) uint8 0/1 mask: a filled ellipse or polygon touching most of the box."""
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        cv2.ellipse(mask, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)),
                    float(rng.uniform(0, 20)), 0, 360, 1, -1)
    else:
        k = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.6, 1.0, k)
        pts = np.stack([(w - 1) / 2 * (1 + rad * np.cos(ang)),
                        (h - 1) / 2 * (1 + rad * np.sin(ang))], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def textured(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour texture (compresses like a photo, not like noise)."""
    small = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(0, 24, (h, w, 3), dtype=np.uint8)
    return cv2.add(img, noise)


def write_synthetic_bank(root: str, n: int, categories: list, sides: tuple, seed: int = 0) -> str:
    """Write ``n`` textured instances (crop sides in ``sides``, WebP) with BankWriter."""
    from xpaste.bank import BankWriter, finalize_bank
    rng = np.random.default_rng(seed)
    with BankWriter(root, categories=categories, image_format='webp', mode='w') as writer:
        for i in tqdm(range(n), desc='synthetic bank', leave=False):
            h, w = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
            alpha = random_shape_mask(rng, h, w) * np.uint8(255)
            bgra = np.dstack([textured(rng, h, w), alpha])
            writer.add(bgra, categories[i % len(categories)]['name'])
    finalize_bank(root)
    return root


def make_scene(rng: np.random.Generator, size: int, n: int, num_classes: int) -> dict:
    """A results dict as after LoadAnnotations/Resize: image, n instances, tight boxes."""
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    masks = np.zeros((n, size, size), np.uint8)
    boxes = np.zeros((n, 4), np.float32)
    sides = crop_sides(size)
    for k in range(n):
        h, w = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
        y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
        masks[k, y:y + h, x:x + w] = random_shape_mask(rng, h, w)
        ys, xs = np.nonzero(masks[k])
        boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return dict(
        img=textured(rng, size, size),
        img_shape=(size, size),
        gt_bboxes=HorizontalBoxes(boxes),
        gt_bboxes_labels=rng.integers(0, num_classes, n).astype(np.int64),
        gt_ignore_flags=np.zeros(n, bool),
        gt_masks=BitmapMasks(masks, size, size))


def fresh(results: dict) -> dict:
    """A deep copy of a results dict (arrays copied), made outside the timed region."""
    return copy.deepcopy(results)


# ------------------------------------------------------------------------------------ timing
def median_ms(fn, make_input, repeats: int, desc: str, seed0: int = 0) -> float:
    """Median wall time (ms) of ``fn(make_input())`` over ``repeats`` runs (input not timed)."""
    times = []
    for r in tqdm(range(repeats), desc=desc, leave=False):
        data = make_input()
        np.random.seed(seed0 + r)
        t0 = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def measure_index_memory(root: str, n: int, categories: list) -> dict:
    """Index bytes per instance of a synthetic ``n``-instance bank (one shared stored crop)."""
    from xpaste.bank import INDEX_COLUMNS, commit_part, empty_index, encode_bgra, finalize_bank
    from xpaste.datasets.instance_bank import InstanceBank
    part = 'part-00000'
    pdir = osp.join(root, 'parts', part)
    os.makedirs(pdir, exist_ok=True)
    blob = encode_bgra(np.full((8, 8, 4), 255, np.uint8))
    with open(osp.join(pdir, 'shard-00000.bin'), 'wb') as f:
        f.write(blob)
    cols = empty_index(n)
    cols.pop('part')
    cols['category'][:] = np.arange(n) % len(categories)
    cols['length'][:] = len(blob)
    cols['height'][:] = 8
    cols['width'][:] = 8
    cols['area'][:] = 64
    commit_part(root, part, categories, cols, [{'file': 'shard-00000.bin', 'bytes': len(blob)}])
    finalize_bank(root)
    bank = InstanceBank(root)
    reader = bank.reader  # opens the index and builds the sampler arrays
    sampler = sum(
        a.nbytes for a in (bank._ids, bank._counts, bank._offsets, bank._classes, bank._cdf)
        if a is not None)
    return dict(
        index_instances=len(reader),
        index_bytes=reader.index_nbytes,
        index_bytes_per_instance=reader.index_nbytes / len(reader),
        index_columns=len(INDEX_COLUMNS),
        sampler_bytes_per_instance=sampler / len(reader))


def run_benchmark(args) -> dict:
    """Run every measurement and return the figures."""
    from mmdet.datasets.transforms import CopyPaste

    import xpaste.datasets  # noqa: F401  (registers the bank and the transform)
    from xpaste.datasets.instance_bank import InstanceBank
    from xpaste.datasets.transforms import XPaste

    # the banks' INFO messages (no size statistics: irrelevant with size_mode='range') would mix
    # with the figures on stdout
    MMLogger.get_instance('benchmark_paste', log_level='WARNING')
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    size, n_inst, n_paste = args.size, args.num_instances, args.num_pastes
    categories = [{'id': i + 1, 'name': f'class_{i:03d}'} for i in range(20)]
    classes = [c['name'] for c in categories]
    tmp = tempfile.TemporaryDirectory() if args.work_dir is None else None
    work = tmp.name if tmp is not None else args.work_dir
    try:
        bank_root = write_synthetic_bank(
            osp.join(work, 'bank'), args.bank_size, categories, crop_sides(size), args.seed)
        rng = np.random.default_rng(args.seed)
        dst = make_scene(rng, size, n_inst, len(classes))
        dst100 = make_scene(rng, size, 100, len(classes))
        src = make_scene(rng, size, n_paste, len(classes))

        def xpaste(num, cache_size=2048):
            bank = InstanceBank(bank_root, cache_size=cache_size)
            if cache_size:
                for i in range(len(bank)):
                    bank.load(i)
            return XPaste(
                bank,
                classes=classes,
                num_pastes=num,
                size_mode='range',
                size_range=SIZE_RANGE,
                aspect_jitter=0.2,
                flip=True,
                blend='hard')

        out = dict(
            image_size=size,
            num_instances=n_inst,
            num_pastes=n_paste,
            repeats=args.repeats,
            threads=1,
            pasted_sqrt_area_px=[round(SIZE_RANGE[0] * size),
                                 round(SIZE_RANGE[1] * size)],
            crop_side_px=list(crop_sides(size)),
            bank_instances=args.bank_size)
        r = args.repeats
        warm = xpaste(n_paste)
        cold = xpaste(n_paste, cache_size=0)
        out['xpaste_warm_ms'] = median_ms(warm, lambda: fresh(dst), r, 'xpaste warm')
        out['xpaste_cold_ms'] = median_ms(cold, lambda: fresh(dst), r, 'xpaste cold')
        cp = CopyPaste(selected=False)

        def cp_input(d=dst):
            data = fresh(d)
            data['mix_results'] = [fresh(src)]
            return data

        out['copypaste_ms'] = median_ms(cp, cp_input, r, 'copypaste')
        out['ratio_warm'] = out['xpaste_warm_ms'] / out['copypaste_ms']
        out['ratio_cold'] = out['xpaste_cold_ms'] / out['copypaste_ms']
        out['xpaste_warm_ms_by_pastes'] = {
            str(k): median_ms(xpaste(k), lambda: fresh(dst), r, f'xpaste {k} pastes')
            for k in (0, 5, 20, 50)
        }
        out['xpaste_warm_ms_20_onto_100'] = median_ms(
            xpaste(20), lambda: fresh(dst100), r, 'xpaste onto 100')
        out['copypaste_ms_20_onto_100'] = median_ms(cp, lambda: cp_input(dst100), r,
                                                    'copypaste onto 100')
        # pasted instances left after occlusion in one run (out of num_pastes)
        np.random.seed(0)
        res = warm(fresh(dst))
        out['xpaste_pasted_kept_in_check'] = int(res['gt_pasted_flags'].sum())
        if args.index_instances:
            lvis_like = [{'id': i + 1, 'name': f'c{i:04d}'} for i in range(1203)]
            out.update(
                measure_index_memory(osp.join(work, 'index_bank'), args.index_instances, lvis_like))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.json:  # stdout holds the json object alone; logs and progress go to stderr
        with stdout_to_stderr():
            out = run_benchmark(args)
        print(json.dumps(out))
        return out
    out = run_benchmark(args)
    print(f'one CPU thread, {out["image_size"]}x{out["image_size"]}, BitmapMasks, pasted '
          f'sqrt(area) {out["pasted_sqrt_area_px"]} px, median of {out["repeats"]} runs')
    print(f'XPaste  {out["num_pastes"]} onto {out["num_instances"]}, warm cache: '
          f'{out["xpaste_warm_ms"]:8.2f} ms')
    print(f'XPaste  {out["num_pastes"]} onto {out["num_instances"]}, cold cache: '
          f'{out["xpaste_cold_ms"]:8.2f} ms')
    print(f'CopyPaste {out["num_pastes"]} onto {out["num_instances"]}:          '
          f'{out["copypaste_ms"]:8.2f} ms')
    print(f'ratio XPaste/CopyPaste: warm {out["ratio_warm"]:.3f}, cold {out["ratio_cold"]:.3f}')
    for k, v in out['xpaste_warm_ms_by_pastes'].items():
        print(f'XPaste {k:>2} pastes onto {out["num_instances"]} (warm): {v:8.2f} ms')
    print(f'XPaste 20 onto 100 (warm): {out["xpaste_warm_ms_20_onto_100"]:8.2f} ms; '
          f'CopyPaste 20 onto 100: {out["copypaste_ms_20_onto_100"]:8.2f} ms')
    if 'index_bytes_per_instance' in out:
        print(f'index of a {out["index_instances"]}-instance bank: {out["index_bytes"]} bytes, '
              f'{out["index_bytes_per_instance"]:.1f} bytes/instance (+ sampler '
              f'{out["sampler_bytes_per_instance"]:.1f} bytes/instance)')
    return out


if __name__ == '__main__':
    main()

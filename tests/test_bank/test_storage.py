import json
import os
import os.path as osp
import pickle
import warnings

import cv2
import numpy as np
import pytest

from bank_helpers import CATS
from xpaste.bank import (INDEX_COLUMNS, SCHEMA_VERSION, BankReader, BankWriter, commit_part,
                         decode_bgra, empty_index, encode_bgra, finalize_bank, index_nbytes,
                         list_parts, read_manifest, resize_bgra, safe_join)


def make_bgra(rng, h=40, w=30, pad=4):
    """Random colours, an ellipse of alpha 255 inside a transparent border of ``pad`` px."""
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (w // 2, h // 2), (w // 2 - pad, h // 2 - pad), 0, 0, 360, 255, -1)
    img[..., 3] = alpha
    return img


def tight(img):
    x, y, w, h = cv2.boundingRect(img[..., 3])
    return img[y:y + h, x:x + w]


def make_items(n, seed=0):
    rng = np.random.default_rng(seed)
    return [dict(img=make_bgra(rng, 20 + 3 * i, 16 + 2 * i), cat=CATS[i % 3]['name'],
                 clip=0.1 * i, src=f'img/{i}.jpg', prompt=f'a photo of {i % 2}', seed=100 + i,
                 seg='sam' if i % 2 else 'grabcut') for i in range(n)]


def add_items(writer, items):
    for it in items:
        writer.add(it['img'], it['cat'], clip_score=it['clip'], source=it['src'],
                   prompt=it['prompt'], seed=it['seed'], segmenter=it['seg'])


def write_bank(root, n=6, seed=0, parts=('part-00000', ), image_format='png', **kw):
    """Write ``n`` instances split evenly over ``parts``; returns the inputs."""
    items = make_items(n, seed)
    bounds = np.linspace(0, n, len(parts) + 1).astype(int)
    for name, lo, hi in zip(parts, bounds[:-1], bounds[1:]):
        with BankWriter(root, CATS, part=name, image_format=image_format, **kw) as w:
            add_items(w, items[lo:hi])
    return items


def test_roundtrip_png_is_lossless_and_records_fields(tmp_path):
    items = write_bank(tmp_path, n=6)
    man = finalize_bank(tmp_path, build_info={'seed': 3})
    assert man['num_instances'] == 6 and man['schema_version'] == SCHEMA_VERSION
    r = BankReader(tmp_path)
    assert len(r) == 6 and r.category_names == ['apple', 'banana', 'cherry']
    for i, it in enumerate(items):
        out = r.decode(i)
        np.testing.assert_array_equal(out, tight(it['img']))
        rec = r.record(i)
        assert rec['category_name'] == it['cat']
        assert rec['source'] == it['src'] and rec['prompt'] == it['prompt']
        assert rec['segmenter_name'] == it['seg'] and rec['seed'] == it['seed']
        assert rec['clip_score'] == pytest.approx(it['clip'], abs=1e-6)
        assert np.isnan(rec['image_score'])
        assert (rec['height'], rec['width']) == out.shape[:2]
        assert rec['area'] == int((out[..., 3] >= 128).sum())
    assert r.category.dtype == np.int32 and r.offset.dtype == np.uint64
    assert r.manifest['build'] == {'seed': 3}


def test_webp_keeps_alpha_exactly_and_colour_closely(tmp_path):
    rng = np.random.default_rng(1)
    img = make_bgra(rng, 48, 40)
    img[..., :3] = cv2.GaussianBlur(img[..., :3], (0, 0), 3)  # smooth colour: lossy-friendly
    with BankWriter(tmp_path, CATS, image_format='webp', quality=95) as w:
        w.add(img, 'apple')
    finalize_bank(tmp_path)
    out = BankReader(tmp_path).decode(0)
    ref = tight(img)
    np.testing.assert_array_equal(out[..., 3], ref[..., 3])
    inside = ref[..., 3] == 255
    diff = np.abs(out[..., :3].astype(int) - ref[..., :3].astype(int))[inside]
    assert diff.mean() < 4


def test_mask_inputs_and_crop_flag(tmp_path):
    bgr = np.full((30, 50, 3), (10, 20, 30), np.uint8)
    mask = np.zeros((30, 50), bool)
    mask[5:15, 10:40] = True
    with BankWriter(tmp_path, CATS) as w:
        w.add(bgr, 'apple', mask=mask)  # bool
        w.add(bgr, 'apple', mask=mask.astype(np.uint8))  # 0/1
        w.add(bgr, 'apple', mask=mask.astype(np.float32) * 0.5)  # soft
        w.add(bgr, 'apple', mask=mask, crop=False)
        w.add(np.dstack([bgr, np.full((30, 50), 7, np.uint8)]), 'apple', mask=mask)  # replaced
    finalize_bank(tmp_path)
    r = BankReader(tmp_path)
    for i in (0, 1, 4):
        out = r.decode(i)
        assert out.shape == (10, 30, 4)
        assert (out[..., 3] == 255).all() and (out[..., :3] == (10, 20, 30)).all()
    assert (r.decode(2)[..., 3] == 128).all()
    full = r.decode(3)
    assert full.shape == (30, 50, 4)
    np.testing.assert_array_equal(full[..., 3] > 0, mask)
    assert list(r.area) == [300, 300, 300, 300, 300]


def test_max_side_downscales_with_premultiplied_alpha(tmp_path):
    img = np.zeros((300, 120, 4), np.uint8)
    img[...] = (0, 255, 0, 0)  # transparent pixels are pure green
    img[20:280, 10:110] = (0, 0, 255, 255)  # opaque red object
    with BankWriter(tmp_path, CATS, max_side=64, image_format='png') as w:
        w.add(img, 'apple', crop=False)
    finalize_bank(tmp_path)
    out = BankReader(tmp_path).decode(0)
    assert max(out.shape[:2]) == 64 and out.shape[:2] == (64, 26)
    edge = (out[..., 3] > 0) & (out[..., 3] < 255)
    assert edge.any()
    # no green bleeds into the partially transparent border of the red object
    assert out[..., 1][out[..., 3] > 0].max() <= 1
    assert out[..., 2][out[..., 3] > 0].min() >= 254


def test_resize_bgra_fully_transparent_gives_black():
    img = np.zeros((10, 10, 4), np.uint8)
    img[..., 1] = 255
    out = resize_bgra(img, (5, 5))
    assert out.shape == (5, 5, 4) and not out.any()
    assert resize_bgra(make_bgra(np.random.default_rng(0)), (1, 1)).shape == (1, 1, 4)


def test_add_validates_its_inputs(tmp_path):
    rng = np.random.default_rng(0)
    w = BankWriter(tmp_path, CATS)
    with pytest.raises(ValueError, match="unknown category 'durian'"):
        w.add(make_bgra(rng), 'durian')
    with pytest.raises(ValueError, match='uint8'):
        w.add(make_bgra(rng).astype(np.float32), 'apple')
    with pytest.raises(ValueError, match='mask='):
        w.add(make_bgra(rng)[..., :3], 'apple')
    with pytest.raises(ValueError, match='empty alpha'):
        w.add(np.zeros((5, 5, 4), np.uint8), 'apple', source='x.jpg')
    with pytest.raises(ValueError, match='mask must have the image shape'):
        w.add(make_bgra(rng)[..., :3], 'apple', mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        w.add(make_bgra(rng)[..., :3], 'apple', mask=np.full((40, 30), 2.0))
    assert w.num_instances == 0
    w.close()
    with pytest.raises(RuntimeError, match='closed'):
        w.add(make_bgra(rng), 'apple')


@pytest.mark.parametrize('kwargs, match', [
    (dict(quality=0), 'quality'),
    (dict(image_format='jpg'), 'image_format'),
    (dict(part='../evil'), 'part'),
    (dict(max_side=0), 'max_side'),
    (dict(shard_bytes=0), 'shard_bytes'),
    (dict(mode='r'), 'mode'),
])
def test_writer_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        BankWriter(tmp_path, CATS, **kwargs)


@pytest.mark.parametrize('cats, match', [
    ([{'id': 1, 'name': 'a'}, {'id': 2, 'name': 'a'}], 'duplicate category name'),
    ([{'id': 1, 'name': 'a'}, {'id': 1, 'name': 'b'}], 'duplicate category id'),
    ([{'name': 'a'}], "missing field 'id'"),
])
def test_writer_rejects_bad_categories(tmp_path, cats, match):
    with pytest.raises(ValueError, match=match):
        BankWriter(tmp_path, cats)


def test_shards_roll_over_and_match_manifest_sizes(tmp_path):
    items = write_bank(tmp_path, n=8, shard_bytes=2000)
    man = finalize_bank(tmp_path)
    shards = man['parts'][0]['shards']
    assert len(shards) > 2
    for s in shards:
        assert osp.getsize(osp.join(tmp_path, s['path'])) == s['bytes']
    r = BankReader(tmp_path)
    assert len(set(r.shard.tolist())) == len(shards)
    for i, it in enumerate(items):
        np.testing.assert_array_equal(r.decode(i), tight(it['img']))


def test_unfinished_part_is_ignored_and_cleaned(tmp_path):
    rng = np.random.default_rng(0)
    write_bank(tmp_path, n=3)
    crashed = BankWriter(tmp_path, CATS, part='part-00001')
    crashed.add(make_bgra(rng), 'apple')
    crashed._fh.flush()  # a killed process leaves its shard but no part.json
    assert list_parts(tmp_path) == ['part-00000']
    with pytest.warns(UserWarning, match='unfinished part'):
        man = finalize_bank(tmp_path)
    assert man['num_instances'] == 3 and [p['name'] for p in man['parts']] == ['part-00000']
    leftover = osp.join(tmp_path, 'parts', 'part-00001', 'shard-00000.bin')
    assert osp.isfile(leftover)
    BankWriter(tmp_path, CATS, part='part-00001').close()  # reopening discards leftovers
    assert not osp.exists(leftover)


def test_exception_in_with_block_aborts_and_keeps_last_commit(tmp_path):
    rng = np.random.default_rng(0)
    write_bank(tmp_path, n=2)
    before = sorted(os.listdir(osp.join(tmp_path, 'parts', 'part-00000')))
    with pytest.raises(KeyError):
        with BankWriter(tmp_path, CATS, mode='a', image_format='png') as w:
            w.add(make_bgra(rng), 'apple')
            raise KeyError('boom')
    assert sorted(os.listdir(osp.join(tmp_path, 'parts', 'part-00000'))) == before
    assert finalize_bank(tmp_path)['num_instances'] == 2


def test_modes_exclusive_overwrite_append(tmp_path):
    rng = np.random.default_rng(0)
    items = write_bank(tmp_path, n=3)
    with pytest.raises(FileExistsError, match="mode='a'"):
        BankWriter(tmp_path, CATS)
    with pytest.raises(ValueError, match='image_format'):
        BankWriter(tmp_path, CATS, mode='a', image_format='webp')
    with BankWriter(tmp_path, CATS, mode='a', image_format='png') as w:
        assert w.num_instances == 3 and w.sources() == {it['src'] for it in items}
        extra = make_bgra(rng)
        assert w.add(extra, 'cherry', source='img/new.jpg') == 3
    finalize_bank(tmp_path)
    r = BankReader(tmp_path)
    assert len(r) == 4 and r.record(3)['source'] == 'img/new.jpg'
    assert r.shard.tolist() == [0, 0, 0, 1]  # appended rows go to a new shard
    for i, it in enumerate(items):
        np.testing.assert_array_equal(r.decode(i), tight(it['img']))
    np.testing.assert_array_equal(r.decode(3), tight(extra))
    part_files = os.listdir(osp.join(tmp_path, 'parts', 'part-00000'))
    assert [f for f in part_files if f.startswith('index-')] == ['index-00002.npz']
    with BankWriter(tmp_path, CATS, mode='w', image_format='png') as w:
        w.add(extra, 'banana')
    assert finalize_bank(tmp_path)['num_instances'] == 1


def _bank_bytes(root):
    out = {}
    for sub in ('index', 'meta'):
        for f in sorted(os.listdir(osp.join(root, sub))):
            with open(osp.join(root, sub, f), 'rb') as fh:
                out[f'{sub}/{f}'] = fh.read()
    with open(osp.join(root, 'manifest.json'), 'rb') as fh:
        out['manifest.json'] = fh.read()
    return out


def test_finalize_is_idempotent_and_keeps_build_info(tmp_path):
    write_bank(tmp_path, n=5, parts=('part-00000', 'part-00001'))
    stats = {'format': 'xpaste-size-stats', 'version': 1, 'categories': {}}
    finalize_bank(tmp_path, build_info={'model': 'sd15'}, size_stats=stats)
    first = _bank_bytes(tmp_path)
    man = finalize_bank(tmp_path)
    assert _bank_bytes(tmp_path) == first
    assert man['num_instances'] == 5 and man['build'] == {'model': 'sd15'}
    assert man['size_stats'] == stats
    assert finalize_bank(tmp_path, build_info={'model': 'x'})['build'] == {'model': 'x'}


def _content(root):
    r = BankReader(root)
    rows = []
    for i in range(len(r)):
        rec = r.record(i)
        for k in ('part', 'shard', 'offset', 'segmenter', 'prompt_id', 'source_id'):
            rec.pop(k)  # storage location and table ids depend on the split
        rec['pixels'] = r.decode(i).tobytes()
        rows.append(rec)
    return rows


def test_two_writers_give_the_same_rows_as_one(tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'
    items = write_bank(one, n=10)
    # the second part is written first: the merged order follows the part names, not time
    with BankWriter(two, CATS, part='rank-1', image_format='png') as w:
        add_items(w, items[4:])
    with BankWriter(two, CATS, part='rank-0', image_format='png') as w:
        add_items(w, items[:4])
    finalize_bank(one)
    man = finalize_bank(two)
    assert [p['name'] for p in man['parts']] == ['rank-0', 'rank-1']
    a, b = _content(one), _content(two)
    assert len(a) == len(b) == 10
    for ra, rb in zip(a, b):
        np.testing.assert_equal(ra, rb)
    assert BankReader(two).part.tolist() == [0] * 4 + [1] * 6


def test_parts_with_different_categories_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    with BankWriter(tmp_path, CATS, part='a') as w:
        w.add(make_bgra(rng), 'apple')
    with BankWriter(tmp_path, CATS[:2], part='b') as w:
        w.add(make_bgra(rng), 'apple')
    with pytest.raises(ValueError, match="part 'b' has different categories"):
        finalize_bank(tmp_path)


def test_finalize_without_parts_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match='no committed part'):
        finalize_bank(tmp_path)


def _edit_manifest(root, fn):
    path = osp.join(root, 'manifest.json')
    with open(path) as f:
        man = json.load(f)
    fn(man)
    with open(path, 'w') as f:
        json.dump(man, f)


@pytest.fixture
def bank(tmp_path):
    write_bank(tmp_path, n=6, shard_bytes=1500)
    finalize_bank(tmp_path)
    return tmp_path


def test_reader_missing_manifest(tmp_path, bank):
    os.remove(osp.join(bank, 'manifest.json'))
    with pytest.raises(FileNotFoundError, match='finalize_bank'):
        BankReader(bank)
    with pytest.raises(FileNotFoundError, match='manifest not found'):
        BankReader(tmp_path / 'nothing')


@pytest.mark.parametrize('field', ['categories', 'num_instances', 'parts', 'schema_version'])
def test_reader_manifest_missing_field(bank, field):
    _edit_manifest(bank, lambda m: m.pop(field))
    with pytest.raises(ValueError, match=f"manifest.json: missing field '{field}'"):
        BankReader(bank)


def test_reader_unknown_schema_version(bank):
    _edit_manifest(bank, lambda m: m.update(schema_version=99))
    with pytest.raises(ValueError, match='unsupported schema_version 99'):
        BankReader(bank)


def test_reader_invalid_json(bank):
    with open(osp.join(bank, 'manifest.json'), 'w') as f:
        f.write('{"format": ')
    with pytest.raises(ValueError, match='not valid JSON'):
        BankReader(bank)


@pytest.mark.parametrize('path', ['../outside.bin', '/etc/passwd', 'parts/../../x.bin'])
def test_reader_rejects_paths_escaping_the_root(bank, path):
    _edit_manifest(bank, lambda m: m['parts'][0]['shards'][0].update(path=path))
    with pytest.raises(ValueError, match='escapes the bank root'):
        BankReader(bank)


def test_reader_rejects_escaping_string_table(bank):
    _edit_manifest(bank, lambda m: m['strings'].update(prompt='../prompts.json'))
    with pytest.raises(ValueError, match=r"strings.prompt '../prompts.json' escapes"):
        BankReader(bank)


def test_reader_truncated_shard_is_listed(bank):
    man = read_manifest(bank)
    shard = osp.join(bank, man['parts'][0]['shards'][1]['path'])
    size = osp.getsize(shard)
    with open(shard, 'r+b') as f:
        f.truncate(size - 10)
    with pytest.raises(ValueError, match=r'truncated shard.*shard-00001\.bin'):
        BankReader(bank)
    # rows pointing past the end are caught even if the manifest agrees with the file
    _edit_manifest(bank, lambda m: m['parts'][0]['shards'][1].update(bytes=size - 10))
    with pytest.raises(ValueError, match=r'point past the end of: .*shard-00001\.bin'):
        BankReader(bank)
    # a reader opened without verification still refuses a short read
    r = BankReader(bank, verify=False)
    last = int(np.flatnonzero(r.shard == 1)[-1])
    with pytest.raises(OSError, match='short read'):
        r.read_bytes(last)


def test_reader_missing_shard(bank):
    man = read_manifest(bank)
    os.remove(osp.join(bank, man['parts'][0]['shards'][0]['path']))
    with pytest.raises(FileNotFoundError, match=r'shard .*shard-00000\.bin is missing'):
        BankReader(bank)


def test_reader_missing_string_table(bank):
    os.remove(osp.join(bank, 'meta', 'prompt.json'))
    with pytest.raises(FileNotFoundError, match=r'prompt string table is missing: .*prompt\.json'):
        BankReader(bank)


def test_reader_missing_or_wrong_column(bank):
    np.save(osp.join(bank, 'index', 'height.npy'), np.zeros(5, np.uint16))
    with pytest.raises(ValueError, match=r'height\.npy: expected uint16 of shape \(6,\)'):
        BankReader(bank)
    os.remove(osp.join(bank, 'index', 'height.npy'))
    with pytest.raises(FileNotFoundError, match="index column 'height' is missing"):
        BankReader(bank)


def test_reader_garbage_bytes_raise_on_decode_only(bank):
    r = BankReader(bank)
    off, length = int(r.offset[2]), int(r.length[2])
    with open(r.shard_path(2), 'r+b') as f:
        f.seek(off)
        f.write(b'\x00' * length)
    r = BankReader(bank)  # opening still works: the shard is intact in size
    with pytest.raises(ValueError, match=r'instance 2 in .*shard-0000\d\.bin'):
        r.decode(2)
    assert r.decode(1).shape[2] == 4
    with pytest.raises(IndexError):
        r.read_bytes(6)


def test_reader_columns_attributes_pickle(bank):
    r = BankReader(bank)
    assert set(r.columns) == set(INDEX_COLUMNS)
    assert r.height is r.columns['height']
    with pytest.raises(AttributeError):
        r.nonexistent
    r.decode(0)
    blob = pickle.dumps(r)
    assert len(blob) < 1000
    r2 = pickle.loads(blob)
    np.testing.assert_array_equal(r2.decode(5), r.decode(5))
    assert r.index_nbytes == index_nbytes(r.columns) == 53 * 6
    r.close()
    assert r.decode(0).shape[2] == 4  # reopens lazily


def test_encode_decode_helpers():
    rng = np.random.default_rng(0)
    opaque = make_bgra(rng)
    opaque[..., 3] = 255
    out = decode_bgra(encode_bgra(opaque, 'webp'))
    assert out.shape == opaque.shape and (out[..., 3] == 255).all()
    gray = cv2.imencode('.png', np.full((4, 5), 9, np.uint8))[1].tobytes()
    assert decode_bgra(gray).shape == (4, 5, 4)
    with pytest.raises(ValueError, match='could not decode'):
        decode_bgra(b'not an image at all')
    with pytest.raises(ValueError, match='empty'):
        decode_bgra(b'')
    with pytest.raises(ValueError, match='image_format'):
        encode_bgra(opaque, 'gif')


def test_safe_join():
    assert safe_join('/bank', 'parts/a/shard-00000.bin') == '/bank/parts/a/shard-00000.bin'
    for bad in ('/abs', '..', '../x', 'a/../../x', ''):
        with pytest.raises(ValueError):
            safe_join('/bank', bad)


def test_synthetic_index_of_1_2m_rows_fits_80_bytes_per_instance():
    n = 1_200_000
    cols = empty_index(n)
    assert set(cols) == set(INDEX_COLUMNS)
    per_instance = index_nbytes(cols) / n
    assert per_instance <= 80
    assert index_nbytes(cols) <= 100 * 2**20


def test_commit_part_validates_columns(tmp_path):
    cols = empty_index(3)
    cols.pop('part')
    shards = [{'file': 'shard-00000.bin', 'bytes': 0}]
    bad = dict(cols, category=np.array([0, 1, 5], np.int32))
    with pytest.raises(ValueError, match=r"column 'category' has values in \[0, 5\]"):
        commit_part(tmp_path, 'p', CATS, bad, shards)
    with pytest.raises(ValueError, match="missing index column 'seed'"):
        commit_part(tmp_path, 'p', CATS, {k: v for k, v in cols.items() if k != 'seed'}, shards)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        rec = commit_part(tmp_path, 'p', CATS, cols, shards)
    assert rec['num_instances'] == 3 and rec['generation'] == 1

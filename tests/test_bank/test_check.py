"""check_bank names each defect and its file; repair_bank drops broken rows as a new version."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from bank_helpers import CATS, crop
from xpaste.bank import (BankReader, BankWriter, bank_is_intact, check_bank, finalize_bank,
                         read_manifest, repair_bank)


@pytest.fixture
def bank(tmp_path):
    """9 PNG crops over 2 parts, several shards each."""
    rng = np.random.default_rng(0)
    for part, n in (('a', 5), ('b', 4)):
        with BankWriter(tmp_path, CATS, part=part, image_format='png', shard_bytes=1500) as w:
            for i in range(n):
                w.add(crop(rng, 16 + 2 * i, 14 + i), CATS[i % 3]['name'], source=f'{part}{i}')
    finalize_bank(tmp_path)
    return tmp_path


def kinds(report):
    return sorted({p.kind for p in report.problems})


def shard_of(root, row):
    return BankReader(root, verify=False).shard_path(row)


def test_clean_bank_passes_cheap_and_deep_check(bank):
    report = check_bank(bank)
    assert report.ok and report.num_instances == 9 and report.version == 1
    assert report.summary()[-1].endswith('ok')
    deep = check_bank(bank, deep=True)
    assert deep.ok and deep.decoded == 9
    assert bank_is_intact(bank)


def test_truncated_shard_is_reported_with_its_file_and_rows(bank):
    path = shard_of(bank, 8)
    with open(path, 'r+b') as f:
        f.truncate(osp.getsize(path) - 5)
    report = check_bank(bank)
    assert kinds(report) == ['rows', 'shard'] and not bank_is_intact(bank)
    assert {p.path for p in report.problems} == {path}
    assert 'truncated' in report.problems[0].message
    assert 8 in report.bad_rows().tolist()


def test_truncated_index_column_is_reported_with_its_file(bank):
    path = osp.join(bank, 'index', 'height.npy')
    with open(path, 'r+b') as f:
        f.truncate(osp.getsize(path) - 4)
    report = check_bank(bank)
    assert [(p.kind, p.path) for p in report.problems] == [('column', path)]
    assert report.file_problems() == report.problems


def test_category_out_of_range_is_reported_with_its_file_and_row(bank):
    path = osp.join(bank, 'index', 'category.npy')
    cat = np.load(path)
    cat[3] = 3  # the bank has 3 categories
    np.save(path, cat)
    report = check_bank(bank)
    assert [(p.kind, p.path) for p in report.problems] == [('rows', path)]
    assert report.problems[0].rows.tolist() == [3]
    assert 'outside [0, 3)' in report.problems[0].message


def test_string_id_offset_and_manifest_problems(bank):
    src = osp.join(bank, 'index', 'source_id.npy')
    ids = np.load(src)
    ids[1] = 99
    np.save(src, ids)
    off = osp.join(bank, 'index', 'offset.npy')
    offset = np.load(off)
    offset[6] += 10**6
    np.save(off, offset)
    shard6 = shard_of(bank, 6)
    os.remove(osp.join(bank, 'meta', 'prompt.json'))
    report = check_bank(bank)
    by_path = {p.path: p for p in report.problems}
    assert by_path[src].rows.tolist() == [1]
    assert by_path[shard6].rows.tolist() == [6]
    assert by_path[osp.join(bank, 'meta', 'prompt.json')].kind == 'strings'
    with open(osp.join(bank, 'manifest.json'), 'w') as f:
        f.write('{"format": ')
    report = check_bank(bank)
    assert [(p.kind, p.path) for p in report.problems] == [
        ('manifest', osp.join(bank, 'manifest.json'))]


def test_garbage_bytes_need_the_deep_check(bank):
    r = BankReader(bank)
    with open(r.shard_path(2), 'r+b') as f:
        f.seek(int(r.offset[2]))
        f.write(b'\x00' * int(r.length[2]))
    assert check_bank(bank).ok
    deep = check_bank(bank, deep=True)
    assert [(p.kind, p.path, p.rows.tolist()) for p in deep.problems] == [
        ('decode', r.shard_path(2), [2])]
    assert deep.decoded == 8


def test_repair_drops_broken_rows_into_a_new_version(bank):
    before = BankReader(bank)
    crops = [before.decode(i) for i in range(9)]
    r = BankReader(bank)
    with open(r.shard_path(2), 'r+b') as f:  # garbage bytes in row 2
        f.seek(int(r.offset[2]))
        f.write(b'\x00' * int(r.length[2]))
    last = r.shard_path(8)
    with open(last, 'r+b') as f:  # row 8 cut short
        f.truncate(osp.getsize(last) - 5)
    path = osp.join(bank, 'index', 'category.npy')
    cat = np.load(path)
    cat[4] = -1
    np.save(path, cat)

    result = repair_bank(bank, deep=True)
    assert result.ok and result.version == 2 and not result.unrepaired
    assert result.dropped_rows.tolist() == [2, 4, 8]
    assert any('lowered' in s for s in result.shard_fixes)
    man = read_manifest(bank)
    assert man['repair']['dropped_rows'] == 3 and man['repair']['from_version'] == 1
    fixed = BankReader(bank)  # verify=True: shard sizes and row ends agree
    assert len(fixed) == 6 and [p['num_instances'] for p in man['parts']] == [3, 3]
    kept = [0, 1, 3, 5, 6, 7]
    for j, i in enumerate(kept):
        np.testing.assert_array_equal(fixed.decode(j), crops[i])
        assert fixed.record(j)['source'] == before.record(i)['source']
    assert check_bank(bank, deep=True).ok


def test_repair_takes_out_a_missing_shard(bank):
    r = BankReader(bank)
    gone = r.shard_path(0)
    rows = [i for i in range(9) if r.shard_path(i) == gone]
    os.remove(gone)
    result = repair_bank(bank, deep=False)
    assert result.ok and result.dropped_rows.tolist() == rows
    assert any('missing' in s for s in result.shard_fixes)
    fixed = BankReader(bank)
    assert len(fixed) == 9 - len(rows)
    assert all(fixed.decode(i).shape[2] == 4 for i in range(len(fixed)))


def test_repair_refuses_what_dropping_rows_cannot_fix(bank):
    path = osp.join(bank, 'index', 'width.npy')
    os.remove(path)
    with open(osp.join(bank, 'manifest.json'), 'rb') as f:
        manifest = f.read()
    result = repair_bank(bank)
    assert result.version is None and not result.ok
    assert [(p.kind, p.path) for p in result.unrepaired] == [('column', path)]
    with open(osp.join(bank, 'manifest.json'), 'rb') as f:
        assert f.read() == manifest


def test_report_serialises(bank):
    path = osp.join(bank, 'index', 'category.npy')
    cat = np.load(path)
    cat[0] = 5
    np.save(path, cat)
    out = json.loads(json.dumps(check_bank(bank).to_dict()))
    assert out['ok'] is False and out['bad_rows'] == 1
    assert out['problems'][0]['rows'] == [0] and out['problems'][0]['path'] == path

"""Versioned banks: rewrites go to a new version, the manifest switches atomically, readers of
the previous version keep reading it, killed rewrites leave the live version untouched."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile

import numpy as np
import pytest

from bank_helpers import CATS, crop
from xpaste.bank import (BankReader, BankWriter, check_bank, drop_part, finalize_bank,
                         list_parts, prune_versions, read_manifest)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def write_part(root, part, n, seed=0, mode='x', image_format='png', shard_bytes=1500, **kw):
    rng = np.random.default_rng(seed)
    with BankWriter(root, CATS, part=part, image_format=image_format, shard_bytes=shard_bytes,
                    mode=mode, **kw) as w:
        for i in range(n):
            w.add(crop(rng, 14 + 2 * i, 12 + i), CATS[i % 3]['name'], source=f'{part}/{i}.jpg',
                  prompt=f'p{seed}-{i % 2}', clip_score=0.5 * i, seed=seed * 100 + i)


def snapshot(reader):
    """Everything a reader serves: encoded bytes and resolved records (NaN as None) of every
    row."""
    def plain(rec):
        return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in rec.items()}

    return [(reader.read_bytes(i), plain(reader.record(i))) for i in range(len(reader))]


def tree(root):
    """``{relative path: bytes}`` of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = osp.join(dirpath, f)
            with open(path, 'rb') as fh:
                out[osp.relpath(path, root)] = fh.read()
    return out


def live_files(root):
    """Bytes of the files that make up the live version (manifest, index, tables, shards)."""
    man = read_manifest(root)
    rels = [f'{man["index"]["dir"]}/{k}.npy' for k in man['index']['columns']]
    rels += list(man['strings'].values())
    rels += [s['path'] for p in man['parts'] for s in p['shards']]
    out = {}
    for rel in ['manifest.json'] + rels:
        with open(osp.join(root, rel), 'rb') as fh:
            out[rel] = fh.read()
    return out


@pytest.fixture
def bank(tmp_path):
    root = tmp_path / 'bank'
    write_part(root, 'part-00000', 8)
    finalize_bank(root)
    return root


def test_first_build_keeps_the_version_1_layout(bank):
    man = read_manifest(bank)
    assert 'version' not in man and man['index']['dir'] == 'index'
    assert man['strings']['prompt'] == 'meta/prompt.json'
    assert not osp.exists(osp.join(bank, 'versions'))
    assert BankReader(bank).version == 1
    # rerunning finalize over the same parts keeps that version (only the manifest is rewritten)
    before = tree(bank)
    man = finalize_bank(bank, build_info={'model': 'x'})
    assert man['build'] == {'model': 'x'} and 'version' not in man
    after = tree(bank)
    assert {k: v for k, v in after.items() if k != 'manifest.json'} == {
        k: v for k, v in before.items() if k != 'manifest.json'}


RANK_SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {tests!r})
    from test_versions import write_part
    write_part(sys.argv[1], sys.argv[2], int(sys.argv[3]), seed=int(sys.argv[4]))
''')


def test_fresh_builds_are_byte_identical_for_one_or_two_ranks(tmp_path):
    parts = [('cls-00001', 5, 1), ('cls-00007', 4, 2)]
    one, two = tmp_path / 'one', tmp_path / 'two'
    for name, n, seed in parts:  # one rank writes every part
        write_part(one, name, n, seed=seed)
    script = RANK_SCRIPT.format(repo=REPO, tests=osp.dirname(osp.abspath(__file__)))
    procs = [subprocess.Popen([sys.executable, '-c', script, str(two), name, str(n), str(seed)])
             for name, n, seed in reversed(parts)]  # two ranks, concurrently
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    finalize_bank(one, build_info={'seed': 0})
    finalize_bank(two, build_info={'seed': 0})
    a, b = tree(one), tree(two)
    assert sorted(a) == sorted(b) and 'parts/cls-00001/index-00001.npz' in a
    for rel in a:
        assert a[rel] == b[rel], rel
    with zipfile.ZipFile(osp.join(one, 'parts/cls-00001/index-00001.npz')) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_rewrite_goes_to_a_new_version_and_open_readers_keep_reading(bank):
    with BankReader(bank) as r0:
        before = snapshot(r0)
    opened = BankReader(bank)  # opened before the switch, reads nothing until after it
    write_part(bank, 'part-00000', 5, seed=3, mode='w', image_format='webp')
    assert read_manifest(bank)['num_instances'] == 8  # not live until finalized
    man = finalize_bank(bank)
    assert man['version'] == 2 and man['index']['dir'] == 'versions/v00002/index'
    assert man['num_instances'] == 5
    assert snapshot(opened) == before
    new = BankReader(bank)
    assert new.version == 2 and len(new) == 5
    assert all(new.decode(i).shape[2] == 4 for i in range(5))
    assert snapshot(BankReader(bank, version=1)) == before
    assert check_bank(bank).ok and check_bank(bank, version=1).ok
    v1_shards = {s['path'] for s in read_manifest(bank, version=1)['parts'][0]['shards']}

    # the next rewrite prunes version 1 (keep_versions=1 keeps only version 2)
    write_part(bank, 'part-00000', 3, seed=4, mode='w')
    assert finalize_bank(bank)['version'] == 3
    assert not osp.exists(osp.join(bank, 'index')) and not osp.exists(osp.join(bank, 'meta'))
    assert not osp.exists(osp.join(bank, 'versions', 'v00001'))
    assert not any(osp.exists(osp.join(bank, p)) for p in v1_shards)
    with pytest.raises(FileNotFoundError, match='version 1 is not kept'):
        BankReader(bank, version=1)
    assert len(BankReader(bank, version=2)) == 5 and len(BankReader(bank)) == 3

    assert prune_versions(bank, keep_versions=0) == [2]
    assert os.listdir(osp.join(bank, 'versions')) == ['v00003']
    on_disk = set(os.listdir(osp.join(bank, 'parts', 'part-00000')))
    live = {osp.basename(s['path']) for s in read_manifest(bank)['parts'][0]['shards']}
    assert on_disk == live | {'part.json', 'index-00001.npz'}  # mode='w' restarts generations
    assert check_bank(bank, deep=True).ok


def test_keep_versions_none_prunes_nothing(bank):
    for seed in (1, 2, 3):
        write_part(bank, 'part-00000', 2 + seed, seed=seed, mode='w')
        finalize_bank(bank, keep_versions=None)
    assert sorted(os.listdir(osp.join(bank, 'versions'))) == ['v00001', 'v00002', 'v00003',
                                                              'v00004']
    for v, n in ((1, 8), (2, 3), (3, 4), (4, 5)):
        assert len(BankReader(bank, version=v)) == n


def test_append_to_a_live_part_keeps_its_shards(bank):
    before = snapshot(BankReader(bank))
    write_part(bank, 'part-00000', 2, seed=5, mode='a')
    man = finalize_bank(bank)
    assert man['version'] == 2 and man['num_instances'] == 10
    assert snapshot(BankReader(bank))[:8] == before


def test_drop_part_keeps_live_shards_until_their_version_is_pruned(tmp_path):
    root = tmp_path / 'bank'
    write_part(root, 'a', 3, seed=1)
    write_part(root, 'b', 4, seed=2)
    finalize_bank(root)
    opened = BankReader(root)
    drop_part(root, 'b')
    assert list_parts(root) == ['a']
    assert len(snapshot(opened)) == 7  # b's shards are still there for the live version
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # b's remaining shards are not an unfinished part
        man = finalize_bank(root, keep_versions=0)
    assert man['num_instances'] == 3 and [p['name'] for p in man['parts']] == ['a']
    assert not osp.exists(osp.join(root, 'parts', 'b'))


KILL_REWRITE = textwrap.dedent('''
    import sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    from xpaste.bank import BankWriter, finalize_bank
    cats = {cats!r}
    rng = np.random.default_rng(0)
    with BankWriter(sys.argv[1], cats, part='part-00000', image_format='png', shard_bytes=1,
                    mode='w') as w:
        for i in range(100000):
            img = rng.integers(0, 256, (24, 20, 4), dtype=np.uint8)
            img[..., 3] = 255
            w.add(img, 'apple', source=f'new/{{i}}.jpg')
    finalize_bank(sys.argv[1])
''')


def test_killed_rewrite_leaves_the_previous_version_identical(bank):
    expected, files = snapshot(BankReader(bank)), live_files(bank)
    pdir = osp.join(bank, 'parts', 'part-00000')
    old = set(os.listdir(pdir))
    proc = subprocess.Popen([sys.executable, '-c', KILL_REWRITE.format(repo=REPO, cats=CATS),
                             str(bank)])
    try:
        deadline = time.monotonic() + 120
        while len(set(os.listdir(pdir)) - old) < 5:  # some new shards are written
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not osp.isfile(osp.join(pdir, 'part.json'))  # the part was being rewritten
    assert live_files(bank) == files
    assert snapshot(BankReader(bank)) == expected
    assert check_bank(bank, deep=True).ok
    # a rerun of the rewrite discards the killed writer's shards and switches cleanly
    write_part(bank, 'part-00000', 4, seed=9, mode='w')
    assert finalize_bank(bank)['num_instances'] == 4
    left = set(os.listdir(pdir))
    live = {osp.basename(s['path']) for s in read_manifest(bank)['parts'][0]['shards']}
    v1 = {osp.basename(s['path']) for s in read_manifest(bank, version=1)['parts'][0]['shards']}
    assert left == live | v1 | {'part.json', 'index-00001.npz'}


KILL_FINALIZE = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    import xpaste.bank.versions as versions
    from xpaste.bank import finalize_bank
    written = []
    save = versions.save_npy
    def save_then_die(path, array):
        save(path, array)
        written.append(path)
        if len(written) == 5:
            os.kill(os.getpid(), signal.SIGKILL)
    versions.save_npy = save_then_die
    finalize_bank(sys.argv[1])
''')


def test_killed_finalize_leaves_the_previous_version_identical(bank):
    expected, files = snapshot(BankReader(bank)), live_files(bank)
    write_part(bank, 'part-00000', 6, seed=7, mode='w')  # committed, not yet finalized
    proc = subprocess.run([sys.executable, '-c', KILL_FINALIZE.format(repo=REPO), str(bank)],
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert len(os.listdir(osp.join(bank, 'versions', 'v00002', 'index'))) == 5
    assert live_files(bank) == files
    assert snapshot(BankReader(bank)) == expected
    assert check_bank(bank).ok
    man = finalize_bank(bank)  # the rerun replaces the half-written version
    assert man['version'] == 2 and man['num_instances'] == 6
    assert check_bank(bank, deep=True).ok


def test_finalize_does_not_switch_to_a_version_that_fails_its_check(bank, monkeypatch):
    import xpaste.bank.versions as versions
    files = live_files(bank)
    write_part(bank, 'part-00000', 6, seed=7, mode='w')
    save = versions.save_npy

    def short_height(path, array):
        save(path, array[:-1] if path.endswith('height.npy') else array)

    monkeypatch.setattr(versions, 'save_npy', short_height)
    with pytest.raises(ValueError, match=r'version 2 fails its check.*height\.npy'):
        finalize_bank(bank)
    assert live_files(bank) == files
    monkeypatch.undo()
    assert finalize_bank(bank)['num_instances'] == 6


def test_old_reader_survives_switch_after_reading_and_kept_manifest_is_the_old_one(bank):
    with open(osp.join(bank, 'manifest.json'), 'rb') as f:
        v1_manifest = f.read()
    r = BankReader(bank)
    first = r.read_bytes(0)
    write_part(bank, 'part-00000', 2, seed=1, mode='w')
    finalize_bank(bank)
    with open(osp.join(bank, 'versions', 'v00001', 'manifest.json'), 'rb') as f:
        assert f.read() == v1_manifest
    assert r.read_bytes(0) == first and r.strings('prompt') == ['p0-0', 'p0-1']
    assert json.loads(v1_manifest)['num_instances'] == len(r) == 8

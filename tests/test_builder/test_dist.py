import os
import threading

import numpy as np
import pytest

from xpaste.builder.dist import (block_bounds, block_owner, fingerprint, get_dist_info,
                                 json_from_npz, json_in_npz, wait_for)
from xpaste.utils.fileio import (atomic_write_bytes, atomic_write_json, atomic_write_npz, read_json,
                                 read_npz)


def test_get_dist_info_from_launchers():
    assert get_dist_info({}) == (0, 1, 0)
    assert get_dist_info({'RANK': '3', 'WORLD_SIZE': '8', 'LOCAL_RANK': '1'}) == (3, 8, 1)
    assert get_dist_info({'RANK': '2', 'WORLD_SIZE': '4'}) == (2, 4, 2)
    slurm = {'SLURM_PROCID': '5', 'SLURM_NTASKS': '16', 'SLURM_LOCALID': '5'}
    assert get_dist_info(slurm) == (5, 16, 5)
    # torchrun's variables win over slurm's when both are set
    assert get_dist_info({**slurm, 'RANK': '0', 'WORLD_SIZE': '2'}) == (0, 2, 0)


@pytest.mark.parametrize('env, match', [
    ({'RANK': 'x', 'WORLD_SIZE': '2'}, "RANK must be an integer, got 'x'"),
    ({'RANK': '2', 'WORLD_SIZE': '2'}, r'rank 2 is not in \[0, world_size=2\)'),
])
def test_get_dist_info_rejects_bad_values(env, match):
    with pytest.raises(ValueError, match=match):
        get_dist_info(env)


@pytest.mark.parametrize('world_size', [1, 2, 3, 5])
def test_block_bounds_cover_every_unit_once(world_size):
    units = list(range(17))
    parts = [units[slice(*block_bounds(len(units), r, world_size))] for r in range(world_size)]
    assert [u for p in parts for u in p] == units  # contiguous blocks, in rank order
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [block_owner(u, len(units), world_size) for u in units] == [
        r for r, p in enumerate(parts) for _ in p]


def test_fingerprint_ignores_speed_settings_only():
    base = dict(model='m', steps=50, batch_size=8, nested=dict(device='cuda', thr=0.5))
    same = dict(model='m', steps=50, batch_size=32, nested=dict(device='cpu', thr=0.5))
    assert fingerprint(base) == fingerprint(same)
    assert fingerprint(base) != fingerprint(dict(base, steps=25))
    assert fingerprint(base) != fingerprint(dict(base, nested=dict(device='cuda', thr=0.6)))
    assert fingerprint(base, 'a') != fingerprint(base, 'b')


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / 'sub' / 'out.bin'
    atomic_write_bytes(str(path), b'old')
    assert path.read_bytes() == b'old'

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(str(path), b'new')
    monkeypatch.undo()
    assert path.read_bytes() == b'old'
    assert sorted(os.listdir(path.parent)) == ['out.bin']  # no temporary file left


def test_json_and_npz_round_trip(tmp_path):
    atomic_write_json(str(tmp_path / 'a.json'), {'x': [1, None]})
    assert read_json(str(tmp_path / 'a.json')) == {'x': [1, None]}
    assert read_json(str(tmp_path / 'missing.json')) is None
    (tmp_path / 'bad.json').write_text('{"trunc')
    assert read_json(str(tmp_path / 'bad.json')) is None
    with pytest.raises(ValueError, match='NaN'):
        atomic_write_json(str(tmp_path / 'nan.json'), {'x': float('nan')})
    atomic_write_npz(str(tmp_path / 'a.npz'), meta=json_in_npz({'fp': 'abc'}),
                     x=np.arange(3, dtype=np.uint64))
    data = read_npz(str(tmp_path / 'a.npz'))
    assert json_from_npz(data['meta']) == {'fp': 'abc'}
    assert data['x'].dtype == np.uint64 and data['x'].tolist() == [0, 1, 2]
    assert read_npz(str(tmp_path / 'missing.npz')) is None


def test_wait_for(tmp_path):
    target = tmp_path / 'done'
    with pytest.raises(TimeoutError, match="1 bank parts missing.*'x'"):
        wait_for(['x'], lambda p: False, timeout=0, what='bank parts')
    timer = threading.Timer(0.2, target.write_text, args=('1', ))
    timer.start()
    wait_for([str(target)], os.path.isfile, timeout=10, poll_interval=0.05)
    timer.join()
    wait_for([], lambda p: False, timeout=0)  # nothing to wait for

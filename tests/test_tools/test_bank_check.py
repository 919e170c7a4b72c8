import json
import os
import os.path as osp

import numpy as np
import pytest

from tools.bank.check import main
from xpaste.bank import BankReader, BankWriter, finalize_bank

CATS = [{'id': 1, 'name': 'apple'}, {'id': 2, 'name': 'banana'}]


@pytest.fixture
def bank(tmp_path):
    rng = np.random.default_rng(0)
    with BankWriter(tmp_path, CATS, image_format='png', shard_bytes=1000) as w:
        for i in range(6):
            img = rng.integers(0, 256, (12 + i, 10 + i, 4), dtype=np.uint8)
            img[..., 3] = 255
            w.add(img, CATS[i % 2]['name'])
    finalize_bank(tmp_path)
    return str(tmp_path)


def test_clean_bank_exits_0(bank, capsys):
    assert main([bank, '--deep', '--no-progress']) == 0
    assert 'deep check (every crop decoded): ok' in capsys.readouterr().out


def test_problems_exit_1_and_name_the_file(bank, capsys):
    path = BankReader(bank).shard_path(5)
    with open(path, 'r+b') as f:
        f.truncate(osp.getsize(path) - 3)
    assert main([bank]) == 1
    out = capsys.readouterr().out
    assert f'[shard] {path}: ' in out and 'truncated' in out and '1 bad rows' in out
    assert main([bank, '--json']) == 1
    report = json.loads(capsys.readouterr().out)['check']
    assert report['ok'] is False and {p['path'] for p in report['problems']} == {path}


def test_repair_exits_0_and_leaves_a_clean_bank(bank, capsys):
    r = BankReader(bank)
    with open(r.shard_path(1), 'r+b') as f:
        f.seek(int(r.offset[1]))
        f.write(b'\xff' * int(r.length[1]))
    assert main([bank, '--repair']) == 0  # the cheap check sees nothing to repair
    capsys.readouterr()
    assert main([bank, '--deep', '--repair', '--json']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['check']['ok'] is False and out['repair']['dropped_rows'] == 1
    assert out['repair']['ok'] is True and out['repair']['version'] == 2
    assert main([bank, '--deep']) == 0
    assert len(BankReader(bank)) == 5 and BankReader(bank).version == 2


def test_unrepairable_bank_exits_1(bank, capsys):
    os.remove(osp.join(bank, 'index', 'area.npy'))
    assert main([bank, '--repair']) == 1
    out = capsys.readouterr().out
    assert 'could not repair: [column]' in out and 'area.npy' in out


def test_repair_needs_the_live_version(bank):
    with pytest.raises(SystemExit) as e:
        main([bank, '--repair', '--bank-version', '1'])
    assert e.value.code == 2

"""tools/analysis/compare_runs.py and its library (xpaste.utils.metrics) on fake work_dirs."""
import json
import math
import os
import os.path as osp
import sys

import cv2
import pytest

from xpaste.utils.metrics import (METRIC_KEYS, RunGroup, check_gain, format_markdown,
                                  load_group, load_latest_metrics, parse_run_spec,
                                  select_baseline, summarize)

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis'))
import compare_runs  # noqa: E402


def lvis(ap, apr=None, **extra):
    """LVIS metrics as LVISMetric logs them (fractions); every key from ``ap`` unless given."""
    values = {k: ap for k in METRIC_KEYS}
    if apr is not None:
        values['lvis/segm_APr'] = apr
    values.update(extra)
    return values


def write_test_run(work_dir, stamp, metrics):
    """What tools/test.py leaves: <work_dir>/<stamp>/<stamp>.json, one json object."""
    log_dir = osp.join(work_dir, stamp)
    os.makedirs(log_dir, exist_ok=True)
    with open(osp.join(log_dir, f'{stamp}.json'), 'w') as f:
        json.dump({**metrics, 'data_time': 0.01, 'time': 0.2}, f)


def write_train_run(work_dir, stamp, val_lines):
    """What tools/train.py leaves: vis_data/scalars.json, one json per line (loss and val)."""
    log_dir = osp.join(work_dir, stamp, 'vis_data')
    os.makedirs(log_dir, exist_ok=True)
    with open(osp.join(log_dir, 'scalars.json'), 'w') as f:
        for step, metrics in val_lines:
            f.write(json.dumps({'loss': 1.0, 'lr': 0.02, 'iter': step, 'step': step}) + '\n')
            f.write(json.dumps({**metrics, 'step': step}) + '\n')
        f.write(json.dumps({'loss': 0.5, 'iter': 999, 'step': 999}) + '\n')


# ---------------------------------------------------------------- reading one work_dir
def test_latest_test_metrics_win(tmp_path):
    wd = str(tmp_path / 'run')
    write_test_run(wd, '20240101_000000', lvis(0.10))
    write_test_run(wd, '20240301_000000', lvis(0.30))
    write_test_run(wd, '20240201_000000', lvis(0.20))
    run = load_latest_metrics(wd)
    assert run.kind == 'test'
    assert run.metrics['lvis/segm_AP'] == pytest.approx(0.30)
    assert run.source.endswith(osp.join('20240301_000000', '20240301_000000.json'))
    assert 'time' not in run.metrics


def test_val_metrics_from_scalars(tmp_path):
    wd = str(tmp_path / 'run')
    write_train_run(wd, '20240101_000000', [(100, lvis(0.1)), (200, lvis(0.2))])
    run = load_latest_metrics(wd)
    assert (run.kind, run.step) == ('val', 200)
    assert run.metrics['lvis/bbox_APf'] == pytest.approx(0.2)


def test_test_file_before_val_lines_of_the_same_folder_and_newest_folder_first(tmp_path):
    wd = str(tmp_path / 'run')
    write_train_run(wd, '20240101_000000', [(100, lvis(0.1))])
    write_test_run(wd, '20240101_000000', lvis(0.15))
    assert load_latest_metrics(wd).kind == 'test'
    # a later training run with validation is newer than the earlier test
    write_train_run(wd, '20240102_000000', [(100, lvis(0.4))])
    run = load_latest_metrics(wd)
    assert run.kind == 'val' and run.metrics['lvis/segm_AP'] == pytest.approx(0.4)
    # a newer folder without metrics (a crashed run) is skipped
    os.makedirs(osp.join(wd, '20240103_000000'))
    assert load_latest_metrics(wd).metrics['lvis/segm_AP'] == pytest.approx(0.4)


def test_no_metrics_is_an_error_naming_the_work_dir(tmp_path):
    wd = str(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='work_dir not found'):
        load_latest_metrics(wd)
    write_train_run(wd, '20240101_000000', [])  # losses only
    os.makedirs(osp.join(wd, 'not_a_timestamp'))
    with pytest.raises(FileNotFoundError, match=r"no LVIS metrics.*empty"):
        load_latest_metrics(wd)


def test_broken_json_line_names_file_and_line(tmp_path):
    wd = str(tmp_path / 'run')
    write_train_run(wd, '20240101_000000', [(1, lvis(0.1))])
    with open(osp.join(wd, '20240101_000000', 'vis_data', 'scalars.json'), 'a') as f:
        f.write('{"lvis/segm_AP": 0.3, \n')
    with pytest.raises(ValueError, match=r'scalars.json:4: not a json line'):
        load_latest_metrics(wd)


# ---------------------------------------------------------------- run specs and groups
@pytest.fixture
def seeds(tmp_path):
    """work_dirs/exp/{baseline,xpaste}/seed{0,1,2} with known segm_APr values."""
    root = tmp_path / 'exp'
    values = {'baseline': [0.10, 0.12, 0.14], 'xpaste': [0.20, 0.22, 0.24]}
    for variant, aprs in values.items():
        for seed, apr in enumerate(aprs):
            write_test_run(str(root / variant / f'seed{seed}'), '20240101_000000',
                           lvis(0.3, apr=apr))
    return root


def test_parse_run_spec(seeds):
    name, dirs = parse_run_spec(f'{seeds}/baseline/seed*')
    assert name == 'baseline'
    assert [osp.basename(d) for d in dirs] == ['seed0', 'seed1', 'seed2']
    name, dirs = parse_run_spec(f'xp={seeds}/xpaste/seed0,{seeds}/xpaste/seed2')
    assert name == 'xp' and [osp.basename(d) for d in dirs] == ['seed0', 'seed2']
    assert parse_run_spec(f'{seeds}/xpaste/seed1')[0] == 'seed1'
    with pytest.raises(ValueError, match='matches no folder'):
        parse_run_spec(f'{seeds}/nothing/seed*')
    with pytest.raises(FileNotFoundError, match='work_dir not found'):
        parse_run_spec(f'{seeds}/baseline/seed7')
    with pytest.raises(ValueError, match='empty name'):
        parse_run_spec(f'={seeds}/baseline/seed0')


def test_group_mean_and_sample_std(seeds):
    group = load_group(f'{seeds}/baseline/seed*')
    assert group.mean('lvis/segm_APr') == pytest.approx(0.12)
    assert group.std('lvis/segm_APr') == pytest.approx(0.02)  # ddof=1
    one = load_group(f'{seeds}/baseline/seed0')
    assert math.isnan(one.std('lvis/segm_APr'))


def test_select_baseline(seeds):
    specs = [f'{seeds}/baseline/seed*', f'xp={seeds}/xpaste/seed*']
    groups = [load_group(s) for s in specs]
    assert select_baseline(groups, '1') == 1
    assert select_baseline(groups, -1) == 1
    assert select_baseline(groups, 'xp') == 1
    assert select_baseline(groups, 'baseline') == 0
    assert select_baseline(groups, specs[1], specs) == 1
    assert select_baseline(groups, f'{seeds}/xpaste/seed2') == 1
    with pytest.raises(ValueError, match='out of range'):
        select_baseline(groups, 2)
    with pytest.raises(ValueError, match='neither an index'):
        select_baseline(groups, 'copypaste')


def test_summary_and_markdown(seeds):
    groups = [load_group(f'{seeds}/baseline/seed*'), load_group(f'{seeds}/xpaste/seed*')]
    rows = summarize(groups, baseline=0)
    assert rows[1]['mean']['lvis/segm_APr'] == pytest.approx(22.0)
    assert rows[1]['delta']['lvis/segm_APr'] == pytest.approx(10.0)
    assert rows[0]['delta']['lvis/segm_APr'] == 0
    table = format_markdown(rows)
    lines = table.splitlines()
    assert lines[0].startswith('| run | n | box AP | box APr | box APc | box APf | mask AP |')
    assert lines[2].startswith('| baseline (reference) | 3 | 30.0 ± 0.0 |')
    assert '12.0 ± 2.0 |' in lines[2]
    assert '22.0 ± 2.0 (+10.0)' in lines[3]
    assert '30.0 ± 0.0 (+0.0)' in lines[3]


def test_missing_keys_and_lvis_minus_one_show_as_dash(tmp_path):
    wd = str(tmp_path / 'boxonly')
    # LVIS logs -1 for a frequency group without evaluated categories
    write_test_run(wd, '20240101_000000', {'lvis/bbox_AP': 0.2, 'lvis/bbox_APr': -1.0})
    other = str(tmp_path / 'other')
    write_test_run(other, '20240101_000000', {'lvis/bbox_AP': 0.25, 'lvis/bbox_APr': 0.1})
    assert math.isnan(load_latest_metrics(wd).metrics['lvis/bbox_APr'])
    table = format_markdown(summarize([load_group(wd), load_group(other)]))
    assert '| boxonly (reference) | 1 | 20.0 | - | - | - | - |' in table
    assert '| other | 1 | 25.0 (+5.0) | 10.0 | - |' in table


def test_check_gain(seeds):
    base = load_group(f'{seeds}/baseline/seed*')
    xp = load_group(f'{seeds}/xpaste/seed*')
    result = check_gain(xp, base)  # +10 APr with spread 2 -> raised; APf equal -> kept
    assert result['raised'] and result['kept'] and result['passed']
    assert result['gain'] == pytest.approx(10.0)
    assert result['gain_spread'] == pytest.approx(2.0)
    assert not check_gain(base, xp)['passed']  # a loss
    assert not check_gain(xp, base, factor=6.0)['raised']  # 10 < 6 x 2
    # APf lowered by more than its spread (0: identical seeds) -> not kept
    lower = RunGroup('lower', [r for r in xp.runs])
    for run in lower.runs:
        run.metrics = {**run.metrics, 'lvis/segm_APf': 0.29}
    assert not check_gain(lower, base)['kept']
    # a single seed has no spread: the claim cannot be checked
    single = load_group(f'{seeds}/xpaste/seed0')
    assert not check_gain(single, base)['passed']


# ---------------------------------------------------------------- the command line
def test_cli_markdown_png_and_json(seeds, tmp_path, capsys):
    out_md, out_png = tmp_path / 'out' / 'table.md', tmp_path / 'out' / 'table.png'
    rows = compare_runs.main([f'{seeds}/baseline/seed*', f'{seeds}/xpaste/seed*',
                              '--baseline', 'base', '--names', 'base', 'X-Paste',
                              '--out-md', str(out_md), '--out-png', str(out_png)])
    printed = capsys.readouterr().out
    assert printed == out_md.read_text()
    assert '| X-Paste | 3 |' in printed and '(+10.0)' in printed
    assert rows[0]['baseline'] and not rows[1]['baseline']
    image = cv2.imread(str(out_png))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100

    compare_runs.main([f'{seeds}/baseline/seed0', f'{seeds}/xpaste/seed0', '--baseline', '1',
                       '--json'])
    data = json.loads(capsys.readouterr().out)
    assert [r['baseline'] for r in data] == [False, True]
    assert data[0]['std']['lvis/segm_APr'] is None  # one run: no spread
    assert data[0]['delta']['lvis/segm_APr'] == pytest.approx(-10.0)


def test_cli_names_must_match_runs(seeds):
    with pytest.raises(SystemExit):
        compare_runs.main([f'{seeds}/baseline/seed0', '--names', 'a', 'b'])

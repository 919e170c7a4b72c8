"""tools/experiments/toy_experiment.py: its overrides reach the right pipeline steps, and a dry
run plans every step without running one."""
import argparse
import json
import os
import os.path as osp
import sys

import pytest
from mmengine.config import Config, DictAction

from tools.experiments import toy_experiment as exp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _merged(config, options):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *options]).cfg_options)
    return cfg


@pytest.mark.parametrize('variant', list(exp.VARIANTS))
def test_world_options_reach_every_paste_step_and_nothing_else(variant, tiny_toy_lvis,
                                                               tmp_path):
    config = exp.VARIANTS[variant]
    banks = str(tmp_path / 'banks')
    before = Config.fromfile(osp.join(ROOT, config)).train_dataloader.dataset.dataset.pipeline
    after = _merged(config, exp.world_options(config, str(tiny_toy_lvis), banks, train=True))
    pipeline = after.train_dataloader.dataset.dataset.pipeline
    assert [s.type for s in pipeline] == [s.type for s in before]
    with open(osp.join(tiny_toy_lvis, 'annotations', 'lvis_v1_train.json')) as f:
        num_classes = len(json.load(f)['categories'])
    assert after.model.roi_head.bbox_head.num_classes == num_classes
    assert after.train_dataloader.dataset.dataset.data_root == f'{tiny_toy_lvis}/'
    for old, new in zip(before, pipeline):
        if new.type == 'XPaste':
            assert new.classes == osp.join(tiny_toy_lvis, 'annotations', 'lvis_v1_train.json')
            assert new.bank.root == osp.join(banks, osp.basename(old.bank.root))
        else:
            assert new == old
    assert sum(s.type == 'XPaste' for s in pipeline) == {
        'baseline': 0, 'copypaste': 1, 'xpaste': 1, 'xpaste-copypaste': 2}[variant]


def test_dry_run_plans_every_variant_and_seed_without_running(tiny_toy_lvis, tmp_path, capsys):
    work = tmp_path / 'work'
    assert exp.main(['--dry-run', '--work-dir', str(work), '--data-root', str(tiny_toy_lvis),
                     '--banks-root', str(tmp_path / 'banks'), '--seeds', '0', '1',
                     '--iters', '10']) is None
    out = capsys.readouterr().out
    # the world exists; the toy CLIP, two banks, and a training and a test per variant and seed
    # remain
    assert out.splitlines()[-1] == f'{3 + 4 * 2 * 2} of {1 + 3 + 4 * 2 * 2} steps to run'
    assert '[todo] toy CLIP' in out and 'configs/bank/toy_gap.py' in out
    for variant in exp.VARIANTS:
        for seed in (0, 1):
            assert f'[todo] train {variant} seed {seed}' in out
            assert f'[todo] test {variant} seed {seed}' in out
    assert 'train_cfg.max_iters=10' in out and 'randomness.seed=1' in out
    assert not work.exists()  # nothing ran


def test_ablations_plan_their_banks_from_one_build(tiny_toy_lvis, tmp_path, capsys):
    work, banks = tmp_path / 'work', tmp_path / 'banks'
    args = exp.parse_args(['--ablations', '--work-dir', str(work), '--data-root',
                           str(tiny_toy_lvis), '--banks-root', str(banks), '--seeds', '0'])
    assert args.variants == ['xpaste', *exp.ABLATIONS, 'baseline']
    steps = exp.bank_steps(args)
    assert [s.name for s in steps][0] == 'toy CLIP'
    built = [s for s in steps[1:]]
    assert [s.cmd[2] for s in built] == list(exp.BANK_CONFIGS.values())
    # the first build starts from scratch; the others from a copy of its work dir
    first = str(work / 'bank_build' / exp.GENERATED_BANK)
    assert built[0].copy_from is None and built[0].cmd[4] == first
    assert all(s.copy_from == first and s.copy_to == s.cmd[4] for s in built[1:])
    # every build scores with the CLIP of this world (not the default world's)
    clip = str(work / 'toy_clip')
    assert all(f'score.pretrained={clip}/{exp.CLIP_NAME}.safetensors' in s.cmd for s in built)
    # the training-set bank is not needed: no row pastes from it
    assert not any(exp.TRAIN_BANK in ' '.join(s.cmd) for s in steps)
    assert exp.main(['--ablations', '--dry-run', '--work-dir', str(work), '--data-root',
                     str(tiny_toy_lvis), '--banks-root', str(banks), '--seeds', '0']) is None
    out = capsys.readouterr().out
    n = len(exp.ABLATION_TABLE)
    assert out.splitlines()[-1] == f'{6 + 2 * n} of {1 + 6 + 2 * n} steps to run'


def test_ablation_configs_paste_from_the_banks_the_script_builds():
    for variant, config in exp.ABLATIONS.items():
        names = exp._bank_names(config)
        assert len(names) == 1 and names <= set(exp.BANK_CONFIGS), (variant, names)
    with pytest.raises(SystemExit):
        exp.parse_args(['--ablations', '--detector', 'centernet2'])
    with pytest.raises(SystemExit):
        exp.parse_args(['--jobs', '0'])


def _step(tmp_path, name, code):
    return exp.Step(name, [sys.executable, '-c', code], str(tmp_path / 'logs' / f'{name}.log'))


def test_copy_then_run_and_parallel_runs(tmp_path):
    source = tmp_path / 'first'
    (source / 'sub').mkdir(parents=True)
    (source / 'sub' / 'a.txt').write_text('x')
    step = _step(tmp_path, 'copy', 'import os; print(os.environ["OMP_NUM_THREADS"])')
    step.copy_from, step.copy_to = str(source), str(tmp_path / 'second')
    exp.run_step(step, threads=3)
    assert (tmp_path / 'second' / 'sub' / 'a.txt').read_text() == 'x'
    assert not (tmp_path / 'second.partial').exists()
    assert open(step.log).read().splitlines()[-1] == '3'
    # runs: each trains then tests; a finished part is skipped
    marks = tmp_path / 'marks'
    marks.mkdir()
    runs = []
    for i in range(3):
        train = _step(tmp_path, f'train{i}', f'open({str(marks / f"t{i}")!r}, "w")')
        test = _step(tmp_path, f'test{i}',
                     f'import os; assert os.path.exists({str(marks / f"t{i}")!r}); '
                     f'open({str(marks / f"e{i}")!r}, "w")')
        runs.append(exp.Run(f'run{i}', train, test))
    runs[2].train.done = runs[2].test.done = True
    exp.run_all(runs, jobs=2)
    assert sorted(os.listdir(marks)) == ['e0', 'e1', 't0', 't1']
    # a failing run stops the experiment with the step's name and log
    bad = exp.Run('bad', _step(tmp_path, 'bad', 'raise SystemExit(3)'),
                  _step(tmp_path, 'never', 'pass'))
    with pytest.raises(SystemExit, match='exit status 3.*bad'):
        exp.run_all([bad], jobs=2)
    assert not osp.exists(bad.test.log)


def _group(name, values, apf=0.5):
    from xpaste.utils.metrics import RunGroup, RunMetrics
    keys = ('bbox_AP', 'bbox_APr', 'segm_AP', 'segm_APr')
    return RunGroup(name, [
        RunMetrics(f'{name}/{i}', 'x.json', 'test',
                   {**{f'lvis/{k}': v for k in keys}, 'lvis/bbox_APf': apf, 'lvis/segm_APf': apf})
        for i, v in enumerate(values)])


def test_claims_need_seeds_and_compare_filtered_with_unfiltered():
    one = exp._claims([_group('xpaste', [0.3]), _group('xpaste-nofilter', [0.2]),
                       _group('baseline', [0.1])])
    assert 'not checked, the spread over seeds needs at least 2 seeds' in one[0]
    assert 'unfiltered bank: box AP +10.0, box APr +10.0, mask AP +10.0, mask APr +10.0' in one[1]
    # APr +20 against a spread of 1.4 (raised), APf -10 (not kept): the claim does not hold
    two = exp._claims([_group('baseline', [0.10, 0.12]), _group('xpaste', [0.30, 0.32], 0.4)])
    assert len(two) == 3 and all('-> does not hold' in line for line in two[:2])
    assert 'APr +20.0 (> 2 x spread 1.4: yes), APf -10.0 (>= -spread 0.0: no)' in two[0]
    kept = exp._claims([_group('baseline', [0.10, 0.12]), _group('xpaste', [0.30, 0.32])])
    assert all(line.endswith('-> holds.') for line in kept[:2])

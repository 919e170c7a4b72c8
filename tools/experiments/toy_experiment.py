"""The toy-world experiment (``make experiment``): baseline vs copy-paste vs X-Paste, N seeds.

Every variant trains the same slim Mask R-CNN on the same toy LVIS world with the same schedule;
the variants differ only by their paste step (tests/test_configs_xpaste.py checks the configs)::

    baseline          configs/toy/mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py
    copypaste         the training set's own instances   (data/banks/toy_train_instances)
    xpaste            the bank built from the toy source  (data/banks/toy_generated)
    xpaste-copypaste  both banks, half the pastes each

Steps, each skipped when its output exists (a rerun resumes where a killed run stopped):

1. the toy world (``tools/data/make_toy_lvis.py``) and the two banks (``tools/bank/build.py
   configs/bank/toy.py``, ``tools/bank/from_annotations.py``), as ``tools/demo.sh`` makes them;
2. for each variant and seed: ``tools/train.py CONFIG --work-dir
   <work-dir>/<variant>/seed<S> --cfg-options randomness.seed=S`` with the schedule scaled to
   ``--iters`` (warm-up, LR steps at 75 % and 90 %), resumed from its last checkpoint if a run
   was interrupted, then ``tools/test.py`` on the final checkpoint (LVIS AP, APr, APc, APf);
3. the table (mean ± standard deviation over seeds, deltas to the baseline) printed and written
   to ``<work-dir>/results.md`` and ``results.png``, with the check of the method's claim on the
   toy world: X-Paste raises mask APr over the baseline by more than twice the seeds' spread
   without lowering mask APf by more than the spread.

Examples::

    python tools/experiments/toy_experiment.py                      # 4 variants x 3 seeds
    python tools/experiments/toy_experiment.py --dry-run            # print the commands
    python tools/experiments/toy_experiment.py --variants baseline xpaste --seeds 0 1 --iters 500
    python tools/experiments/toy_experiment.py --detector centernet2   # CenterNet2: baseline, xpaste

Budget: 12 runs of 250 iterations take about 50 minutes on 2 idle CPU cores: about 0.65 s per
training iteration at batch 4 (the paste step adds ~4 ms per image, in the dataloader workers),
plus about a minute per run for process start-up and the evaluation, plus 1-2 minutes for the
generated bank. Other jobs on the same cores slow it down several-fold.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import re
import shlex
import subprocess
import sys
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from mmengine.config import Config
from tqdm import tqdm

from xpaste.utils.metrics import (RunGroup, check_gain, format_markdown, has_metrics,
                                  load_latest_metrics, plot_comparison, summarize)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY = 'configs/toy/mask-rcnn_r18-slim_fpn_1xb4'
VARIANTS = OrderedDict([
    ('baseline', f'{TOY}-1k_toy-lvis.py'),
    ('copypaste', f'{TOY}-copypaste-1k_toy-lvis.py'),
    ('xpaste', f'{TOY}-xpaste-1k_toy-lvis.py'),
    ('xpaste-copypaste',
     'configs/xpaste/toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-copypaste-1k_toy-lvis.py'),
])
# `--detector`: the variants of each detector (the first detector is the default)
DETECTORS = OrderedDict([
    ('mask-rcnn', VARIANTS),
    ('centernet2', OrderedDict([
        ('baseline', 'configs/toy/centernet2_r18-slim_fpn_1xb4-1k_toy-lvis.py'),
        ('xpaste', 'configs/toy/centernet2_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'),
    ])),
])
DEFAULT_DATA_ROOT = 'data/toy_lvis'
DEFAULT_BANKS_ROOT = 'data/banks'
GENERATED_BANK = 'toy_generated'
TRAIN_BANK = 'toy_train_instances'
BANK_CONFIG = 'configs/bank/toy.py'
INNER_PIPELINE = 'train_dataloader.dataset.dataset.pipeline'
DEFAULT_ITERS = 250
LOG_TAIL = 40


@dataclass
class Step:
    """One command of the experiment.

    Attributes:
        name (str): What it does, for the progress display.
        cmd (list[str]): The command line.
        log (str): File receiving its stdout and stderr.
        done (bool): Its output already exists; it is skipped.
        note (str): Shown in a dry run (e.g. ``'resume'``).
    """
    name: str
    cmd: list
    log: str
    done: bool = False
    note: str = ''


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Toy-world experiment: baseline, copy-paste, X-Paste, X-Paste + copy-paste '
        'on the same world and schedule, several seeds; prints the LVIS table (mean ± std)',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='random seeds')
    parser.add_argument('--iters', type=int, default=DEFAULT_ITERS,
                        help='training iterations per run (batch 4)')
    parser.add_argument('--detector', default='mask-rcnn', choices=list(DETECTORS),
                        help='detector of the toy configs (centernet2: baseline and xpaste; '
                        'runs go to <work-dir>/centernet2 unless --work-dir is given)')
    parser.add_argument('--variants', nargs='+', default=None,
                        choices=sorted(set().union(*DETECTORS.values())),
                        help='variants to run (default: all of the detector); the first is the '
                        'baseline of the table')
    parser.add_argument('--work-dir', default='work_dirs/toy_experiment',
                        help='runs go to <work-dir>/<variant>/seed<S>; results.md/png here')
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT,
                        help='toy LVIS world (made with the default size if missing)')
    parser.add_argument('--banks-root', default=DEFAULT_BANKS_ROOT,
                        help=f'folder of the banks {GENERATED_BANK}/ and {TRAIN_BANK}/')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='extra overrides passed to every train and test command')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands (and which are done) without running them')
    args = parser.parse_args(argv)
    args.configs = DETECTORS[args.detector]
    if args.variants is None:
        args.variants = list(args.configs)
    unknown = [v for v in args.variants if v not in args.configs]
    if unknown:
        parser.error(f'--detector {args.detector} has no variants {unknown}; it has '
                     f'{list(args.configs)}')
    # the commands run in the repository root: a path given on the command line is taken from
    # the current folder, the defaults from the repository root
    for name in ('work_dir', 'data_root', 'banks_root'):
        if getattr(args, name) != parser.get_default(name):
            setattr(args, name, osp.abspath(getattr(args, name)))
    if args.detector != 'mask-rcnn' and args.work_dir == parser.get_default('work_dir'):
        args.work_dir = osp.join(args.work_dir, args.detector)  # from the repository root
    if args.iters < 1:
        parser.error(f'--iters must be >= 1, got {args.iters}')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds must be distinct, got {args.seeds}')
    if len(set(args.variants)) != len(args.variants):
        parser.error(f'--variants must be distinct, got {args.variants}')
    return args


# ---------------------------------------------------------------- overrides
def schedule_options(iters: int) -> list:
    """The toy schedule scaled to ``iters``: warm-up over the first 10 % (at most 100
    iterations, as the 1k schedule), LR steps at 75 % and 90 %, one checkpoint per quarter (the
    last one at ``iters``) so that an interrupted run resumes."""
    warmup = max(1, min(100, iters // 10))
    steps = sorted({max(1, int(iters * 0.75)), max(1, int(iters * 0.9))})
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.0.end={warmup}', f'param_scheduler.1.end={iters}',
            f'param_scheduler.1.milestones=[{",".join(map(str, steps))}]',
            f'default_hooks.checkpoint.interval={max(1, math.ceil(iters / 4))}',
            # evaluated once, by tools/test.py, after training
            'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']


def _num_classes(data_root: str) -> int:
    with open(osp.join(data_root, 'annotations', 'lvis_v1_train.json'), encoding='utf-8') as f:
        return len(json.load(f)['categories'])


def _class_options(config: str, num: int) -> list:
    """``num_classes`` overrides of the box head(s): one per stage of a cascade (a list)."""
    cfg = Config.fromfile(osp.join(ROOT, config), import_custom_modules=False)
    heads = cfg.model.roi_head.bbox_head
    if isinstance(heads, (list, tuple)):
        return [f'model.roi_head.bbox_head.{i}.num_classes={num}' for i in range(len(heads))]
    return [f'model.roi_head.bbox_head.num_classes={num}']


def _paste_steps(config: str) -> list:
    """``(index, bank root)`` of the XPaste steps of the config's training pipeline."""
    cfg = Config.fromfile(osp.join(ROOT, config), import_custom_modules=False)
    pipeline = cfg.train_dataloader.dataset.dataset.pipeline
    return [(i, s['bank']['root'] if isinstance(s['bank'], dict) else s['bank'])
            for i, s in enumerate(pipeline) if s.get('type') == 'XPaste']


def world_options(config: str, data_root: str, banks_root: str, train: bool) -> list:
    """Overrides pointing a toy config at another world and banks folder (none for the
    defaults): data roots, annotation files, class count, and every XPaste step's class json
    and bank root (``<banks_root>/<bank folder name>``)."""
    if (osp.normpath(data_root) == osp.normpath(DEFAULT_DATA_ROOT)
            and osp.normpath(banks_root) == osp.normpath(DEFAULT_BANKS_ROOT)):
        return []
    num = _num_classes(data_root)
    ann = osp.join(data_root, 'annotations', 'lvis_v1_val.json')
    opts = [*_class_options(config, num), f'model.roi_head.mask_head.num_classes={num}']
    if train:
        opts.append(f'train_dataloader.dataset.dataset.data_root={data_root}/')
        classes = osp.join(data_root, 'annotations', 'lvis_v1_train.json')
        for index, root in _paste_steps(config):
            opts += [f'{INNER_PIPELINE}.{index}.classes={classes}',
                     f'{INNER_PIPELINE}.{index}.bank.root='
                     f'{osp.join(banks_root, osp.basename(osp.normpath(root)))}']
    else:
        opts += [f'test_dataloader.dataset.data_root={data_root}/',
                 f'test_evaluator.ann_file={ann}']
    return opts


# ---------------------------------------------------------------- the plan
def run_dir(work_dir: str, variant: str, seed: int) -> str:
    return osp.join(work_dir, variant, f'seed{seed}')


def _resume_checkpoint(folder: str):
    """The newest ``iter_<N>.pth`` of an interrupted run, or None."""
    found = []
    for name in os.listdir(folder) if osp.isdir(folder) else []:
        match = re.fullmatch(r'iter_(\d+)\.pth', name)
        if match:
            found.append((int(match.group(1)), osp.join(folder, name)))
    return max(found)[1] if found else None


def _test_is_current(folder: str, checkpoint: str) -> bool:
    """Test metrics exist and are newer than the checkpoint they should evaluate."""
    if not (osp.isfile(checkpoint) and has_metrics(folder)):
        return False
    run = load_latest_metrics(folder)
    return run.kind == 'test' and osp.getmtime(run.source) >= osp.getmtime(checkpoint)


def world_step(args) -> Step:
    """Making the toy world (done if its val annotations exist)."""
    return Step('toy world', [sys.executable, 'tools/data/make_toy_lvis.py', '--out',
                              args.data_root],
                osp.join(args.work_dir, 'logs', 'make_toy_lvis.log'),
                done=osp.isfile(osp.join(args.data_root, 'annotations', 'lvis_v1_val.json')))


def plan(args) -> list:
    """The banks, trainings and tests of the experiment, those whose outputs exist marked
    done."""
    py = sys.executable
    logs = osp.join(args.work_dir, 'logs')
    data_root, banks_root = args.data_root, args.banks_root
    train_json = osp.join(data_root, 'annotations', 'lvis_v1_train.json')
    steps = []
    banks = set().union(*(_bank_names(args.configs[v]) for v in args.variants))
    if GENERATED_BANK in banks:
        bank = osp.join(banks_root, GENERATED_BANK)
        steps.append(Step(
            f'bank {bank} (toy source -> segmenter -> filters)',
            [py, 'tools/bank/build.py', BANK_CONFIG, '--work-dir',
             osp.join(args.work_dir, 'bank_build'), '--bank-dir', bank, '--no-progress',
             '--cfg-options', f'categories.ann_file={train_json}'],
            osp.join(logs, 'bank_build.log'), done=osp.isfile(osp.join(bank, 'manifest.json'))))
    if TRAIN_BANK in banks:
        bank = osp.join(banks_root, TRAIN_BANK)
        steps.append(Step(
            f'bank {bank} (training-set instances)',
            [py, 'tools/bank/from_annotations.py', train_json, data_root, bank, '--no-progress'],
            osp.join(logs, 'from_annotations.log'),
            done=osp.isfile(osp.join(bank, 'manifest.json'))))
    for variant in args.variants:
        config = args.configs[variant]
        for seed in args.seeds:
            folder = run_dir(args.work_dir, variant, seed)
            final = osp.join(folder, f'iter_{args.iters}.pth')
            train = [py, 'tools/train.py', config, '--work-dir', folder]
            resume = None if osp.isfile(final) else _resume_checkpoint(folder)
            if resume:
                train += ['--resume', resume]
            train += ['--cfg-options', f'randomness.seed={seed}', *schedule_options(args.iters),
                      *_world(args, config, train=True), *args.cfg_options]
            steps.append(Step(f'train {variant} seed {seed}', train,
                              osp.join(folder, 'train.log'), done=osp.isfile(final),
                              note=f'resume from {resume}' if resume else ''))
            test = [py, 'tools/test.py', config, final, '--work-dir', folder]
            opts = [*_world(args, config, train=False), *args.cfg_options]
            if opts:
                test += ['--cfg-options', *opts]
            steps.append(Step(f'test {variant} seed {seed}', test, osp.join(folder, 'test.log'),
                              done=_test_is_current(folder, final)))
    return steps


def _world(args, config, train):
    # in a dry run the world may not exist yet: show the overrides only when it does
    if args.dry_run and not osp.isfile(
            osp.join(args.data_root, 'annotations', 'lvis_v1_train.json')):
        return []
    return world_options(config, args.data_root, args.banks_root, train)


def _bank_names(config: str) -> set:
    """Folder names of the banks a config pastes from (each one this script builds)."""
    roots = {osp.basename(osp.normpath(root)) for _, root in _paste_steps(config)}
    unknown = roots - {GENERATED_BANK, TRAIN_BANK}
    if unknown:
        raise ValueError(f'{config}: bank folders {sorted(unknown)} are not the toy banks '
                         f'{[GENERATED_BANK, TRAIN_BANK]} this script builds')
    return roots


# ---------------------------------------------------------------- running
def run_step(step: Step) -> float:
    """Run a step with its output in ``step.log``; on failure print the log's tail and exit."""
    os.makedirs(osp.dirname(osp.abspath(step.log)), exist_ok=True)
    env = dict(os.environ)
    env.setdefault('PYTHONWARNINGS', 'ignore::UserWarning,ignore::DeprecationWarning')
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    start = time.time()
    with open(step.log, 'a', encoding='utf-8') as log:
        log.write(f'\n$ {shlex.join(step.cmd)}\n')
        log.flush()
        rc = subprocess.call(step.cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    if rc != 0:
        with open(step.log, encoding='utf-8', errors='replace') as f:
            tail = f.readlines()[-LOG_TAIL:]
        tqdm.write(''.join(tail))
        raise SystemExit(f'step failed (exit status {rc}): {step.name}\n  command: '
                         f'{shlex.join(step.cmd)}\n  log: {step.log}')
    return time.time() - start


def collect(args) -> list:
    """One :class:`RunGroup` per variant, from the test metrics of its seeds."""
    return [RunGroup(v, [load_latest_metrics(run_dir(args.work_dir, v, s)) for s in args.seeds])
            for v in args.variants]


def report(args, groups: list, elapsed: float, argv) -> str:
    """The Markdown of the results: how they were made, the table and the claim check."""
    rows = summarize(groups, baseline=0)
    lines = [
        '# Toy-world experiment',
        '',
        '- command: `' + shlex.join(['python', 'tools/experiments/toy_experiment.py', *argv])
        + '`',
        f'- date: {time.strftime("%Y-%m-%d %H:%M")}; {os.cpu_count()} CPU cores '
        f'({platform.processor() or platform.machine()}); wall time of this invocation '
        f'{elapsed / 60:.1f} min',
        f'- {args.iters} training iterations per run; seeds {args.seeds}; '
        f'world {args.data_root}; banks {args.banks_root}',
        '- cells: mean ± sample std over seeds (delta to the baseline), LVIS AP in %',
        '',
        format_markdown(rows).rstrip(),
        '']
    names = [g.name for g in groups]
    if 'xpaste' in names and names[0] == 'baseline':
        result = check_gain(groups[names.index('xpaste')], groups[0])
        verdict = 'holds' if result['passed'] else 'does not hold'
        lines += [
            f'Claim (X-Paste vs baseline): mask APr {result["gain"]:+.1f} '
            f'(> 2 x spread {result["gain_spread"]:.1f}: {"yes" if result["raised"] else "no"}),'
            f' mask APf {result["keep_delta"]:+.1f} (>= -spread {result["keep_spread"]:.1f}: '
            f'{"yes" if result["kept"] else "no"}) -> the claim {verdict} on the toy world.',
            '']
    specs = ' '.join(f"'{g.name}={osp.join(args.work_dir, g.name, 'seed*')}'" for g in groups)
    lines += ['Table again: `python tools/analysis/compare_runs.py ' + specs
              + ' --baseline 0`', '']
    return '\n'.join(lines)


def main(argv=None):
    """Run (or with ``--dry-run`` print) the experiment; return the summary rows (None for a
    dry run)."""
    args = parse_args(argv)
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    os.chdir(ROOT)
    world = world_step(args)
    if args.dry_run:
        steps = [world, *plan(args)]
        for step in steps:
            status = '[done]' if step.done else f'[todo{", " + step.note if step.note else ""}]'
            print(f'{status} {step.name}\n    {shlex.join(step.cmd)}')
        print(f'{sum(not s.done for s in steps)} of {len(steps)} steps to run')
        return None
    start = time.time()
    if not world.done:
        tqdm.write(f'{world.name}: {run_step(world):.0f} s (log {world.log})')
    steps = plan(args)  # the world exists now: its class count sets the overrides
    bar = tqdm(total=len(steps), initial=sum(s.done for s in steps), desc='toy experiment',
               unit='step', dynamic_ncols=True)
    for step in steps:
        if step.done:
            continue
        bar.set_postfix_str(step.name)
        seconds = run_step(step)
        tqdm.write(f'[{time.strftime("%H:%M:%S")}] {step.name}: {seconds:.0f} s '
                   f'(log {step.log})')
        bar.update(1)
    bar.close()
    groups = collect(args)
    text = report(args, groups, time.time() - start, argv if argv is not None else sys.argv[1:])
    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'results.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    rows = summarize(groups, baseline=0)
    plot_comparison(rows, osp.join(args.work_dir, 'results.png'),
                    title=f'Toy LVIS world, {args.iters} iterations, seeds {args.seeds}')
    print(text)
    print(f'written: {osp.join(args.work_dir, "results.md")}, '
          f'{osp.join(args.work_dir, "results.png")}')
    return rows


if __name__ == '__main__':
    main()

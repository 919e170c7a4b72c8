"""The toy-world experiment (``make experiment``, ``make ablations``): the method and its
ablations on the toy world, same seeds and schedule for every run.

Every variant trains the same slim Mask R-CNN on the same toy LVIS world with the same schedule;
the variants differ only by their paste step (tests/test_configs_xpaste.py checks the configs).
The main table (``make experiment``)::

    baseline          configs/toy/mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py
    copypaste         the training set's own instances   (data/banks/toy_train_instances)
    xpaste            the bank generated with a domain gap, CLIP-filtered (data/banks/toy_generated)
    xpaste-copypaste  both banks, half the pastes each

and with ``--ablations`` (``make ablations``) the X-Paste row against one change each
(configs/xpaste/toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-<tag>-1k_toy-lvis.py)::

    xpaste-nofilter   no CLIP, area, component or duplicate filter (configs/bank/toy_gap_nofilter.py)
    xpaste-clip50/80  CLIP threshold 50 / 80 instead of 65       (configs/bank/toy_gap_clip*.py)
    xpaste-ensemble   two segmenters, best cut-out by CLIP        (configs/bank/toy_gap_ensemble.py)
    xpaste-n5/n20/n40 0..4 / 0..19 / 0..39 pastes instead of 0..7
    xpaste-uniform    bank instances drawn uniformly instead of class-balanced

Steps, each skipped when its output exists (a rerun resumes where a killed run stopped):

1. the toy world (``tools/data/make_toy_lvis.py``), the toy CLIP (``tools/toy/train_clip.py``,
   cached) and the banks the variants paste from: ``tools/bank/build.py configs/bank/toy_gap*.py``
   (the generator with a domain gap, segmented, scored by the toy CLIP, filtered; the variants of
   the default build start from a copy of its work dir, so they share its images, masks and
   scores and redo only what their settings change) and ``tools/bank/from_annotations.py``;
2. for each variant and seed: ``tools/train.py CONFIG --work-dir
   <work-dir>/<variant>/seed<S> --cfg-options randomness.seed=S`` with the schedule scaled to
   ``--iters`` (warm-up, LR steps at 75 % and 90 %), resumed from its last checkpoint if a run
   was interrupted, then ``tools/test.py`` on the final checkpoint (LVIS AP, APr, APc, APf);
   ``--jobs N`` runs N of them at once, each with 1/N of the CPU threads;
3. the table (mean ± standard deviation over seeds, deltas to the first row) printed and
   written to ``<work-dir>/results.md`` and ``results.png`` (``ablations.md``/``.png`` with
   ``--ablations``), with the check of the method's claim on the toy world: X-Paste raises box
   and mask APr over the baseline by more than twice the seeds' spread without lowering APf by
   more than the spread; for the ablations, whether CLIP filtering beats no filter.

Examples::

    python tools/experiments/toy_experiment.py                      # main table, 3 seeds
    python tools/experiments/toy_experiment.py --ablations --seeds 0 1
    python tools/experiments/toy_experiment.py --dry-run            # print the commands
    python tools/experiments/toy_experiment.py --variants baseline xpaste --seeds 0 1 --iters 500
    python tools/experiments/toy_experiment.py --detector centernet2   # CenterNet2: baseline, xpaste

Budget: a run of 250 iterations takes about 4 minutes on 2 idle CPU cores (about 0.65 s per
training iteration at batch 4, plus about a minute for start-up and the evaluation); the toy
CLIP about 3 minutes once, each generated bank about a minute. Other jobs on the same cores slow
it down several-fold.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Optional

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
# `--ablations`: the X-Paste row with one change each (its table compares them with the
# X-Paste row, the baseline shown for scale)
ABLATIONS = OrderedDict(
    (f'xpaste-{tag}', f'configs/xpaste/toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-{tag}-1k_toy-lvis.py')
    for tag in ('nofilter', 'clip50', 'clip80', 'ensemble', 'n5', 'n20', 'n40', 'uniform'))
ABLATION_TABLE = ['xpaste', *ABLATIONS, 'baseline']
# `--detector`: the variants of each detector (the first detector is the default)
DETECTORS = OrderedDict([
    ('mask-rcnn', OrderedDict([*VARIANTS.items(), *ABLATIONS.items()])),
    ('centernet2', OrderedDict([
        ('baseline', 'configs/toy/centernet2_r18-slim_fpn_1xb4-1k_toy-lvis.py'),
        ('xpaste', 'configs/toy/centernet2_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'),
    ])),
])
DEFAULT_DATA_ROOT = 'data/toy_lvis'
DEFAULT_BANKS_ROOT = 'data/banks'
GENERATED_BANK = 'toy_generated'
TRAIN_BANK = 'toy_train_instances'
# bank folder -> the bank config that builds it; the ones after the first start from a copy of
# the first one's work dir (same generator and seed: its images, masks and scores are reused;
# the fingerprints redo what differs)
BANK_CONFIGS = OrderedDict([
    (GENERATED_BANK, 'configs/bank/toy_gap.py'),
    (f'{GENERATED_BANK}_nofilter', 'configs/bank/toy_gap_nofilter.py'),
    (f'{GENERATED_BANK}_clip50', 'configs/bank/toy_gap_clip50.py'),
    (f'{GENERATED_BANK}_clip80', 'configs/bank/toy_gap_clip80.py'),
    (f'{GENERATED_BANK}_ensemble', 'configs/bank/toy_gap_ensemble.py'),
])
# where tools/toy/train_clip.py keeps the toy CLIP of the default world (the bank configs'
# score.pretrained); another world's CLIP goes to <work-dir>/toy_clip
DEFAULT_CLIP_DIR = 'work_dirs/toy_clip'
CLIP_NAME = 'xpaste-toy-clip'
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
        copy_from (str, optional): A folder copied to ``copy_to`` before the command runs
            (when ``copy_to`` does not exist yet).
        copy_to (str, optional): See ``copy_from``.
    """
    name: str
    cmd: list
    log: str
    done: bool = False
    note: str = ''
    copy_from: Optional[str] = None
    copy_to: Optional[str] = None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Toy-world experiment: baseline, copy-paste, X-Paste, X-Paste + copy-paste '
        '(or with --ablations the X-Paste ablations) on the same world and schedule, several '
        'seeds; prints the LVIS table (mean ± std)',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='random seeds')
    parser.add_argument('--iters', type=int, default=DEFAULT_ITERS,
                        help='training iterations per run (batch 4)')
    parser.add_argument('--detector', default='mask-rcnn', choices=list(DETECTORS),
                        help='detector of the toy configs (centernet2: baseline and xpaste; '
                        'runs go to <work-dir>/centernet2 unless --work-dir is given)')
    parser.add_argument('--variants', nargs='+', default=None,
                        choices=sorted(set().union(*DETECTORS.values())),
                        help='variants to run (default: the main table of the detector, or '
                        'the ablation table); the first is the reference row of the table')
    parser.add_argument('--ablations', action='store_true',
                        help=f'the ablation table: {", ".join(ABLATION_TABLE)} (Mask R-CNN); '
                        'written to ablations.md/png')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs (training + test) at once, each with 1/jobs of the CPU '
                        'threads')
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
    if args.ablations and args.detector != 'mask-rcnn':
        parser.error(f'--ablations are Mask R-CNN configs, not --detector {args.detector}')
    if args.variants is None:
        args.variants = (ABLATION_TABLE if args.ablations else list(VARIANTS)
                         if args.detector == 'mask-rcnn' else list(args.configs))
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
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds must be distinct, got {args.seeds}')
    if len(set(args.variants)) != len(args.variants):
        parser.error(f'--variants must be distinct, got {args.variants}')
    return args


# ---------------------------------------------------------------- overrides
def schedule_options(iters: int) -> list:
    """The toy schedule scaled to ``iters``: warm-up over the first 20 % (at most 100
    iterations, as the 1k schedule; a warm-up of 10 % let some seeds diverge at 250
    iterations), LR steps at 75 % and 90 %, one checkpoint per quarter (the last one at
    ``iters``) so that an interrupted run resumes."""
    warmup = max(1, min(100, iters // 5))
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


@dataclass
class Run:
    """The training and the test of one variant and seed (run one after the other)."""
    name: str
    train: Step
    test: Step

    @property
    def done(self) -> bool:
        return self.train.done and self.test.done


def clip_dir(args) -> str:
    """Where the toy CLIP of the experiment's world is (trained if missing)."""
    default = osp.normpath(args.data_root) == osp.normpath(DEFAULT_DATA_ROOT)
    return DEFAULT_CLIP_DIR if default else osp.join(args.work_dir, 'toy_clip')


def bank_steps(args) -> list:
    """The toy CLIP and the banks the variants paste from, in build order."""
    banks = set().union(*(_bank_names(args.configs[v]) for v in args.variants))
    py = sys.executable
    logs = osp.join(args.work_dir, 'logs')
    train_json = osp.join(args.data_root, 'annotations', 'lvis_v1_train.json')
    clip = clip_dir(args)
    steps, todo = [], []
    first_work = osp.join(args.work_dir, 'bank_build', GENERATED_BANK)
    for name, config in BANK_CONFIGS.items():
        if name not in banks:
            continue
        bank = osp.join(args.banks_root, name)
        work = osp.join(args.work_dir, 'bank_build', name)
        step = Step(
            f'bank {bank} ({osp.basename(config)})',
            [py, 'tools/bank/build.py', config, '--work-dir', work, '--bank-dir', bank,
             '--no-progress', '--cfg-options', f'categories.ann_file={train_json}',
             f'score.pretrained={osp.join(clip, CLIP_NAME + ".safetensors")}',
             f'score.model_config={osp.join(clip, CLIP_NAME + ".json")}'],
            osp.join(logs, f'bank_{name}.log'), done=osp.isfile(osp.join(bank, 'manifest.json')))
        if name != GENERATED_BANK:
            step.copy_from, step.copy_to = first_work, work
        todo.append(not step.done)
        steps.append(step)
    if any(todo):
        # train_clip.py returns at once when its cached model matches the settings
        steps.insert(0, Step('toy CLIP', [py, 'tools/toy/train_clip.py', '--train-ann',
                                          train_json, '--out', clip],
                             osp.join(logs, 'train_clip.log')))
    if TRAIN_BANK in banks:
        bank = osp.join(args.banks_root, TRAIN_BANK)
        steps.append(Step(
            f'bank {bank} (training-set instances)',
            [py, 'tools/bank/from_annotations.py', train_json, args.data_root, bank,
             '--no-progress'],
            osp.join(logs, 'from_annotations.log'),
            done=osp.isfile(osp.join(bank, 'manifest.json'))))
    return steps


def plan_runs(args) -> list:
    """One :class:`Run` per variant and seed, the finished parts marked done."""
    py = sys.executable
    runs = []
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
            test = [py, 'tools/test.py', config, final, '--work-dir', folder]
            opts = [*_world(args, config, train=False), *args.cfg_options]
            if opts:
                test += ['--cfg-options', *opts]
            runs.append(Run(
                f'{variant} seed {seed}',
                Step(f'train {variant} seed {seed}', train, osp.join(folder, 'train.log'),
                     done=osp.isfile(final), note=f'resume from {resume}' if resume else ''),
                Step(f'test {variant} seed {seed}', test, osp.join(folder, 'test.log'),
                     done=_test_is_current(folder, final))))
    return runs


def plan(args) -> list:
    """Every step of the experiment (banks, then each run's training and test), those whose
    outputs exist marked done."""
    steps = bank_steps(args)
    for run in plan_runs(args):
        steps += [run.train, run.test]
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
    unknown = roots - {*BANK_CONFIGS, TRAIN_BANK}
    if unknown:
        raise ValueError(f'{config}: bank folders {sorted(unknown)} are not the toy banks '
                         f'{[*BANK_CONFIGS, TRAIN_BANK]} this script builds')
    return roots


# ---------------------------------------------------------------- running
def run_step(step: Step, threads: Optional[int] = None) -> float:
    """Run a step with its output in ``step.log`` (``threads``: the CPU threads it may use);
    on failure print the log's tail and exit."""
    os.makedirs(osp.dirname(osp.abspath(step.log)), exist_ok=True)
    if step.copy_from and osp.isdir(step.copy_from) and not osp.exists(step.copy_to):
        partial = step.copy_to + '.partial'
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(step.copy_from, partial, symlinks=True)
        os.replace(partial, step.copy_to)
    env = dict(os.environ)
    env.setdefault('PYTHONWARNINGS', 'ignore::UserWarning,ignore::DeprecationWarning')
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    if threads:
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
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


def run_run(run: Run, threads: Optional[int]) -> float:
    """Train (unless done), then test (unless current); returns the seconds spent."""
    seconds = 0.0
    for step in (run.train, run.test):
        if not step.done:
            seconds += run_step(step, threads)
    return seconds


def run_all(runs: list, jobs: int) -> None:
    """Run the unfinished runs, ``jobs`` at a time, with a progress bar and an ETA."""
    todo = [r for r in runs if not r.done]
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc='runs', unit='run',
               dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_run, run, threads): run for run in todo}
        try:
            for future in as_completed(futures):
                seconds = future.result()  # a failed run stops the experiment
                tqdm.write(f'[{time.strftime("%H:%M:%S")}] {futures[future].name}: '
                           f'{seconds:.0f} s (log {futures[future].train.log})')
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    bar.close()


def collect(args) -> list:
    """One :class:`RunGroup` per variant, from the test metrics of its seeds."""
    return [RunGroup(v, [load_latest_metrics(run_dir(args.work_dir, v, s)) for s in args.seeds])
            for v in args.variants]


def _claims(groups: list) -> list:
    """Markdown lines checking the method's claims on the rows present: X-Paste vs baseline
    (APr raised by > 2x the spread, APf kept, box and mask) and CLIP filter vs no filter."""
    by_name = {g.name: g for g in groups}
    lines = []
    if 'xpaste' in by_name and 'baseline' in by_name and min(
            len(by_name[n].runs) for n in ('xpaste', 'baseline')) < 2:
        lines.append('- Claim (X-Paste vs baseline): not checked, the spread over seeds needs at '
                     'least 2 seeds.')
    elif 'xpaste' in by_name and 'baseline' in by_name:
        for task in ('bbox', 'segm'):
            result = check_gain(by_name['xpaste'], by_name['baseline'],
                                gain_key=f'lvis/{task}_APr', keep_key=f'lvis/{task}_APf')
            verdict = 'holds' if result['passed'] else 'does not hold'
            title = 'box' if task == 'bbox' else 'mask'
            lines += [
                f'- Claim (X-Paste vs baseline, {title}): APr {result["gain"]:+.1f} '
                f'(> 2 x spread {result["gain_spread"]:.1f}: '
                f'{"yes" if result["raised"] else "no"}), APf {result["keep_delta"]:+.1f} '
                f'(>= -spread {result["keep_spread"]:.1f}: {"yes" if result["kept"] else "no"})'
                f' -> {verdict}.']
    if 'xpaste' in by_name and 'xpaste-nofilter' in by_name:
        parts = []
        for key, title in (('bbox_AP', 'box AP'), ('bbox_APr', 'box APr'),
                           ('segm_AP', 'mask AP'), ('segm_APr', 'mask APr')):
            delta = 100 * (by_name['xpaste'].mean(f'lvis/{key}')
                           - by_name['xpaste-nofilter'].mean(f'lvis/{key}'))
            parts.append(f'{title} {delta:+.1f}')
        lines.append('- CLIP-filtered bank minus unfiltered bank: ' + ', '.join(parts) + '.')
    return lines + [''] if lines else []


def report(args, groups: list, elapsed: float, argv) -> str:
    """The Markdown of the results: how they were made, the table and the claim checks."""
    rows = summarize(groups, baseline=0)
    lines = [
        '# Toy-world ' + ('ablations' if args.ablations else 'experiment'),
        '',
        '- command: `' + shlex.join(['python', 'tools/experiments/toy_experiment.py', *argv])
        + '`',
        f'- date: {time.strftime("%Y-%m-%d %H:%M")}; {os.cpu_count()} CPU cores '
        f'({platform.processor() or platform.machine()}); wall time of this invocation '
        f'{elapsed / 60:.1f} min',
        f'- {args.iters} training iterations per run; seeds {args.seeds}; '
        f'world {args.data_root}; banks {args.banks_root}',
        f'- cells: mean ± sample std over seeds (delta to {groups[0].name}), LVIS AP in %',
        '',
        format_markdown(rows).rstrip(),
        '',
        *_claims(groups)]
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
    # the world exists now: its class count sets the overrides
    for step in bank_steps(args):
        if not step.done:
            tqdm.write(f'[{time.strftime("%H:%M:%S")}] {step.name}: {run_step(step):.0f} s '
                       f'(log {step.log})')
    run_all(plan_runs(args), args.jobs)
    groups = collect(args)
    text = report(args, groups, time.time() - start, argv if argv is not None else sys.argv[1:])
    os.makedirs(args.work_dir, exist_ok=True)
    stem = osp.join(args.work_dir, 'ablations' if args.ablations else 'results')
    with open(stem + '.md', 'w', encoding='utf-8') as f:
        f.write(text)
    rows = summarize(groups, baseline=0)
    plot_comparison(rows, stem + '.png',
                    title=f'Toy LVIS world, {args.iters} iterations, seeds {args.seeds}')
    print(text)
    print(f'written: {stem}.md, {stem}.png')
    return rows


if __name__ == '__main__':
    main()

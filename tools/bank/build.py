"""Build an instance bank: ``python tools/bank/build.py CONFIG [--stage STAGE ...]``.

Stages: generate, segment, score, filter, write, report, or all (default). Examples::

    python tools/bank/build.py configs/bank/toy.py
    python tools/bank/build.py configs/bank/lvis_sd15.py --stage filter \\
        --cfg-options filter.min_clip=20
    torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15.py
    srun -n 16 --gres=gpu:8 python tools/bank/build.py configs/bank/lvis_sd15.py

SIGTERM (slurm preemption) or Ctrl-C finishes the work units in flight, prints how to resume
(the same command) and exits with status 143 / 130.
"""
import argparse
import os
import os.path as osp
import shlex
import sys
import time
import uuid

from mmengine.config import DictAction
from mmengine.logging import MMLogger

from xpaste.builder.dist import get_dist_info, init_process_group
from xpaste.builder.interrupt import BuildInterrupted
from xpaste.builder.layout import STAGES
from xpaste.builder.pipeline import BankBuilder
from xpaste.utils.config import load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Build an instance bank (generate, segment, '
                                     'score, filter, write, report)')
    parser.add_argument('config', help='bank config file, e.g. configs/bank/toy.py')
    parser.add_argument(
        '--stage',
        nargs='+',
        default=['all'],
        choices=[*STAGES, 'all'],
        help='stages to run (in pipeline order); default: all')
    parser.add_argument(
        '--work-dir',
        help='directory of every stage\'s outputs; default: '
        'work_dir of the config, else ./work_dirs/<config name>')
    parser.add_argument('--bank-dir', help='where the bank is written; default: <work_dir>/bank')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings, key=value (e.g. filter.min_clip=20 '
        'images_per_class=50)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch'],
        default='none',
        help='pytorch: start a gloo process group (torchrun) for barriers; '
        'none: ranks from RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS '
        'synchronise through files')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser.parse_args(argv)


def resume_command(argv=None) -> str:
    """The command line that resumes this build: the same one."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(['python', 'tools/bank/build.py', *argv])


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if args.bank_dir is not None:
        cfg.bank_dir = args.bank_dir
    if args.no_progress:
        cfg.progress = False
    init_process_group(args.launcher)
    rank, world_size, _ = get_dist_info()
    stamp = time.strftime('%Y%m%d_%H%M%S')
    log_file = osp.join(cfg.work_dir, 'logs', f'build_{stamp}_rank{rank}.log')
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    MMLogger.get_instance(
        f'xpaste-bank-{stamp}-{rank}-{uuid.uuid4().hex[:6]}', log_file=log_file, log_level='INFO')
    builder = BankBuilder(cfg.to_dict(), rank=rank, world_size=world_size)
    if rank == 0:
        cfg.dump(osp.join(builder.ctx.work_dir, 'logs', f'config_{stamp}.py'))
    try:
        return builder.run(args.stage)
    except BuildInterrupted as e:
        launcher = ' (on every rank, with the same launcher)' if world_size > 1 else ''
        print(f'{e}\nresume with: {resume_command(argv)}{launcher}', file=sys.stderr, flush=True)
        raise SystemExit(e.exit_code) from e


if __name__ == '__main__':
    main()

"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out F.pkl]
[--show | --show-dir DIR [--wait-time S]]``.

Multi-GPU: ``bash tools/dist_test.sh CONFIG CHECKPOINT 8``; slurm: ``bash tools/slurm_test.sh PART
JOB CONFIG CHECKPOINT``. The LVIS metrics (AP, APr, APc, APf, box and mask) are logged and written
to ``<work_dir>/<timestamp>/<timestamp>.json``; ``--show-dir DIR`` draws the predictions into
``<work_dir>/<timestamp>/DIR/``, ``--show`` opens each drawing in a window (needs a display).
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from xpaste.utils.compat import apply_compat
from xpaste.utils.config import load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', type=str,
                        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true',
                        help='show each drawn prediction in a window (needs a display)')
    parser.add_argument('--show-dir',
                        help='save drawn predictions into <work_dir>/<timestamp>/SHOW_DIR')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each drawing stays shown with --show (default 2)')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: not supported for instance segmentation '
                        '(an error says so)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    """Turn on the config's ``VisualizationHook`` for ``--show`` / ``--show-dir``."""
    hooks = cfg.get('default_hooks') or {}
    if hooks.get('visualization') is None:
        raise RuntimeError(
            f'--show/--show-dir need default_hooks.visualization in {args.config}: add '
            "default_hooks = dict(visualization=dict(type='DetVisualizationHook'))")
    hook = hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        hook['test_out_dir'] = args.show_dir
    return cfg


def build_test_config(args):
    if args.tta:
        raise NotImplementedError(
            '--tta: test-time augmentation is not supported for instance segmentation (mmdet '
            "3.3's DetTTAModel merges boxes only and cannot merge masks); run without --tta")
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint!r}')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out!r}')
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) \
            else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpDetResults', out_file_path=args.out))
    return cfg


def main(argv=None):
    """Run the evaluation and return the metrics dict."""
    args = parse_args(argv)
    apply_compat()
    cfg = build_test_config(args)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    return runner.test()


if __name__ == '__main__':
    main()

"""Ranks, work assignment, fingerprints and waiting for other ranks in a bank build.

A bank build is split into *work units* (a chunk of images of one class for the per-image stages,
a whole class for the per-class stages). Ranks take contiguous blocks of the unit list
(:func:`block_bounds`): the assignment depends only on the unit list, so any number of ranks
covers every unit exactly once, and a rerun with another number of ranks finds the same files.

Every output file is written atomically (:mod:`xpaste.utils.fileio`) and carries the
*fingerprint* of the settings that produced it (:func:`fingerprint`): a rerun skips a unit whose
file exists with the current fingerprint and redoes it otherwise. Ranks without a process group
wait for each other's files (:func:`wait_for`).
"""
import hashlib
import json
import logging
import os
import time
from typing import Any, Iterable, Optional

import numpy as np
from mmengine.logging import print_log


# Keys of a stage's settings that change how fast it runs (or how many old bank versions are
# kept) but not what it produces; they are left out of fingerprints so that e.g. a different
# batch size on a rerun does not redo finished work.
NON_SEMANTIC_KEYS = frozenset({
    'batch_size', 'device', 'num_workers', 'workers', 'max_pending', 'compile', 'progress',
    'wait_timeout', 'poll_interval', 'start_method', 'keep_versions'
})


def get_dist_info(env: Optional[dict] = None) -> tuple[int, int, int]:
    """Return ``(rank, world_size, local_rank)`` from the launcher's environment.

    torchrun sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; slurm's ``srun`` sets
    ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``. Without either, the run is a single rank.

    Args:
        env (dict, optional): The environment to read. Defaults to ``os.environ``.

    Raises:
        ValueError: a variable is not an integer, or the rank is not in ``[0, world_size)``.
    """
    env = os.environ if env is None else env
    if 'RANK' in env or 'WORLD_SIZE' in env:
        keys = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')
    elif 'SLURM_PROCID' in env:
        keys = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID')
    else:
        return 0, 1, 0
    values = []
    for key, default in zip(keys, ('0', '1', None)):
        raw = env.get(key, default)
        if raw is None:  # LOCAL_RANK missing: take the global rank
            raw = values[0]
        try:
            values.append(int(raw))
        except (TypeError, ValueError):
            raise ValueError(f'environment variable {key} must be an integer, got {raw!r}')
    rank, world_size, local_rank = values
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f'rank {rank} is not in [0, world_size={world_size}) '
                         f'(from {keys[0]}/{keys[1]})')
    return rank, world_size, local_rank


def block_bounds(num_units: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, stop)`` of the contiguous block of ``num_units`` units that ``rank`` owns.

    Blocks differ in size by at most one unit and cover every unit exactly once; consecutive
    units (e.g. the chunks of one class) mostly fall to one rank.
    """
    return num_units * rank // world_size, num_units * (rank + 1) // world_size


def block_owner(index: int, num_units: int, world_size: int) -> int:
    """The rank whose :func:`block_bounds` block holds unit ``index``."""
    return min(world_size - 1, ((index + 1) * world_size - 1) // num_units)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of json-serialisable settings (dict keys sorted).

    Keys named in :data:`NON_SEMANTIC_KEYS` are dropped at every depth.
    """

    def clean(obj):
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items() if k not in NON_SEMANTIC_KEYS}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    text = json.dumps([clean(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def json_in_npz(obj: Any) -> np.ndarray:
    """Pack json-serialisable metadata as a unicode array for :func:`atomic_write_npz`."""
    return np.array(json.dumps(obj, allow_nan=True))


def json_from_npz(array: np.ndarray) -> Any:
    """Inverse of :func:`json_in_npz`."""
    return json.loads(str(array))


def is_dist_initialized() -> bool:
    """Whether a torch.distributed process group exists (torch imported only if loaded)."""
    import sys
    if 'torch' not in sys.modules:
        return False
    import torch.distributed as torch_dist
    return torch_dist.is_available() and torch_dist.is_initialized()


def init_process_group(launcher: str = 'none', timeout_s: float = 24 * 3600) -> bool:
    """Start a gloo process group for barriers between stages (``launcher='pytorch'``, i.e.
    torchrun's ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE``).

    With ``'none'`` (or one rank) nothing is started and ranks synchronise through files.
    Returns whether a process group is initialised.

    Raises:
        ValueError: an unknown launcher.
    """
    if launcher not in ('none', 'pytorch'):
        raise ValueError(f"launcher must be 'none' or 'pytorch', got {launcher!r}")
    _, world_size, _ = get_dist_info()
    if launcher == 'none' or world_size == 1 or is_dist_initialized():
        return is_dist_initialized()
    from datetime import timedelta

    import torch.distributed as torch_dist
    torch_dist.init_process_group('gloo', timeout=timedelta(seconds=timeout_s))
    return True


def barrier() -> None:
    """``torch.distributed.barrier()`` when a process group is initialised, else nothing."""
    if is_dist_initialized():
        import torch.distributed as torch_dist
        torch_dist.barrier()


def wait_for(ready: Iterable,
             check,
             timeout: float,
             poll_interval: float = 5.0,
             what: str = 'outputs',
             name=repr) -> None:
    """Wait until ``check(item)`` is true for every item of ``ready``.

    Other ranks write the outputs a later stage reads; a rank that gets there first waits for
    them. A timeout of 0 checks once.

    Args:
        ready (Iterable): Items to wait for (e.g. file paths).
        check (callable): ``check(item) -> bool``.
        timeout (float): Seconds to wait at most.
        poll_interval (float): Seconds between checks. Defaults to 5.
        what (str): What the items are, for messages. Defaults to ``'outputs'``.
        name (callable): How an item is named in messages. Defaults to ``repr``.

    Raises:
        TimeoutError: items still missing after ``timeout`` seconds; the message names up to five.
    """
    missing = [item for item in ready if not check(item)]
    deadline = time.monotonic() + timeout
    logged = False
    while missing and time.monotonic() < deadline:
        if not logged:
            print_log(
                f'waiting for {len(missing)} {what} of other ranks '
                f'(first: {name(missing[0])})',
                logger='current',
                level=logging.INFO)
            logged = True
        time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
        missing = [item for item in missing if not check(item)]
    if missing:
        shown = ', '.join(name(m) for m in missing[:5])
        more = f' and {len(missing) - 5} more' if len(missing) > 5 else ''
        raise TimeoutError(f'{len(missing)} {what} missing after waiting {timeout:.0f} s: '
                           f'{shown}{more}. Run the stage that makes them first (on every rank), '
                           f'or raise dist.wait_timeout.')

"""Progress of a stage across ranks.

Each rank writes how far it is in its current stage to ``<work_dir>/progress/rank-NNNNN.json``
(atomically, at most every few seconds, and when the stage ends): ``stage``, ``done``,
``total`` (images), ``rank``, ``world_size``, ``time``. Rank 0's progress bar shows the sums over
the ranks in the same stage, so one line follows a whole multi-rank build; ``cat
<work_dir>/progress/*.json`` shows each rank.
"""
import json
import os.path as osp
import time

from tqdm import tqdm

from xpaste.utils.fileio import atomic_write_bytes
from .integrity import json_problem

#: Folder of the progress files, under the work dir.
PROGRESS_DIR = 'progress'


def progress_path(work_dir: str, rank: int) -> str:
    """The progress file of ``rank``."""
    return osp.join(work_dir, PROGRESS_DIR, f'rank-{rank:05d}.json')


class RankProgress:
    """This rank's progress in a stage: a tqdm bar and a progress file (see the module
    docstring).

    Args:
        work_dir (str): The build's work dir.
        stage (str): The stage (or streamed stages, e.g. ``'generate/segment/score'``).
        total (int): Images this rank has to do.
        rank (int): This rank.
        world_size (int): Number of ranks.
        show (bool): Show a bar (``progress`` setting). Defaults to True.
        interval (float): Seconds between progress file writes (and, on rank 0, reads of the
            other ranks' files). Defaults to 2.
    """

    def __init__(self,
                 work_dir: str,
                 stage: str,
                 total: int,
                 rank: int,
                 world_size: int,
                 show: bool = True,
                 interval: float = 2.0):
        self.work_dir = work_dir
        self.stage = stage
        self.total = total
        self.rank = rank
        self.world_size = world_size
        self.interval = interval
        self.done = 0
        self._last = 0.0
        where = f'{world_size} ranks' if rank == 0 and world_size > 1 else \
            f'rank {rank}/{world_size}'
        self.bar = tqdm(
            total=total,
            desc=f'{stage} [{where}]',
            unit='img',
            dynamic_ncols=True,
            disable=not show or None,
            mininterval=1.0)
        self._sync(force=True)

    def update(self, n: int) -> None:
        """``n`` more images done."""
        self.done += n
        self.bar.update(n)
        self._sync()

    def close(self) -> None:
        """Write the final state and close the bar."""
        self._sync(force=True)
        self.bar.close()

    def totals(self) -> tuple[int, int]:
        """``(done, total)`` summed over the ranks whose progress file is in this stage (this
        rank's own counts included)."""
        done, total = self.done, self.total
        for rank in range(self.world_size):
            if rank == self.rank:
                continue
            rec, _ = json_problem(progress_path(self.work_dir, rank))
            if rec is not None and rec.get('stage') == self.stage:
                done += int(rec.get('done', 0))
                total += int(rec.get('total', 0))
        return done, total

    def _sync(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        record = dict(
            stage=self.stage,
            done=self.done,
            total=self.total,
            rank=self.rank,
            world_size=self.world_size,
            time=time.time())
        atomic_write_bytes(
            progress_path(self.work_dir, self.rank), json.dumps(record).encode(), fsync=False)
        if self.rank == 0 and self.world_size > 1 and not self.bar.disable:
            self.bar.n, self.bar.total = self.totals()
            self.bar.refresh()


def make_progress(ctx, stage: str, total: int) -> RankProgress:
    """A :class:`RankProgress` for this rank of build ``ctx`` (``progress`` setting)."""
    return RankProgress(ctx.work_dir, stage, total, ctx.rank, ctx.world_size,
                        bool(ctx.cfg['progress']))

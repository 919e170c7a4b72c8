"""The ``write`` stage: the kept cut-outs of each class into the bank, then the merged bank.

Output per class: the bank part ``<bank>/parts/cls-<id>/`` (written whole by
:func:`~xpaste.builder.jobs.write_class_job` in a worker, ``BankWriter(mode='w')``) and, as soon
as it is committed, the marker ``write/<class>.json`` (fingerprint, category list, part, count,
index file and shard sizes: the done check finds a part that was damaged later). Rank 0 then
waits for every class's part and merges them (:func:`xpaste.bank.finalize_bank`) into a new
version of the bank, switched atomically: readers of the previous version, and the previous
version itself if the build is killed, are left intact. A bank whose fingerprint is current
and that passes the cheap integrity check (:func:`xpaste.bank.check_bank`, what
:func:`~xpaste.bank.bank_is_intact` runs) is left as it is; one that fails it is merged again
from its parts.
"""
import logging
import os
import os.path as osp
import time
import zipfile
from collections import deque
from typing import TYPE_CHECKING, Optional

from mmengine.logging import print_log

from xpaste.bank import check_bank, drop_part, finalize_bank, package_versions, read_manifest
from xpaste.utils.checks import check_number
from xpaste.utils.fileio import read_json
from ..defaults import recorded_options
from ..dist import fingerprint
from ..interrupt import StopRequest
from ..jobs import WriteJob, WriteRow, make_executor, write_class_job
from ..layout import to_builtin
from ..progress import make_progress
from .base import ClassStage

if TYPE_CHECKING:
    from ..context import BuildContext


class WriteStage(ClassStage):
    """Writes the bank parts of this rank's classes and, on rank 0, the bank (see the module
    docstring)."""

    name = 'write'

    def __init__(self, ctx: 'BuildContext', stop: Optional[StopRequest] = None):
        super().__init__(ctx, stop)
        check_number('write.keep_versions', ctx.cfg['write']['keep_versions'], 0, integer=True,
                     allow_none=True)

    def job(self, cat: int) -> WriteJob:
        """The bank part of class ``cat`` to write, from its filter output."""
        ctx, layout = self.ctx, self.ctx.layout
        names = [s.name for s in ctx.segmenters]
        chunks = {c.name: c for c in ctx.plan.class_chunks(cat)}
        rows = []
        for item in read_json(layout.path('filter', cat))['items']:
            if item['reason']:
                continue
            seg = item['segmenter'] if item['segmenter'] in names else names[0]
            rows.append(
                WriteRow(
                    file=item['file'],
                    height=item['height'],
                    width=item['width'],
                    seg_path=layout.path('segment', chunks[item['chunk']], seg),
                    pos=item['pos'],
                    clip_score=item['clip_score'],
                    image_score=item['image_score'],
                    segmenter=item['segmenter'],
                    prompt=item['prompt'],
                    seed=item['seed'],
                    generator=item.get('generator', '')))
        write = ctx.cfg['write']
        part = layout.part_name(cat)
        return WriteJob(
            work_dir=ctx.work_dir,
            bank_dir=ctx.bank_dir,
            categories=layout.bank_categories,
            part=part,
            category=ctx.categories[cat]['name'],
            rows=rows,
            image_format=write['image_format'],
            quality=write['quality'],
            max_side=write['max_side'],
            shard_bytes=write['shard_bytes'],
            marker_path=self.path(cat),
            marker=dict(
                fingerprint=layout.fps.of(self.name, cat),
                categories=layout.bank_categories_fp,
                category=ctx.categories[cat]['name'],
                part=part),
            single_thread=ctx.cfg['workers']['type'] == 'process')

    def run(self) -> dict:
        """Write the kept cut-outs of this rank's classes (one bank part per class), then, on
        rank 0, merge every part into the bank.

        Raises:
            BuildInterrupted: SIGTERM/SIGINT: the parts in flight were finished and marked.
        """
        ctx = self.ctx
        cats, todo = self.todo()
        self.require_filtered(todo)
        jobs = [self.job(cat) for cat in todo]
        start = time.perf_counter()
        written = classes = 0
        if jobs:
            workers = ctx.cfg['workers']
            executor = make_executor(workers)
            progress = make_progress(ctx, 'write', sum(len(j.rows) for j in jobs))
            max_pending = workers['max_pending'] or 2 * max(1, int(workers['num_workers'] or 0))
            pending: deque = deque()
            stopped = False
            try:
                for job in jobs:
                    stopped = self.stop.stopping(f'{len(pending)} bank parts in flight')
                    if stopped:
                        break
                    pending.append((job, executor.submit(write_class_job, job)))
                    while pending and (len(pending) >= max_pending or pending[0][1].done()):
                        written += self._collect(*pending.popleft(), progress)
                        classes += 1
                if stopped:  # parts not started yet are left for the resumed build
                    pending = deque(p for p in pending if not p[1].cancel())
                while pending:
                    written += self._collect(*pending.popleft(), progress)
                    classes += 1
            finally:
                progress.close()
                executor.shutdown(wait=True, cancel_futures=True)
        self.stop.check('write', f'{classes} of {len(todo)} bank parts written now')
        seconds = time.perf_counter() - start
        print_log(
            f'write [rank {ctx.rank}]: {written} instances of {len(todo)} classes in '
            f'{seconds:.1f} s ({written / max(seconds, 1e-9):.1f} img/s); '
            f'{len(cats) - len(todo)} classes already written',
            logger='current')
        summary = dict(
            classes=len(todo), skipped=len(cats) - len(todo), instances=written, seconds=seconds)
        if ctx.rank == 0:
            summary['bank'] = self.finalize()
        return summary

    @staticmethod
    def _collect(job: WriteJob, future, progress) -> int:
        """Wait for a part (its marker is written by the job); returns its instances."""
        count = future.result().count
        progress.update(len(job.rows))
        return count

    def finalize(self) -> dict:
        """Merge every class part into a new version of the bank (rank 0; waits for the other
        ranks), unless the live version is current and intact.

        Raises:
            RuntimeError: the parts cannot be merged (a damaged part); the message names the
                file and the repair command.
        """
        ctx, layout = self.ctx, self.ctx.layout
        cats = list(range(len(ctx.categories)))
        self.wait(cats, self.done, what='bank parts', name=lambda c: repr(self.path(c)))
        manifest_path = osp.join(ctx.bank_dir, 'manifest.json')
        if osp.isfile(manifest_path):
            manifest = _live_manifest(ctx.bank_dir)
            if manifest.get('build', {}).get('fingerprint') == layout.fps.build:
                problems = check_bank(ctx.bank_dir).problems  # the cheap check: bank_is_intact
                if not problems:
                    print_log(
                        f'bank {ctx.bank_dir} is up to date ({manifest["num_instances"]} '
                        'instances)',
                        logger='current')
                    return dict(num_instances=manifest['num_instances'], path=ctx.bank_dir)
                more = f' and {len(problems) - 1} more' if len(problems) > 1 else ''
                print_log(
                    f'bank {ctx.bank_dir} fails its integrity check ({problems[0].line()}{more});'
                    ' merging its parts into a new version',
                    logger='current',
                    level=logging.WARNING)
        self._remove_stale_parts({layout.part_name(c) for c in cats})
        try:
            manifest = finalize_bank(
                ctx.bank_dir,
                build_info=self.build_info(),
                size_stats=ctx.size_stats,
                keep_versions=ctx.cfg['write']['keep_versions'])
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise RuntimeError(
                f'the bank {ctx.bank_dir} cannot be merged from its parts: {e}. Check it with '
                f'`python tools/bank/check.py {ctx.bank_dir} --deep`, then drop the broken rows '
                'with `--repair`, or delete the marker write/<class>.json of the damaged class '
                'in the work dir to write that class again') from e
        print_log(
            f'bank written: {ctx.bank_dir} ({manifest["num_instances"]} instances of '
            f'{len(ctx.categories)} classes)',
            logger='current')
        return dict(num_instances=manifest['num_instances'], path=ctx.bank_dir)

    def _remove_stale_parts(self, expected: set) -> None:
        """Withdraw the bank parts of classes no longer built (:func:`xpaste.bank.drop_part`:
        their shards stay while the live or a kept version reads them)."""
        parts_dir = osp.join(self.ctx.bank_dir, 'parts')
        stale = sorted(p for p in os.listdir(parts_dir)
                       if p not in expected) if osp.isdir(parts_dir) else []
        if stale:
            print_log(
                f'withdrawing {len(stale)} bank parts of classes no longer built: '
                f'{stale[:5]}',
                logger='current',
                level=logging.WARNING)
            for p in stale:
                drop_part(self.ctx.bank_dir, p)

    def build_info(self) -> dict:
        """How the bank was built (stored in its manifest)."""
        ctx = self.ctx
        cfg = {
            k: v
            for k, v in recorded_options(ctx.cfg).items() if k not in ('work_dir', 'bank_dir')
        }
        return to_builtin(
            dict(
                fingerprint=ctx.layout.fps.build,
                config_hash=fingerprint(cfg),
                config=cfg,
                source=ctx.source.describe(),
                segmenters=[s.describe() for s in ctx.segmenters],
                scorer=ctx.scorer.describe() if ctx.scorer else None,
                filter=ctx.filter.describe(),
                seed=int(ctx.cfg['seed']),
                images_per_class=ctx.cfg['images_per_class'],
                prompt_templates=ctx.prompts.templates,
                prompt_file=ctx.prompts.prompt_file,
                package_versions=package_versions()))


def _live_manifest(bank_dir: str) -> dict:
    """The live manifest, or ``{}`` when it cannot be read (the bank is then merged again)."""
    try:
        return read_manifest(bank_dir)
    except (OSError, ValueError, TypeError):
        return {}

"""The ``write`` stage: the kept cut-outs of each class into the bank, then the merged bank.

Output per class: the bank part ``<bank>/parts/cls-<id>/`` (written whole by
:func:`~xpaste.builder.jobs.write_class_job` in a worker, ``BankWriter(mode='w')``) and the
marker ``write/<class>.json`` (fingerprint, part, count). Rank 0 then waits for every class's
part and merges them (:func:`xpaste.bank.finalize_bank`) with the build's settings and the size
statistics; an up-to-date bank is left as it is.
"""
import logging
import os
import os.path as osp
import shutil
import time

from mmengine.logging import print_log

from xpaste.bank import finalize_bank, package_versions, read_manifest
from xpaste.utils.fileio import atomic_write_json, read_json
from ..dist import fingerprint
from ..jobs import WriteJob, WriteResult, WriteRow, make_executor, write_class_job
from ..layout import to_builtin
from .base import ClassStage

#: Category fields kept in the bank.
BANK_CATEGORY_FIELDS = ('id', 'name', 'synonyms', 'def', 'frequency')


class WriteStage(ClassStage):
    """Writes the bank parts of this rank's classes and, on rank 0, the bank (see the module
    docstring)."""

    name = 'write'

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
                    seed=item['seed']))
        write = ctx.cfg['write']
        return WriteJob(
            work_dir=ctx.work_dir,
            bank_dir=ctx.bank_dir,
            categories=[{
                k: c[k]
                for k in BANK_CATEGORY_FIELDS if k in c
            } for c in ctx.categories],
            part=layout.part_name(cat),
            category=ctx.categories[cat]['name'],
            rows=rows,
            image_format=write['image_format'],
            quality=write['quality'],
            max_side=write['max_side'],
            shard_bytes=write['shard_bytes'],
            single_thread=ctx.cfg['workers']['type'] == 'process')

    def mark(self, cat: int, result: WriteResult) -> None:
        """Record that class ``cat``'s part is written (its done marker)."""
        atomic_write_json(
            self.path(cat),
            dict(
                fingerprint=self.ctx.layout.fps.of(self.name, cat),
                category=result.category,
                part=result.part,
                count=result.count))

    def run(self) -> dict:
        """Write the kept cut-outs of this rank's classes (one bank part per class), then, on
        rank 0, merge every part into the bank."""
        ctx = self.ctx
        cats, todo = self.todo()
        self.require_filtered(todo)
        jobs = [self.job(cat) for cat in todo]
        start = time.perf_counter()
        written = 0
        if jobs:
            executor = make_executor(ctx.cfg['workers'])
            bar = ctx.bar(sum(len(j.rows) for j in jobs), 'write')
            try:
                futures = [(cat, job, executor.submit(write_class_job, job))
                           for cat, job in zip(todo, jobs)]
                for cat, job, future in futures:
                    result = future.result()
                    self.mark(cat, result)
                    written += result.count
                    bar.update(len(job.rows))
            finally:
                bar.close()
                executor.shutdown(wait=True, cancel_futures=True)
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

    def finalize(self) -> dict:
        """Merge every class part into the bank (rank 0; waits for the other ranks)."""
        ctx, layout = self.ctx, self.ctx.layout
        cats = list(range(len(ctx.categories)))
        ctx.wait(cats, self.done, what='bank parts', name=lambda c: repr(self.path(c)))
        manifest_path = osp.join(ctx.bank_dir, 'manifest.json')
        if osp.isfile(manifest_path):
            manifest = read_manifest(ctx.bank_dir)
            if manifest.get('build', {}).get('fingerprint') == layout.fps.build:
                print_log(
                    f'bank {ctx.bank_dir} is up to date ({manifest["num_instances"]} '
                    'instances)',
                    logger='current')
                return dict(num_instances=manifest['num_instances'], path=ctx.bank_dir)
        self._remove_stale_parts({layout.part_name(c) for c in cats})
        manifest = finalize_bank(
            ctx.bank_dir, build_info=self.build_info(), size_stats=ctx.size_stats)
        print_log(
            f'bank written: {ctx.bank_dir} ({manifest["num_instances"]} instances of '
            f'{len(ctx.categories)} classes)',
            logger='current')
        return dict(num_instances=manifest['num_instances'], path=ctx.bank_dir)

    def _remove_stale_parts(self, expected: set) -> None:
        """Remove the bank parts of classes no longer built."""
        parts_dir = osp.join(self.ctx.bank_dir, 'parts')
        stale = sorted(p for p in os.listdir(parts_dir)
                       if p not in expected) if osp.isdir(parts_dir) else []
        if stale:
            print_log(
                f'removing {len(stale)} bank parts of classes no longer built: '
                f'{stale[:5]}',
                logger='current',
                level=logging.WARNING)
            for p in stale:
                shutil.rmtree(osp.join(parts_dir, p))

    def build_info(self) -> dict:
        """How the bank was built (stored in its manifest)."""
        ctx = self.ctx
        cfg = {k: v for k, v in ctx.cfg.items() if k not in ('work_dir', 'bank_dir')}
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

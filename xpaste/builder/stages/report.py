"""The ``report`` stage: per-class contact sheets and histograms, and the index page.

Output per class: ``report/classes/<class>.{html,json}`` (:func:`~xpaste.builder.report.
write_class_report`), then, on rank 0 once every class's page exists, ``report/index.html``
(:func:`~xpaste.builder.report.write_index`).
"""
import os.path as osp
import time

from mmengine.logging import print_log

from xpaste.utils.fileio import read_json
from ..layout import to_builtin
from ..report import write_class_report, write_index
from .base import ClassStage
from .generate import load_item_image
from .segment import load_masks


class ReportStage(ClassStage):
    """Writes the report pages of this rank's classes and, on rank 0, the index."""

    name = 'report'

    def run(self) -> dict:
        """Per-class report pages on every rank, the index page on rank 0."""
        ctx, layout = self.ctx, self.ctx.layout
        cats, todo = self.todo()
        self.require_filtered(todo)
        start = time.perf_counter()
        for i, cat in enumerate(todo):
            self.stop.check(self.name, f'{i} of {len(todo)} class pages written now')
            write_class_report(
                layout.report_dir,
                layout.keys[cat],
                ctx.categories[cat],
                read_json(layout.path('filter', cat)),
                self._image_loader(cat),
                ctx.cfg['report'],
                fp=layout.fps.of(self.name, cat))
        if ctx.rank == 0:
            cats_all = list(range(len(ctx.categories)))
            self.wait(cats_all, self.done, what='class reports', name=lambda c: repr(self.path(c)))
            index = write_index(
                layout.report_dir, [read_json(self.path(c)) for c in cats_all],
                ctx.cfg['report'],
                title=osp.basename(ctx.work_dir),
                build=self._build_summary())
            print_log(f'report: {index} ({time.perf_counter() - start:.1f} s)', logger='current')
        return dict(classes=len(todo), skipped=len(cats) - len(todo))

    def _build_summary(self) -> dict:
        ctx = self.ctx
        return to_builtin(
            dict(
                source=ctx.source.describe(),
                segmenters=[s.describe() for s in ctx.segmenters],
                scorer=ctx.scorer.describe() if ctx.scorer else 'skipped (no CLIP weights)',
                filter=ctx.filter.describe(),
                images_per_class=ctx.cfg['images_per_class'],
                bank=ctx.bank_dir))

    def _image_loader(self, cat: int):
        """``load(item) -> (image, mask)`` of the filter rows of class ``cat`` (mask None when
        there is none); the masks of the last chunk read are kept."""
        layout = self.ctx.layout
        chunks = {c.name: c for c in self.ctx.plan.class_chunks(cat)}
        cache: dict = {}

        def load(item: dict):
            if item['status'] != 'ok':
                return None, None
            image = load_item_image(self.ctx.work_dir, item)
            mask = None
            if item['segmenter']:
                path = layout.path('segment', chunks[item['chunk']], item['segmenter'])
                if path not in cache:
                    cache.clear()
                    cache[path] = load_masks(path) if osp.isfile(path) else None
                masks = cache[path]
                mask = masks[item['pos']] if masks is not None else None
            return image, mask

        return load

"""The ``filter`` stage: keep or drop each cut-out of a class, with the reason.

Output per class: ``filter/<class>.json`` with ``threshold``, ``class_max``, ``dedup``,
``counts`` per reason and, per image, its ``generate`` record plus ``chunk``, ``pos``,
``segmenter`` (the best cut-out's), ``area``, ``component``, ``clip_score``, ``image_score`` and
``reason`` (``''`` = kept). With ``filter.real_similarity``, also ``real`` (the class's number of
real instances and threshold) and, per image, ``real_score`` (mean CLIP similarity to the real
instances, :mod:`~xpaste.builder.real_instances`). It reads the saved outputs of ``generate``,
``segment`` (scalars only, no masks) and ``score``, so ``--stage filter --cfg-options
filter.min_clip=20`` reruns in seconds.
"""
from typing import Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from xpaste.utils.fileio import atomic_write_json, read_json, read_npz
from ..filters import DROP_REASONS
from ..layout import to_builtin
from .base import ClassStage
from .segment import read_mask_scalars


def _nan_to_none(value) -> Optional[float]:
    return None if value is None or not np.isfinite(value) else float(value)


class FilterStage(ClassStage):
    """Filters the cut-outs of each of this rank's classes (see the module docstring)."""

    name = 'filter'

    def run(self) -> dict:
        """Decide keep/drop for every cut-out of this rank's classes."""
        cats, todo = self.todo()
        self.wait_chunks(todo)
        counts = {r: 0 for r in (*DROP_REASONS, 'kept')}
        for i, cat in enumerate(todo):
            self.stop.check(self.name, f'{i} of {len(todo)} classes filtered now')
            for k, v in self.filter_class(cat).items():
                counts[k] += v
        dropped = ', '.join(f'{k} {v}' for k, v in counts.items() if v and k != 'kept')
        print_log(
            f'filter [rank {self.ctx.rank}]: {len(todo)} classes filtered '
            f'({len(cats) - len(todo)} already done): kept {counts["kept"]}, dropped '
            f'{dropped or "none"}',
            logger='current')
        return dict(classes=len(todo), skipped=len(cats) - len(todo), counts=counts)

    def wait_chunks(self, cats: Sequence[int]) -> None:
        """Wait until every chunk of ``cats`` has its generate, segment and score outputs
        (other ranks may still be making them)."""
        layout = self.ctx.layout
        needed = []
        for cat in cats:
            for chunk in self.ctx.plan.class_chunks(cat):
                needed.append(('generate', chunk, None))
                needed += [('segment', chunk, s.name) for s in self.ctx.segmenters]
                if self.ctx.scorer is not None:
                    needed.append(('score', chunk, None))

        def name(item):
            stage, chunk, part = item
            what = {'generate': 'gen', 'score': 'score'}.get(stage, part)
            return f'{what} output of {layout.keys[chunk.cat]}/{chunk.name}'

        self.wait(
            needed,
            lambda item: layout.done(*item),
            what='chunk outputs needed by the filter stage',
            name=name)

    def class_table(self, cat: int) -> dict:
        """Everything the filter needs about the images of class ``cat`` (all chunks): one row
        per image and per-image arrays ``area``, ``component``, ``phash``, ``clip_score``,
        ``image_score`` and ``embedding`` (None without CLIP)."""
        layout = self.ctx.layout
        names = [s.name for s in self.ctx.segmenters]
        rows, area, comp, phash, score, image_score, emb = [], [], [], [], [], [], []
        for chunk in self.ctx.plan.class_chunks(cat):
            items = read_json(layout.path('generate', chunk))['items']
            segs = [read_mask_scalars(layout.path('segment', chunk, n)) for n in names]
            sc = read_npz(layout.path('score', chunk)) if self.ctx.scorer is not None else None
            for pos, item in enumerate(items):
                if sc is not None:
                    best = int(sc['best'][pos])
                else:  # no CLIP: the first segmenter with a non-empty mask
                    best = next((j for j, s in enumerate(segs) if s['area'][pos] > 0), -1)
                j = max(best, 0)
                rows.append(
                    dict(
                        index=item['index'],
                        chunk=chunk.name,
                        pos=pos,
                        status=item['status'],
                        message=item['message'],
                        file=item['file'],
                        height=item['height'],
                        width=item['width'],
                        prompt=item['prompt'],
                        seed=item['seed'],
                        generator=item.get('generator', ''),
                        segmenter=names[best] if best >= 0 else ''))
                area.append(float(segs[j]['area'][pos]) if best >= 0 else 0.0)
                comp.append(float(segs[j]['component'][pos]) if best >= 0 else 0.0)
                phash.append(int(segs[j]['phash'][pos]) if best >= 0 else 0)
                if sc is not None:
                    score.append(float(sc['cutout_score'][pos, best]) if best >= 0 else np.nan)
                    image_score.append(float(sc['image_score'][pos]))
                    emb.append(sc['embedding'][pos].astype(np.float32))
                else:
                    score.append(np.nan)
                    image_score.append(np.nan)
        return dict(
            rows=rows,
            area=np.array(area, np.float64),
            component=np.array(comp),
            phash=np.array(phash, np.uint64),
            clip_score=np.array(score, np.float64),
            image_score=np.array(image_score, np.float64),
            embedding=np.stack(emb) if emb else None)

    def filter_class(self, cat: int) -> dict:
        """Filter the cut-outs of class ``cat`` and save the decisions; returns the counts."""
        table = self.class_table(cat)
        real, real_score, real_threshold = self.real_scores(cat, table['embedding'])
        result = self.ctx.filter([r['status'] for r in table['rows']], table['area'],
                                 table['component'], table['clip_score'], table['phash'],
                                 table['embedding'], real_score, real_threshold)
        rows = []
        for i, row in enumerate(table['rows']):
            rows.append(
                dict(
                    row,
                    area=float(table['area'][i]),
                    component=float(table['component'][i]),
                    clip_score=_nan_to_none(table['clip_score'][i]),
                    image_score=_nan_to_none(table['image_score'][i]),
                    reason=result['reason'][i],
                    **({} if real is None else dict(real_score=_nan_to_none(real_score[i])))))
        atomic_write_json(
            self.path(cat),
            to_builtin(
                dict(
                    fingerprint=self.ctx.layout.fps.of(self.name, cat),
                    category=self.ctx.categories[cat]['name'],
                    threshold=result['threshold'],
                    class_max=result['class_max'],
                    dedup=result['dedup'],
                    counts=result['counts'],
                    **({} if real is None else dict(real=real)),
                    items=rows)))
        return result['counts']

    def real_scores(self, cat: int, embedding) -> tuple:
        """``(summary, scores, threshold)`` of the filter by similarity to real instances for
        class ``cat`` (:mod:`~xpaste.builder.real_instances`): the summary recorded in the
        filter output, the cut-outs' mean similarity to the real instances and the class's
        threshold (None: the class is filtered by the text score alone); ``(None, None,
        None)`` when the filter is off."""
        ctx = self.ctx
        if ctx.real is None or embedding is None:
            return None, None, None
        stats = ctx.real.class_stats(cat, ctx.scorer)
        threshold = ctx.filter.real_similarity.class_threshold(stats.count, stats.scores)
        summary = dict(count=stats.count, threshold=threshold)
        return summary, stats.score(embedding), threshold

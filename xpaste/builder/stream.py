"""The stream: ``generate``, ``segment`` and ``score`` of this rank's chunks as one pipeline.

The main process generates (GPU; a batched generator fills its batches across chunks) and hands
each chunk to a pool of CPU workers (``workers``) that save the images, run the CPU segmenters
and prepare CLIP inputs (:func:`~xpaste.builder.jobs.cpu_chunk_job`). At most
``workers.max_pending`` chunks are in flight (a bounded queue); finished chunks come back to the
main process for the GPU segmenters and CLIP. Images generated in the main process stay there:
workers send images back only when the main process does not hold them. When the last chunk of
a class whose chunks are all on this rank is done, the class is filtered and its bank part
written by the workers while generation goes on. The log reports how long the main process
generated, ran GPU models, and waited for the workers.

On SIGTERM/SIGINT (:mod:`xpaste.builder.interrupt`) the stream submits nothing more, cancels the
chunks not yet started, finishes those in the workers (their outputs are saved, the bank parts
being written are committed and marked) and raises
:class:`~xpaste.builder.interrupt.BuildInterrupted`.
"""
import logging
import time
from collections import Counter, deque
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from mmengine.logging import print_log

from .interrupt import StopRequest
from .jobs import ChunkJob, ChunkResult, MaskOutput, cpu_chunk_job, make_executor, write_class_job
from .layout import STREAM_STAGES, Chunk
from .progress import RankProgress, make_progress
from .stages.generate import GenerateStage, generate_chunks
from .stages.score import ScoreStage, clip_inputs
from .stages.segment import SegmentStage, empty_masks, segment_and_save

if TYPE_CHECKING:
    from .context import BuildContext
    from .stages.filter import FilterStage
    from .stages.write import WriteStage


@dataclass
class StreamStats:
    """What a stream did (returned as a dict by :meth:`StreamScheduler.run`).

    Attributes:
        images (int): Images in the chunks handled.
        chunks (int): Chunks done now.
        skipped (int): Chunks already done.
        wait_s (float): Seconds the main process waited for the CPU workers.
        generate_s (float): Seconds the main process generated.
        gpu_s (float): Seconds of GPU segmenters and CLIP (and filtering on the way).
        bad (dict): Unusable images by status.
        classes_written (int): Classes filtered and written on the way.
        seconds (float): Wall time of the stream.
    """

    images: int = 0
    chunks: int = 0
    skipped: int = 0
    wait_s: float = 0.0
    generate_s: float = 0.0
    gpu_s: float = 0.0
    bad: dict = field(default_factory=dict)
    classes_written: int = 0
    seconds: float = 0.0


@dataclass
class ChunkTodo:
    """What is left to do for a chunk: make its images, run ``segmenters``, score it."""

    chunk: Chunk
    generate: bool
    segmenters: list
    score: bool


@dataclass
class _InFlight:
    """A chunk in the workers; ``images`` when the main process holds them (made here)."""

    todo: ChunkTodo
    future: Future
    images: Optional[list]


@dataclass
class _Run:
    """The state of one :meth:`StreamScheduler.run`."""

    stats: StreamStats
    executor: Executor
    progress: RankProgress
    max_pending: int
    then: Sequence[str]
    local: set
    remaining: Counter
    pending: deque = field(default_factory=deque)
    writes: list = field(default_factory=list)


class StreamScheduler:
    """Runs ``generate``/``segment``/``score`` of this rank's chunks as one stream (see the
    module docstring). It makes the three per-chunk stages (:attr:`stages`).

    Args:
        ctx (BuildContext): The build.
        filter_stage (FilterStage): Filters a class whose chunks are all done here.
        write_stage (WriteStage): Writes its bank part.
        stop (StopRequest, optional): Set by SIGTERM/SIGINT (see the module docstring).
            Defaults to a request of its own (never set).
    """

    def __init__(self,
                 ctx: 'BuildContext',
                 filter_stage: 'FilterStage',
                 write_stage: 'WriteStage',
                 stop: Optional[StopRequest] = None):
        self.ctx = ctx
        self.stop = StopRequest() if stop is None else stop
        self.generate = GenerateStage(ctx, self)
        self.segment = SegmentStage(ctx, self)
        self.score = ScoreStage(ctx, self)
        self.filter = filter_stage
        self.write = write_stage

    @property
    def stages(self) -> tuple:
        """The per-chunk stages, in pipeline order."""
        return self.generate, self.segment, self.score

    def run(self, stages: Sequence[str], then: Sequence[str] = ()) -> dict:
        """Run ``generate``/``segment``/``score`` (those in ``stages``) on this rank's chunks.

        Args:
            stages (Sequence[str]): Stages among :data:`~xpaste.builder.layout.STREAM_STAGES`.
            then (Sequence[str]): ``'filter'`` and optionally ``'write'``: run them for each
                class as soon as its last chunk is done, if all its chunks are on this rank
                (writing then overlaps generation). Defaults to none.

        Returns:
            dict: :class:`StreamStats` as a dict.

        Raises:
            BuildInterrupted: SIGTERM/SIGINT, after the chunks in flight were finished.
        """
        ctx = self.ctx
        stages = list(stages)
        do_gen, do_seg, do_score = (s in stages for s in STREAM_STAGES)
        do_score = do_score and ctx.scorer is not None
        if stages == ['score'] and ctx.scorer is None:
            print_log('score stage: nothing to do (CLIP scoring is skipped)', logger='current')
        chunks = ctx.plan.my_chunks()
        stats = StreamStats()
        todo = self._plan(chunks, do_gen, do_seg, do_score, stats)
        if not todo:
            print_log(
                f'{"/".join(stages)}: all {len(chunks)} chunks of rank {ctx.rank} are done',
                logger='current')
            return asdict(stats)
        self._setup_models(todo, do_seg, do_score)
        workers = ctx.cfg['workers']
        remaining = Counter(t.chunk.cat for t in todo)
        local = {c for c in remaining if ctx.plan.is_local(c)} if then else set()
        run = _Run(
            stats=stats,
            executor=make_executor(workers),
            progress=make_progress(ctx, '/'.join(stages), sum(len(t.chunk) for t in todo)),
            max_pending=workers['max_pending'] or 2 * max(1, int(workers['num_workers'] or 0)),
            then=then,
            local=local,
            remaining=remaining)
        start = time.perf_counter()
        try:
            for group in self._groups(todo):
                if self.stop.stopping(f'{len(run.pending)} chunks in flight'):
                    # chunks the workers have not started are dropped; the others finish
                    run.pending = deque(p for p in run.pending if not p.future.cancel())
                    break
                self._submit(group, run)
                self._drain(run, until=run.max_pending)
            self._drain(run, until=1)
            self._collect_writes(run)
        except BaseException:
            for inflight in run.pending:
                inflight.future.cancel()
            raise
        finally:
            run.progress.close()
            run.executor.shutdown(wait=True, cancel_futures=True)
        self.stop.check(
            '/'.join(stages), f'{stats.chunks} chunks and {stats.classes_written} bank parts '
            'done now')
        stats.seconds = time.perf_counter() - start
        self._log(stages, stats)
        return asdict(stats)

    # ---------------------------------------------------------------- steps
    def _plan(self, chunks: list, do_gen: bool, do_seg: bool, do_score: bool,
              stats: StreamStats) -> list[ChunkTodo]:
        """What each chunk still needs of the selected stages (done chunks are counted as
        skipped).

        Raises:
            FileNotFoundError: a chunk needs the output of a stage that is not selected.
        """
        layout, todo = self.ctx.layout, []
        for chunk in chunks:
            gen_ok = self.generate.done(chunk)
            seg_todo = [s for s in self.ctx.segmenters if not self.segment.done(chunk, s.name)]
            score_todo = self.ctx.scorer is not None and not self.score.done(chunk)
            if ((gen_ok or not do_gen) and (not seg_todo or not do_seg)
                    and (not score_todo or not do_score)):
                stats.skipped += 1
                continue
            if not gen_ok and not do_gen:
                raise FileNotFoundError(
                    f'generate output missing for class {layout.keys[chunk.cat]!r} chunk '
                    f'{chunk.name} ({self.generate.path(chunk)}): run --stage generate first')
            if seg_todo and not do_seg and do_score:
                raise FileNotFoundError(
                    f'segment output of {[s.name for s in seg_todo]} missing for class '
                    f'{layout.keys[chunk.cat]!r} chunk {chunk.name}: run --stage segment first')
            todo.append(
                ChunkTodo(chunk, not gen_ok, seg_todo if do_seg else [], score_todo and do_score))
        return todo

    def _setup_models(self, todo: list[ChunkTodo], do_seg: bool, do_score: bool) -> None:
        """Load the main process's models: the source, the GPU segmenters, CLIP."""
        ctx = self.ctx
        if any(t.generate for t in todo):
            ctx.source.setup()
        for seg in ctx.segmenters if do_seg else []:
            if seg.uses_gpu:
                seg.setup()
        if do_score:
            ctx.scorer.setup()

    def _groups(self, todo: list[ChunkTodo]) -> Iterator[list[ChunkTodo]]:
        """Consecutive chunks whose images a GPU source makes in one batch (one chunk per
        group otherwise)."""
        source = self.ctx.source
        batch = getattr(source, 'batch_size', 1) if source.uses_gpu else 1
        i = 0
        while i < len(todo):
            group = [todo[i]]
            while (source.uses_gpu and group[0].generate and i + len(group) < len(todo)
                   and todo[i + len(group)].generate
                   and sum(len(g.chunk) for g in group) + len(todo[i + len(group)].chunk) <= batch):
                group.append(todo[i + len(group)])
            i += len(group)
            yield group

    def _submit(self, group: list[ChunkTodo], run: _Run) -> None:
        """Generate a group's images here if the source is on the GPU, then hand each chunk
        to the workers."""
        source = self.ctx.source
        generated = [(None, [])] * len(group)
        if group[0].generate and source.uses_gpu:
            t0 = time.perf_counter()
            generated = generate_chunks(source, [self.generate.requests(t.chunk) for t in group])
            run.stats.generate_s += time.perf_counter() - t0
        for todo, (items, messages) in zip(group, generated):
            _warn(messages)
            images = None  # kept here for the GPU segmenters
            if items is not None and any(s.uses_gpu for s in todo.segmenters):
                images = [item.image if item.status == 'ok' else None for item in items]
            job = self._job(todo, items)
            run.pending.append(_InFlight(todo, run.executor.submit(cpu_chunk_job, job), images))

    def _job(self, todo: ChunkTodo, items: Optional[list]) -> ChunkJob:
        """The CPU part of a chunk; ``items``: its images when made here."""
        ctx, layout, chunk = self.ctx, self.ctx.layout, todo.chunk
        in_worker = todo.generate and not ctx.source.uses_gpu  # a CPU source generates there
        fresh = {s.name for s in todo.segmenters}
        return ChunkJob(
            work_dir=ctx.work_dir,
            category=ctx.categories[chunk.cat],
            cat_key=layout.keys[chunk.cat],
            gen_path=self.generate.path(chunk),
            gen_meta=layout.meta('generate', chunk),
            image_format=ctx.cfg['generate']['image_format'],
            quality=ctx.cfg['generate']['quality'],
            largest=ctx.largest,
            items=items,
            source=ctx.source if in_worker else None,
            request=self.generate.requests(chunk) if in_worker else None,
            segment=[
                MaskOutput(s, self.segment.path(chunk, s.name),
                           layout.meta('segment', chunk, s.name)) for s in todo.segmenters
                if not s.uses_gpu
            ],
            load_masks={
                s.name: self.segment.path(chunk, s.name)
                for s in ctx.segmenters if todo.score and s.name not in fresh
            },
            clip_size=ctx.scorer.input_size if todo.score else 0,
            clip_margin=ctx.scorer.cutout_margin if todo.score else 0.0,
            return_images=items is None and any(s.uses_gpu for s in todo.segmenters),
            single_thread=ctx.cfg['workers']['type'] == 'process')

    def _drain(self, run: _Run, until: int) -> None:
        """Finish chunks in order while ``until`` or more are in flight, and those already
        done."""
        while run.pending and (len(run.pending) >= until or run.pending[0].future.done()):
            self._finish(run.pending.popleft(), run)

    def _finish(self, inflight: _InFlight, run: _Run) -> None:
        """The main-process part of a chunk back from the workers (GPU segmenters, CLIP),
        then its class's filter and write if that was the class's last chunk."""
        ctx, stats, todo = self.ctx, run.stats, inflight.todo
        t0 = time.perf_counter()
        result: ChunkResult = inflight.future.result()
        stats.wait_s += time.perf_counter() - t0
        _warn(result.messages)
        t0 = time.perf_counter()
        self._gpu_part(todo, result,
                       inflight.images if inflight.images is not None else result.images)
        stats.gpu_s += time.perf_counter() - t0
        stats.images += result.num_images
        stats.chunks += 1
        for status in result.status:
            if status != 'ok':
                stats.bad[status] = stats.bad.get(status, 0) + 1
        run.progress.update(result.num_images)
        cat = todo.chunk.cat
        run.remaining[cat] -= 1
        if run.remaining[cat] == 0 and cat in run.local and not self.stop.requested:
            t0 = time.perf_counter()
            self.filter.filter_class(cat)
            if 'write' in run.then:
                run.writes.append((cat, run.executor.submit(write_class_job, self.write.job(cat))))
            stats.gpu_s += time.perf_counter() - t0

    def _gpu_part(self, todo: ChunkTodo, result: ChunkResult, images: Optional[list]) -> None:
        """Run the GPU segmenters still to do on a chunk, then score it if asked."""
        ctx, chunk = self.ctx, todo.chunk
        empty, cuts = dict(result.empty), dict(result.cuts)
        for seg in [s for s in todo.segmenters if s.uses_gpu]:
            masks = segment_and_save(
                self.segment.path(chunk, seg.name), ctx.layout.meta('segment', chunk, seg.name),
                seg, images, ctx.categories[chunk.cat], ctx.largest)
            empty[seg.name] = empty_masks(masks)
            if todo.score:
                _, gpu_cuts = clip_inputs(images, {seg.name: masks}, ctx.scorer.input_size,
                                          ctx.scorer.cutout_margin)
                cuts.update(gpu_cuts)
        if todo.score:
            self.score.score_chunk(chunk, result.status, result.whole, cuts, empty)

    def _collect_writes(self, run: _Run) -> None:
        """Wait for the bank parts written on the way (each job marks its class done as soon
        as its part is committed)."""
        t0 = time.perf_counter()
        for _, future in run.writes:
            future.result()
        run.stats.wait_s += time.perf_counter() - t0
        run.stats.classes_written = len(run.writes)

    def _log(self, stages: list, stats: StreamStats) -> None:
        rate = stats.images / max(stats.seconds, 1e-9)
        bad = ', '.join(f'{v} {k}' for k, v in sorted(stats.bad.items())) or 'none'
        print_log(
            f'{"/".join(stages)} [rank {self.ctx.rank}]: {stats.images} images in '
            f'{stats.chunks} chunks, {stats.seconds:.1f} s ({rate:.2f} img/s); '
            f'{stats.skipped} chunks already done; unusable images: {bad}; '
            f'{stats.classes_written} classes written on the way; main process: generating '
            f'{stats.generate_s:.1f} s, GPU segment/score {stats.gpu_s:.1f} s, '
            f'waiting for CPU workers {stats.wait_s:.1f} s',
            logger='current')


def _warn(messages: list) -> None:
    for message in messages:
        print_log(message, logger='current', level=logging.WARNING)

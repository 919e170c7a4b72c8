"""The stream: ``generate``, ``segment`` and ``score`` of this rank's chunks as one pipeline.

The main process generates (GPU; a batched generator fills its batches across chunks) and hands
each chunk to a pool of CPU workers (``workers``) that save the images, run the CPU segmenters
and prepare CLIP inputs (:func:`~xpaste.builder.jobs.cpu_chunk_job`). Images made in the main
process reach worker processes through shared memory (``stream.shared_memory``,
:mod:`xpaste.builder.shm`), not pickles. Finished chunks come back for the GPU segmenters and
CLIP (:class:`~xpaste.builder.finisher.ChunkFinisher`): in the main thread between
submissions for a CPU source, in a thread of its own (with its own CUDA stream) for a GPU
source, so that the main thread only generates (``stream.background``). At most
``workers.max_pending`` chunks are in flight (a bounded queue; a generator batch that spans
more chunks still goes whole). Images generated in the main process stay there: workers send
images back only when the main process does not hold them. When the last chunk of a class
whose chunks are all on this rank is done, the class is filtered and its bank part written by
the workers while generation goes on. The log reports how long the main process generated,
ran GPU models, and waited for the workers.

On SIGTERM/SIGINT (:mod:`xpaste.builder.interrupt`) the stream submits nothing more, cancels the
chunks not yet started, finishes those in the workers (their outputs are saved, the bank parts
being written are committed and marked) and raises
:class:`~xpaste.builder.interrupt.BuildInterrupted`.
"""
import time
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from mmengine.logging import print_log

from .finisher import ChunkFinisher, InFlight, warn
from .interrupt import StopRequest
from .jobs import ChunkJob, MaskOutput, cpu_chunk_job, make_executor
from .layout import STREAM_STAGES, Chunk
from .progress import RankProgress, make_progress
from .shm import SharedSegments
from .sources import SourceItem
from .stages.generate import GenerateStage, generate_chunks
from .stages.score import ScoreStage
from .stages.segment import SegmentStage

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
        slot_wait_s (float): Seconds the main thread waited for room in the bounded queue
            (background finisher only).
        max_in_flight (int): Most chunks in flight at once (background finisher only).
        background (bool): Whether chunks were finished in a thread of their own.
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
    slot_wait_s: float = 0.0
    max_in_flight: int = 0
    background: bool = False


@dataclass
class ChunkTodo:
    """What is left to do for a chunk: make its images, run ``segmenters``, score it."""

    chunk: Chunk
    generate: bool
    segmenters: list
    score: bool


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
    writes: list = field(default_factory=list)
    segments: Optional[SharedSegments] = None


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
        check_stream_options(ctx.cfg['stream'])

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
        workers, options = ctx.cfg['workers'], ctx.cfg['stream']
        remaining = Counter(t.chunk.cat for t in todo)
        local = {c for c in remaining if ctx.plan.is_local(c)} if then else set()
        executor = make_executor(workers)
        run = _Run(
            stats=stats,
            executor=executor,
            progress=make_progress(ctx, '/'.join(stages), sum(len(t.chunk) for t in todo)),
            max_pending=workers['max_pending'] or 2 * max(1, int(workers['num_workers'] or 0)),
            then=then,
            local=local,
            remaining=remaining,
            segments=(SharedSegments() if options['shared_memory']
                      and isinstance(executor, ProcessPoolExecutor) else None))
        gpu_source = do_gen and ctx.source.uses_gpu
        background = options['background']
        stats.background = bool(gpu_source if background == 'auto' else background)
        finisher = ChunkFinisher(
            self,
            run,
            background=stats.background,
            score_batch=options['score_batch'] or getattr(ctx.scorer, 'batch_size', 256),
            device=getattr(ctx.source, '_device', None) if gpu_source else None)
        start = time.perf_counter()
        try:
            for group in self._groups(todo):
                if self.stop.stopping(f'{len(finisher.pending)} chunks in flight'):
                    finisher.cancel_unstarted()  # the chunks the workers have started finish
                    break
                finisher.reserve(len(group))
                self._submit(group, run, finisher)
                finisher.drain(until=run.max_pending)
            finisher.close()
        except BaseException:
            finisher.abort()
            raise
        finally:
            run.progress.close()
            run.executor.shutdown(wait=True, cancel_futures=True)
            if run.segments is not None:
                run.segments.close()
        stats.max_in_flight = finisher.slots.max_used
        self.stop.check('/'.join(stages),
                        f'{stats.chunks} chunks and {stats.classes_written} bank parts '
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

    def _submit(self, group: list[ChunkTodo], run: _Run, finisher: ChunkFinisher) -> None:
        """Generate a group's images here if the source is on the GPU, then hand each chunk
        to the workers and to the finisher."""
        source = self.ctx.source
        generated = [(None, [])] * len(group)
        if group[0].generate and source.uses_gpu:
            t0 = time.perf_counter()
            generated = generate_chunks(source, [self.generate.requests(t.chunk) for t in group])
            run.stats.generate_s += time.perf_counter() - t0
        event = None
        for todo, (items, messages) in zip(group, generated):
            warn(messages)
            images = None  # kept here for the GPU segmenters
            if items is not None and any(s.uses_gpu for s in todo.segmenters):
                images = [item.image if item.status == 'ok' else None for item in items]
            device_images = self._device_images(todo, items)
            if device_images is not None and event is None:
                event = _cuda_event(device_images)
            job, shared = self._job(todo, items, run, whole=device_images is None)
            future = run.executor.submit(cpu_chunk_job, job)
            if shared is not None:
                run.segments.free_when_done(shared, future)
            finisher.put(InFlight(todo, future, images, device_images, event))

    def _device_images(self, todo: ChunkTodo, items: Optional[list]) -> Optional[list]:
        """Per image, its pixels on the generator's device, when whole-image CLIP inputs are
        made from them (``stream.device_scores``: 'auto' when they are on a GPU); else None."""
        setting = self.ctx.cfg['stream']['device_scores']
        if not todo.score or items is None or setting is False:
            return None
        device = [
            getattr(item, 'device_image', None) if item.status == 'ok' else None for item in items
        ]
        ok = [d for d in device if d is not None]
        if len(ok) != sum(item.status == 'ok' for item in items) or not ok:
            return None
        if setting == 'auto' and ok[0].device.type != 'cuda':
            return None
        return device

    def _job(self, todo: ChunkTodo, items: Optional[list], run: _Run, whole: bool) -> tuple:
        """The CPU part of a chunk (``items``: its images when made here) and the handle of
        its images in shared memory (None when they travel in the job)."""
        ctx, layout, chunk = self.ctx, self.ctx.layout, todo.chunk
        in_worker = todo.generate and not ctx.source.uses_gpu  # a CPU source generates there
        fresh = {s.name for s in todo.segmenters}
        shared = None
        if items is not None:
            items = [_host_item(item) for item in items]  # no device tensors to the workers
            if run.segments is not None:
                shared = run.segments.share([item.image for item in items])
                for item in items:
                    item.image = None
        job = ChunkJob(
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
            single_thread=ctx.cfg['workers']['type'] == 'process',
            shared=shared,
            clip_whole=whole)
        return job, shared

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


def check_stream_options(options: dict) -> None:
    """Check the values of the ``stream`` settings (their names are checked with every
    section's, :mod:`xpaste.builder.options`).

    Raises:
        ValueError: a bad value, naming the option.
    """
    for key in ('background', 'device_scores'):
        if options[key] not in ('auto', True, False):
            raise ValueError(f"stream.{key} must be 'auto', True or False, got {options[key]!r}")
    batch = options['score_batch']
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f'stream.score_batch must be None or an integer >= 1, got {batch!r}')
    if not isinstance(options['shared_memory'], bool):
        raise ValueError(f'stream.shared_memory must be True or False, got '
                         f'{options["shared_memory"]!r}')


def _host_item(item: SourceItem) -> SourceItem:
    """A plain :class:`~xpaste.builder.sources.SourceItem` of ``item`` (without the pixels it
    may also hold on a device)."""
    return SourceItem(**{f.name: getattr(item, f.name) for f in fields(SourceItem)})


def _cuda_event(device_images: list):
    """A CUDA event recorded after images on a GPU were made (None for CPU tensors): the
    finisher's CUDA stream waits for it before reading them."""
    first = next(d for d in device_images if d is not None)
    if first.device.type != 'cuda':
        return None
    import torch
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(first.device))
    return event

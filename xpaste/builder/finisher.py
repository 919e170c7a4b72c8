"""The main-process part of each chunk of the stream, once its CPU part is done.

:class:`ChunkFinisher` takes the chunks of :class:`~xpaste.builder.stream.StreamScheduler` in
order and, for each: waits for its CPU part (the worker pool), runs the GPU segmenters, scores
its images and cut-outs with CLIP, writes its score file, and filters (and hands to the workers
for writing) a class whose last chunk it was.

It runs in one of two ways:

- **inline** (CPU sources): the main thread finishes chunks itself between submissions, one
  chunk per CLIP pass, as :meth:`drain` is called;
- **background** (a GPU source, ``stream.background``): a thread of its own finishes chunks
  while the main thread generates; on CUDA it works on a CUDA stream of its own, so CLIP and
  the GPU segmenters overlap generation. Whole-image CLIP inputs are made from the generator's
  images still on the GPU (``stream.device_scores``), and the cut-outs of consecutive chunks
  share full CLIP batches (``stream.score_batch``). The number of chunks between the start of
  their generation and the end of their scoring is bounded (:class:`InFlightSlots`), so host
  and GPU memory stay flat.
"""
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from mmengine.logging import print_log

from .clip_scoring import prepare_whole_tensor
from .jobs import ChunkResult, write_class_job
from .stages.score import clip_inputs
from .stages.segment import empty_masks, segment_and_save

if TYPE_CHECKING:
    from .stream import ChunkTodo, StreamScheduler, _Run


@dataclass
class InFlight:
    """A chunk between its submission and its end.

    Attributes:
        todo (ChunkTodo): What the chunk needs.
        future (Future): Its CPU part in the workers.
        images (list, optional): Its images when the main process holds them (made here).
        device_images (list, optional): Per image, its pixels on the generator's device (None
            for unusable images), for whole-image CLIP scores; None when not used.
        event (object, optional): A CUDA event recorded after the images were made.
    """

    todo: 'ChunkTodo'
    future: Future
    images: Optional[list] = None
    device_images: Optional[list] = None
    event: Optional[object] = None


@dataclass
class _Scoring:
    """A chunk whose CLIP inputs wait for a shared batch."""

    inflight: InFlight
    result: ChunkResult
    groups: list
    empty: dict


class InFlightSlots:
    """A bound on the chunks in flight: :meth:`reserve` blocks until ``n`` more fit (or none
    is in flight, so a group larger than the bound still goes), :meth:`release` frees them.

    Args:
        bound (int): Chunks in flight at most (more only for a single larger group).
    """

    def __init__(self, bound: int):
        self.bound = max(1, int(bound))
        self.used = 0
        self.max_used = 0
        self.error: Optional[BaseException] = None
        self._cond = threading.Condition()

    def reserve(self, n: int) -> float:
        """Wait for room for ``n`` chunks; returns the seconds waited.

        Raises:
            BaseException: the error of the finisher, if it failed meanwhile.
        """
        t0 = time.perf_counter()
        with self._cond:
            while self.error is None and self.used and self.used + n > self.bound:
                self._cond.wait()
            if self.error is not None:
                raise self.error
            self.used += n
            self.max_used = max(self.max_used, self.used)
        return time.perf_counter() - t0

    def release(self, n: int = 1) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """Wake every waiter with ``error``."""
        with self._cond:
            self.error = error
            self._cond.notify_all()


class ChunkFinisher:
    """Finishes the chunks of one stream run (see the module docstring).

    Args:
        stream (StreamScheduler): The scheduler (its context and stages).
        run (_Run): The run's state (statistics, pool, progress, classes to filter).
        background (bool): Finish chunks in a thread of its own.
        score_batch (int): CLIP inputs per forward pass, gathered across chunks (background
            only).
        device (str, optional): The generator's device; a CUDA device gives the finisher a
            CUDA stream of its own.
    """

    def __init__(self,
                 stream: 'StreamScheduler',
                 run: '_Run',
                 background: bool = False,
                 score_batch: int = 256,
                 device: Optional[str] = None):
        self.stream = stream
        self.run = run
        self.background = background
        self.score_batch = max(1, int(score_batch))
        self.pending: deque = deque()
        self.slots = InFlightSlots(run.max_pending)
        self._scoring: list[_Scoring] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = None
        self._cuda_stream = None
        if background:
            if device is not None and str(device).startswith('cuda'):
                import torch
                self._cuda_stream = torch.cuda.Stream(device=device)
            self._thread = threading.Thread(target=self._loop, name='chunk-finisher', daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ main thread
    def reserve(self, n: int) -> None:
        """Room for ``n`` more chunks (background only; inline, :meth:`drain` bounds them)."""
        if self.background:
            self.run.stats.slot_wait_s += self.slots.reserve(n)

    def put(self, inflight: InFlight) -> None:
        """A submitted chunk, to be finished in order."""
        with self._cond:
            self.pending.append(inflight)
            self._cond.notify_all()

    def drain(self, until: int) -> None:
        """Inline: finish chunks in order while ``until`` or more are in flight, and those
        whose CPU part is done."""
        if self.background:
            return
        while self.pending and (len(self.pending) >= until or self.pending[0].future.done()):
            self._finish(self.pending.popleft())
            self._flush()

    def cancel_unstarted(self) -> None:
        """Cancel the chunks the workers have not started (a stop request); the others are
        finished."""
        with self._cond:
            for inflight in self.pending:
                inflight.future.cancel()

    def close(self) -> None:
        """Finish every chunk in flight (inline: here; background: wait for the thread), then
        the class writes; raises the first error of the finisher."""
        if not self.background:
            self.drain(until=1)
        else:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join()
            if self.slots.error is not None:
                raise self.slots.error
        self._collect_writes()

    def abort(self) -> None:
        """Stop at once after an error of the main thread: cancel what has not started and end
        the thread after the chunk it is on."""
        with self._cond:
            for inflight in self.pending:
                inflight.future.cancel()
            self.pending.clear()
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self.slots.fail(RuntimeError('stream aborted'))
            self._thread.join()

    # ------------------------------------------------------------------ the finisher thread
    def _loop(self) -> None:
        import torch
        ctx = torch.cuda.stream(self._cuda_stream) if self._cuda_stream is not None else None
        try:
            with ctx or nullcontext():
                while True:
                    inflight = self._next()
                    if inflight is None:
                        break
                    self._finish(inflight)
                self._flush()
        except BaseException as e:  # noqa: B902  (raised again in the main thread)
            self.slots.fail(e)

    def _next(self) -> Optional[InFlight]:
        """The next chunk in order; the waiting CLIP inputs are scored first when it is not
        ready (so they never wait on work that waits on them). None at the end."""
        with self._cond:
            ready = self.pending and self.pending[0].future.done()
        if not ready and self._scoring:
            self._flush()
        with self._cond:
            while not self.pending and not self._closed:
                self._cond.wait()
            return self.pending.popleft() if self.pending else None

    # ------------------------------------------------------------------ one chunk
    def _finish(self, inflight: InFlight) -> None:
        """The main-process part of a chunk: GPU segmenters, CLIP inputs; its scores now
        (inline) or with the next shared batch (background); then the chunk is done."""
        run, stream, todo = self.run, self.stream, inflight.todo
        if inflight.future.cancelled():
            self._release()
            return
        t0 = time.perf_counter()
        result: ChunkResult = inflight.future.result()
        run.stats.wait_s += time.perf_counter() - t0
        warn(result.messages)
        t0 = time.perf_counter()
        images = inflight.images if inflight.images is not None else result.images
        ctx, chunk = stream.ctx, todo.chunk
        empty, cuts = dict(result.empty), dict(result.cuts)
        for seg in [s for s in todo.segmenters if s.uses_gpu]:
            masks = segment_and_save(
                stream.segment.path(chunk, seg.name), ctx.layout.meta('segment', chunk, seg.name),
                seg, images, ctx.categories[chunk.cat], ctx.largest)
            empty[seg.name] = empty_masks(masks)
            if todo.score:
                cuts.update(
                    clip_inputs(
                        images, {seg.name: masks},
                        ctx.scorer.input_size,
                        ctx.scorer.cutout_margin,
                        whole=False)[1])
        if todo.score:
            whole = result.whole if result.whole is not None else self._device_whole(inflight)
            groups = stream.score.input_groups(result.status, whole, cuts, empty)
            self._scoring.append(_Scoring(inflight, result, groups, empty))
            run.stats.gpu_s += time.perf_counter() - t0
            if not self.background or sum(len(g) for s in self._scoring
                                          for g in s.groups) >= self.score_batch:
                self._flush()
            return
        run.stats.gpu_s += time.perf_counter() - t0
        self._done(todo, result)

    def _device_whole(self, inflight: InFlight):
        """Whole-image CLIP inputs of a chunk from its images on the generator's device
        (white for unusable images)."""
        import torch
        size = self.stream.ctx.scorer.input_size
        if inflight.event is not None and self._cuda_stream is not None:
            self._cuda_stream.wait_event(inflight.event)  # the images are made
        device_images = inflight.device_images
        ok = [i for i, im in enumerate(device_images) if im is not None]
        device = device_images[ok[0]].device if ok else 'cpu'
        whole = torch.full((len(device_images), size, size, 3),
                           255,
                           dtype=torch.uint8,
                           device=device)
        by_shape: dict = {}
        for i in ok:
            by_shape.setdefault(tuple(device_images[i].shape), []).append(i)
        for rows in by_shape.values():
            batch = torch.stack([device_images[i] for i in rows])
            whole[torch.as_tensor(rows, device=device)] = prepare_whole_tensor(batch, size)
        if self._cuda_stream is not None:
            for i in ok:  # the generator's stream may reuse the memory only after ours is done
                device_images[i].record_stream(self._cuda_stream)
        return whole

    def _flush(self) -> None:
        """Encode the waiting CLIP inputs of every chunk in shared batches (inline: one
        forward pass per group, as :meth:`ScoreStage.score_chunk`), save the chunks' scores
        and mark them done."""
        if not self._scoring:
            return
        t0 = time.perf_counter()
        scorer, stage = self.stream.ctx.scorer, self.stream.score
        waiting, self._scoring = self._scoring, []
        groups = [g for s in waiting for g in s.groups]
        if self.background:
            embeddings = scorer.encode_many(groups)
        else:
            embeddings = [scorer.encode(g) for g in groups]
        at = 0
        for s in waiting:
            k = len(s.groups)
            stage.save_scores(s.inflight.todo.chunk, s.result.status, s.empty,
                              embeddings[at:at + k])
            at += k
        self.run.stats.gpu_s += time.perf_counter() - t0
        for s in waiting:
            self._done(s.inflight.todo, s.result)

    def _done(self, todo: 'ChunkTodo', result: ChunkResult) -> None:
        """Count a finished chunk; filter its class (and hand its writing to the workers) if
        it was the class's last chunk."""
        run, stats = self.run, self.run.stats
        stats.images += result.num_images
        stats.chunks += 1
        for status in result.status:
            if status != 'ok':
                stats.bad[status] = stats.bad.get(status, 0) + 1
        run.progress.update(result.num_images)
        cat = todo.chunk.cat
        run.remaining[cat] -= 1
        self._release()
        if run.remaining[cat] == 0 and cat in run.local and not self.stream.stop.requested:
            t0 = time.perf_counter()
            self.stream.filter.filter_class(cat)
            if 'write' in run.then:
                run.writes.append(
                    (cat, run.executor.submit(write_class_job, self.stream.write.job(cat))))
            stats.gpu_s += time.perf_counter() - t0

    def _release(self) -> None:
        if self.background:
            self.slots.release()

    def _collect_writes(self) -> None:
        """Wait for the bank parts written on the way (each job marks its class done as soon
        as its part is committed)."""
        run = self.run
        t0 = time.perf_counter()
        for _, future in run.writes:
            future.result()
        run.stats.wait_s += time.perf_counter() - t0
        run.stats.classes_written = len(run.writes)


def warn(messages: list) -> None:
    """Log each message as a warning."""
    for message in messages:
        print_log(message, logger='current', level=logging.WARNING)

"""What the CPU worker pool runs: typed jobs, their results, and the pool itself.

* :func:`cpu_chunk_job` (:class:`ChunkJob` -> :class:`ChunkResult`): the CPU part of a chunk of
  the stream (save or load images, CPU segmenters, CLIP inputs).
* :func:`write_class_job` (:class:`WriteJob` -> :class:`WriteResult`): one class's bank part
  and its done marker.

Jobs and results are pickled to and from worker processes: they hold plain data, numpy arrays
and the components a worker runs (a CPU source, CPU segmenters), never the main process's GPU
models. Images made in the main process travel to worker processes through shared memory
(:mod:`xpaste.builder.shm`): the job then carries their handle instead of the pixels.

Worker processes (:func:`make_executor`) leave SIGINT and SIGTERM to the main process, which
finishes the units in flight and stops (:mod:`xpaste.builder.interrupt`), and exit on their own
when the main process dies (even by SIGKILL), so that a killed build leaves no process behind.
"""
import multiprocessing as mp
import os
import os.path as osp
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from xpaste.bank import BankWriter
from xpaste.utils.fileio import atomic_write_json, read_json
from .shm import SharedImages, take_images
from .sources import BaseSource, SourceItem, source_label
from .stages.generate import generate_chunks, load_generated, load_item_image, save_generated
from .stages.score import clip_inputs
from .stages.segment import empty_masks, load_masks, segment_and_save


@dataclass
class MaskOutput:
    """A segmenter to run on a chunk and where its output goes."""

    segmenter: object
    path: str
    meta: dict


@dataclass
class ChunkJob:
    """The CPU part of one chunk.

    Attributes:
        work_dir (str): The build's work dir.
        category (dict): The chunk's class.
        cat_key (str): Its file-system name.
        gen_path (str): The chunk's ``generate`` record.
        gen_meta (dict): The record header, for fresh images.
        image_format (str): How fresh images are saved (``generate.image_format``).
        quality (int): Their quality (``generate.quality``).
        largest (bool): Keep the largest component of each mask.
        items (list[SourceItem], optional): Images generated in the main process.
        source (BaseSource, optional): A CPU source that generates the chunk here.
        request (tuple, optional): Its ``(category, indices, prompts, seeds)``.
        segment (list[MaskOutput]): CPU segmenters still to run.
        load_masks (dict): Segmenter name -> output of a segmenter already done (CLIP needs
            its masks).
        clip_size (int): CLIP input side; 0: no CLIP inputs.
        clip_margin (float): Cut-out margin of the CLIP inputs.
        return_images (bool): Send the images back (GPU segmenters need them and the main
            process does not hold them).
        single_thread (bool): One OpenCV thread (in a worker process).
        shared (SharedImages, optional): The pixels of ``items`` (whose ``image`` is then
            None) in shared memory. Defaults to None.
        clip_whole (bool): Prepare whole-image CLIP inputs (False: the main process scores
            the whole images from its own copy on the GPU). Defaults to True.
    """

    work_dir: str
    category: dict
    cat_key: str
    gen_path: str
    gen_meta: dict
    image_format: str
    quality: int
    largest: bool
    items: Optional[list[SourceItem]] = None
    source: Optional[BaseSource] = None
    request: Optional[tuple] = None
    segment: list[MaskOutput] = field(default_factory=list)
    load_masks: dict = field(default_factory=dict)
    clip_size: int = 0
    clip_margin: float = 0.0
    return_images: bool = False
    single_thread: bool = False
    shared: Optional[SharedImages] = None
    clip_whole: bool = True


@dataclass
class ChunkResult:
    """What the main process needs of a chunk's CPU part.

    Attributes:
        status (list[str]): Per image, ``'ok'`` or why it is unusable.
        messages (list[str]): One warning per unusable image generated in the worker.
        empty (dict): Per segmenter run or loaded, whether each image has no (or an empty)
            mask.
        whole (np.ndarray, optional): Whole-image CLIP inputs ``(N, S, S, 3)`` (None
            without ``clip_whole``).
        cuts (dict): Per segmenter, cut-out CLIP inputs.
        images (list, optional): The images (``return_images``), None for unusable ones.
    """

    status: list
    messages: list
    empty: dict
    whole: Optional[np.ndarray] = None
    cuts: dict = field(default_factory=dict)
    images: Optional[list] = None

    @property
    def num_images(self) -> int:
        return len(self.status)


def cpu_chunk_job(job: ChunkJob) -> ChunkResult:
    """The CPU part of a chunk (runs in a worker).

    1. Fresh images (made by the main process, or here by a CPU source such as the toy
       renderer): save the ``'ok'`` images and the chunk's ``generate`` record. Else: load the
       images from disk.
    2. Run the CPU segmenters still to do; save their masks.
    3. Load the masks of the segmenters already done and prepare CLIP inputs if asked.
    """
    if job.single_thread:
        cv2.setNumThreads(1)
    items, messages = job.items, []
    if job.shared is not None:
        for item, image in zip(items, take_images(job.shared)):
            item.image = image
    if job.source is not None:
        (items, messages), = generate_chunks(job.source, [job.request])
    if items is not None:
        images = save_generated(items, job.work_dir, job.cat_key, job.image_format, job.quality,
                                job.gen_path, job.gen_meta)
        status = [item.status for item in items]
    else:
        records, images = load_generated(job.work_dir, job.gen_path, job.category)
        status = [r['status'] for r in records]
    masks = {}
    for out in job.segment:
        masks[out.segmenter.name] = segment_and_save(out.path, out.meta, out.segmenter, images,
                                                     job.category, job.largest)
    for name, path in job.load_masks.items():
        masks[name] = load_masks(path)
    empty = {name: empty_masks(ms) for name, ms in masks.items()}
    result = ChunkResult(status=status, messages=messages, empty=empty)
    if job.clip_size:
        result.whole, result.cuts = clip_inputs(images, masks, job.clip_size, job.clip_margin,
                                                job.clip_whole)
    if job.return_images:
        result.images = images
    return result


@dataclass
class WriteRow:
    """A kept cut-out: where its image and mask are, and its bank record."""

    file: str
    height: int
    width: int
    seg_path: str
    pos: int
    clip_score: Optional[float]
    image_score: Optional[float]
    segmenter: str
    prompt: str
    seed: int
    generator: str = ''


@dataclass
class WriteJob:
    """One class's bank part.

    Attributes:
        work_dir (str): The build's work dir (generated images are relative to it).
        bank_dir (str): The bank.
        categories (list[dict]): Every class of the bank.
        part (str): The part's name.
        category (str): The class's name.
        rows (list[WriteRow]): The kept cut-outs, in order.
        image_format (str): ``write.image_format``.
        quality (int): ``write.quality``.
        max_side (int, optional): ``write.max_side``.
        shard_bytes (int): ``write.shard_bytes``.
        marker_path (str): The class's done marker (``write/<class>.json``), written as soon
            as the part is committed.
        marker (dict): Its fields (fingerprint, category list fingerprint, class, part); the
            part's index file, shards and instance count are added.
        single_thread (bool): One OpenCV thread (in a worker process).
    """

    work_dir: str
    bank_dir: str
    categories: list
    part: str
    category: str
    rows: list[WriteRow]
    image_format: str
    quality: int
    max_side: Optional[int]
    shard_bytes: int
    marker_path: str
    marker: dict
    single_thread: bool = False


@dataclass
class WriteResult:
    """A written bank part: its class, name and number of instances."""

    category: str
    part: str
    count: int


def write_class_job(job: WriteJob) -> WriteResult:
    """Write the kept cut-outs of one class as one bank part, then its done marker (runs in a
    worker): a build killed later keeps the classes written so far."""
    if job.single_thread:
        cv2.setNumThreads(1)
    masks_of: dict[str, list] = {}
    writer = BankWriter(
        job.bank_dir,
        job.categories,
        part=job.part,
        image_format=job.image_format,
        quality=job.quality,
        max_side=job.max_side,
        shard_bytes=job.shard_bytes,
        mode='w',
        info=dict(category=job.category))
    with writer:
        for row in job.rows:
            if row.seg_path not in masks_of:
                masks_of = {row.seg_path: load_masks(row.seg_path)}  # chunks come in order
            mask = masks_of[row.seg_path][row.pos]
            image = load_item_image(job.work_dir,
                                    dict(file=row.file, height=row.height, width=row.width))
            if image is None or mask is None:
                raise FileNotFoundError(f'class {job.category!r}: image {row.file!r} or its mask '
                                        f'in {row.seg_path!r} is missing; rerun the '
                                        'generate/segment stages')
            writer.add(
                image,
                job.category,
                mask=mask,
                crop=True,
                clip_score=np.nan if row.clip_score is None else row.clip_score,
                image_score=np.nan if row.image_score is None else row.image_score,
                segmenter=row.segmenter,
                source=source_label(row.file, row.generator),
                prompt=row.prompt,
                seed=int(row.seed))
        count = writer.num_instances
    write_marker(job, count)
    return WriteResult(job.category, job.part, count)


def write_marker(job: WriteJob, count: int) -> None:
    """The done marker of a committed part: ``job.marker`` plus what the done check verifies
    by file sizes alone (the commit record, its index file, its shards) and the count."""
    record = osp.join(job.bank_dir, 'parts', job.part, 'part.json')
    committed = read_json(record)
    atomic_write_json(
        job.marker_path,
        dict(
            job.marker,
            count=count,
            part_bytes=os.path.getsize(record),
            index_file=committed['index_file'],
            shards=committed['shards']))


class _InlineExecutor(Executor):
    """Runs jobs in the calling thread (``workers.type=None`` or ``num_workers=0``)."""

    def submit(self, fn, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: B902  (delivered to .result())
            future.set_exception(e)
        return future


#: Seconds between a worker process's checks that the main process is alive.
PARENT_POLL_S = 0.5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    return True


def _watch_parent(main_pid: int, ppid: int) -> None:
    """Exit this process as soon as the main process is gone: this process is re-parented
    (``os.getppid()`` changes) or, when a fork server started it, ``main_pid`` has exited."""
    while True:
        if os.getppid() != ppid or (ppid != main_pid and not _alive(main_pid)):
            os._exit(1)
        time.sleep(PARENT_POLL_S)


def init_worker(main_pid: int) -> None:
    """Initialiser of the worker processes: SIGINT/SIGTERM are the main process's to handle
    (a Ctrl-C or slurm's SIGTERM reach the whole process group; the main process finishes the
    units in flight), and a daemon thread ends the worker when the main process dies (a
    SIGKILL leaves no orphaned workers, and then no multiprocessing resource tracker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(
        target=_watch_parent, args=(main_pid, os.getppid()), name='watch-parent',
        daemon=True).start()


def make_executor(workers: dict) -> Executor:
    """The CPU worker pool of the ``workers`` settings (``type``: 'process', 'thread' or None).

    Worker processes run :func:`init_worker`.
    """
    kind, num = workers['type'], int(workers['num_workers'] or 0)
    if kind is None or num <= 0:
        return _InlineExecutor()
    if kind == 'thread':
        return ThreadPoolExecutor(num)
    if kind == 'process':
        return ProcessPoolExecutor(
            num,
            mp_context=mp.get_context(workers['start_method']),
            initializer=init_worker,
            initargs=(os.getpid(), ))
    raise ValueError(f"workers.type must be 'process', 'thread' or None, got {kind!r}")

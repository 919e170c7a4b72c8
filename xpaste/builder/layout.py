"""Where a build's outputs live, which settings made them, and which rank does what.

* :class:`WorkLayout`: the output file of every unit of every stage (:data:`OUTPUTS`), the
  fingerprint of the settings that make it (:class:`Fingerprints`) and whether it is done
  (the file is readable, has the current fingerprint, and the files it points to are whole):
  the resume rule of every stage. A damaged file is named in a warning and its unit redone.
* :class:`RankPlan`: the chunks of the build and the ranks that own them.

Units: ``generate``/``segment``/``score`` work on *chunks* (:class:`Chunk`: ``chunk_size``
consecutive images of one class), ``filter``/``write``/``report`` on whole classes (the class's
position in the build). Each rank takes a contiguous block of the chunk list
(:func:`~xpaste.builder.dist.block_bounds`), so most classes have all their chunks on one rank,
and runs the per-class stages of the classes whose last chunk it holds.

Fingerprints chain per class: a changed prompt file regenerates only the classes whose prompts
it changes, a changed filter setting redoes ``filter``, ``write`` and ``report`` only.
"""
import logging
import os.path as osp
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Union

import numpy as np
from mmengine.logging import print_log

from .dist import block_bounds, block_owner, fingerprint
from .integrity import image_problem, json_problem, npz_problem, shards_problem, zip_problem

STAGES = ('generate', 'segment', 'score', 'filter', 'write', 'report')
STREAM_STAGES = ('generate', 'segment', 'score')

#: The output file of one unit of each stage, under the work dir. ``{key}``: the class
#: (:func:`category_key`), ``{chunk}``: the chunk (:attr:`Chunk.name`), ``{part}``: the segmenter.
OUTPUTS = {
    'generate': 'gen/{key}/{chunk}.json',
    'segment': 'seg/{part}/{key}/{chunk}.npz',
    'score': 'score/{key}/{chunk}.npz',
    'filter': 'filter/{key}.json',
    'write': 'write/{key}.json',
    'report': 'report/classes/{key}.json',
}

#: Arrays an ``.npz`` output must hold besides ``meta`` and its masks (checked by the done
#: checks, without reading them).
NPZ_KEYS = {
    'segment': ('area', 'component', 'phash', 'shape'),
    'score': ('image_score', 'cutout_score', 'best', 'embedding'),
}

#: Category fields kept in the bank.
BANK_CATEGORY_FIELDS = ('id', 'name', 'synonyms', 'def', 'frequency')


def category_key(category: dict) -> str:
    """File-system name of a class: ``'<id:05d>-<name>'`` with unsafe characters replaced."""
    return f'{category["id"]:05d}-' + re.sub(r'[^A-Za-z0-9._-]+', '_', category['name'])


@dataclass(frozen=True)
class Chunk:
    """``stop - start`` consecutive images of the class at position ``cat`` of the build."""

    cat: int
    number: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f'c{self.number:05d}'

    def __len__(self) -> int:
        return self.stop - self.start


Unit = Union[Chunk, int]


def to_builtin(obj):
    """Config values (ConfigDict, tuples, numpy scalars) as plain json types; NaN -> None;
    other objects (e.g. a prebuilt model) by their type name."""
    if isinstance(obj, dict):
        return {str(k): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_builtin(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return f'<{type(obj).__name__}>'


@dataclass(frozen=True)
class Fingerprints:
    """Per class, the fingerprint of the settings behind each stage's outputs.

    Each list has one entry per class of the build; ``segment`` has one list per segmenter.
    """

    generate: list
    segment: dict
    score: list
    filter: list
    write: list
    report: list

    @classmethod
    def compute(cls, cfg: dict, categories: list, prompts, source, segmenters: list, scorer,
                instance_filter, bank_dir: str) -> 'Fingerprints':
        """The fingerprints of a build from its merged settings and built components."""
        gen_common = dict(
            source=source.describe(),
            seed=int(cfg['seed']),
            image_format=cfg['generate']['image_format'],
            quality=cfg['generate']['quality'])
        gen = [
            fingerprint(gen_common,
                        prompts.prompts(c['name']) if source.generative else None, c['id'],
                        c['name']) for c in categories
        ]
        largest = bool(cfg['segment']['largest_component'])
        seg = {s.name: [fingerprint(s.describe(), largest, fp) for fp in gen] for s in segmenters}
        scorer_desc = scorer.describe() if scorer else None
        score = [
            fingerprint(scorer_desc, [seg[s.name][i] for s in segmenters])
            for i in range(len(categories))
        ]
        filt = [fingerprint(instance_filter.describe(), fp) for fp in score]
        write = {k: v for k, v in cfg['write'].items() if k != 'size_stats'}
        return cls(
            generate=gen,
            segment=seg,
            score=score,
            filter=filt,
            write=[fingerprint(write, fp, bank_dir) for fp in filt],
            report=[fingerprint(cfg['report'], fp) for fp in filt])

    def of(self, stage: str, cat: int, part: Optional[str] = None) -> str:
        """The fingerprint of ``stage``'s output for class ``cat`` (``part``: the segmenter)."""
        per_class = getattr(self, stage)
        return (per_class[part] if stage == 'segment' else per_class)[cat]

    @property
    def build(self) -> str:
        """The fingerprint of the whole bank."""
        return fingerprint(self.write)


def image_path(work_dir: str, file: str) -> str:
    """The path of an image of a ``generate`` record: ``file`` is relative to the work dir for
    generated images, absolute for folder images."""
    return file if osp.isabs(file) else osp.join(work_dir, file)


def read_output(path: str, stage: str) -> tuple[Optional[dict], str]:
    """The record of a stage's output file: a json file, or the ``meta`` of an ``.npz`` (whose
    arrays :data:`NPZ_KEYS` names must be there; they are not read).

    Returns:
        tuple: ``(record, '')``, ``(None, 'missing')`` or ``(None, what is wrong)``.
    """
    if path.endswith('.npz'):
        return npz_problem(path, NPZ_KEYS.get(stage, ()))
    return json_problem(path)


class WorkLayout:
    """The files of a build: one per unit and stage (:data:`OUTPUTS`), each carrying the
    fingerprint of the settings that made it; a unit is done when its file has the current one
    and the files it points to are whole (:meth:`done`).

    Args:
        work_dir (str): Outputs of every stage.
        bank_dir (str): The bank.
        categories (list[dict]): The classes of the build.
        fps (Fingerprints): The build's fingerprints.
        segmenters (list[str]): Segmenter names (one ``segment`` file per chunk and name).
        scored (bool): Whether CLIP scoring runs (else ``score`` outputs count as done).
    """

    def __init__(self, work_dir: str, bank_dir: str, categories: list, fps: Fingerprints,
                 segmenters: list, scored: bool):
        self.work_dir = work_dir
        self.bank_dir = bank_dir
        self.categories = categories
        self.keys = [category_key(c) for c in categories]
        self.fps = fps
        self.segmenters = list(segmenters)
        self.scored = scored
        self._warned: set = set()

    @property
    def report_dir(self) -> str:
        return osp.join(self.work_dir, 'report')

    @cached_property
    def bank_categories(self) -> list[dict]:
        """The categories every bank part holds (:data:`BANK_CATEGORY_FIELDS`)."""
        return [{k: c[k] for k in BANK_CATEGORY_FIELDS if k in c} for c in self.categories]

    @cached_property
    def bank_categories_fp(self) -> str:
        """Fingerprint of :attr:`bank_categories`: a part written for another category list
        is written again."""
        return fingerprint(self.bank_categories)

    def path(self, stage: str, unit: Unit, part: Optional[str] = None) -> str:
        """The output file of ``unit`` (a chunk or a class position) of ``stage``."""
        if isinstance(unit, Chunk):
            rel = OUTPUTS[stage].format(key=self.keys[unit.cat], chunk=unit.name, part=part)
        else:
            rel = OUTPUTS[stage].format(key=self.keys[unit], part=part)
        return osp.join(self.work_dir, rel)

    def part_name(self, cat: int) -> str:
        """The bank part of class ``cat``."""
        return f'cls-{self.categories[cat]["id"]:05d}'

    def part_dir(self, cat: int) -> str:
        """The folder of class ``cat``'s bank part."""
        return osp.join(self.bank_dir, 'parts', self.part_name(cat))

    def meta(self, stage: str, chunk: Chunk, part: Optional[str] = None) -> dict:
        """The record header of a chunk output: fingerprint, class name, image range."""
        return dict(
            fingerprint=self.fps.of(stage, chunk.cat, part),
            category=self.categories[chunk.cat]['name'],
            start=chunk.start,
            stop=chunk.stop)

    def done(self, stage: str, unit: Unit, part: Optional[str] = None) -> bool:
        """Whether ``unit``'s output of ``stage`` is done: its file exists, is readable and has
        the current fingerprint, and the files it points to are whole (``generate``: the
        images' headers and ends; ``write``: the bank part's index and shard sizes).
        ``segment`` without ``part``: every segmenter's output.

        A file that exists but is damaged (cut short, unreadable) is named in a warning
        (once) and its unit counts as not done, so that it is made again.
        """
        if stage == 'segment' and part is None:
            return all(self.done(stage, unit, name) for name in self.segmenters)
        if stage == 'score' and not self.scored:
            return True
        path = self.path(stage, unit, part)
        rec, problem = read_output(path, stage)
        chunk = unit if isinstance(unit, Chunk) else None
        cat = unit if chunk is None else chunk.cat
        if rec is None:
            self._redo(path, problem, stage, unit)
            return False
        if rec.get('fingerprint') != self.fps.of(stage, cat, part):
            return False
        if chunk is not None and (rec.get('start'), rec.get('stop')) != (chunk.start, chunk.stop):
            return False
        if stage == 'generate':
            return self._images_whole(rec, unit)
        if stage == 'write':
            return self._part_whole(rec, cat)
        return True

    def _images_whole(self, rec: dict, unit: Unit) -> bool:
        """Whether every usable image of a ``generate`` record is whole: the build's own
        images have a readable header with the recorded size and their end; folder images
        (decoded when the chunk was made; not ours to check further) exist."""
        for item in rec['items']:
            if item['status'] != 'ok':
                continue
            path = image_path(self.work_dir, item['file'])
            if osp.isabs(item['file']):
                problem = '' if osp.isfile(path) else 'missing'
            else:
                problem = image_problem(path, (item['height'], item['width']), complete=True)
            if problem:
                self._redo(path, problem, 'generate', unit, expected=True)
                return False
        return True

    def _part_whole(self, rec: dict, cat: int) -> bool:
        """Whether the bank part a ``write`` marker records is there and whole (from file
        sizes and the index's zip directory): written for the build's categories, its commit
        record as written, its index readable, its shards at least as long as written."""
        if rec.get('categories') != self.bank_categories_fp or 'shards' not in rec:
            return False  # another category list, or a marker of an older build
        pdir = self.part_dir(cat)
        record, index = osp.join(pdir, 'part.json'), osp.join(pdir, rec['index_file'])
        size = osp.getsize(record) if osp.isfile(record) else None
        checks = [
            (record, 'missing' if size is None else '' if size == rec['part_bytes'] else
             f'{size} bytes, {rec["part_bytes"]} were written'),
            (index, zip_problem(index)),
            (pdir, shards_problem(pdir, rec['shards'])),
        ]
        for path, problem in checks:
            if problem:
                self._redo(path, problem, 'write', cat, expected=True)
                return False
        return True

    def _redo(self, path: str, problem: str, stage: str, unit: Unit,
              expected: bool = False) -> None:
        """Warn (once per file) that ``path`` is damaged and its unit is made again; a
        missing output file is just not done yet (``expected``: the file should be there)."""
        if (problem == 'missing' and not expected) or path in self._warned:
            return
        self._warned.add(path)
        what = (f'class {self.keys[unit.cat]} chunk {unit.name}'
                if isinstance(unit, Chunk) else f'class {self.keys[unit]}')
        print_log(
            f'{path}: {problem}; {stage} of {what} is done again',
            logger='current',
            level=logging.WARNING)


class RankPlan:
    """The chunks of a build and which rank runs what.

    The chunk list is made on first use (counting a folder source's images lists its folders).

    Args:
        categories (list[dict]): The classes of the build.
        source: The image source (``num_images``).
        images_per_class (int, optional): ``images_per_class`` of the build.
        chunk_size (int): Images per chunk.
        rank (int): This rank.
        world_size (int): Number of ranks.
        on_empty (callable): Called with a category that has no images. Defaults to nothing.
    """

    def __init__(self,
                 categories: list,
                 source,
                 images_per_class: Optional[int],
                 chunk_size: int,
                 rank: int,
                 world_size: int,
                 on_empty=lambda category: None):
        self.categories = categories
        self.source = source
        self.images_per_class = images_per_class
        self.chunk_size = chunk_size
        self.rank = rank
        self.world_size = world_size
        self.on_empty = on_empty

    @cached_property
    def chunks(self) -> list[Chunk]:
        """Every chunk of the build, in a fixed order (class by class)."""
        chunks = []
        for pos, cat in enumerate(self.categories):
            n = self.source.num_images(cat, self.images_per_class)
            if n == 0:
                self.on_empty(cat)
            for k, start in enumerate(range(0, n, self.chunk_size)):
                chunks.append(Chunk(pos, k, start, min(n, start + self.chunk_size)))
        return chunks

    @cached_property
    def _positions(self) -> dict[int, list[int]]:
        """Positions in :attr:`chunks` of each class's chunks."""
        positions: dict[int, list[int]] = {}
        for i, chunk in enumerate(self.chunks):
            positions.setdefault(chunk.cat, []).append(i)
        return positions

    def class_chunks(self, cat: int) -> list[Chunk]:
        """The chunks of class ``cat``, in order."""
        return [self.chunks[i] for i in self._positions.get(cat, [])]

    def my_chunks(self) -> list[Chunk]:
        """This rank's chunks: a contiguous block of :attr:`chunks`, so that most classes
        have all their chunks on one rank."""
        start, stop = block_bounds(len(self.chunks), self.rank, self.world_size)
        return self.chunks[start:stop]

    def class_owner(self, cat: int) -> int:
        """The rank running the per-class stages of class ``cat``: the owner of its last chunk
        (round robin for a class without images)."""
        positions = self._positions.get(cat)
        if not positions:
            return cat % self.world_size
        return block_owner(positions[-1], len(self.chunks), self.world_size)

    @cached_property
    def _owners(self) -> list[int]:
        return [self.class_owner(c) for c in range(len(self.categories))]

    def my_classes(self) -> list[int]:
        """The classes whose per-class stages (filter, write, report) run on this rank."""
        return [c for c, r in enumerate(self._owners) if r == self.rank]

    def is_local(self, cat: int) -> bool:
        """Whether every chunk of class ``cat`` is on this rank and the class is this
        rank's."""
        start, stop = block_bounds(len(self.chunks), self.rank, self.world_size)
        positions = self._positions.get(cat, [])
        return self._owners[cat] == self.rank and all(start <= i < stop for i in positions)

"""What every stage of a build shares: the checked settings and the built components.

:meth:`BuildContext.from_config` checks every setting and resolves every model path before any
work (models load in the first stage that needs them), reads the category file once and, on
rank 0, computes the bank's size statistics from the same parsed file.
"""
import json
import logging
import os
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Optional

import numpy as np
from mmengine.logging import print_log

from xpaste.bank import check_lvis_annotations, compute_size_stats
from xpaste.utils.checks import check_number
from .clip_scoring import ClipScorer, build_scorer
from .defaults import merge_defaults
from .dist import get_dist_info, wait_for
from .filters import InstanceFilter
from .hub import local_rank_from_env
from .layout import Fingerprints, RankPlan, WorkLayout
from .options import check_options
from .prompts import PromptBank, load_categories, read_category_file
from .real_instances import RealInstances
from .segmenters import build_segmenters
from .sources import BaseSource, build_source
from .stages.generate import encode_image


@dataclass
class BuildContext:
    """The settings and components of a build, shared by its stages.

    Attributes:
        cfg (dict): Every option (:data:`~xpaste.builder.defaults.BUILD_DEFAULTS` merged with
            the config).
        rank (int): This rank.
        world_size (int): Number of ranks.
        categories (list[dict]): The classes of the build, by id.
        prompts (PromptBank): Their prompts.
        source (BaseSource): Where images come from.
        segmenters (list): The segmenters, run on every image.
        scorer (ClipScorer, optional): CLIP scoring; None skips it.
        filter (InstanceFilter): The per-class filter.
        layout (WorkLayout): Output files, fingerprints, done checks.
        plan (RankPlan): Chunks and their ranks.
        size_stats (dict, optional): Per-class size statistics for the bank (rank 0 only).
        wait_timeout (float): Seconds to wait for other ranks' outputs.
        real (RealInstances, optional): The training set's instances of each class
            (``filter.real_similarity``); None when that filter is off.
    """

    cfg: dict
    rank: int
    world_size: int
    categories: list
    prompts: PromptBank
    source: BaseSource
    segmenters: list
    scorer: Optional[ClipScorer]
    filter: InstanceFilter
    layout: WorkLayout
    plan: RankPlan
    size_stats: Optional[dict]
    wait_timeout: float
    real: Optional[RealInstances] = None

    @classmethod
    def from_config(cls,
                    cfg: dict,
                    rank: Optional[int] = None,
                    world_size: Optional[int] = None) -> 'BuildContext':
        """Check the settings of ``cfg`` and build the components.

        Args:
            cfg (dict | mmengine.Config): The build settings; ``work_dir`` is required.
            rank (int, optional): This rank. Defaults to the launcher's environment.
            world_size (int, optional): Number of ranks. Defaults to the launcher's environment.
        """
        cfg = merge_defaults(cfg)
        check_options(cfg)
        if not cfg['work_dir']:
            raise ValueError('work_dir must be set (the tool sets ./work_dirs/<config name>)')
        env_rank, env_world, _ = get_dist_info()
        rank = env_rank if rank is None else rank
        world_size = env_world if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise ValueError(f'rank must be in [0, {world_size}), got {rank!r}')
        local_rank = local_rank_from_env()
        work_dir = osp.abspath(cfg['work_dir'])
        bank_dir = osp.abspath(cfg['bank_dir'] or osp.join(work_dir, 'bank'))
        check_number('chunk_size', cfg['chunk_size'], 1, integer=True)
        ann_file, names = cfg['categories']['ann_file'], cfg['categories']['names']
        # parsed once: categories here, size statistics below
        ann = read_category_file(ann_file) if ann_file is not None and names is None else None
        categories = load_categories(**cfg['categories'], data=ann)
        if not categories:
            raise ValueError('the build selects no categories (check categories.include/'
                             'exclude/max_classes)')
        prompts = PromptBank(categories, seed=cfg['seed'], **cfg['prompts'])
        source = build_source(cfg['source'])
        segmenters = build_segmenters(cfg['segment']['segmenters'])
        scorer = build_scorer(cfg['score'])
        instance_filter = InstanceFilter(**cfg['filter'])
        encode_image(
            np.zeros((8, 8, 3), np.uint8), cfg['generate']['image_format'],
            cfg['generate']['quality'])
        for model in [source, *segmenters, scorer]:
            if model is not None:
                model.local_rank = local_rank
                model.check()
        source.check_categories(categories)
        real = None
        if instance_filter.real_similarity is not None:
            if scorer is None:
                raise ValueError('filter.real_similarity compares CLIP embeddings: it needs CLIP '
                                 'scoring (set score.pretrained), or set it to None')
            real = RealInstances.from_config(instance_filter.real_similarity, categories,
                                             work_dir, ann_file, ann)
        wait = cfg['dist']['wait_timeout']
        fps = Fingerprints.compute(cfg, categories, prompts, source, segmenters, scorer,
                                   instance_filter, bank_dir)
        size_stats = None
        if rank == 0:  # the bank is merged on rank 0
            size_stats = size_statistics(cfg, ann, [c['name'] for c in categories])
        return cls(
            cfg=cfg,
            rank=rank,
            world_size=world_size,
            categories=categories,
            prompts=prompts,
            source=source,
            segmenters=segmenters,
            scorer=scorer,
            filter=instance_filter,
            layout=WorkLayout(work_dir, bank_dir, categories, fps, [s.name for s in segmenters],
                              scorer is not None),
            plan=RankPlan(categories, source, cfg['images_per_class'], cfg['chunk_size'], rank,
                          world_size, _warn_no_images),
            size_stats=size_stats,
            wait_timeout=(0 if world_size == 1 else 24 * 3600) if wait is None else wait,
            real=real)

    @property
    def work_dir(self) -> str:
        return self.layout.work_dir

    @property
    def bank_dir(self) -> str:
        return self.layout.bank_dir

    @property
    def largest(self) -> bool:
        """Keep the largest connected component of each mask (``segment``)."""
        return bool(self.cfg['segment']['largest_component'])

    def check_writable(self, bank: bool = True) -> None:
        """Check that the work dir (and, if ``bank``, the bank dir) can be written, creating
        them if needed, so that a read-only folder stops the build before any work.

        Raises:
            PermissionError: the message names the folder and why.
        """
        dirs = [('work dir', self.work_dir, 'work_dir / --work-dir')]
        if bank:
            dirs.append(('bank dir', self.bank_dir, 'bank_dir / --bank-dir'))
        for what, path, option in dirs:
            problem = write_problem(path)
            if problem:
                raise PermissionError(f'the {what} {path!r} is not writable ({problem}); fix its '
                                      f'permissions or choose another folder ({option})')

    def wait(self, items: list, check, what: str, name) -> None:
        """:func:`~xpaste.builder.dist.wait_for` other ranks' outputs (``dist`` settings)."""
        wait_for(
            items,
            check,
            self.wait_timeout,
            self.cfg['dist']['poll_interval'],
            what=what,
            name=name)


def _warn_no_images(category: dict) -> None:
    print_log(f'class {category["name"]!r} has no images', logger='current', level=logging.WARNING)


def write_problem(path: str) -> str:
    """Why files cannot be written in folder ``path`` ('' if they can): creates it if needed,
    then writes and removes a probe file."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write-check-', dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        return f'{type(e).__name__}: {e}'
    return ''


def size_statistics(cfg: dict, ann: Optional[dict], names: list) -> Optional[dict]:
    """Per-class size statistics for the bank (``write.size_stats``).

    Args:
        cfg (dict): The merged settings.
        ann (dict, optional): ``categories.ann_file`` already parsed (None without one).
        names (list[str]): The classes of the build.

    Returns:
        dict | None: :func:`xpaste.bank.compute_size_stats` of ``categories.ann_file``
        (``size_stats=True``) or of the annotation file ``size_stats`` names; None when off or
        the file has no annotations (with a warning).
    """
    opt = cfg['write']['size_stats']
    if opt is False or opt is None:
        return None
    path = cfg['categories']['ann_file'] if opt is True else opt
    if not path:
        return None
    if path != cfg['categories']['ann_file']:
        with open(path) as f:
            ann = json.load(f)
    if not ann.get('annotations'):
        print_log(
            f'{path}: no annotations, the bank gets no size statistics',
            logger='current',
            level=logging.WARNING)
        return None
    check_lvis_annotations(ann, path)
    stats = compute_size_stats(ann, categories=names)
    return dict(stats, source=osp.basename(path))

"""The segmenter interface, its registry and :func:`build_segmenters`."""
import logging
from typing import Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from mmengine.registry import Registry

SEGMENTERS = Registry('bank segmenter')


class BaseSegmenter:
    """Interface of segmenters.

    Args:
        name (str, optional): Name recorded with each cut-out and used in file paths; unique
            within a build. Defaults to the class's :attr:`default_name`.
    """

    default_name = 'segmenter'
    #: Whether the segmenter runs a model on the GPU (then it runs in the main process).
    uses_gpu = False

    def __init__(self, name: Optional[str] = None):
        name = self.default_name if name is None else name
        if not isinstance(name, str) or not name.replace('_', '').replace('-', '').isalnum():
            raise ValueError(f'segmenter name must be letters, digits, "_" or "-", got {name!r}')
        self.name = name

    def check(self) -> None:
        """Fail early, before any work, on missing paths or bad settings."""

    def setup(self) -> None:
        """Load models (once per process, before the first :meth:`segment`)."""

    def segment(self, images: Sequence[np.ndarray], category: dict) -> list[np.ndarray]:
        """One bool (H, W) mask per BGR uint8 (H, W, 3) image of class ``category``."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Settings recorded in the bank's build info and in fingerprints."""
        return {'type': type(self).__name__, 'name': self.name}



def build_segmenters(cfgs: Sequence[dict]) -> list[BaseSegmenter]:
    """Build the segmenters of a build; names must be unique.

    Raises:
        ValueError: an empty list, a config without ``type`` or a duplicate name.
    """
    if isinstance(cfgs, dict) or not cfgs:
        raise ValueError(f'segment.segmenters must be a non-empty list of dicts, got {cfgs!r}')
    segmenters = []
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ValueError(f'segment.segmenters[{i}] must be a dict with "type", got {cfg!r}')
        segmenters.append(SEGMENTERS.build(dict(cfg)))
    names = [s.name for s in segmenters]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f'segment.segmenters: duplicate names {dups!r}; give each a name=')
    if len(segmenters) > 1:
        print_log(
            f'segmenter ensemble {names}: each image keeps the cut-out with the best CLIP '
            'score (the first non-empty one when CLIP scoring is off)',
            logger='current',
            level=logging.INFO)
    return segmenters

"""Any MMDetection instance segmentation model as a segmenter.

mmdet is imported only when the model is loaded (:meth:`MMDetSegmenter.setup`): the builder does
not depend on the detection side, and a build without this segmenter never imports mmdet.
"""
import os.path as osp
from typing import Optional, Sequence

import numpy as np

from xpaste.utils.checks import check_number
from ..hub import check_model_source, resolve_device
from ..prompts import display_name
from .base import SEGMENTERS, BaseSegmenter


def normalise_class_name(name: str) -> str:
    """A class name for matching across label sets: display form, lower case
    (``'Aerosol_Can'`` -> ``'aerosol can'``)."""
    return display_name(str(name)).lower()


def pick_instance(scores: np.ndarray,
                  labels: np.ndarray,
                  allowed: Optional[Sequence[int]] = None,
                  score_thr: float = 0.0) -> int:
    """The position of the highest-scoring detection, -1 when there is none.

    Args:
        scores (np.ndarray): Detection scores (N,).
        labels (np.ndarray): Detection labels (N,).
        allowed (Sequence[int], optional): Only detections with one of these labels count;
            None: every label. Defaults to None.
        score_thr (float): Detections scoring below it do not count. Defaults to 0.

    Returns:
        int: Index into the detections (the first on ties), -1 when none is left.
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    ok = scores >= score_thr
    if allowed is not None:
        ok &= np.isin(np.asarray(labels).reshape(-1), np.asarray(list(allowed), np.int64))
    if not ok.any():
        return -1
    return int(np.argmax(np.where(ok, scores, -np.inf)))


def resolve_mmdet_config(config: str) -> str:
    """A config path as given, or an ``mmdet::`` path resolved to the file mmdet installs
    (e.g. ``'mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-2x_lvis-v1.py'``)."""
    if '::' in config:
        from mmengine.config.utils import _get_package_and_cfg_path
        from mmengine.utils import get_installed_path
        package, rel = _get_package_and_cfg_path(config)
        return osp.join(get_installed_path(package), '.mim', 'configs', rel)
    return config


@SEGMENTERS.register_module()
class MMDetSegmenter(BaseSegmenter):
    """An MMDetection instance segmentation model (Mask R-CNN, Cascade, Mask2Former...) through
    mmdet's inference API (``mmdet.apis.init_detector`` / ``inference_detector``).

    Per image, the mask of the highest-scoring detection is kept; with ``target_class``, only
    detections of the image's class count (the bank class is matched to the detector's classes
    by name: underscores as spaces, case-insensitive, or through ``class_map``), and an image of
    a class the detector does not know gets the highest-scoring detection of any class when
    ``fallback_any_class`` is set, else an empty mask. No detection at or above ``score_thr``:
    an empty mask (dropped later as ``empty_mask``).

    Args:
        config (str): The model's config file, or an ``mmdet::`` path of a config mmdet ships.
        checkpoint (str): Its weights: a local checkpoint file (or a URL mmengine can load).
        target_class (bool): Keep only detections of the image's class. Defaults to False.
        class_map (dict, optional): Bank class name -> detector class name, for names that do
            not match as they are. Defaults to None.
        fallback_any_class (bool): With ``target_class``, an image of a class the detector
            does not know takes the best detection of any class. Defaults to True.
        score_thr (float): Smallest score of a kept detection. Defaults to 0.3.
        mask_thr (float): Threshold of soft masks (models that return probabilities).
            Defaults to 0.5.
        batch_size (int): Images per ``inference_detector`` call. Defaults to 8.
        cfg_options (dict, optional): Overrides of the config, as mmdet's ``--cfg-options``
            (e.g. ``{'model.test_cfg.rcnn.score_thr': 0.01}``). Defaults to None.
        device (str): Defaults to ``'auto'``.
        name (str, optional): Defaults to ``'mmdet'``.
    """

    default_name = 'mmdet'
    uses_gpu = True

    def __init__(self,
                 config: str,
                 checkpoint: str,
                 target_class: bool = False,
                 class_map: Optional[dict] = None,
                 fallback_any_class: bool = True,
                 score_thr: float = 0.3,
                 mask_thr: float = 0.5,
                 batch_size: int = 8,
                 cfg_options: Optional[dict] = None,
                 device: str = 'auto',
                 name: Optional[str] = None):
        super().__init__(name)
        if not 0 <= score_thr <= 1:
            raise ValueError(f'MMDetSegmenter.score_thr must be in [0, 1], got {score_thr!r}')
        check_number('MMDetSegmenter.mask_thr', mask_thr, 0, 1, lo_open=True, hi_open=True)
        batch_size = check_number('MMDetSegmenter.batch_size', batch_size, 1, integer=True)
        if class_map is not None and not isinstance(class_map, dict):
            raise ValueError(f'MMDetSegmenter.class_map must be a dict {{bank name: detector '
                             f'name}}, got {class_map!r}')
        self.config = config
        self.checkpoint = checkpoint
        self.target_class = bool(target_class)
        self.class_map = dict(class_map or {})
        self.fallback_any_class = bool(fallback_any_class)
        self.score_thr = float(score_thr)
        self.mask_thr = float(mask_thr)
        self.batch_size = batch_size
        self.cfg_options = dict(cfg_options or {})
        self.device = device
        self.local_rank = 0
        self.model = None
        self._labels: dict[str, int] = {}

    def check(self) -> None:
        check_model_source(
            resolve_mmdet_config(self.config), f'segmenter {self.name!r} config',
            allow_hub_id=False, kind='file')
        if not str(self.checkpoint).startswith(('http://', 'https://')):
            check_model_source(
                self.checkpoint, f'segmenter {self.name!r} checkpoint', allow_hub_id=False,
                kind='file')

    def setup(self) -> None:
        if self.model is not None:
            return
        self.check()
        from mmdet.apis import init_detector
        from mmengine.config import Config

        from xpaste.utils import apply_torch_load_compat
        apply_torch_load_compat()  # mmengine checkpoints under torch's weights_only loader
        cfg = Config.fromfile(resolve_mmdet_config(self.config))
        try:
            self.model = init_detector(
                cfg,
                self.checkpoint,
                palette='random',  # not 'none': that builds the config's test dataset
                device=resolve_device(self.device, self.local_rank, f'segmenter {self.name!r}'),
                cfg_options=self.cfg_options or None)
        except (OSError, RuntimeError, KeyError, ValueError) as e:
            raise OSError(f'segmenter {self.name!r}: cannot load {self.config!r} with '
                          f'{self.checkpoint!r} ({type(e).__name__}: {e})') from e
        classes = (self.model.dataset_meta or {}).get('classes') or ()
        self._labels = {normalise_class_name(c): i for i, c in enumerate(classes)}

    def class_labels(self, category: dict) -> Optional[list]:
        """Detector labels whose detections count for images of ``category``: None for every
        label (``target_class`` off, or an unknown class with ``fallback_any_class``), [] for
        none."""
        if not self.target_class:
            return None
        name = self.class_map.get(category['name'], category['name'])
        label = self._labels.get(normalise_class_name(name))
        if label is None:
            return None if self.fallback_any_class else []
        return [label]

    def segment(self, images, category):
        from mmdet.apis import inference_detector
        self.setup()
        allowed = self.class_labels(category)
        masks = []
        for start in range(0, len(images), self.batch_size):
            batch = [np.ascontiguousarray(im) for im in images[start:start + self.batch_size]]
            results = inference_detector(self.model, batch)
            for image, result in zip(batch, results):
                masks.append(self._best_mask(image.shape[:2], result.pred_instances, allowed))
        return masks

    def _best_mask(self, shape: tuple, instances, allowed) -> np.ndarray:
        """The mask of the best detection of one image's results (empty when none)."""
        if len(instances) == 0 or 'masks' not in instances:
            return np.zeros(shape, bool)
        i = pick_instance(instances.scores.float().cpu().numpy(),
                          instances.labels.cpu().numpy(), allowed, self.score_thr)
        if i < 0:
            return np.zeros(shape, bool)
        mask = instances.masks[i]
        mask = mask.cpu().numpy() if hasattr(mask, 'cpu') else np.asarray(mask)
        mask = mask >= self.mask_thr if mask.dtype != bool else mask
        if mask.shape != tuple(shape):
            raise RuntimeError(f'segmenter {self.name!r}: the detector returned a mask of shape '
                               f'{mask.shape} for an image of shape {tuple(shape)}; its test '
                               'pipeline must rescale the results to the input image')
        return mask

    def describe(self):
        return dict(
            type=type(self).__name__,
            name=self.name,
            config=self.config,
            checkpoint=self.checkpoint,
            target_class=self.target_class,
            class_map=self.class_map,
            fallback_any_class=self.fallback_any_class,
            score_thr=self.score_thr,
            mask_thr=self.mask_thr,
            cfg_options=self.cfg_options)

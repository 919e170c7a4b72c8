"""The CenterNet2 detector: mmdet's two-stage detector with a check of the pretrained weights."""
import os.path as osp

from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS

# Prefixes of checkpoints that mmengine fetches itself (no local file to check).
_REMOTE_PREFIXES = ('http://', 'https://', 'torchvision://', 'open-mmlab://', 'mmcls://',
                    'pavi://', 's3://', 'modelzoo://')


def missing_pretrained(init_cfg, where: str = 'model.backbone.init_cfg') -> list:
    """``(config path, checkpoint)`` of the local ``Pretrained`` checkpoints that do not exist.

    Args:
        init_cfg (dict | list[dict] | None): An ``init_cfg``.
        where (str): Its path in the config, for messages.

    Returns:
        list[tuple[str, str]]: The missing checkpoints.
    """
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    missing = []
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, dict) or cfg.get('type') != 'Pretrained':
            continue
        ckpt = str(cfg.get('checkpoint', ''))
        if ckpt and not ckpt.startswith(_REMOTE_PREFIXES) and not osp.isfile(ckpt):
            key = f'{where}[{i}]' if isinstance(init_cfg, (list, tuple)) else where
            missing.append((f'{key}.checkpoint', ckpt))
    return missing


@MODELS.register_module()
class CenterNet2(TwoStageDetector):
    """CenterNet2 (Zhou et al., 2021): backbone + FPN (P3-P7), a class-agnostic CenterNet
    proposal head (:class:`~xpaste.models.CenterNetProposalHead`) and a cascade RoI head
    that combines its scores with the proposals' (:class:`~xpaste.models.CenterNet2RoIHead`).

    Before initialising, a ``Pretrained`` backbone checkpoint given as a local path must exist:
    a missing file stops with a message naming the config field, the path and where the
    weights come from (``pretrained_hint``), instead of a random backbone being trained.

    Args:
        pretrained_hint (str): How to obtain the backbone weights, shown when they are
            missing. Defaults to ''.
        **kwargs: As :class:`mmdet.models.detectors.TwoStageDetector`.
    """

    def __init__(self, *args, pretrained_hint: str = '', **kwargs):
        self.pretrained_hint = pretrained_hint
        super().__init__(*args, **kwargs)

    def init_weights(self) -> None:
        missing = missing_pretrained(getattr(self.backbone, 'init_cfg', None))
        if missing:
            lines = [f'  {key} = {path!r}' for key, path in missing]
            raise FileNotFoundError(
                'pretrained backbone weights not found:\n' + '\n'.join(lines) + '\n'
                + (f'{self.pretrained_hint}\n' if self.pretrained_hint else '')
                + 'Put the file at that path, or set the field to where it is (e.g. '
                '--cfg-options model.backbone.init_cfg.checkpoint=PATH).')
        super().init_weights()

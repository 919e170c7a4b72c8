"""The box head of a CenterNet2 cascade stage (Detic's ``DeticFastRCNNOutputLayers``)."""
import math

import torch.nn as nn
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS


@MODELS.register_module()
class CenterNet2BBoxHead(Shared2FCBBoxHead):
    """Two shared FC layers, class scores and (class-agnostic) box deltas, as a CenterNet2
    cascade stage in Detic/X-Paste.

    Differences from ``Shared2FCBBoxHead``:

    1. With a sigmoid classification loss (:class:`~xpaste.models.FederatedLoss`) the class
       logits start at ``prior_prob`` (Detic ``PRIOR_PROB = 0.01``).
    2. The box loss is averaged over the foreground proposals and the four coordinates
       (Detic's ``box_reg_loss``: ``sum / numel``), not over all sampled proposals.

    Args:
        prior_prob (float, optional): Initial probability of every class; None keeps mmdet's
            zero bias. Defaults to 0.01.
        **kwargs: As :class:`mmdet.models.roi_heads.bbox_heads.Shared2FCBBoxHead`.
    """

    def __init__(self, *args, prior_prob=0.01, **kwargs):
        super().__init__(*args, **kwargs)
        self.prior_prob = prior_prob

    def init_weights(self) -> None:
        super().init_weights()
        if self.prior_prob is not None and self.with_cls:
            nn.init.constant_(self.fc_cls.bias,
                              -math.log((1 - self.prior_prob) / self.prior_prob))

    def loss(self, cls_score, bbox_pred, rois, labels, label_weights, bbox_targets,
             bbox_weights, reduction_override=None) -> dict:
        losses = super().loss(cls_score, bbox_pred, rois, labels, label_weights, bbox_targets,
                              bbox_weights, reduction_override)
        if bbox_pred is not None and 'loss_bbox' in losses:
            num_pos = int(((labels >= 0) & (labels < self.num_classes)).sum())
            if num_pos > 0:
                # mmdet divides by all sampled proposals; Detic by foreground x 4
                losses['loss_bbox'] = losses['loss_bbox'] * (
                    bbox_targets.size(0) / (4.0 * num_pos))
        return losses

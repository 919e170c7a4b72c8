"""CenterNet2's first stage: a class-agnostic CenterNet proposal head on FPN P3-P7."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, Scale
from mmcv.ops import batched_nms
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.registry import MODELS
from mmdet.utils import reduce_mean
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from .centernet_targets import batch_targets, grid_points, heatmap_focal_loss, ltrb_giou_loss

INF = 100000000


@MODELS.register_module()
class CenterNetProposalHead(BaseDenseHead):
    """Class-agnostic CenterNet head producing proposals (CenterNet2 with
    ``ONLY_PROPOSAL=True, WITH_AGN_HM=True``).

    1. A tower of ``num_convs`` 3x3 conv + GroupNorm + ReLU layers, shared by all levels,
       feeds a 3x3 conv predicting an objectness heatmap logit and a 3x3 conv predicting the
       distances (left, top, right, bottom) to the box, in units of the level's stride
       (scaled per level, then ReLU).
    2. Training targets: each box is assigned to the levels whose ``regress_ranges`` hold its
       half diagonal; the heatmap is ``exp(-d^2 / r^2)`` of the nearest box centre (``r^2 =
       max(2 * delta^2 * area, min_radius^2)``, ``delta = (1 - 0.8) / (1 + 0.8)``) and its
       positives are the cells of the centres; the box branch regresses boxes from the 3x3
       cells around each centre that lie in the box, at its levels.
    3. Losses: binary Gaussian focal loss on the heatmap (``alpha`` 0.25, ``beta`` 4,
       ``gamma`` 2, negatives above ``ignore_high_fp`` ignored), scaled by ``pos_weight`` /
       ``neg_weight`` and divided by the number of positives; GIoU loss of the distances,
       weighted by ``reg_weight`` and averaged over the regressed cells.
    4. Proposals: per level, cells whose heatmap exceeds ``score_thr``, the ``nms_pre`` best;
       boxes are clipped to the image (``img_shape``; empty ones dropped); all levels together
       go through NMS at ``nms.iou_threshold``; the ``max_per_img`` highest remain. A
       proposal's score is ``sqrt(sigmoid(heatmap))``, as in CenterNet2.

    Args:
        in_channels (int): Channels of the FPN levels.
        feat_channels (int): Channels of the tower. Defaults to 256.
        num_convs (int): Tower depth. Defaults to 4.
        strides (Sequence[int]): Level strides. Defaults to (8, 16, 32, 64, 128).
        regress_ranges (Sequence[tuple]): Half-diagonal range of each level. Defaults to
            ((0, 80), (64, 160), (128, 320), (256, 640), (512, INF)).
        hm_min_overlap (float): Sets ``delta``. Defaults to 0.8.
        min_radius (float): Defaults to 4.
        loss_hm (dict): ``alpha``, ``beta``, ``gamma``, ``pos_weight``, ``neg_weight``,
            ``ignore_high_fp``, ``sigmoid_clamp``. Defaults to CenterNet2's values with the
            X-Paste/Detic ``POS_WEIGHT = NEG_WEIGHT = 0.5``, ``IGNORE_HIGH_FP = 0.85``.
        reg_weight (float): Weight of the GIoU loss. Defaults to 1.0.
        norm_cfg (dict): Norm of the tower. Defaults to GroupNorm with 32 groups.
        prior_prob (float): Initial heatmap probability. Defaults to 0.01.
        num_classes (int): Must be 1 (set by mmdet's two-stage detector). Defaults to 1.
        train_cfg (dict, optional): Unused (proposals in training use ``rpn_proposal``).
        test_cfg (dict, optional): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``.
        init_cfg (dict, optional): Initialisation config. Defaults to None (CenterNet2's
            initialisation in :meth:`init_weights`).
    """

    def __init__(self,
                 in_channels: int,
                 feat_channels: int = 256,
                 num_convs: int = 4,
                 strides: Sequence[int] = (8, 16, 32, 64, 128),
                 regress_ranges: Sequence[tuple] = ((0, 80), (64, 160), (128, 320),
                                                    (256, 640), (512, INF)),
                 hm_min_overlap: float = 0.8,
                 min_radius: float = 4,
                 loss_hm: Optional[dict] = None,
                 reg_weight: float = 1.0,
                 norm_cfg: dict = dict(type='GN', num_groups=32, requires_grad=True),
                 prior_prob: float = 0.01,
                 num_classes: int = 1,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes != 1:
            raise ValueError(f'CenterNetProposalHead is class-agnostic: num_classes must be 1, '
                             f'got {num_classes}')
        self.num_classes = 1
        if len(strides) != len(regress_ranges):
            raise ValueError(f'strides {tuple(strides)} and regress_ranges '
                             f'{tuple(regress_ranges)} must have one entry per level')
        self.strides = tuple(strides)
        self.regress_ranges = tuple(tuple(r) for r in regress_ranges)
        self.delta = (1 - hm_min_overlap) / (1 + hm_min_overlap)
        self.min_radius = min_radius
        self.loss_hm = dict(alpha=0.25, beta=4.0, gamma=2.0, pos_weight=0.5, neg_weight=0.5,
                            ignore_high_fp=0.85, sigmoid_clamp=1e-4)
        unknown = set(loss_hm or {}) - set(self.loss_hm)
        if unknown:
            raise KeyError(f'loss_hm: unknown keys {sorted(unknown)}; known: '
                           f'{sorted(self.loss_hm)}')
        self.loss_hm.update(loss_hm or {})
        self.reg_weight = reg_weight
        self.prior_prob = prior_prob
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.tower = nn.Sequential(*[
            ConvModule(in_channels if i == 0 else feat_channels, feat_channels, 3, padding=1,
                       norm_cfg=norm_cfg, bias=True) for i in range(num_convs)])
        self.heatmap = nn.Conv2d(feat_channels, 1, 3, padding=1)
        self.reg = nn.Conv2d(feat_channels, 4, 3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in self.strides])

    def init_weights(self) -> None:
        """CenterNet2's initialisation: normal(0.01) convs with zero bias, box bias 8, heatmap
        bias at ``prior_prob``."""
        super().init_weights()
        if self.init_cfg is not None:
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.constant_(m.bias, 0)
        nn.init.constant_(self.reg.bias, 8.0)
        nn.init.constant_(self.heatmap.bias, -math.log((1 - self.prior_prob) / self.prior_prob))

    def forward(self, x: Tuple[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Heatmap logits ``(N, 1, H, W)`` and distances in stride units ``(N, 4, H, W)`` per
        level."""
        if len(x) != len(self.strides):
            raise ValueError(f'CenterNetProposalHead got {len(x)} feature levels for strides '
                             f'{self.strides}: the neck must output one level per stride')
        heatmaps, regs = [], []
        for feat, scale in zip(x, self.scales):
            feat = self.tower(feat)
            heatmaps.append(self.heatmap(feat))
            regs.append(scale(self.reg(feat)).float().clamp(min=0))
        return heatmaps, regs

    def loss_by_feat(self, heatmaps: List[Tensor], regs: List[Tensor], batch_gt_instances,
                     batch_img_metas, batch_gt_instances_ignore=None) -> Dict[str, Tensor]:
        """Heatmap focal loss (positive and negative parts) and GIoU loss."""
        sizes = [tuple(h.shape[-2:]) for h in heatmaps]
        boxes = [inst.bboxes if isinstance(inst.bboxes, Tensor) else inst.bboxes.tensor
                 for inst in batch_gt_instances]
        pos_inds, target_hm, target_reg = batch_targets(
            boxes, sizes, self.strides, self.regress_ranges, self.delta, self.min_radius)
        hm_pred = torch.cat([h.permute(0, 2, 3, 1).reshape(-1) for h in heatmaps])
        reg_pred = torch.cat([r.permute(0, 2, 3, 1).reshape(-1, 4) for r in regs])

        num_pos = max(reduce_mean(hm_pred.new_tensor(float(pos_inds.numel()))).item(), 1.0)
        cfg = self.loss_hm
        pos_loss, neg_loss = heatmap_focal_loss(
            hm_pred.float(), target_hm, pos_inds, alpha=cfg['alpha'], beta=cfg['beta'],
            gamma=cfg['gamma'], sigmoid_clamp=cfg['sigmoid_clamp'],
            ignore_high_fp=cfg['ignore_high_fp'])
        reg_inds = torch.nonzero(target_reg.max(dim=1)[0] >= 0).squeeze(1)
        num_reg = max(reduce_mean(hm_pred.new_tensor(float(reg_inds.numel()))).item(), 1.0)
        if len(reg_inds):
            reg_loss = ltrb_giou_loss(reg_pred[reg_inds], target_reg[reg_inds]).sum()
        else:
            reg_loss = reg_pred.sum() * 0
        return dict(
            loss_hm_pos=cfg['pos_weight'] * pos_loss / num_pos,
            loss_hm_neg=cfg['neg_weight'] * neg_loss / num_pos,
            loss_reg=self.reg_weight * reg_loss / num_reg)

    def predict_by_feat(self, heatmaps: List[Tensor], regs: List[Tensor],
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: Optional[ConfigDict] = None, rescale: bool = False,
                        with_nms: bool = True) -> List[InstanceData]:
        """Proposals of each image: ``bboxes``, ``scores`` (``sqrt`` of the heatmap) and
        ``labels`` (zeros), in the input image's coordinates (``rescale`` is not supported:
        proposals feed the RoI head)."""
        cfg = self.test_cfg if cfg is None else cfg
        if cfg is None:
            raise ValueError('CenterNetProposalHead needs a test_cfg (nms_pre, score_thr, nms, '
                             'max_per_img) to make proposals')
        if rescale:
            raise ValueError('CenterNetProposalHead makes proposals for the RoI head; rescale '
                             'must be False')
        sizes = [tuple(h.shape[-2:]) for h in heatmaps]
        points = grid_points(sizes, self.strides, heatmaps[0].device)
        results = []
        for i in range(heatmaps[0].size(0)):
            boxes, scores = [], []
            for lvl, (hm, reg, stride) in enumerate(zip(heatmaps, regs, self.strides)):
                prob = hm[i].detach().reshape(-1).sigmoid()
                dist = reg[i].detach().permute(1, 2, 0).reshape(-1, 4) * stride
                keep = torch.nonzero(prob > cfg['score_thr']).squeeze(1)
                if keep.numel() > cfg['nms_pre']:
                    keep = keep[prob[keep].topk(cfg['nms_pre'])[1]]
                pts = points[lvl][keep]
                d = dist[keep]
                b = torch.stack([pts[:, 0] - d[:, 0], pts[:, 1] - d[:, 1],
                                 pts[:, 0] + d[:, 2], pts[:, 1] + d[:, 3]], dim=1)
                # CenterNet2 keeps boxes non-empty for the RoI heads
                b[:, 2] = torch.max(b[:, 2], b[:, 0] + 0.01)
                b[:, 3] = torch.max(b[:, 3], b[:, 1] + 0.01)
                boxes.append(b)
                scores.append(prob[keep].sqrt())
            boxes, scores = torch.cat(boxes), torch.cat(scores)
            shape = (batch_img_metas[i] or {}).get('img_shape') if batch_img_metas else None
            if shape is not None:
                # CenterNet2 leaves proposals unclipped; clipping them as detectron2's RPN does
                # keeps RoIAlign's adaptive sampling from pooling far outside the image
                boxes[:, 0::2] = boxes[:, 0::2].clamp(0, shape[1])
                boxes[:, 1::2] = boxes[:, 1::2].clamp(0, shape[0])
                valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
                boxes, scores = boxes[valid], scores[valid]
            if with_nms and boxes.numel():
                _, keep = batched_nms(boxes, scores, scores.new_zeros(len(scores)),
                                      cfg['nms'])
                boxes, scores = boxes[keep], scores[keep]
            if len(scores) > cfg['max_per_img']:
                top = scores.topk(cfg['max_per_img'])[1]
                boxes, scores = boxes[top], scores[top]
            results.append(InstanceData(bboxes=boxes, scores=scores,
                                        labels=scores.new_zeros(len(scores), dtype=torch.long)))
        return results

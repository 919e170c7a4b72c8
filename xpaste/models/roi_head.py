"""CenterNet2's second stage: a cascade RoI head that combines its scores with the proposals'."""
from typing import List, Sequence, Tuple

import torch
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads import CascadeRoIHead
from mmdet.models.utils import empty_instances, unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, get_box_tensor, scale_boxes
from mmengine.structures import InstanceData
from torch import Tensor


class _ScaleGradient(torch.autograd.Function):
    """Identity forward, gradient times ``scale`` backward (detectron2's cascade)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def combine_scores(stage_probs: Sequence[Tensor], proposal_scores: Tensor,
                   mult_proposal_score: bool = True) -> Tensor:
    """Final class scores of CenterNet2: the mean of the stages' class probabilities, times
    the proposal score, square-rooted (``sqrt(p_cls * p_proposal)``).

    Args:
        stage_probs (Sequence[Tensor]): ``(N, C + 1)`` probabilities of each stage.
        proposal_scores (Tensor): ``(N,)`` scores of the proposals.
        mult_proposal_score (bool): False returns the mean probabilities. Defaults to True.

    Returns:
        Tensor: ``(N, C + 1)`` scores.
    """
    probs = sum(stage_probs) / len(stage_probs)
    if not mult_proposal_score:
        return probs
    return (probs * proposal_scores[:, None]).clamp(min=0).sqrt()


@MODELS.register_module()
class CenterNet2RoIHead(CascadeRoIHead):
    """Cascade RoI head of CenterNet2 (Detic's ``DeticCascadeROIHeads``), which differs from
    mmdet's ``CascadeRoIHead`` as detectron2's cascade does:

    1. Stage 0 samples proposals (with the ground truth added); the later stages take every
       refined box of the previous stage (``PseudoSampler`` in their ``train_cfg``), clipped
       to the image, empty boxes removed, ground-truth proposals kept.
    2. The pooled box features pass the gradient scaled by ``1 / num_stages``.
    3. One mask head, trained on the positives of stage 0 and run on the final detections.
    4. Boxes are class-agnostic (``reg_class_agnostic=True`` in every stage). Scores: the
       stages' class probabilities are averaged (not their logits) and combined
       with the proposal score by :func:`combine_scores` (``mult_proposal_score``), then the
       boxes of the last stage go through per-class NMS (``rcnn`` test config).

    Args:
        mult_proposal_score (bool): Multiply by the proposal score. Defaults to True.
        **kwargs: As :class:`mmdet.models.roi_heads.CascadeRoIHead`; ``mask_roi_extractor``
            and ``mask_head`` are single configs.
    """

    def __init__(self, *args, mult_proposal_score: bool = True, **kwargs):
        self.mult_proposal_score = mult_proposal_score
        super().__init__(*args, **kwargs)
        specific = [i for i, head in enumerate(self.bbox_head) if not head.reg_class_agnostic]
        if specific:
            raise ValueError(f'CenterNet2RoIHead regresses one box per RoI: bbox_head stages '
                             f'{specific} need reg_class_agnostic=True')

    def init_mask_head(self, mask_roi_extractor, mask_head) -> None:
        if isinstance(mask_head, list) or isinstance(mask_roi_extractor, list):
            raise TypeError('CenterNet2RoIHead has one mask head and one mask RoI extractor; '
                            'give single configs, not lists')
        self.mask_head = MODELS.build(mask_head)
        self.share_roi_extractor = mask_roi_extractor is None
        self.mask_roi_extractor = (self.bbox_roi_extractor[-1] if self.share_roi_extractor
                                   else MODELS.build(mask_roi_extractor))

    # ------------------------------------------------------------------ forward pieces
    def _bbox_forward(self, stage: int, x: Tuple[Tensor], rois: Tensor) -> dict:
        extractor = self.bbox_roi_extractor[stage]
        feats = extractor(x[:extractor.num_inputs], rois)
        if feats.requires_grad:
            feats = _ScaleGradient.apply(feats, 1.0 / self.num_stages)
        cls_score, bbox_pred = self.bbox_head[stage](feats)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, bbox_feats=feats)

    def _mask_forward(self, x: Tuple[Tensor], rois: Tensor) -> dict:
        feats = self.mask_roi_extractor(x[:self.mask_roi_extractor.num_inputs], rois)
        return dict(mask_preds=self.mask_head(feats))

    def _probs(self, stage: int, cls_score: Tensor) -> Tensor:
        head = self.bbox_head[stage]
        if head.custom_activation:
            return head.loss_cls.get_activation(cls_score)
        return cls_score.softmax(dim=-1)

    def _regress(self, stage: int, rois: Tensor, bbox_pred: Tensor,
                 batch_img_metas: List[dict], drop_empty: bool) -> List[Tensor]:
        """Boxes predicted by ``stage`` for each image, clipped to it."""
        head = self.bbox_head[stage]
        out = []
        for i, meta in enumerate(batch_img_metas):
            inds = rois[:, 0] == i
            boxes = get_box_tensor(head.bbox_coder.decode(
                rois[inds, 1:], bbox_pred[inds].view(-1, head.bbox_coder.encode_size),
                max_shape=meta['img_shape']))
            if drop_empty:
                boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
            out.append(boxes)
        return out

    # ------------------------------------------------------------------ training
    def mask_loss(self, x: Tuple[Tensor], sampling_results, batch_gt_instances) -> dict:
        pos_rois = bbox2roi([res.pos_priors for res in sampling_results])
        mask_results = self._mask_forward(x, pos_rois)
        mask_results.update(self.mask_head.loss_and_target(
            mask_preds=mask_results['mask_preds'], sampling_results=sampling_results,
            batch_gt_instances=batch_gt_instances, rcnn_train_cfg=self.train_cfg[0]))
        return mask_results

    def loss(self, x: Tuple[Tensor], rpn_results_list, batch_data_samples) -> dict:
        gts, gts_ignore, metas = unpack_gt_instances(batch_data_samples)
        losses = dict()
        results_list = rpn_results_list
        first_sampling = None
        for stage in range(self.num_stages):
            sampling_results = []
            for i, results in enumerate(results_list):
                results = InstanceData(priors=results.bboxes)
                assign = self.bbox_assigner[stage].assign(results, gts[i], gts_ignore[i])
                sampling_results.append(self.bbox_sampler[stage].sample(
                    assign, results, gts[i], feats=[lvl[i][None] for lvl in x]))
            if stage == 0:
                first_sampling = sampling_results
            bbox_results = self.bbox_loss(stage, x, sampling_results)
            weight = self.stage_loss_weights[stage]
            for name, value in bbox_results['loss_bbox'].items():
                losses[f's{stage}.{name}'] = value * weight if 'loss' in name else value
            if stage < self.num_stages - 1:
                with torch.no_grad():
                    boxes = self._regress(stage, bbox_results['rois'],
                                          bbox_results['bbox_pred'], metas, drop_empty=True)
                results_list = [InstanceData(bboxes=b) for b in boxes]
        if self.with_mask:
            mask_results = self.mask_loss(x, first_sampling, gts)
            losses.update(mask_results['loss_mask'])
        return losses

    # ------------------------------------------------------------------ inference
    def _cascade(self, x, rpn_results_list, batch_img_metas):
        """Final-stage rois and box deltas, and the combined scores of each image."""
        proposals = [res.bboxes for res in rpn_results_list]
        num_per_img = [len(p) for p in proposals]
        rois = bbox2roi(proposals)
        stage_probs = []
        for stage in range(self.num_stages):
            bbox_results = self._bbox_forward(stage, x, rois)
            stage_probs.append(self._probs(stage, bbox_results['cls_score']))
            if stage < self.num_stages - 1:
                boxes = self._regress(stage, rois, bbox_results['bbox_pred'], batch_img_metas,
                                      drop_empty=False)
                rois = bbox2roi(boxes)
        prop_scores = torch.cat([res.scores for res in rpn_results_list])
        scores = combine_scores(stage_probs, prop_scores, self.mult_proposal_score)
        return rois, bbox_results['bbox_pred'], scores.split(num_per_img)

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict], rpn_results_list,
                     rcnn_test_cfg, rescale: bool = False, **kwargs) -> List[InstanceData]:
        if sum(len(res) for res in rpn_results_list) == 0:
            return empty_instances(batch_img_metas, x[0].device, task_type='bbox',
                                   box_type=self.bbox_head[-1].predict_box_type,
                                   num_classes=self.bbox_head[-1].num_classes,
                                   score_per_cls=rcnn_test_cfg is None)
        rois, bbox_pred, scores = self._cascade(x, rpn_results_list, batch_img_metas)
        boxes = self._regress(self.num_stages - 1, rois, bbox_pred, batch_img_metas,
                              drop_empty=False)
        results_list = []
        for meta, b, s in zip(batch_img_metas, boxes, scores):
            if rescale and b.size(0) > 0:
                b = scale_boxes(b, [1 / f for f in meta['scale_factor']])
            det, labels = multiclass_nms(b, s, rcnn_test_cfg.score_thr, rcnn_test_cfg.nms,
                                         rcnn_test_cfg.max_per_img)
            results_list.append(InstanceData(bboxes=det[:, :-1], scores=det[:, -1],
                                             labels=labels))
        return results_list

    def predict_mask(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                     results_list: List[InstanceData], rescale: bool = False):
        mask_rois = bbox2roi([res.bboxes for res in results_list])
        if mask_rois.shape[0] == 0:
            return empty_instances(batch_img_metas, mask_rois.device, task_type='mask',
                                   instance_results=results_list,
                                   mask_thr_binary=self.test_cfg.mask_thr_binary)
        mask_preds = self._mask_forward(x, mask_rois)['mask_preds']
        mask_preds = mask_preds.split([len(res) for res in results_list], 0)
        return self.mask_head.predict_by_feat(
            mask_preds=mask_preds, results_list=results_list, batch_img_metas=batch_img_metas,
            rcnn_test_cfg=self.test_cfg, rescale=rescale)

    def forward(self, x: Tuple[Tensor], rpn_results_list, batch_data_samples) -> tuple:
        """Tensor outputs (combined scores, last-stage deltas[, mask logits of the final
        rois]) without post-processing."""
        metas = [s.metainfo for s in batch_data_samples]
        rois, bbox_pred, scores = self._cascade(x, rpn_results_list, metas)
        outs = (scores, bbox_pred)
        if self.with_mask:
            outs = outs + (self._mask_forward(x, rois)['mask_preds'], )
        return outs
